//! Incremental batch GCD: new moduli against an existing corpus, without the corpus's tree.
//!
//! The corpus is kept as the product of its moduli ([`CorpusProduct`], built once with a
//! product tree and stored as up to four partial products of contiguous slices). For the new
//! moduli Y₁..Yₘ: `P mod Yᵢ` through a remainder tree over the new moduli (each part of P
//! divided by their product on its own thread, the results multiplied, then down their tree),
//! and
//! `gcd(P mod Yᵢ, Yᵢ)` is what Yᵢ shares with the whole corpus, its oldest moduli included;
//! plus an ordinary batch GCD among the new moduli. Only for the hits, one pass over the
//! corpus moduli finds which old modulus shares what (gcd with the product of the hits' gcds
//! first, so a clean old modulus costs one gcd).
//!
//! Stored product format: the magic `D4BGCDP1`, the corpus size and a fingerprint (the
//! product of the moduli modulo 2⁶¹ − 1) as little-endian `u64`s, then the partial products
//! in the spill framing (`spill::write_integers`). [`CorpusProduct::check`] compares the stored
//! size and fingerprint with the corpus at hand.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Instant;

use rug::Integer;

use super::resolve::{dedup, sort_partners};
use super::spill::{read_integers, write_integers};
use super::tree::par_map;
use super::{
    check_moduli, remainders_with, BatchGcdError, How, Options, Partner, Progress, Report, Source,
    Weak,
};

const MAGIC: &[u8; 8] = b"D4BGCDP1";
const FINGERPRINT_MODULUS: u64 = (1 << 61) - 1;

/// The product of an existing corpus of moduli (as partial products of contiguous slices,
/// so that reducing it splits across threads), with what identifies the corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusProduct {
    pub count: u64,
    pub fingerprint: u64,
    pub parts: Vec<Integer>,
}

/// Partial products kept for a corpus: each is reduced on its own thread, and the reduced
/// parts are then multiplied modulo the new moduli's product (`PARTS − 1` multiplications of
/// that size on one thread): four splits the big division over the cores of this kind of
/// machine without making the combination cost more than it saves.
const PARTS: usize = 4;

/// Π xᵢ mod (2⁶¹ − 1).
pub fn fingerprint(moduli: &[Integer]) -> u64 {
    let m = Integer::from(FINGERPRINT_MODULUS);
    let m128 = u128::from(FINGERPRINT_MODULUS);
    moduli.iter().fold(1u64, |acc, x| {
        let r = Integer::from(x % &m).to_u64().unwrap_or(0);
        ((u128::from(acc) * u128::from(r)) % m128) as u64
    })
}

impl CorpusProduct {
    /// The product of `corpus` through a product tree on `opts.threads` threads.
    pub fn build(corpus: &[Integer], opts: &Options, progress: &dyn Progress) -> Self {
        CorpusProduct {
            count: corpus.len() as u64,
            fingerprint: fingerprint(corpus),
            parts: super::product_parts(corpus, PARTS, opts, progress),
        }
    }

    /// The whole product.
    pub fn product(&self) -> Integer {
        self.parts.iter().product()
    }

    /// Whether this product was built from `corpus` (size and fingerprint).
    pub fn check(&self, corpus: &[Integer]) -> Result<(), BatchGcdError> {
        if self.count != corpus.len() as u64 || self.fingerprint != fingerprint(corpus) {
            return Err(BatchGcdError::CorpusMismatch {
                expected: self.count,
                found: corpus.len() as u64,
            });
        }
        Ok(())
    }

    pub fn write_to<W: Write>(&self, mut w: W) -> Result<(), BatchGcdError> {
        w.write_all(MAGIC)?;
        w.write_all(&self.count.to_le_bytes())?;
        w.write_all(&self.fingerprint.to_le_bytes())?;
        write_integers(w, &self.parts)
    }

    pub fn read_from<R: Read>(mut r: R) -> Result<Self, BatchGcdError> {
        let mut head = [0u8; 24];
        r.read_exact(&mut head)
            .map_err(|_| BatchGcdError::BadSpill("truncated corpus product header"))?;
        if &head[..8] != MAGIC {
            return Err(BatchGcdError::BadSpill("not a corpus product file"));
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let parts = read_integers(r)?;
        if parts.is_empty() {
            return Err(BatchGcdError::BadSpill(
                "corpus product file holds no product",
            ));
        }
        let out = CorpusProduct {
            count: word(8),
            fingerprint: word(16),
            parts,
        };
        // The stored product must match its own fingerprint (a cheap integrity check).
        // Π parts mod M is the product's own fingerprint: it must be the stored one.
        if fingerprint(&out.parts) != out.fingerprint {
            return Err(BatchGcdError::BadSpill(
                "corpus product does not match its fingerprint",
            ));
        }
        Ok(out)
    }
}

/// Hits per gcd pass over the corpus (the product of their gcds stays small).
const HITS_PER_PASS: usize = 64;

/// New moduli against `corpus` (whose product is `product`, checked) and against each other.
/// Partners in the corpus have [`Source::Corpus`] and their index in `corpus`.
pub fn run_incremental(
    new: &[Integer],
    corpus: &[Integer],
    product: &CorpusProduct,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Report, BatchGcdError> {
    check_moduli(new)?;
    product.check(corpus)?;
    let mut report = super::run(new, opts, progress)?;
    let t = Instant::now();
    let d = dedup(new);
    let rems = remainders_with(&product.parts, &d.unique, opts, progress)?;
    let g: Vec<Integer> = par_map(d.unique.len(), opts.threads.max(1), |u| {
        Integer::from(rems[u].gcd_ref(&d.unique[u]))
    });
    report.stats.remainder += t.elapsed();
    let t = Instant::now();
    let hits: Vec<usize> = (0..g.len()).filter(|&u| g[u] > 1).collect();
    // (hit unique index) -> [(corpus index, gcd)]
    let mut found: HashMap<usize, Vec<(usize, Integer)>> = HashMap::new();
    for chunk in hits.chunks(HITS_PER_PASS) {
        let mut all = Integer::from(1);
        for &u in chunk {
            all *= &g[u];
        }
        let per_old = par_map(corpus.len(), opts.threads.max(1), |j| {
            let x = &corpus[j];
            if Integer::from(x.gcd_ref(&all)) == 1 {
                return Vec::new();
            }
            chunk
                .iter()
                .filter_map(|&u| {
                    let e = Integer::from(x.gcd_ref(&g[u]));
                    (e > 1).then_some((u, e))
                })
                .collect()
        });
        for (j, list) in per_old.into_iter().enumerate() {
            for (u, e) in list {
                found.entry(u).or_default().push((j, e));
            }
        }
    }
    merge(&mut report.weak, &d.unique, &d.groups, found);
    report.stats.resolve += t.elapsed();
    Ok(report)
}

/// Adds the corpus partners to the findings of the new-vs-new run and reclassifies.
fn merge(
    weak: &mut Vec<Weak>,
    unique: &[Integer],
    groups: &[Vec<usize>],
    found: HashMap<usize, Vec<(usize, Integer)>>,
) {
    let mut at: HashMap<usize, usize> =
        weak.iter().enumerate().map(|(k, w)| (w.index, k)).collect();
    for (u, olds) in found {
        let y = &unique[u];
        for &i in &groups[u] {
            let k = *at.entry(i).or_insert_with(|| {
                weak.push(Weak {
                    index: i,
                    how: How::Duplicate,
                    factors: Vec::new(),
                    shared_with: Vec::new(),
                });
                weak.len() - 1
            });
            let w = &mut weak[k];
            for (j, e) in &olds {
                w.shared_with.push(Partner {
                    source: Source::Corpus,
                    index: *j,
                    factor: (e != y).then(|| e.clone()),
                });
            }
            sort_partners(&mut w.shared_with);
            let mut shared: Vec<&Integer> = w
                .shared_with
                .iter()
                .filter_map(|p| p.factor.as_ref())
                .collect();
            shared.sort();
            shared.dedup();
            if w.factors.is_empty() {
                if let Some(f) = shared.first() {
                    let mut fs = vec![(*f).clone(), Integer::from(y.div_exact_ref(f))];
                    fs.sort();
                    w.factors = fs;
                }
            }
            w.how = match shared.len() {
                0 => How::Duplicate,
                1 if w.how != How::BothPrimesShared => How::SharedPrime,
                _ => How::BothPrimesShared,
            };
        }
    }
    weak.sort_by_key(|w| w.index);
}
