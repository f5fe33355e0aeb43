//! Per-key weak-key checks at ingest: every key new to this ingester goes through
//! `d4_keys::check::check_key_with` (built from its certificate's DER when the batch holds one,
//! else, for RSA, from the stored decimal modulus and exponent), and what the checks find
//! becomes [`WeakKey`]s (`how` = [`HOW_CHECK`]) for the store.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use d4_keys::check::{bad_prime_residues, check_key_with, Checks};
use d4_keys::key::{parse_certificate, rsa_from_decimal, Key, KeyData, Parsed};

use crate::model::{Batch, PublicKey};
use crate::store::{WeakKey, HOW_CHECK};

/// Keys remembered as checked before the set is emptied (a key seen again after that is
/// checked again; recording its findings is idempotent).
const MAX_SEEN: usize = 1 << 20;

/// The checks and the keys already checked.
pub(crate) struct KeyChecker {
    checks: Arc<Checks>,
    seen: HashSet<String>,
}

/// What one batch's checks gave.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    /// Keys the checks ran on.
    pub keys: u64,
    /// Keys with at least one finding.
    pub weak: u64,
    pub findings: Vec<WeakKey>,
}

impl KeyChecker {
    pub(crate) fn new(checks: Arc<Checks>) -> KeyChecker {
        KeyChecker {
            checks,
            seen: HashSet::new(),
        }
    }

    /// Checks the batch's keys this checker has not seen; `now` is the finding time. The
    /// known-bad primes are reduced once for all the batch's RSA moduli
    /// ([`bad_prime_residues`]).
    pub(crate) fn batch(&mut self, batch: &Batch, now: i64) -> Checked {
        let mut out = Checked::default();
        let certs: HashMap<&str, &[u8]> = batch
            .certificates
            .iter()
            .map(|c| (c.spki_sha256.as_str(), c.der.as_slice()))
            .collect();
        let mut keys: Vec<(&PublicKey, Key)> = Vec::new();
        for pk in &batch.keys {
            if self.seen.contains(&pk.spki_sha256) {
                continue;
            }
            if self.seen.len() >= MAX_SEEN {
                self.seen.clear();
            }
            self.seen.insert(pk.spki_sha256.clone());
            if let Some(key) = key_of(pk, certs.get(pk.spki_sha256.as_str()).copied()) {
                keys.push((pk, key));
            }
        }
        let moduli: Vec<_> = keys
            .iter()
            .map(|(_, k)| match &k.data {
                KeyData::Rsa { n, .. } => Some(n),
                _ => None,
            })
            .collect();
        let residues = bad_prime_residues(&moduli, &self.checks);
        for ((pk, key), residue) in keys.iter().zip(&residues) {
            out.keys += 1;
            let found = check_key_with(key, &self.checks, residue.as_ref());
            if !found.is_empty() {
                out.weak += 1;
            }
            out.findings.extend(found.into_iter().map(|f| WeakKey {
                spki_sha256: pk.spki_sha256.clone(),
                check: f.check.name().to_string(),
                subtest: f.subtest,
                how: HOW_CHECK.to_string(),
                p: f.p.map(|p| p.to_string_radix(16)),
                q: f.q.map(|q| q.to_string_radix(16)),
                d: f.d.map(|d| d.to_string_radix(16)),
                partners: Vec::new(),
                found: now,
            }));
        }
        out
    }
}

/// The key to check: from the DER of a certificate of the batch that holds it, else an RSA
/// key from its stored numbers; `None` when neither can be read.
pub(crate) fn key_of(pk: &PublicKey, cert_der: Option<&[u8]>) -> Option<Key> {
    if let Some(Parsed::Key(k)) = cert_der.map(parse_certificate) {
        return Some(k);
    }
    match (pk.key_type.as_str(), &pk.modulus, pk.exponent) {
        ("RSA", Some(n), Some(e)) => match rsa_from_decimal(n, e)? {
            Parsed::Key(k) => Some(k),
            _ => None,
        },
        _ => None,
    }
}
