//! Batch GCD against the KEYS.md §3 vectors and generated corpora with planted shared primes,
//! checked against an oracle built from the known factorisations (not from the trees).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use d4_keys::batchgcd::synth::prime_pairs;
use d4_keys::batchgcd::{
    gcds, remainders, run, run_incremental, CorpusProduct, How, Method, NoProgress, Options,
    Partner, Source, Weak,
};
use rug::Integer;

fn ints(xs: &[u64]) -> Vec<Integer> {
    xs.iter().map(|&x| Integer::from(x)).collect()
}

fn all_options() -> Vec<Options> {
    let mut out = Vec::new();
    for method in [Method::Plain, Method::Scaled] {
        for threads in [1, 2, 3] {
            for memory_limit in [None, Some(0)] {
                out.push(Options {
                    threads,
                    memory_limit,
                    spill_dir: None,
                    method,
                });
            }
        }
    }
    out
}

#[test]
fn keys_md_vector_ten_moduli() {
    let m = ints(&[1909, 2923, 291, 205, 989, 62, 451, 1943, 1079, 2419]);
    let want = ints(&[1909, 1, 1, 41, 23, 1, 41, 1, 83, 41]);
    for o in all_options() {
        assert_eq!(gcds(&m, &o).unwrap(), want, "{o:?}");
    }
}

#[test]
fn keys_md_vector_twenty_one_moduli() {
    let m = ints(&[
        708894553, 704488409, 705674273, 707478271, 710167019, 708093251, 702013379, 704030867,
        708691187, 708374743, 712748719, 713581951, 704387447, 707015741, 704308279, 710872423,
        707947453, 704996429, 706323757, 705031051, 714623803,
    ]);
    let want = ints(&[
        1, 12401, 12421, 12451, 1, 12457, 1, 12379, 12457, 12451, 1, 1, 12377, 12421, 1, 1, 1,
        12379, 12401, 12377, 1,
    ]);
    for o in all_options() {
        assert_eq!(gcds(&m, &o).unwrap(), want, "{o:?}");
    }
    // The pairs by prime, zero-based, as listed in KEYS.md.
    let pairs: [(u64, usize, usize); 6] = [
        (12401, 1, 18),
        (12421, 2, 13),
        (12451, 3, 9),
        (12457, 5, 8),
        (12379, 7, 17),
        (12377, 12, 19),
    ];
    let report = run(&m, &Options::default(), &NoProgress).unwrap();
    assert_eq!(report.weak.len(), 12);
    for (p, a, b) in pairs {
        for (i, j) in [(a, b), (b, a)] {
            let w = report.weak.iter().find(|w| w.index == i).unwrap();
            assert_eq!(w.how, How::SharedPrime);
            assert_eq!(w.factors, {
                let mut f = ints(&[p, m[i].to_u64().unwrap() / p]);
                f.sort();
                f
            });
            assert_eq!(
                w.shared_with,
                vec![Partner {
                    source: Source::Input,
                    index: j,
                    factor: Some(Integer::from(p)),
                }]
            );
        }
    }
}

#[test]
fn keys_md_remainders() {
    let m = ints(&[11, 13, 17, 19, 23]);
    for o in all_options() {
        assert_eq!(
            remainders(&Integer::from(8675309), &m, &o).unwrap(),
            ints(&[5, 6, 5, 4, 8]),
            "{o:?}"
        );
    }
}

#[test]
fn small_sizes_match_pairwise_gcds() {
    // Every size from 2 to 40 (odd carries at every level), moduli built from a few small
    // primes so that they share: the batch result must equal gcd(X, product of the others).
    let primes = [
        101u64, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157,
    ];
    let mut rng = d4_keys::batchgcd::synth::Rng(7);
    for n in 2..40 {
        let mut m: Vec<Integer> = Vec::new();
        while m.len() < n {
            let a = primes[(rng.next_u64() % 12) as usize];
            let b = 1000 + rng.next_u64() % 100_000;
            m.push(Integer::from(a) * b);
        }
        let want: Vec<Integer> = (0..n)
            .map(|i| {
                let mut others = Integer::from(1);
                for (j, x) in m.iter().enumerate() {
                    if j != i {
                        others *= x;
                    }
                }
                Integer::from(m[i].gcd_ref(&others))
            })
            .collect();
        for o in all_options() {
            assert_eq!(gcds(&m, &o).unwrap(), want, "n={n} {o:?}");
        }
    }
}

/// A corpus with known factorisations: (modulus, p, q) per index.
struct Corpus {
    moduli: Vec<Integer>,
    primes: Vec<(Integer, Integer)>,
}

impl Corpus {
    fn push(&mut self, p: &Integer, q: &Integer) {
        self.moduli.push(Integer::from(p * q));
        self.primes.push((p.clone(), q.clone()));
    }
}

/// `base + 40` moduli of `bits` bits (`base` ≥ 1,960) with planted shared primes: 5 pairs,
/// 3 groups of three, one modulus whose two primes are each shared (p·q, p·r, q·s), exact
/// duplicates (3 pairs, one triple, and one duplicate of a modulus that also shares a prime).
fn planted_corpus(seed: u64, base: usize, bits: u32) -> Corpus {
    let fresh = prime_pairs(seed, base + 40, bits, 2);
    let mut c = Corpus {
        moduli: Vec::new(),
        primes: Vec::new(),
    };
    for (p, q) in &fresh[..base] {
        c.push(p, q);
    }
    let mut extra = fresh[base..].iter().map(|(p, _)| p.clone());
    let mut next = || extra.next().unwrap();
    // pairs: a new modulus with one prime of an old one (spread through the corpus)
    for k in [0usize, 333, 700, 1_234, 1_959] {
        let p = c.primes[k].0.clone();
        c.push(&p, &next());
    }
    // groups of three: two new moduli with the same prime of an old one
    for k in [10usize, 500, 1_500] {
        let p = c.primes[k].1.clone();
        c.push(&p, &next());
        c.push(&p, &next());
    }
    // both primes shared: old modulus 42 = p·q, new p·r and q·s
    let (p, q) = c.primes[42].clone();
    c.push(&p, &next());
    c.push(&next(), &q);
    // duplicates: three pairs, one triple, and a copy of the first planted pair member
    for k in [7usize, 900, 1_800, 77, 77, base] {
        let (p, q) = c.primes[k].clone();
        c.push(&p, &q);
    }
    // shuffle deterministically so planted moduli are not all at the end
    let n = c.moduli.len();
    let mut rng = d4_keys::batchgcd::synth::Rng(seed ^ 0xABCD);
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        c.moduli.swap(i, j);
        c.primes.swap(i, j);
    }
    c
}

/// What the report must hold, from the factorisations alone: for `targets` (indices into
/// `all`), every other index with the same modulus (a duplicate) or one of its primes.
/// Indices below `split` are reported as `Source::Corpus`, the rest as input `i - split`.
fn oracle(all: &Corpus, split: usize) -> Vec<Weak> {
    let mut by_prime: HashMap<&Integer, Vec<usize>> = HashMap::new();
    for (i, (p, q)) in all.primes.iter().enumerate() {
        by_prime.entry(p).or_default().push(i);
        by_prime.entry(q).or_default().push(i);
    }
    let name = |j: usize| {
        if j < split {
            (Source::Corpus, j)
        } else {
            (Source::Input, j - split)
        }
    };
    let mut out = Vec::new();
    for i in split..all.moduli.len() {
        let (p, q) = &all.primes[i];
        let mut partners = Vec::new();
        let mut shared = 0;
        for f in [p, q] {
            let mut any = false;
            for &j in &by_prime[f] {
                if j != i && all.moduli[j] != all.moduli[i] {
                    let (source, index) = name(j);
                    partners.push(Partner {
                        source,
                        index,
                        factor: Some(f.clone()),
                    });
                    any = true;
                }
            }
            shared += usize::from(any);
        }
        for j in 0..all.moduli.len() {
            if j != i && all.moduli[j] == all.moduli[i] {
                let (source, index) = name(j);
                partners.push(Partner {
                    source,
                    index,
                    factor: None,
                });
            }
        }
        if partners.is_empty() {
            continue;
        }
        partners
            .sort_by(|a, b| (a.source, a.index, &a.factor).cmp(&(b.source, b.index, &b.factor)));
        let mut factors = vec![p.clone(), q.clone()];
        factors.sort();
        let (how, factors) = match shared {
            0 => (How::Duplicate, Vec::new()),
            1 => (How::SharedPrime, factors),
            _ => (How::BothPrimesShared, factors),
        };
        out.push(Weak {
            index: i - split,
            how,
            factors,
            shared_with: partners,
        });
    }
    out
}

#[test]
fn planted_corpus_is_reported_exactly_in_memory_and_spilled() {
    planted_exactly(&planted_corpus(19, 1_960, 512), 11);
}

/// The acceptance corpus: 10,000 RSA-1024 moduli (slow in a debug build: run with
/// `cargo test --release -p d4-keys --test batchgcd -- --ignored`).
#[test]
#[ignore]
fn planted_corpus_of_10000_rsa_1024_is_reported_exactly() {
    planted_exactly(&planted_corpus(1024, 9_960, 1024), 14);
}

fn planted_exactly(c: &Corpus, depth: usize) {
    let want = oracle(c, 0);
    // 5 pairs (10) + 3 triples (9) + 3 (both-primes case) + duplicates (3·2 + 3 + the copy,
    // whose original is already a pair member) = 32 weak moduli
    assert_eq!(want.len(), 32);
    assert_eq!(
        want.iter()
            .filter(|w| w.how == How::BothPrimesShared)
            .count(),
        1
    );
    assert_eq!(want.iter().filter(|w| w.how == How::Duplicate).count(), 9);
    for o in [
        Options {
            threads: 2,
            memory_limit: None,
            spill_dir: None,
            method: Method::Scaled,
        },
        Options {
            threads: 2,
            memory_limit: Some(0),
            spill_dir: None,
            method: Method::Scaled,
        },
        Options {
            threads: 1,
            memory_limit: Some(0),
            spill_dir: None,
            method: Method::Plain,
        },
    ] {
        let report = run(&c.moduli, &o, &NoProgress).unwrap();
        assert_eq!(report.weak, want, "{o:?}");
        assert_eq!(report.stats.distinct, c.moduli.len() - 6);
        if o.memory_limit == Some(0) {
            // neither the root nor the three lowest levels are kept
            assert_eq!(report.stats.spilled_levels, depth - 4);
        } else {
            assert_eq!(report.stats.spilled_levels, 0);
        }
    }
}

#[test]
fn incremental_finds_primes_shared_with_the_oldest_moduli() {
    let old = planted_corpus(23, 1_960, 512);
    let fresh = prime_pairs(0x5EED, 120, 512, 2);
    let mut all = Corpus {
        moduli: old.moduli.clone(),
        primes: old.primes.clone(),
    };
    let split = all.moduli.len();
    for (p, q) in &fresh[..100] {
        all.push(p, q);
    }
    let mut extra = fresh[100..].iter().map(|(p, _)| p.clone());
    let mut next = || extra.next().unwrap();
    // the oldest modulus's prime, a duplicate of an old one, a pair among the new ones,
    // a prime shared with an old one that is already weak, and a new modulus whose primes
    // are shared one with the corpus, one with another new modulus
    let p0 = old.primes[0].0.clone();
    all.push(&p0, &next());
    let (p, q) = old.primes[1_000].clone();
    all.push(&p, &q);
    let r = fresh[3].1.clone();
    all.push(&r, &next());
    let weak_old = oracle(&old, 0)[0].index;
    let s = old.primes[weak_old].1.clone();
    all.push(&next(), &s);
    let t = old.primes[5].1.clone();
    let u = fresh[50].0.clone();
    all.push(&t, &u);
    let new = all.moduli[split..].to_vec();
    let want = oracle(&all, split);
    assert!(want.iter().any(|w| w
        .shared_with
        .iter()
        .any(|p| p.source == Source::Corpus && p.index == 0)));
    assert!(want.iter().any(|w| w.how == How::BothPrimesShared));
    let opts = Options {
        threads: 2,
        ..Options::default()
    };
    let product = CorpusProduct::build(&old.moduli, &opts, &NoProgress);
    assert_eq!(product.parts.len(), 4);
    assert_eq!(product.product(), old.moduli.iter().product::<Integer>());
    let mut stored = Vec::new();
    product.write_to(&mut stored).unwrap();
    let product = CorpusProduct::read_from(&stored[..]).unwrap();
    for o in [
        opts.clone(),
        Options {
            memory_limit: Some(0),
            method: Method::Plain,
            ..opts.clone()
        },
    ] {
        let report = run_incremental(&new, &old.moduli, &product, &o, &NoProgress).unwrap();
        assert_eq!(report.weak, want, "{o:?}");
    }
    // a product of another corpus is refused
    assert!(run_incremental(&new, &old.moduli[1..], &product, &opts, &NoProgress).is_err());
    stored[30] ^= 1;
    assert!(CorpusProduct::read_from(&stored[..]).is_err());
}

#[test]
fn raw_gcds_of_duplicates_are_the_moduli_themselves() {
    // X² divides Z: the scaled tree's fraction is exactly 0 (its floors must not wrap it)
    for o in all_options() {
        assert_eq!(
            gcds(&ints(&[35, 35]), &o).unwrap(),
            ints(&[35, 35]),
            "{o:?}"
        );
        assert_eq!(
            gcds(&ints(&[15, 7, 15, 22, 13]), &o).unwrap(),
            ints(&[15, 1, 15, 1, 1]),
            "{o:?}"
        );
        assert_eq!(gcds(&ints(&[77]), &o).unwrap(), ints(&[1]), "{o:?}");
        assert!(gcds(&ints(&[77, 1]), &o).is_err());
    }
}
