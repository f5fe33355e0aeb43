//! Product tree and remainder trees over `rug::Integer`, level by level, each level's nodes
//! split across `std::thread::scope` threads.
//!
//! Level 0 is the leaves (the caller's slice, never copied); level k+1 holds the products of
//! pairs of level k (an odd last node is carried up alone), up to the root for
//! [`remainders_of`] and up to the two-node level below it for the batch GCD (both remainder
//! trees start below the root, so its multiplication, the biggest, is never done). Levels above the leaves live in a
//! [`LevelStore`]: in memory, or spilled to disk under the memory limit, and each is taken
//! back once on the way down; the lowest [`REBUILT_LEVELS`] are not kept at all but rebuilt
//! from the leaves when the walk down reaches them.
//!
//! Two remainder trees compute `(Z / Xᵢ) mod Xᵢ` for the root product `Z` (what the batch GCD
//! needs: `gcd((Z / Xᵢ) mod Xᵢ, Xᵢ)`):
//! - plain: `R_child = R_parent mod P_child²`, and at a leaf `(R / X) mod X`;
//! - scaled (Bernstein, "Scaled remainder trees", 2004): each node carries the fraction
//!   `y = frac(Z / P²)` as a fixed-point integer of `2·bits(P) + G − b` bits (b: the shortest
//!   leaf, which needs only `bits(X) + G`); a child gets
//!   `frac(y_parent · P_sibling²)`, a multiplication instead of a division (below the root,
//!   `frac(P_sibling / P)`: the only divisions, one per thread), and a leaf reads
//!   `(Z / X) mod X = round(y · X)`. Floors lose at most one unit per level and the factor
//!   `P_sibling² / 2^(k_parent − k_child)` is below 4, so `G = 2·depth + 64` guard bits keep the
//!   leaf exact.

use std::sync::atomic::{AtomicUsize, Ordering};

use rug::Integer;

pub(crate) use crate::par::par_map;

use super::spill::LevelStore;
use super::{BatchGcdError, Phase, Progress};

/// What the tree walks need besides their inputs.
pub(crate) struct Ctx<'a> {
    pub threads: usize,
    pub progress: &'a dyn Progress,
    pub done: AtomicUsize,
    pub total: usize,
}

impl Ctx<'_> {
    pub(crate) fn tick(&self, phase: Phase) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        self.progress.on_level(phase, done, self.total);
    }
}

/// Number of levels above the leaves for `n` leaves.
pub(crate) fn depth(n: usize) -> usize {
    let mut d = 0;
    let mut m = n;
    while m > 1 {
        m = m.div_ceil(2);
        d += 1;
    }
    d
}

fn pair_products(level: &[Integer], threads: usize) -> Vec<Integer> {
    par_map(level.len().div_ceil(2), threads, |j| {
        match level.get(2 * j + 1) {
            Some(b) => Integer::from(&level[2 * j] * b),
            None => level[2 * j].clone(),
        }
    })
}

/// The product tree of `leaves` (at least two): the levels above the leaves go to `store`.
/// With `with_root`, up to the root; without, up to the level of two nodes (the remainder
/// trees of the batch GCD start below the root: the biggest multiplication, on one thread,
/// is never done).
pub(crate) fn product_tree(
    leaves: &[Integer],
    store: &mut LevelStore,
    ctx: &Ctx<'_>,
    with_root: bool,
) -> Result<(), BatchGcdError> {
    if leaves.len() <= 2 && !with_root {
        return Ok(());
    }
    let mut cur = pair_products(leaves, ctx.threads);
    ctx.tick(Phase::Product);
    while cur.len() > 2 || (with_root && cur.len() == 2) {
        let next = pair_products(&cur, ctx.threads);
        keep(store, cur)?;
        ctx.tick(Phase::Product);
        cur = next;
    }
    keep(store, cur)
}

/// Levels above the leaves that are not kept but rebuilt on the way down: the cheapest to
/// compute (about 1 % of the run each) and each as big as any other (128 MB for a million
/// RSA-1024 moduli), so memory is saved for almost no time.
pub(crate) const REBUILT_LEVELS: usize = 3;

fn keep(store: &mut LevelStore, level: Vec<Integer>) -> Result<(), BatchGcdError> {
    if store.len() < REBUILT_LEVELS {
        store.push_rebuild();
        Ok(())
    } else {
        store.push(level)
    }
}

/// Walks down from the top stored level to the leaves: `step(parents, level, i)` gives
/// node `i`'s value from its parent's (`parents[i / 2]`, `top` for the top level); `leaf`
/// does the same at the leaves.
fn descend<R: Send + Sync, T: Send>(
    leaves: &[Integer],
    store: &mut LevelStore,
    top: R,
    ctx: &Ctx<'_>,
    phase: Phase,
    step: impl Fn(&R, &[Integer], usize) -> R + Sync,
    leaf: impl Fn(&R, &[Integer], usize) -> T + Sync,
) -> Result<Vec<T>, BatchGcdError> {
    let mut parents = vec![top];
    // the bottom levels, rebuilt from the leaves when first needed (lowest last)
    let mut rebuilt: Vec<Vec<Integer>> = Vec::new();
    for k in (0..store.len()).rev() {
        let level = if store.is_rebuild(k) {
            if rebuilt.is_empty() {
                let mut cur = pair_products(leaves, ctx.threads);
                for _ in 0..k {
                    let next = pair_products(&cur, ctx.threads);
                    rebuilt.push(cur);
                    cur = next;
                }
                rebuilt.push(cur);
            }
            rebuilt.pop().unwrap_or_default()
        } else {
            store.take(k)?
        };
        parents = par_map(level.len(), ctx.threads, |i| {
            step(&parents[i / 2], &level, i)
        });
        ctx.tick(phase);
    }
    let out = par_map(leaves.len(), ctx.threads, |i| {
        leaf(&parents[i / 2], leaves, i)
    });
    ctx.tick(phase);
    Ok(out)
}

/// Plain remainder tree with squares: `(Z / Xᵢ) mod Xᵢ` for each leaf. `store` holds the
/// tree up to its two-node level (no root): there `Z mod P² = P · (P_sibling mod P)`.
pub(crate) fn cofactors_plain(
    leaves: &[Integer],
    store: &mut LevelStore,
    ctx: &Ctx<'_>,
) -> Result<Vec<Integer>, BatchGcdError> {
    let below_root = |level: &[Integer], i: usize| -> Integer {
        let p = &level[i];
        let sibling = level
            .get(i ^ 1)
            .map_or_else(Integer::new, |s| Integer::from(s % p));
        sibling * p
    };
    descend(
        leaves,
        store,
        None,
        ctx,
        Phase::Remainder,
        |r: &Option<Integer>, level, i| {
            Some(match r {
                None => below_root(level, i),
                Some(r) => Integer::from(r % &Integer::from(level[i].square_ref())),
            })
        },
        |r, leaves, i| {
            let x = &leaves[i];
            let mut m = match r {
                None => below_root(leaves, i),
                Some(r) => Integer::from(r % &Integer::from(x.square_ref())),
            };
            m.div_exact_mut(x);
            m
        },
    )
}

/// A fixed-point fraction `value / 2^bits` of the scaled remainder tree.
pub(crate) struct Fixed {
    value: Integer,
    bits: u32,
}

/// Largest root (in bits) the scaled tree takes: its precisions must fit GMP's `u32` bit counts.
pub(crate) const SCALED_MAX_ROOT_BITS: usize = (u32::MAX as usize - 4096) / 2 - 4096;

/// Scaled remainder tree: `(Z / Xᵢ) mod Xᵢ` for each leaf, with multiplications only.
pub(crate) fn cofactors_scaled(
    leaves: &[Integer],
    store: &mut LevelStore,
    ctx: &Ctx<'_>,
) -> Result<Vec<Integer>, BatchGcdError> {
    // A leaf X needs bits(X) + G bits; every node carries the same offset below 2·bits(P) + G,
    // so the child's factor P_sibling² / 2^(k_parent − k_child) stays below 4.
    let guard = 2 * depth(leaves.len()) as u32 + 64;
    let shortest = leaves
        .iter()
        .map(Integer::significant_bits)
        .min()
        .unwrap_or(0);
    let prec = |p: &Integer| 2 * p.significant_bits() + guard - shortest;
    // The root is not needed: below it, frac(Z / P²) = frac(P_sibling / P) directly, one
    // division per child on its own thread (instead of one reciprocal 2^k / Z on one thread).
    let top = Fixed {
        value: Integer::new(),
        bits: 0,
    };
    let child = |parent: &Fixed, level: &[Integer], i: usize| -> Fixed {
        let Some(sibling) = level.get(i ^ 1) else {
            return Fixed {
                value: parent.value.clone(),
                bits: parent.bits,
            };
        };
        let k = prec(&level[i]);
        if parent.bits == 0 {
            let mut v = Integer::from(sibling % &level[i]);
            v <<= k;
            v /= &level[i];
            return Fixed { value: v, bits: k };
        }
        let mut v = Integer::from(sibling.square_ref());
        v *= &parent.value;
        v >>= parent.bits - k;
        v.keep_bits_mut(k);
        // the buffer still has room for the whole product (about 1.5 times the value): give
        // it back, or every node of the level keeps it
        v.shrink_to_fit();
        Fixed { value: v, bits: k }
    };
    descend(
        leaves,
        store,
        top,
        ctx,
        Phase::Remainder,
        child,
        |parent, leaves, i| {
            let y = child(parent, leaves, i);
            let x = &leaves[i];
            // m = round(y · X) mod X
            let mut m = Integer::from(&y.value * x);
            let mut half = Integer::from(1);
            half <<= y.bits - 1;
            m += half;
            m >>= y.bits;
            if m >= *x {
                m -= x;
            }
            m
        },
    )
}

/// `x mod Xᵢ` for each leaf, `x` given as the product of `x_parts`, through a plain remainder
/// tree (no squares); `store` holds the tree up to its root. At the root, each part is reduced
/// on its own thread (one big division split across the threads) and the results multiplied.
pub(crate) fn remainders_of(
    x_parts: &[Integer],
    leaves: &[Integer],
    store: &mut LevelStore,
    ctx: &Ctx<'_>,
) -> Result<Vec<Integer>, BatchGcdError> {
    let modulo = |r: &Option<Integer>, m: &Integer| match r {
        None => {
            let reduced = par_map(x_parts.len(), ctx.threads, |j| {
                Integer::from(&x_parts[j] % m)
            });
            reduced
                .into_iter()
                .fold(Integer::from(1), |acc, r| Integer::from(&acc * &r) % m)
        }
        Some(r) => Integer::from(r % m),
    };
    descend(
        leaves,
        store,
        None,
        ctx,
        Phase::Remainder,
        |r, level, i| Some(modulo(r, &level[i])),
        |r, leaves, i| modulo(r, &leaves[i]),
    )
}

/// The products of `leaves` by contiguous slices, at most `parts` of them (the first level of
/// the product tree that small), keeping only one level at a time.
pub(crate) fn product_parts(leaves: &[Integer], parts: usize, ctx: &Ctx<'_>) -> Vec<Integer> {
    if leaves.is_empty() {
        return vec![Integer::from(1)];
    }
    if leaves.len() <= parts.max(1) {
        return leaves.to_vec();
    }
    let mut cur = pair_products(leaves, ctx.threads);
    ctx.tick(Phase::Corpus);
    while cur.len() > parts.max(1) {
        cur = pair_products(&cur, ctx.threads);
        ctx.tick(Phase::Corpus);
    }
    cur
}
