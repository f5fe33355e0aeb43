//! The write side of the embedded store: [`EmbeddedStore::commit`] writes one [`Batch`] in
//! one durable transaction: new certificates and keys once, new sessions with their
//! indexes, and the link aggregates and counters only for sessions not stored before.

use std::collections::{BTreeMap, HashSet};

use redb::{ReadableTable, Table, WriteTransaction};

use super::keys::{ip16, ts_key, value_key, Agg, CertStat, K_IP, K_JA3, K_JA3S, K_JA4, K_SNI};
use super::{
    dberr, EmbeddedStore, CERTS, CERT_IPS, CERT_SHA256, CERT_STATS, DISTINCT, FP_IPS, IP_CERTS,
    KEYS, KEY_CERTS, META, SESSIONS, SESSION_IX, SNI_CERTS, SUBJECTS,
};
use crate::model::{Batch, Certificate, Session};
use crate::store::{parse_hex, CommitStats, PsslError};

type T<'t> = Table<'t, &'static [u8], &'static [u8]>;

/// The certificate value: JSON length, JSON (no DER), DER.
pub(super) fn encode_cert(c: &Certificate) -> Result<Vec<u8>, PsslError> {
    let json = serde_json::to_vec(c).map_err(|e| PsslError::Corrupt(e.to_string()))?;
    let mut v = Vec::with_capacity(4 + json.len() + c.der.len());
    v.extend_from_slice(&(json.len() as u32).to_le_bytes());
    v.extend_from_slice(&json);
    v.extend_from_slice(&c.der);
    Ok(v)
}

/// Adds `ts` to the aggregate at `key`; true when the key is new.
fn bump(t: &mut T<'_>, key: &[u8], ts: i64) -> Result<bool, PsslError> {
    let old = t
        .get(key)
        .map_err(dberr)?
        .and_then(|v| Agg::decode(v.value()));
    let new = match old {
        Some(a) => a.add(ts),
        None => Agg::one(ts),
    };
    t.insert(key, &new.encode()[..]).map_err(dberr)?;
    Ok(old.is_none())
}

/// Inserts an empty-valued key; true when it is new.
fn mark(t: &mut T<'_>, key: &[u8]) -> Result<bool, PsslError> {
    Ok(t.insert(key, &[][..]).map_err(dberr)?.is_none())
}

/// Every table a commit writes, open for one transaction.
struct Tables<'t> {
    certs: T<'t>,
    cert_sha256: T<'t>,
    cert_stats: T<'t>,
    subjects: T<'t>,
    keys: T<'t>,
    key_certs: T<'t>,
    sessions: T<'t>,
    session_ix: T<'t>,
    ip_certs: T<'t>,
    cert_ips: T<'t>,
    fp_ips: T<'t>,
    sni_certs: T<'t>,
    distinct: T<'t>,
}

impl<'t> Tables<'t> {
    fn open(tx: &'t WriteTransaction) -> Result<Tables<'t>, PsslError> {
        Ok(Tables {
            certs: tx.open_table(CERTS).map_err(dberr)?,
            cert_sha256: tx.open_table(CERT_SHA256).map_err(dberr)?,
            cert_stats: tx.open_table(CERT_STATS).map_err(dberr)?,
            subjects: tx.open_table(SUBJECTS).map_err(dberr)?,
            keys: tx.open_table(KEYS).map_err(dberr)?,
            key_certs: tx.open_table(KEY_CERTS).map_err(dberr)?,
            sessions: tx.open_table(SESSIONS).map_err(dberr)?,
            session_ix: tx.open_table(SESSION_IX).map_err(dberr)?,
            ip_certs: tx.open_table(IP_CERTS).map_err(dberr)?,
            cert_ips: tx.open_table(CERT_IPS).map_err(dberr)?,
            fp_ips: tx.open_table(FP_IPS).map_err(dberr)?,
            sni_certs: tx.open_table(SNI_CERTS).map_err(dberr)?,
            distinct: tx.open_table(DISTINCT).map_err(dberr)?,
        })
    }
}

/// A session's values in key form, checked before anything is written.
struct SessionKeys {
    id: [u8; 32],
    ja3: Option<[u8; 16]>,
    ja3s: Option<[u8; 16]>,
    chain: Vec<[u8; 20]>,
}

fn digest(what: &'static str, s: &str) -> Result<Option<[u8; 16]>, PsslError> {
    if s.is_empty() {
        return Ok(None);
    }
    parse_hex::<16>(what, s).map(Some)
}

fn session_keys(s: &Session) -> Result<SessionKeys, PsslError> {
    Ok(SessionKeys {
        id: s.id(),
        ja3: digest("JA3", &s.ja3)?,
        ja3s: digest("JA3S", &s.ja3s)?,
        chain: s
            .chain
            .iter()
            .map(|c| parse_hex::<20>("certificate SHA-1", c))
            .collect::<Result<_, _>>()?,
    })
}

impl EmbeddedStore {
    /// Writes a batch in one durable transaction (see [`crate::store::PsslStore::commit`]).
    pub fn commit(&self, batch: &Batch) -> Result<CommitStats, PsslError> {
        let mut stats = CommitStats::default();
        let mut counters: BTreeMap<&'static str, u64> = BTreeMap::new();
        // Check every value before the transaction: a bad batch writes nothing.
        let mut certs = Vec::with_capacity(batch.certificates.len());
        for c in &batch.certificates {
            certs.push((
                parse_hex::<20>("certificate SHA-1", &c.sha1)?,
                parse_hex::<32>("certificate SHA-256", &c.sha256)?,
                parse_hex::<32>("SPKI SHA-256", &c.spki_sha256)?,
                c,
            ));
        }
        let mut keys = Vec::with_capacity(batch.keys.len());
        for k in &batch.keys {
            keys.push((parse_hex::<32>("SPKI SHA-256", &k.spki_sha256)?, k));
        }
        let mut sessions = Vec::with_capacity(batch.sessions.len());
        for s in &batch.sessions {
            sessions.push((session_keys(s)?, s));
        }
        let tx = self.db.begin_write().map_err(dberr)?;
        {
            let mut t = Tables::open(&tx)?;
            for (sha1, sha256, spki, c) in certs {
                if t.certs.get(&sha1[..]).map_err(dberr)?.is_some() {
                    continue;
                }
                t.certs
                    .insert(&sha1[..], encode_cert(c)?.as_slice())
                    .map_err(dberr)?;
                t.cert_sha256
                    .insert(&sha256[..], &sha1[..])
                    .map_err(dberr)?;
                let mut k = c.subject.as_bytes().to_vec();
                k.extend_from_slice(&sha1);
                mark(&mut t.subjects, &k)?;
                let mut k = spki.to_vec();
                k.extend_from_slice(&sha1);
                mark(&mut t.key_certs, &k)?;
                stats.new_certificates += 1;
            }
            for (spki, k) in keys {
                if t.keys.get(&spki[..]).map_err(dberr)?.is_some() {
                    continue;
                }
                let json = serde_json::to_vec(k).map_err(|e| PsslError::Corrupt(e.to_string()))?;
                t.keys.insert(&spki[..], json.as_slice()).map_err(dberr)?;
                stats.new_keys += 1;
            }
            for (sk, s) in sessions {
                if t.sessions.get(&sk.id[..]).map_err(dberr)?.is_some() {
                    stats.known_sessions += 1;
                    continue;
                }
                let json = serde_json::to_vec(s).map_err(|e| PsslError::Corrupt(e.to_string()))?;
                t.sessions
                    .insert(&sk.id[..], json.as_slice())
                    .map_err(dberr)?;
                stats.new_sessions += 1;
                add_session(&mut t, &sk, s, &mut counters)?;
            }
            let mut meta = tx.open_table(META).map_err(dberr)?;
            counters.insert("certificates", stats.new_certificates);
            counters.insert("keys", stats.new_keys);
            counters.insert("sessions", stats.new_sessions);
            for (name, n) in counters {
                if n == 0 {
                    continue;
                }
                let old = meta
                    .get(name)
                    .map_err(dberr)?
                    .map(|v| v.value())
                    .unwrap_or(0);
                meta.insert(name, old.saturating_add(n)).map_err(dberr)?;
            }
        }
        tx.commit().map_err(dberr)?;
        Ok(stats)
    }
}

/// The indexes and links of a session not stored before.
fn add_session(
    t: &mut Tables<'_>,
    sk: &SessionKeys,
    s: &Session,
    counters: &mut BTreeMap<&'static str, u64>,
) -> Result<(), PsslError> {
    let ts = s.ts;
    let mut k = Vec::with_capacity(96);
    // The values the session is found by, and the distinct-value counters.
    let mut values: Vec<(u8, Vec<u8>)> = Vec::new();
    if let Some(d) = sk.ja3 {
        values.push((K_JA3, d.to_vec()));
    }
    if let Some(d) = sk.ja3s {
        values.push((K_JA3S, d.to_vec()));
    }
    if !s.ja4.is_empty() {
        values.push((K_JA4, s.ja4.as_bytes().to_vec()));
    }
    if !s.sni.is_empty() {
        values.push((K_SNI, s.sni.to_ascii_lowercase().into_bytes()));
    }
    for (kind, v) in &values {
        k.clear();
        value_key(*kind, v, &mut k);
        if mark(&mut t.distinct, &k)? {
            let name = match *kind {
                K_JA3 => "ja3",
                K_JA3S => "ja3s",
                K_JA4 => "ja4",
                _ => "sni",
            };
            *counters.entry(name).or_default() += 1;
        }
    }
    let mut ips: Vec<[u8; 16]> = [s.client_ip, s.server_ip]
        .into_iter()
        .flatten()
        .map(ip16)
        .collect();
    ips.dedup();
    values.extend(ips.into_iter().map(|ip| (K_IP, ip.to_vec())));
    for (kind, v) in &values {
        k.clear();
        value_key(*kind, v, &mut k);
        k.extend_from_slice(&ts_key(ts));
        k.extend_from_slice(&sk.id);
        mark(&mut t.session_ix, &k)?;
    }
    // Fingerprint ⇄ address links: the client's for JA3 and JA4, the server's for JA3S.
    let fp_links = [
        (K_JA3, sk.ja3.map(|d| d.to_vec()), s.client_ip),
        (
            K_JA4,
            (!s.ja4.is_empty()).then(|| s.ja4.as_bytes().to_vec()),
            s.client_ip,
        ),
        (K_JA3S, sk.ja3s.map(|d| d.to_vec()), s.server_ip),
    ];
    for (kind, v, ip) in fp_links {
        let (Some(v), Some(ip)) = (v, ip) else {
            continue;
        };
        k.clear();
        value_key(kind, &v, &mut k);
        k.extend_from_slice(&ip16(ip));
        bump(&mut t.fp_ips, &k, ts)?;
    }
    // Certificates: per-certificate statistics once per session, (IP, port, cert) links.
    let mut seen = HashSet::new();
    let mut positions: BTreeMap<[u8; 20], u64> = BTreeMap::new();
    for (pos, sha1) in sk.chain.iter().enumerate() {
        *positions.entry(*sha1).or_default() |= CertStat::position_bit(pos);
    }
    for sha1 in &sk.chain {
        if !seen.insert(*sha1) {
            continue;
        }
        let old = t
            .cert_stats
            .get(&sha1[..])
            .map_err(dberr)?
            .and_then(|v| CertStat::decode(v.value()));
        let bits = positions.get(sha1).copied().unwrap_or(0);
        let new = match old {
            Some(o) => CertStat {
                agg: o.agg.add(ts),
                positions: o.positions | bits,
            },
            None => CertStat {
                agg: Agg::one(ts),
                positions: bits,
            },
        };
        t.cert_stats
            .insert(&sha1[..], &new.encode()[..])
            .map_err(dberr)?;
        let Some(ip) = s.server_ip else { continue };
        let ip = ip16(ip);
        let port = s.server_port.unwrap_or(0).to_be_bytes();
        k.clear();
        k.extend_from_slice(&ip);
        k.extend_from_slice(sha1);
        k.extend_from_slice(&port);
        if bump(&mut t.ip_certs, &k, ts)? {
            *counters.entry("ip_certificate_links").or_default() += 1;
        }
        k.clear();
        k.extend_from_slice(sha1);
        k.extend_from_slice(&ip);
        k.extend_from_slice(&port);
        bump(&mut t.cert_ips, &k, ts)?;
        k.clear();
        value_key(K_IP, &ip, &mut k);
        if mark(&mut t.distinct, &k)? {
            *counters.entry("ips").or_default() += 1;
        }
    }
    if let (Some(leaf), false) = (sk.chain.first(), s.sni.is_empty()) {
        k.clear();
        value_key(K_SNI, s.sni.to_ascii_lowercase().as_bytes(), &mut k);
        k.extend_from_slice(leaf);
        bump(&mut t.sni_certs, &k, ts)?;
    }
    Ok(())
}
