//! Around the trees: exact duplicates out before, and after, the gcds turned into findings
//! (factors, partners, how each weak modulus was found).

use std::collections::HashMap;

use rug::Integer;

use super::tree::par_map;
use super::{How, Partner, Source, Weak};

/// The distinct moduli (sorted) and, for each, the input indices holding it.
pub(crate) struct Dedup {
    pub unique: Vec<Integer>,
    pub groups: Vec<Vec<usize>>,
}

pub(crate) fn dedup(moduli: &[Integer]) -> Dedup {
    let mut order: Vec<usize> = (0..moduli.len()).collect();
    order.sort_unstable_by(|&a, &b| moduli[a].cmp(&moduli[b]).then(a.cmp(&b)));
    let mut unique: Vec<Integer> = Vec::with_capacity(moduli.len());
    let mut groups: Vec<Vec<usize>> = Vec::with_capacity(moduli.len());
    for i in order {
        match (unique.last(), groups.last_mut()) {
            (Some(last), Some(g)) if *last == moduli[i] => g.push(i),
            _ => {
                unique.push(moduli[i].clone());
                groups.push(vec![i]);
            }
        }
    }
    Dedup { unique, groups }
}

/// The factors of each weak distinct modulus (`g[u] > 1`), by its index in `unique`.
///
/// `1 < g < X`: `[g, X / g]`. `g = X` (both primes shared): the first proper gcd with another
/// weak modulus `d` gives `[d, X / d]` (the moduli sharing X's primes are all weak, so that
/// group is enough); none (cannot happen for distinct moduli of two primes): no factors.
pub(crate) fn factor_weak(
    unique: &[Integer],
    g: &[Integer],
    threads: usize,
) -> Vec<(usize, How, Vec<Integer>)> {
    let weak: Vec<usize> = (0..unique.len()).filter(|&u| g[u] > 1).collect();
    par_map(weak.len(), threads, |w| {
        let u = weak[w];
        let x = &unique[u];
        if g[u] != *x {
            return (u, How::SharedPrime, split(x, &g[u]));
        }
        for &v in &weak {
            if v == u {
                continue;
            }
            let d = Integer::from(x.gcd_ref(&unique[v]));
            if d > 1 && d != *x {
                return (u, How::BothPrimesShared, split(x, &d));
            }
        }
        (u, How::BothPrimesShared, Vec::new())
    })
}

fn split(x: &Integer, d: &Integer) -> Vec<Integer> {
    let mut f = vec![d.clone(), Integer::from(x.div_exact_ref(d))];
    f.sort();
    f
}

/// Partners of each factored modulus: the others that have one of its factors, by factor.
pub(crate) fn partners_by_factor(
    factored: &[(usize, How, Vec<Integer>)],
) -> HashMap<usize, Vec<(usize, Integer)>> {
    let mut by_factor: HashMap<&Integer, Vec<usize>> = HashMap::new();
    for (u, _, fs) in factored {
        for f in fs {
            by_factor.entry(f).or_default().push(*u);
        }
    }
    let mut out: HashMap<usize, Vec<(usize, Integer)>> = HashMap::new();
    for (u, _, fs) in factored {
        let list = out.entry(*u).or_default();
        for f in fs {
            for &v in by_factor.get(f).map(Vec::as_slice).unwrap_or(&[]) {
                if v != *u {
                    list.push((v, f.clone()));
                }
            }
        }
    }
    out
}

/// Findings per input index, sorted by index.
pub(crate) fn resolve(dedup: &Dedup, g: &[Integer], threads: usize) -> Vec<Weak> {
    let factored = factor_weak(&dedup.unique, g, threads);
    let partners = partners_by_factor(&factored);
    let mut by_unique: HashMap<usize, (How, Vec<Integer>)> = HashMap::new();
    for (u, how, fs) in factored {
        by_unique.insert(u, (how, fs));
    }
    let mut out = Vec::new();
    for (u, members) in dedup.groups.iter().enumerate() {
        let found = by_unique.get(&u);
        if found.is_none() && members.len() < 2 {
            continue;
        }
        for &i in members {
            let mut shared_with: Vec<Partner> = members
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| Partner {
                    source: Source::Input,
                    index: j,
                    factor: None,
                })
                .collect();
            for (v, f) in partners.get(&u).map(Vec::as_slice).unwrap_or(&[]) {
                for &j in &dedup.groups[*v] {
                    shared_with.push(Partner {
                        source: Source::Input,
                        index: j,
                        factor: Some(f.clone()),
                    });
                }
            }
            sort_partners(&mut shared_with);
            let (how, factors) = match found {
                Some((how, fs)) => (*how, fs.clone()),
                None => (How::Duplicate, Vec::new()),
            };
            out.push(Weak {
                index: i,
                how,
                factors,
                shared_with,
            });
        }
    }
    out.sort_by_key(|w| w.index);
    out
}

pub(crate) fn sort_partners(p: &mut [Partner]) {
    p.sort_by(|a, b| {
        (a.source, a.index)
            .cmp(&(b.source, b.index))
            .then_with(|| a.factor.cmp(&b.factor))
    });
}
