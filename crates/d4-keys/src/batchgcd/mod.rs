//! Batch GCD over a corpus of RSA moduli: which moduli share a prime with another one.
//!
//! For moduli X₁..Xₙ with product Z, `gcd((Z / Xᵢ) mod Xᵢ, Xᵢ)` is the product of the primes
//! of Xᵢ that another modulus also has. It is computed with a product tree and a remainder
//! tree (`tree`; plain or scaled remainder tree, see [`Method`]) on all the threads
//! asked for, with the tree's levels spilled to a temporary directory when the estimated tree
//! would not fit under [`Options::memory_limit`] (`spill`). Around the trees (`resolve`):
//! exact duplicates are removed first and reported as shared keys, not as factored; a
//! modulus whose gcd is itself (both primes shared) is split by pairwise gcd with the other
//! weak moduli; every weak modulus is listed with its factors, the moduli it shares them with
//! and how it was found.
//!
//! `incremental` checks new moduli against an existing corpus through the corpus's stored
//! product, without rebuilding the corpus tree; `input` reads hex moduli, one per line.

pub mod incremental;
pub mod input;
mod resolve;
pub mod spill;
pub mod synth;
mod tree;

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

pub use rug::Integer;

use spill::LevelStore;
use tree::Ctx;

pub use incremental::{run_incremental, CorpusProduct};

/// What can go wrong around the trees (the arithmetic itself cannot fail).
#[derive(Debug, thiserror::Error)]
pub enum BatchGcdError {
    #[error("spill or corpus file I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad spill or corpus product file: {0}")]
    BadSpill(&'static str),
    #[error("modulus {index} is not an integer above 1")]
    BadModulus { index: usize },
    #[error("the corpus product was built from {expected} moduli, the corpus has {found}")]
    CorpusMismatch { expected: u64, found: u64 },
}

/// The remainder tree to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// `R_child = R_parent mod P_child²`: one division per node.
    Plain,
    /// Bernstein's scaled remainder tree: one multiplication per node. The default: about
    /// 10–25 % less CPU than `Plain` with GMP, for about 30 % more memory in the remainder
    /// tree (docs/benchmarks.md). Falls back to `Plain` past about 2³¹ bits at the root
    /// (rug's bit counts are `u32`).
    #[default]
    Scaled,
}

/// Tuning of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Threads for each tree level (at least 1).
    pub threads: usize,
    /// Bytes the trees may hold in memory; levels past it are spilled. `None`: no limit.
    pub memory_limit: Option<u64>,
    /// Where the spill directory is created (default: the system temp dir).
    pub spill_dir: Option<PathBuf>,
    pub method: Method,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_limit: None,
            spill_dir: None,
            method: Method::default(),
        }
    }
}

/// The phase a progress report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Product,
    Remainder,
    /// The incremental mode's corpus product.
    Corpus,
}

/// Told after each tree level: `done` levels out of `total` for the whole run.
pub trait Progress: Sync {
    fn on_level(&self, phase: Phase, done: usize, total: usize);
}

/// No progress reports.
pub struct NoProgress;

impl Progress for NoProgress {
    fn on_level(&self, _: Phase, _: usize, _: usize) {}
}

/// How a weak modulus was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum How {
    /// One prime shared with other moduli: the gcd is that prime.
    SharedPrime,
    /// Both primes shared (the gcd was the modulus itself), split by pairwise gcd.
    BothPrimesShared,
    /// The same modulus appears more than once (a shared key, not factored).
    Duplicate,
}

impl How {
    /// The name used in the JSON and text output.
    pub fn as_str(self) -> &'static str {
        match self {
            How::SharedPrime => "shared_prime",
            How::BothPrimesShared => "both_primes_shared",
            How::Duplicate => "duplicate",
        }
    }
}

/// Which list a partner index points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The moduli of this run.
    Input,
    /// The existing corpus of the incremental mode.
    Corpus,
}

/// Another modulus a weak one shares something with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    pub source: Source,
    pub index: usize,
    /// The common factor; `None` for an exact duplicate.
    pub factor: Option<Integer>,
}

/// One weak modulus of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weak {
    /// Index in the input.
    pub index: usize,
    pub how: How,
    /// The factors found (p and q), empty for a duplicate that shares no prime.
    pub factors: Vec<Integer>,
    /// Sorted by source, then index.
    pub shared_with: Vec<Partner>,
}

/// Timings and sizes of a run.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub moduli: usize,
    pub distinct: usize,
    pub method: Option<Method>,
    pub product: Duration,
    pub remainder: Duration,
    pub resolve: Duration,
    pub spilled_levels: usize,
    pub spilled_bytes: u64,
}

/// The weak moduli (sorted by index) and how the run went.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub weak: Vec<Weak>,
    pub stats: Stats,
}

/// What a run holds besides the product tree's kept levels, in multiples of the moduli's
/// size: the input and its sorted copy, two levels of the remainder tree (each about twice a
/// level) and the temporaries of the top levels' multiplications and divisions. Measured on
/// 100,000 RSA-1024 moduli (14 MB): 440 MB peak with all 13 kept levels in memory (187 MB),
/// 345 MB with 10 of them spilled, so about 21 times the moduli besides the levels.
const WORKING_SET: u64 = 22;

fn check_moduli(moduli: &[Integer]) -> Result<(), BatchGcdError> {
    match moduli.iter().position(|x| *x <= 1) {
        Some(index) => Err(BatchGcdError::BadModulus { index }),
        None => Ok(()),
    }
}

/// Batch GCD of `moduli`: every modulus that shares a prime with another one, or appears twice.
pub fn run(
    moduli: &[Integer],
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Report, BatchGcdError> {
    check_moduli(moduli)?;
    let t0 = Instant::now();
    let dedup = resolve::dedup(moduli);
    let dedup_time = t0.elapsed();
    let mut stats = Stats {
        moduli: moduli.len(),
        distinct: dedup.unique.len(),
        ..Stats::default()
    };
    let g = gcds_of_distinct(&dedup.unique, opts, progress, &mut stats)?;
    let t = Instant::now();
    let weak = resolve::resolve(&dedup, &g, opts.threads);
    stats.resolve = dedup_time + t.elapsed();
    Ok(Report { weak, stats })
}

/// `gcd((Z / Xᵢ) mod Xᵢ, Xᵢ)` for each modulus as given (duplicates included: their gcd is
/// themselves). The raw batch GCD, without dedup or resolution.
pub fn gcds(moduli: &[Integer], opts: &Options) -> Result<Vec<Integer>, BatchGcdError> {
    check_moduli(moduli)?;
    gcds_of_distinct(moduli, opts, &NoProgress, &mut Stats::default())
}

fn gcds_of_distinct(
    leaves: &[Integer],
    opts: &Options,
    progress: &dyn Progress,
    stats: &mut Stats,
) -> Result<Vec<Integer>, BatchGcdError> {
    if leaves.len() < 2 {
        return Ok(vec![Integer::from(1); leaves.len()]);
    }
    let leaf_bytes: u64 = leaves.iter().map(spill::approx_bytes).sum();
    let mut store = LevelStore::new(
        opts.memory_limit,
        WORKING_SET * leaf_bytes,
        opts.spill_dir.clone(),
    );
    let d = tree::depth(leaves.len());
    let ctx = Ctx {
        threads: opts.threads.max(1),
        progress,
        done: AtomicUsize::new(0),
        total: 2 * d,
    };
    let t = Instant::now();
    tree::product_tree(leaves, &mut store, &ctx, false)?;
    stats.product = t.elapsed();
    let t = Instant::now();
    let root_bits: usize = leaves.iter().map(|x| x.significant_bits() as usize).sum();
    let method = if opts.method == Method::Scaled && root_bits <= tree::SCALED_MAX_ROOT_BITS {
        Method::Scaled
    } else {
        Method::Plain
    };
    let cofactors = match method {
        Method::Scaled => tree::cofactors_scaled(leaves, &mut store, &ctx)?,
        Method::Plain => tree::cofactors_plain(leaves, &mut store, &ctx)?,
    };
    let g = tree::par_map(leaves.len(), ctx.threads, |i| {
        Integer::from(cofactors[i].gcd_ref(&leaves[i]))
    });
    stats.remainder = t.elapsed();
    stats.method = Some(method);
    stats.spilled_levels = store.spilled_levels;
    stats.spilled_bytes = store.spilled_bytes;
    Ok(g)
}

/// `x mod mᵢ` for each of `moduli`, through a product and a remainder tree.
pub fn remainders(
    x: &Integer,
    moduli: &[Integer],
    opts: &Options,
) -> Result<Vec<Integer>, BatchGcdError> {
    check_moduli(moduli)?;
    remainders_with(std::slice::from_ref(x), moduli, opts, &NoProgress)
}

/// `x mod mᵢ` with `x` the product of `x_parts`.
pub(crate) fn remainders_with(
    x_parts: &[Integer],
    moduli: &[Integer],
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Vec<Integer>, BatchGcdError> {
    let leaf_bytes: u64 = moduli.iter().map(spill::approx_bytes).sum();
    let mut store = LevelStore::new(
        opts.memory_limit,
        WORKING_SET * leaf_bytes,
        opts.spill_dir.clone(),
    );
    let d = tree::depth(moduli.len());
    let ctx = Ctx {
        threads: opts.threads.max(1),
        progress,
        done: AtomicUsize::new(0),
        total: 2 * d + 1,
    };
    if moduli.len() >= 2 {
        tree::product_tree(moduli, &mut store, &ctx, true)?;
    }
    tree::remainders_of(x_parts, moduli, &mut store, &ctx)
}

/// The products of `moduli` by contiguous slices, at most `parts` of them, through a product
/// tree on `opts.threads` threads (levels are dropped as soon as the next one is built).
pub(crate) fn product_parts(
    moduli: &[Integer],
    parts: usize,
    opts: &Options,
    progress: &dyn Progress,
) -> Vec<Integer> {
    let ctx = Ctx {
        threads: opts.threads.max(1),
        progress,
        done: AtomicUsize::new(0),
        total: tree::depth(moduli.len()),
    };
    tree::product_parts(moduli, parts, &ctx)
}
