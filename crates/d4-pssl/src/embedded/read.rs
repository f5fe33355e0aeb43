//! The read side of the embedded store: point reads and paged prefix or range scans over
//! the tables described in the [`super`] module doc, and the [`PsslStore`] implementation.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use ipnet::IpNet;
use redb::{ReadOnlyTable, ReadTransaction};

use super::keys::{ip16, ip_of, value_key, Agg, CertStat, K_IP, K_JA3, K_JA3S, K_JA4, K_SNI};
use super::{
    dberr, EmbeddedStore, CERTS, CERT_IPS, CERT_SHA256, CERT_STATS, FP_IPS, IP_CERTS, KEYS,
    KEY_CERTS, META, SESSIONS, SESSION_IX, SNI_CERTS, SUBJECTS,
};
use crate::model::{Batch, Certificate, PublicKey, Session};
use crate::store::{
    parse_hex, CertView, CommitStats, Fingerprint, Info, IpCerts, IpSeen, Page, Paged, PsslError,
    PsslStore, Seen, SessionQuery, WeakKey,
};

type RT = ReadOnlyTable<&'static [u8], &'static [u8]>;

fn corrupt(what: &str) -> PsslError {
    PsslError::Corrupt(what.to_string())
}

/// The certificate value (see `commit::encode_cert`).
fn decode_cert(v: &[u8]) -> Result<Certificate, PsslError> {
    let n = v
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| corrupt("certificate value"))? as usize;
    let json = v
        .get(4..4 + n)
        .ok_or_else(|| corrupt("certificate value"))?;
    let mut c: Certificate =
        serde_json::from_slice(json).map_err(|e| PsslError::Corrupt(e.to_string()))?;
    c.der = v[4 + n..].to_vec();
    Ok(c)
}

/// One page of the keys starting with `prefix`, after the cursor (the hex of a key), each
/// mapped by `f` (`None`: not part of the answer). Fails once more than `max_examined` keys
/// were read.
pub(super) fn prefix_page<T>(
    table: &RT,
    prefix: &[u8],
    page: &Page,
    max_examined: usize,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<Option<T>, PsslError>,
) -> Result<Paged<T>, PsslError> {
    let limit = page.limit.max(1);
    let start;
    let lower = match &page.cursor {
        Some(c) => {
            start = hex::decode(c).map_err(|_| PsslError::Cursor)?;
            if !start.starts_with(prefix) {
                return Err(PsslError::Cursor);
            }
            Bound::Excluded(start.as_slice())
        }
        None => Bound::Included(prefix),
    };
    let mut items = Vec::new();
    let mut last: Option<Vec<u8>> = None;
    let mut examined = 0usize;
    for item in table
        .range::<&[u8]>((lower, Bound::Unbounded))
        .map_err(dberr)?
    {
        let (k, v) = item.map_err(dberr)?;
        let k = k.value();
        if !k.starts_with(prefix) {
            break;
        }
        if items.len() == limit {
            return Ok(Paged {
                items,
                next: last.map(hex::encode),
            });
        }
        examined += 1;
        if examined > max_examined {
            return Err(PsslError::TooManyExamined(max_examined));
        }
        if let Some(t) = f(k, v.value())? {
            items.push(t);
            last = Some(k.to_vec());
        }
    }
    Ok(Paged { items, next: None })
}

fn agg(v: &[u8]) -> Result<Agg, PsslError> {
    Agg::decode(v).ok_or_else(|| corrupt("link value"))
}

fn fp_key(fp: &Fingerprint) -> Result<Vec<u8>, PsslError> {
    let mut k = Vec::new();
    match fp {
        Fingerprint::Ja3(d) => value_key(K_JA3, &parse_hex::<16>("JA3", d)?, &mut k),
        Fingerprint::Ja3s(d) => value_key(K_JA3S, &parse_hex::<16>("JA3S", d)?, &mut k),
        Fingerprint::Ja4(s) => value_key(K_JA4, s.as_bytes(), &mut k),
    }
    Ok(k)
}

impl EmbeddedStore {
    fn read(&self) -> Result<ReadTransaction, PsslError> {
        self.db.begin_read().map_err(dberr)
    }

    fn table(tx: &ReadTransaction, t: super::Table) -> Result<RT, PsslError> {
        tx.open_table(t).map_err(dberr)
    }

    fn view(tx: &ReadTransaction, sha1: &[u8]) -> Result<Option<CertView>, PsslError> {
        let certs = Self::table(tx, CERTS)?;
        let Some(v) = certs.get(sha1).map_err(dberr)? else {
            return Ok(None);
        };
        let certificate = decode_cert(v.value())?;
        let key = match parse_hex::<32>("SPKI SHA-256", &certificate.spki_sha256) {
            Ok(spki) => match Self::table(tx, KEYS)?.get(&spki[..]).map_err(dberr)? {
                Some(k) => Some(
                    serde_json::from_slice::<PublicKey>(k.value())
                        .map_err(|e| PsslError::Corrupt(e.to_string()))?,
                ),
                None => None,
            },
            Err(_) => None,
        };
        let stat = Self::table(tx, CERT_STATS)?
            .get(sha1)
            .map_err(dberr)?
            .and_then(|v| CertStat::decode(v.value()));
        Ok(Some(CertView {
            certificate,
            key,
            first_seen: stat.map(|s| s.agg.first),
            last_seen: stat.map(|s| s.agg.last),
            hits: stat.map_or(0, |s| s.agg.count),
            chain_positions: stat.map(|s| s.position_list()).unwrap_or_default(),
        }))
    }
}

impl PsslStore for EmbeddedStore {
    fn commit(&self, batch: &Batch) -> Result<CommitStats, PsslError> {
        EmbeddedStore::commit(self, batch)
    }

    fn certificate(&self, sha1_or_sha256: &str) -> Result<Option<CertView>, PsslError> {
        let tx = self.read()?;
        match sha1_or_sha256.trim().len() {
            40 => {
                let sha1 = parse_hex::<20>("certificate SHA-1", sha1_or_sha256)?;
                Self::view(&tx, &sha1)
            }
            64 => {
                let sha256 = parse_hex::<32>("certificate SHA-256", sha1_or_sha256)?;
                let ix = Self::table(&tx, CERT_SHA256)?;
                let Some(sha1) = ix.get(&sha256[..]).map_err(dberr)? else {
                    return Ok(None);
                };
                let sha1 = sha1.value().to_vec();
                Self::view(&tx, &sha1)
            }
            _ => Err(PsslError::Invalid {
                what: "certificate SHA-1 or SHA-256",
                value: sha1_or_sha256.to_string(),
            }),
        }
    }

    fn certificate_ips(&self, sha1: &str, page: &Page) -> Result<Paged<IpSeen>, PsslError> {
        let sha1 = parse_hex::<20>("certificate SHA-1", sha1)?;
        let tx = self.read()?;
        let t = Self::table(&tx, CERT_IPS)?;
        prefix_page(&t, &sha1, page, usize::MAX, |k, v| {
            let rest = &k[20..];
            let ip = ip_of(rest.get(..16).ok_or_else(|| corrupt("cert_ips key"))?)
                .ok_or_else(|| corrupt("cert_ips key"))?;
            let port = rest
                .get(16..18)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .ok_or_else(|| corrupt("cert_ips key"))?;
            let a = agg(v)?;
            Ok(Some(IpSeen {
                ip,
                port: (port != 0).then_some(port),
                first: a.first,
                last: a.last,
                count: a.count,
            }))
        })
    }

    fn ip_certificates(&self, net: IpNet, page: &Page) -> Result<Paged<IpCerts>, PsslError> {
        let net = net.trunc();
        let lo = ip16(net.network());
        let hi = ip16(net.broadcast());
        let start = match &page.cursor {
            None => lo,
            Some(c) => {
                let after = u128::from_be_bytes(
                    parse_hex::<16>("cursor", c).map_err(|_| PsslError::Cursor)?,
                );
                if after >= u128::from_be_bytes(hi) {
                    return Ok(Paged {
                        items: Vec::new(),
                        next: None,
                    });
                }
                (after + 1).max(u128::from_be_bytes(lo)).to_be_bytes()
            }
        };
        let limit = page.limit.max(1);
        let tx = self.read()?;
        let t = Self::table(&tx, IP_CERTS)?;
        type Group = ([u8; 16], BTreeMap<[u8; 20], Agg>, BTreeSet<u16>);
        let finish = |(ip, certs, ports): Group| -> Result<IpCerts, PsslError> {
            Ok(IpCerts {
                ip: ip_of(&ip).ok_or_else(|| corrupt("ip_certs key"))?,
                certificates: certs
                    .into_iter()
                    .map(|(sha1, a)| Seen {
                        value: hex::encode(sha1),
                        first: a.first,
                        last: a.last,
                        count: a.count,
                    })
                    .collect(),
                ports: ports.into_iter().filter(|p| *p != 0).collect(),
            })
        };
        let mut items = Vec::new();
        let mut cur: Option<Group> = None;
        let mut examined = 0usize;
        for item in t
            .range::<&[u8]>((Bound::Included(&start[..]), Bound::Unbounded))
            .map_err(dberr)?
        {
            let (k, v) = item.map_err(dberr)?;
            let k = k.value();
            let (Some(ip), Some(sha1), Some(port)) = (k.get(..16), k.get(16..36), k.get(36..38))
            else {
                return Err(corrupt("ip_certs key"));
            };
            if ip > &hi[..] {
                break;
            }
            examined += 1;
            if examined > self.max_examined {
                return Err(PsslError::TooManyExamined(self.max_examined));
            }
            if cur.as_ref().is_none_or(|c| c.0[..] != *ip) {
                if let Some(done) = cur.take() {
                    let last = done.0;
                    items.push(finish(done)?);
                    if items.len() == limit {
                        return Ok(Paged {
                            items,
                            next: Some(hex::encode(last)),
                        });
                    }
                }
                let mut a16 = [0u8; 16];
                a16.copy_from_slice(ip);
                cur = Some((a16, BTreeMap::new(), BTreeSet::new()));
            }
            if let Some((_, certs, ports)) = cur.as_mut() {
                let a = agg(v.value())?;
                let mut s = [0u8; 20];
                s.copy_from_slice(sha1);
                certs
                    .entry(s)
                    .and_modify(|o: &mut Agg| {
                        o.first = o.first.min(a.first);
                        o.last = o.last.max(a.last);
                        o.count = o.count.saturating_add(a.count);
                    })
                    .or_insert(a);
                ports.insert(u16::from_be_bytes([port[0], port[1]]));
            }
        }
        if let Some(done) = cur {
            items.push(finish(done)?);
        }
        Ok(Paged { items, next: None })
    }

    fn fingerprint_ips(&self, fp: &Fingerprint, page: &Page) -> Result<Paged<IpSeen>, PsslError> {
        let prefix = fp_key(fp)?;
        let tx = self.read()?;
        let t = Self::table(&tx, FP_IPS)?;
        let n = prefix.len();
        prefix_page(&t, &prefix, page, usize::MAX, |k, v| {
            let ip = ip_of(&k[n..]).ok_or_else(|| corrupt("fp_ips key"))?;
            let a = agg(v)?;
            Ok(Some(IpSeen {
                ip,
                port: None,
                first: a.first,
                last: a.last,
                count: a.count,
            }))
        })
    }

    fn sessions(&self, by: &SessionQuery, page: &Page) -> Result<Paged<Session>, PsslError> {
        let prefix = match by {
            SessionQuery::Ja3(d) => fp_key(&Fingerprint::Ja3(d.clone()))?,
            SessionQuery::Ja3s(d) => fp_key(&Fingerprint::Ja3s(d.clone()))?,
            SessionQuery::Ja4(s) => fp_key(&Fingerprint::Ja4(s.clone()))?,
            SessionQuery::Sni(s) => {
                let mut k = Vec::new();
                value_key(K_SNI, s.to_ascii_lowercase().as_bytes(), &mut k);
                k
            }
            SessionQuery::Ip(ip) => {
                let mut k = Vec::new();
                value_key(K_IP, &ip16(*ip), &mut k);
                k
            }
        };
        let tx = self.read()?;
        let ix = Self::table(&tx, SESSION_IX)?;
        let sessions = Self::table(&tx, SESSIONS)?;
        prefix_page(&ix, &prefix, page, usize::MAX, |k, _| {
            let id = k
                .len()
                .checked_sub(32)
                .map(|at| &k[at..])
                .ok_or_else(|| corrupt("session_ix key"))?;
            let Some(v) = sessions.get(id).map_err(dberr)? else {
                return Ok(None);
            };
            serde_json::from_slice(v.value())
                .map(Some)
                .map_err(|e| PsslError::Corrupt(e.to_string()))
        })
    }

    fn sessions_between(
        &self,
        from: i64,
        until: i64,
        page: &Page,
    ) -> Result<Paged<Session>, PsslError> {
        // No index by time: a walk of `sessions` (by id), bounded like subject search.
        let tx = self.read()?;
        let sessions = Self::table(&tx, SESSIONS)?;
        prefix_page(&sessions, &[], page, self.max_examined, |_, v| {
            let s: Session =
                serde_json::from_slice(v).map_err(|e| PsslError::Corrupt(e.to_string()))?;
            Ok((s.ts >= from && s.ts < until).then_some(s))
        })
    }

    fn sni_certificates(&self, sni: &str, page: &Page) -> Result<Paged<Seen<String>>, PsslError> {
        let mut prefix = Vec::new();
        value_key(K_SNI, sni.to_ascii_lowercase().as_bytes(), &mut prefix);
        let tx = self.read()?;
        let t = Self::table(&tx, SNI_CERTS)?;
        let n = prefix.len();
        prefix_page(&t, &prefix, page, usize::MAX, |k, v| {
            let a = agg(v)?;
            Ok(Some(Seen {
                value: hex::encode(&k[n..]),
                first: a.first,
                last: a.last,
                count: a.count,
            }))
        })
    }

    fn subject_search(&self, text: &str, page: &Page) -> Result<Paged<String>, PsslError> {
        let needle = text.to_ascii_lowercase();
        let tx = self.read()?;
        let t = Self::table(&tx, SUBJECTS)?;
        prefix_page(&t, &[], page, self.max_examined, |k, _| {
            let at = k
                .len()
                .checked_sub(20)
                .ok_or_else(|| corrupt("subjects key"))?;
            let subject = String::from_utf8_lossy(&k[..at]).to_ascii_lowercase();
            Ok(subject.contains(&needle).then(|| hex::encode(&k[at..])))
        })
    }

    fn key_certificates(&self, spki_sha256: &str, page: &Page) -> Result<Paged<String>, PsslError> {
        let spki = parse_hex::<32>("SPKI SHA-256", spki_sha256)?;
        let tx = self.read()?;
        let t = Self::table(&tx, KEY_CERTS)?;
        prefix_page(&t, &spki, page, usize::MAX, |k, _| {
            Ok(Some(hex::encode(&k[32..])))
        })
    }

    fn record_weak(&self, findings: &[WeakKey]) -> Result<(), PsslError> {
        self.record_weak_impl(findings)
    }

    fn weak_keys(&self, page: &Page) -> Result<Paged<WeakKey>, PsslError> {
        self.weak_keys_impl(page)
    }

    fn key_weakness(&self, spki_sha256: &str) -> Result<Vec<WeakKey>, PsslError> {
        self.key_weakness_impl(spki_sha256)
    }

    fn rsa_moduli(&self, page: &Page) -> Result<Paged<(String, String)>, PsslError> {
        self.rsa_moduli_impl(page)
    }

    fn info(&self) -> Result<Info, PsslError> {
        let tx = self.read()?;
        let meta = tx.open_table(META).map_err(dberr)?;
        let get = |name: &str| -> Result<u64, PsslError> {
            Ok(meta
                .get(name)
                .map_err(dberr)?
                .map(|v| v.value())
                .unwrap_or(0))
        };
        Ok(Info {
            certificates: get("certificates")?,
            keys: get("keys")?,
            sessions: get("sessions")?,
            ips: get("ips")?,
            ja3: get("ja3")?,
            ja3s: get("ja3s")?,
            ja4: get("ja4")?,
            sni: get("sni")?,
            ip_certificate_links: get("ip_certificate_links")?,
        })
    }
}
