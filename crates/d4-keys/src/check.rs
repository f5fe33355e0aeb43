//! Per-key checks with badkeys' names and meaning (badkeys 0.0.21 is the reference):
//! `fermat`, `roca`, `rsainvalid`, `rsapoly`, `sharedprimes`, `smalld`, `smallfactors`,
//! `blocklist`, `dsasparse` (the defaults), the warnings `rsawarnings` and `rsabias`, and
//! the extra check `pattern` (off unless asked for, as in badkeys).
//!
//! [`Checks`] holds what the checks need, loaded once: the enabled checks, the product of
//! the primes up to 65537, ROCA's tables, the products of known-bad primes per modulus size
//! (`primes<bits>.dat`) and the blocklists. [`check_key`] runs them on one key and returns
//! what each found, with the numbers it recovered (p and q, or d).

mod blocklist;
mod primes;
mod rsa;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rug::Integer;

pub use blocklist::Blocklist;
pub use primes::read_gmpy2_integer;

use crate::key::{Key, KeyData};

/// One check, named as in badkeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    Fermat,
    Roca,
    RsaInvalid,
    RsaPoly,
    SharedPrimes,
    SmallD,
    SmallFactors,
    Blocklist,
    DsaSparse,
    RsaWarnings,
    RsaBias,
    Pattern,
}

/// Which keys a check applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    Rsa,
    Dsa,
    All,
}

impl Check {
    /// Every check, in badkeys' order (defaults, warnings, extras).
    pub const ALL: [Check; 12] = [
        Check::Fermat,
        Check::Roca,
        Check::RsaInvalid,
        Check::RsaPoly,
        Check::SharedPrimes,
        Check::SmallD,
        Check::SmallFactors,
        Check::Blocklist,
        Check::DsaSparse,
        Check::RsaWarnings,
        Check::RsaBias,
        Check::Pattern,
    ];
    /// badkeys' default checks.
    pub const DEFAULT: [Check; 9] = [
        Check::Fermat,
        Check::Roca,
        Check::RsaInvalid,
        Check::RsaPoly,
        Check::SharedPrimes,
        Check::SmallD,
        Check::SmallFactors,
        Check::Blocklist,
        Check::DsaSparse,
    ];
    /// badkeys' warnings (`-w`).
    pub const WARNINGS: [Check; 2] = [Check::RsaWarnings, Check::RsaBias];

    pub fn name(self) -> &'static str {
        match self {
            Check::Fermat => "fermat",
            Check::Roca => "roca",
            Check::RsaInvalid => "rsainvalid",
            Check::RsaPoly => "rsapoly",
            Check::SharedPrimes => "sharedprimes",
            Check::SmallD => "smalld",
            Check::SmallFactors => "smallfactors",
            Check::Blocklist => "blocklist",
            Check::DsaSparse => "dsasparse",
            Check::RsaWarnings => "rsawarnings",
            Check::RsaBias => "rsabias",
            Check::Pattern => "pattern",
        }
    }

    pub fn from_name(name: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn applies(self) -> Applies {
        match self {
            Check::Blocklist => Applies::All,
            Check::DsaSparse => Applies::Dsa,
            _ => Applies::Rsa,
        }
    }

    /// badkeys' one-line description (`--list`).
    pub fn description(self) -> &'static str {
        match self {
            Check::Fermat => "Fermat factorization / close prime vulnerability",
            Check::Roca => "Return of the Coppersmith Attack (ROCA) vulnerability",
            Check::RsaInvalid => "RSA keys with invalid values",
            Check::RsaPoly => "0-byte pattern in modulus allowing polynomial factoring",
            Check::SharedPrimes => "Shared prime factors (known-bad primes, --bad-primes)",
            Check::SmallD => "Small private d (Wiener's attack)",
            Check::SmallFactors => "Small prime factors (<=65537, usually corrupt)",
            Check::Blocklist => "Blocklists of compromised keys (--blocklist)",
            Check::DsaSparse => "DSA sparse key vulnerability",
            Check::RsaWarnings => "RSA key size and exponent warnings",
            Check::RsaBias => "RSA modulus with bias of 0/1 bits",
            Check::Pattern => "Implausible repetition pattern in modulus",
        }
    }
}

/// What one check found in one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    pub subtest: Option<String>,
    /// A recovered prime factor (and the cofactor in `q`).
    pub p: Option<Integer>,
    pub q: Option<Integer>,
    /// The recovered private exponent (`smalld`).
    pub d: Option<Integer>,
    /// The blocklist's list id (`blocklist`).
    pub blid: Option<u8>,
    /// The first 8 bytes of the key's hash in hex (`blocklist`), badkeys' URL lookup key.
    pub lookup: Option<String>,
    /// The percentage of set bits in n (`rsabias`, `rsapoly`).
    pub biaspct: Option<u32>,
}

impl Finding {
    pub fn new(check: Check) -> Self {
        Finding {
            check,
            subtest: None,
            p: None,
            q: None,
            d: None,
            blid: None,
            lookup: None,
            biaspct: None,
        }
    }

    pub(crate) fn subtest(mut self, s: &str) -> Self {
        self.subtest = Some(s.to_string());
        self
    }

    pub(crate) fn factors(mut self, p: Integer, q: Integer) -> Self {
        self.p = Some(p);
        self.q = Some(q);
        self
    }
}

/// Errors loading the checks' data files.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a gmpy2 binary integer (badkeys' primes<bits>.dat format)")]
    BadPrimesFormat { path: PathBuf },
    #[error("{0}: no primes<bits>.dat file")]
    NoBadPrimes(PathBuf),
    #[error("{path}: size {size} is not a multiple of 16 (badkeys' blocklist.dat format)")]
    BlocklistFormat { path: PathBuf, size: u64 },
    #[error("{path}: not badkeys' badkeysdata.json ({reason})")]
    BlocklistNames { path: PathBuf, reason: String },
}

/// The enabled checks and their data, loaded once and shared by every key.
#[derive(Debug)]
pub struct Checks {
    enabled: Vec<Check>,
    tables: rsa::Tables,
    bad_primes: BTreeMap<u32, Integer>,
    blocklists: Vec<Blocklist>,
    io_errors: AtomicU64,
}

impl Checks {
    /// The given checks (kept in badkeys' order).
    pub fn new(enabled: &[Check]) -> Self {
        let mut enabled: Vec<Check> = enabled.to_vec();
        enabled.sort();
        enabled.dedup();
        Checks {
            enabled,
            tables: rsa::Tables::new(),
            bad_primes: BTreeMap::new(),
            blocklists: Vec::new(),
            io_errors: AtomicU64::new(0),
        }
    }

    /// badkeys' defaults, plus the warnings with `warnings` (badkeys' `-w`).
    pub fn with_warnings(warnings: bool) -> Self {
        let mut c = Check::DEFAULT.to_vec();
        if warnings {
            c.extend(Check::WARNINGS);
        }
        Checks::new(&c)
    }

    pub fn enabled(&self) -> &[Check] {
        &self.enabled
    }

    /// Adds the product of known-bad primes for moduli of `bits` bits (multiplied into
    /// what is there: our batch GCD keeps growing it).
    pub fn add_bad_primes(&mut self, bits: u32, product: Integer) {
        let slot = self
            .bad_primes
            .entry(bits)
            .or_insert_with(|| Integer::from(1));
        *slot *= product;
    }

    /// The modulus sizes that have bad primes loaded.
    pub fn bad_prime_sizes(&self) -> Vec<u32> {
        self.bad_primes.keys().copied().collect()
    }

    /// Loads every `primes<bits>.dat` of a folder; returns how many files were read.
    pub fn load_bad_primes(&mut self, dir: &Path) -> Result<usize, CheckError> {
        let found = primes::load_dir(dir)?;
        let count = found.len();
        for (bits, product) in found {
            self.add_bad_primes(bits, product);
        }
        Ok(count)
    }

    /// Opens a `blocklist.dat`, with list names from a `badkeysdata.json` beside it when
    /// there is one.
    pub fn load_blocklist(&mut self, path: &Path) -> Result<(), CheckError> {
        self.blocklists.push(Blocklist::open(path)?);
        Ok(())
    }

    pub fn has_blocklist(&self) -> bool {
        !self.blocklists.is_empty()
    }

    /// Blocklist reads that failed (each one a key that went unchecked against it).
    pub fn io_errors(&self) -> u64 {
        self.io_errors.load(Ordering::Relaxed)
    }

    fn blocklist(&self, value: &[u8]) -> Option<Finding> {
        for bl in &self.blocklists {
            match bl.lookup(value) {
                Ok(Some(f)) => return Some(f),
                Ok(None) => {}
                Err(_) => {
                    self.io_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        None
    }
}

/// For a block of moduli (`None` for keys that are not RSA): the product of the known-bad
/// primes of each modulus' size reduced mod it, computed with one remainder tree per size
/// (see [`check_key_with`]); `None` where `sharedprimes` is off or has no primes for that
/// size. Checking many keys, this makes `sharedprimes` cost a fraction of one division of
/// the whole product per key.
pub fn bad_prime_residues(moduli: &[Option<&Integer>], checks: &Checks) -> Vec<Option<Integer>> {
    let mut out = vec![None; moduli.len()];
    if !checks.enabled.contains(&Check::SharedPrimes) {
        return out;
    }
    for (bits, product) in &checks.bad_primes {
        let (idx, group): (Vec<usize>, Vec<&Integer>) = moduli
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.filter(|n| n.significant_bits() == *bits).map(|n| (i, n)))
            .unzip();
        for (i, r) in idx.into_iter().zip(primes::residues(&group, product)) {
            out[i] = Some(r);
        }
    }
    out
}

/// Runs the enabled checks that apply to the key; one finding per check that fired, in
/// badkeys' order.
pub fn check_key(key: &Key, checks: &Checks) -> Vec<Finding> {
    check_key_with(key, checks, None)
}

/// [`check_key`] with the key's entry of [`bad_prime_residues`] (same findings, less work).
pub fn check_key_with(key: &Key, checks: &Checks, residue: Option<&Integer>) -> Vec<Finding> {
    match &key.data {
        KeyData::Rsa { n, e, .. } => check_rsa_with(n, e, checks, residue),
        KeyData::Dsa { p, .. } => {
            let mut out = Vec::new();
            for &c in &checks.enabled {
                let f = match c {
                    Check::DsaSparse => rsa::dsasparse(p),
                    Check::Blocklist => checks.blocklist(&key.blocklist_value()),
                    _ => None,
                };
                out.extend(f);
            }
            out
        }
        _ => {
            if checks.enabled.contains(&Check::Blocklist) {
                checks
                    .blocklist(&key.blocklist_value())
                    .into_iter()
                    .collect()
            } else {
                Vec::new()
            }
        }
    }
}

/// The RSA checks on a bare modulus with e = 65537 (badkeys' `-m`).
pub fn check_modulus(n: &Integer, checks: &Checks) -> Vec<Finding> {
    check_modulus_with(n, checks, None)
}

/// [`check_modulus`] with the modulus' entry of [`bad_prime_residues`].
pub fn check_modulus_with(n: &Integer, checks: &Checks, residue: Option<&Integer>) -> Vec<Finding> {
    check_rsa_with(n, &Integer::from(65537), checks, residue)
}

/// The RSA checks (and the blocklist) on a modulus and exponent; badkeys' `-m` uses
/// e = 65537.
pub fn check_rsa(n: &Integer, e: &Integer, checks: &Checks) -> Vec<Finding> {
    check_rsa_with(n, e, checks, None)
}

/// [`check_rsa`] with the modulus' entry of [`bad_prime_residues`] (`None`: reduce the
/// product of bad primes here).
pub fn check_rsa_with(
    n: &Integer,
    e: &Integer,
    checks: &Checks,
    residue: Option<&Integer>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    // smallfactors' gcd is also what rsapoly and rsabias step aside for: done once
    let small = std::cell::OnceCell::new();
    let small_factors = || small.get_or_init(|| rsa::smallfactors(n, &checks.tables));
    let has_small = || small_factors().is_some();
    for &c in &checks.enabled {
        let f = match c {
            Check::Fermat => rsa::fermat(n),
            Check::Roca => rsa::roca(n, &checks.tables),
            Check::RsaInvalid => rsa::rsainvalid(n, e),
            Check::RsaPoly => rsa::rsapoly(n, &has_small),
            Check::SharedPrimes => residue
                .or_else(|| checks.bad_primes.get(&n.significant_bits()))
                .and_then(|product| primes::sharedprimes(n, product)),
            Check::SmallD => rsa::smalld(n, e),
            Check::SmallFactors => small_factors().clone(),
            Check::Blocklist => checks.blocklist(&n.to_digits(rug::integer::Order::Msf)),
            Check::DsaSparse => None,
            Check::RsaWarnings => rsa::rsawarnings(n, e),
            Check::RsaBias => rsa::rsabias(n, &has_small),
            Check::Pattern => rsa::pattern(n),
        };
        out.extend(f);
    }
    out
}
