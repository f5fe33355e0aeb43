//! Per-key weak-key checks at ingest: every key new to this ingester goes through
//! `d4_keys::check::check_key` (built from its certificate's DER when the batch holds one,
//! else, for RSA, from the stored decimal modulus and exponent), and what the checks find
//! becomes [`WeakKey`]s (`how` = [`HOW_CHECK`]) for the store.

use std::collections::HashSet;
use std::sync::Arc;

use d4_keys::check::{check_key, Checks};
use d4_keys::key::{parse_certificate, rsa_from_decimal, Key, Parsed};

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

    /// Checks the batch's keys this checker has not seen; `now` is the finding time.
    pub(crate) fn batch(&mut self, batch: &Batch, now: i64) -> Checked {
        let mut out = Checked::default();
        for pk in &batch.keys {
            if self.seen.contains(&pk.spki_sha256) {
                continue;
            }
            if self.seen.len() >= MAX_SEEN {
                self.seen.clear();
            }
            self.seen.insert(pk.spki_sha256.clone());
            let Some(key) = key_of(pk, batch) else {
                continue;
            };
            out.keys += 1;
            let found = check_key(&key, &self.checks);
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

/// The key to check: from a certificate of the batch that holds it, else an RSA key from
/// its stored numbers; `None` when neither can be read.
pub(crate) fn key_of(pk: &PublicKey, batch: &Batch) -> Option<Key> {
    let from_cert = batch
        .certificates
        .iter()
        .filter(|c| c.spki_sha256 == pk.spki_sha256)
        .find_map(|c| match parse_certificate(&c.der) {
            Parsed::Key(k) => Some(k),
            _ => None,
        });
    if from_cert.is_some() {
        return from_cert;
    }
    match (pk.key_type.as_str(), &pk.modulus, pk.exponent) {
        ("RSA", Some(n), Some(e)) => match rsa_from_decimal(n, e)? {
            Parsed::Key(k) => Some(k),
            _ => None,
        },
        _ => None,
    }
}
