//! Weak-key findings in the embedded store: the `weak_keys` table (key: spki, check name,
//! 0, subtest, 0, how; value: the [`WeakKey`] as JSON) and the paged walk of the RSA keys
//! for the batch GCD.

use redb::ReadableTable;

use super::read::prefix_page;
use super::{dberr, EmbeddedStore, KEYS, WEAK_KEYS};
use crate::model::PublicKey;
use crate::store::{parse_hex, Page, Paged, PsslError, WeakKey};

/// The table key of a finding.
fn weak_key(w: &WeakKey) -> Result<Vec<u8>, PsslError> {
    let spki = parse_hex::<32>("SPKI SHA-256", &w.spki_sha256)?;
    let mut k = spki.to_vec();
    for part in [w.check.as_str(), w.subtest.as_deref().unwrap_or("")] {
        if part.as_bytes().contains(&0) {
            return Err(PsslError::Invalid {
                what: "weak key check name",
                value: part.to_string(),
            });
        }
        k.extend_from_slice(part.as_bytes());
        k.push(0);
    }
    k.extend_from_slice(w.how.as_bytes());
    Ok(k)
}

/// A finding recorded again: the first one keeps its values and found time, gains the
/// partners it did not list and the factors it lacked. `None` when nothing changes.
fn merge(mut old: WeakKey, new: &WeakKey) -> Option<WeakKey> {
    let before = old.clone();
    for (have, more) in [
        (&mut old.p, &new.p),
        (&mut old.q, &new.q),
        (&mut old.d, &new.d),
    ] {
        if have.is_none() {
            have.clone_from(more);
        }
    }
    old.partners.extend(new.partners.iter().cloned());
    old.partners.sort();
    old.partners.dedup();
    (old != before).then_some(old)
}

fn decode(v: &[u8]) -> Result<WeakKey, PsslError> {
    serde_json::from_slice(v).map_err(|e| PsslError::Corrupt(e.to_string()))
}

impl EmbeddedStore {
    pub(super) fn record_weak_impl(&self, findings: &[WeakKey]) -> Result<(), PsslError> {
        if findings.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(dberr)?;
        {
            let mut t = tx.open_table(WEAK_KEYS).map_err(dberr)?;
            for w in findings {
                let mut w = w.clone();
                w.spki_sha256 = w.spki_sha256.trim().to_ascii_lowercase();
                let k = weak_key(&w)?;
                let before = match t.get(&k[..]).map_err(dberr)? {
                    Some(v) => Some(decode(v.value())?),
                    None => None,
                };
                if let Some(old) = before {
                    match merge(old, &w) {
                        Some(merged) => w = merged,
                        None => continue,
                    }
                }
                let v = serde_json::to_vec(&w).map_err(|e| PsslError::Corrupt(e.to_string()))?;
                t.insert(&k[..], &v[..]).map_err(dberr)?;
            }
        }
        tx.commit().map_err(dberr)
    }

    pub(super) fn weak_keys_impl(&self, page: &Page) -> Result<Paged<WeakKey>, PsslError> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(WEAK_KEYS).map_err(dberr)?;
        prefix_page(&t, &[], page, usize::MAX, |_, v| decode(v).map(Some))
    }

    pub(super) fn key_weakness_impl(&self, spki_sha256: &str) -> Result<Vec<WeakKey>, PsslError> {
        let spki = parse_hex::<32>("SPKI SHA-256", spki_sha256)?;
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(WEAK_KEYS).map_err(dberr)?;
        let mut out = Vec::new();
        for item in t.range::<&[u8]>(&spki[..]..).map_err(dberr)? {
            let (k, v) = item.map_err(dberr)?;
            if !k.value().starts_with(&spki) {
                break;
            }
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    pub(super) fn rsa_moduli_impl(
        &self,
        page: &Page,
    ) -> Result<Paged<(String, String)>, PsslError> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(KEYS).map_err(dberr)?;
        prefix_page(&t, &[], page, usize::MAX, |k, v| {
            let key: PublicKey =
                serde_json::from_slice(v).map_err(|e| PsslError::Corrupt(e.to_string()))?;
            Ok(match key.modulus {
                Some(m) if key.key_type == "RSA" && !m.is_empty() => Some((hex::encode(k), m)),
                _ => None,
            })
        })
    }
}
