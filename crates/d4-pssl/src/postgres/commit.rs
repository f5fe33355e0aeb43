//! The write side of the PostgreSQL store: [`PostgresStore::commit`] writes one [`Batch`] in
//! one transaction: keys and certificates once (into the reference's tables and ours), and
//! each session not stored before as a `"sessionRecord"` row with its `ja3` rows, its
//! certificate links, its `fuzzy_hash` row and its `d4_session` row.

use std::collections::{BTreeMap, HashMap};

use ::postgres::types::ToSql;
use ::postgres::{Error, Row, Statement, Transaction};

use super::{canon_ip, dberr, hex_key, pg_text as t, PostgresStore, LOCK_KEY};
use crate::model::{Batch, Certificate, PublicKey, Session};
use crate::store::{CommitStats, PsslError};

/// A certificate's values in column form, checked before anything is written.
struct CertRow<'a> {
    sha1: Vec<u8>,
    sha256: Vec<u8>,
    spki: Vec<u8>,
    c: &'a Certificate,
}

/// A session's values in column form.
struct SessionRow<'a> {
    sid: [u8; 32],
    ja3: Option<Vec<u8>>,
    ja3s: String,
    chain: Vec<String>,
    s: &'a Session,
}

fn digest(what: &'static str, s: &str) -> Result<Option<Vec<u8>>, PsslError> {
    if s.is_empty() {
        return Ok(None);
    }
    hex_key::<16>(what, s).map(Some)
}

fn cert_row(c: &Certificate) -> Result<CertRow<'_>, PsslError> {
    Ok(CertRow {
        sha1: hex_key::<20>("certificate SHA-1", &c.sha1)?,
        sha256: hex_key::<32>("certificate SHA-256", &c.sha256)?,
        spki: hex_key::<32>("SPKI SHA-256", &c.spki_sha256)?,
        c,
    })
}

fn session_row(s: &Session) -> Result<SessionRow<'_>, PsslError> {
    let chain = s
        .chain
        .iter()
        .map(|c| {
            hex_key::<20>("certificate SHA-1", c).map(|b| String::from_utf8_lossy(&b).into_owned())
        })
        .collect::<Result<_, _>>()?;
    Ok(SessionRow {
        sid: s.id(),
        ja3: digest("JA3", &s.ja3)?,
        ja3s: digest("JA3S", &s.ja3s)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
        chain,
        s,
    })
}

/// The statements of one commit, each prepared once (a batch runs each many times).
#[derive(Default)]
struct Prepared(HashMap<&'static str, Statement>);

type Params<'a> = [&'a (dyn ToSql + Sync)];

impl Prepared {
    fn get(&mut self, tx: &mut Transaction<'_>, sql: &'static str) -> Result<Statement, Error> {
        if let Some(s) = self.0.get(sql) {
            return Ok(s.clone());
        }
        let s = tx.prepare(sql)?;
        self.0.insert(sql, s.clone());
        Ok(s)
    }

    fn exec(
        &mut self,
        tx: &mut Transaction<'_>,
        sql: &'static str,
        p: &Params<'_>,
    ) -> Result<u64, Error> {
        let s = self.get(tx, sql)?;
        tx.execute(&s, p)
    }

    fn query_opt(
        &mut self,
        tx: &mut Transaction<'_>,
        sql: &'static str,
        p: &Params<'_>,
    ) -> Result<Option<Row>, Error> {
        let s = self.get(tx, sql)?;
        tx.query_opt(&s, p)
    }

    fn query_one(
        &mut self,
        tx: &mut Transaction<'_>,
        sql: &'static str,
        p: &Params<'_>,
    ) -> Result<Row, Error> {
        let s = self.get(tx, sql)?;
        tx.query_one(&s, p)
    }
}

fn port(p: Option<u16>) -> Option<i32> {
    p.map(i32::from)
}

/// Writes a key; true when it is new.
fn put_key(q: &mut Prepared, tx: &mut Transaction<'_>, k: &PublicKey) -> Result<bool, PsslError> {
    let hash = hex_key::<32>("SPKI SHA-256", &k.spki_sha256)?;
    let bits = i32::try_from(k.bits).unwrap_or(i32::MAX);
    let exponent = k.exponent.and_then(|e| i32::try_from(e).ok());
    let modulus_size = k.modulus.as_ref().map(|_| bits.saturating_add(7) / 8);
    let n = q
        .exec(
            tx,
            "INSERT INTO public_key (hash, type, modulus, exponent, modulus_size, \"X\", \"Y\", \
             bitsize, curve_name) VALUES ($1, $2, $3, $4, $5, $6::text::numeric, \
             $7::text::numeric, $8, $9) ON CONFLICT (hash) DO NOTHING",
            &[
                &hash,
                &t(&k.key_type),
                &k.modulus,
                &exponent,
                &modulus_size,
                &k.x,
                &k.y,
                &bits,
                &k.curve.as_deref().map(t),
            ],
        )
        .map_err(dberr)?;
    q.exec(
        tx,
        "INSERT INTO d4_public_key (hash, exponent) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
        &[&hash, &k.exponent.map(|e| e.to_string())],
    )
    .map_err(dberr)?;
    // Certificates stored before their key: link them now.
    q.exec(
        tx,
        "INSERT INTO many_certificate_has_many_public_key (hash_certificate, hash_public_key) \
         SELECT hash, $1 FROM d4_certificate WHERE spki = $1 ON CONFLICT DO NOTHING",
        &[&hash],
    )
    .map_err(dberr)?;
    Ok(n == 1)
}

/// Writes a certificate; true when it is new.
fn put_cert(
    q: &mut Prepared,
    tx: &mut Transaction<'_>,
    r: &CertRow<'_>,
) -> Result<bool, PsslError> {
    let c = r.c;
    let n = q.exec(tx,
            "INSERT INTO certificate (hash, issuer, subject, \"is_CA\", \"is_SS\", is_valid_chain, \
             atrest_path, mounted_path) VALUES ($1, $2, $3, $4, $5, false, '', '') \
             ON CONFLICT (hash) DO NOTHING",
            &[&r.sha1, &t(&c.issuer), &t(&c.subject), &c.is_ca, &c.self_signed],
        )
        .map_err(dberr)?;
    // Also for a certificate the reference stored: d4 adds its DER and facts.
    q.exec(
        tx,
        "INSERT INTO d4_certificate (hash, sha256, der, serial, not_before, not_after, sans, \
         spki) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        &[
            &r.sha1,
            &r.sha256,
            &c.der,
            &t(&c.serial),
            &c.not_before,
            &c.not_after,
            &c.sans.iter().map(|x| t(x)).collect::<Vec<_>>(),
            &r.spki,
        ],
    )
    .map_err(dberr)?;
    q.exec(
        tx,
        "INSERT INTO many_certificate_has_many_public_key (hash_certificate, hash_public_key) \
         SELECT $1, hash FROM public_key WHERE hash = $2 ON CONFLICT DO NOTHING",
        &[&r.sha1, &r.spki],
    )
    .map_err(dberr)?;
    Ok(n == 1)
}

/// Writes a session; false when it was stored before.
fn put_session(
    q: &mut Prepared,
    tx: &mut Transaction<'_>,
    r: &SessionRow<'_>,
) -> Result<bool, PsslError> {
    let s = r.s;
    if q.query_opt(
        tx,
        "SELECT 1 FROM d4_session WHERE sid = $1",
        &[&&r.sid[..]],
    )
    .map_err(dberr)?
    .is_some()
    {
        return Ok(false);
    }
    let fps = [
        (&r.ja3, &s.ja3_raw, "ja3"),
        (
            &(!r.ja3s.is_empty()).then(|| r.ja3s.as_bytes().to_vec()),
            &s.ja3s_raw,
            "ja3s",
        ),
    ];
    for (hash, raw, kind) in fps {
        if let Some(hash) = hash {
            q.exec(tx,
                "INSERT INTO ja3 (hash, raw, type) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING",
                &[hash, &t(raw), &kind],
            )
            .map_err(dberr)?;
        }
    }
    let id: i64 = q
        .query_one(
            tx,
            "INSERT INTO \"sessionRecord\" (dst_ip, src_ip, dst_port, src_port, hash_ja3, \
             \"timestamp\") VALUES ($1, $2, $3, $4, $5, to_timestamp($6::bigint)) RETURNING id",
            &[
                &s.server_ip.map(canon_ip),
                &s.client_ip.map(canon_ip),
                &port(s.server_port),
                &port(s.client_port),
                &r.ja3,
                &s.ts,
            ],
        )
        .map_err(dberr)?
        .get(0);
    let mut positions: BTreeMap<&String, i64> = BTreeMap::new();
    for (pos, sha1) in r.chain.iter().enumerate() {
        *positions.entry(sha1).or_default() |= 1i64 << pos.min(63);
    }
    for (sha1, bits) in &positions {
        q.exec(
            tx,
            "INSERT INTO d4_chain_position AS p (hash, positions) VALUES ($1, $2) \
             ON CONFLICT (hash) DO UPDATE SET positions = p.positions | EXCLUDED.positions \
             WHERE p.positions | EXCLUDED.positions <> p.positions",
            &[&sha1.as_bytes(), bits],
        )
        .map_err(dberr)?;
        // Only certificates the store holds (the reference's foreign key); the chain in
        // d4_session keeps every SHA-1.
        q.exec(
            tx,
            "INSERT INTO \"many_sessionRecord_has_many_certificate\" (\"id_sessionRecord\", \
             hash_certificate) SELECT $1, hash FROM certificate WHERE hash = $2 \
             ON CONFLICT DO NOTHING",
            &[&id, &sha1.as_bytes()],
        )
        .map_err(dberr)?;
    }
    if !s.tlsh.is_empty() {
        q.exec(
            tx,
            "INSERT INTO fuzzy_hash (type, value, \"id_sessionRecord\") VALUES ('tlsh', $1, $2)",
            &[&t(&s.tlsh), &id],
        )
        .map_err(dberr)?;
    }
    q.exec(
        tx,
        "INSERT INTO d4_session (sid, id, ja3_raw, ja3s, ja3s_raw, ja4, ja4_r, sni, sni_lower, \
         alpn, tlsh, transport, chain) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13)",
        &[
            &&r.sid[..],
            &id,
            &t(&s.ja3_raw),
            &r.ja3s,
            &t(&s.ja3s_raw),
            &t(&s.ja4),
            &t(&s.ja4_r),
            &t(&s.sni),
            &t(&s.sni.to_ascii_lowercase()),
            &s.alpn.iter().map(|x| t(x)).collect::<Vec<_>>(),
            &t(&s.tlsh),
            &t(&s.transport),
            &r.chain,
        ],
    )
    .map_err(dberr)?;
    Ok(true)
}

impl PostgresStore {
    /// Writes a batch in one transaction (see [`crate::store::PsslStore::commit`]).
    pub fn commit(&self, batch: &Batch) -> Result<CommitStats, PsslError> {
        // Check every value before the transaction: a bad batch writes nothing.
        let certs = batch
            .certificates
            .iter()
            .map(cert_row)
            .collect::<Result<Vec<_>, _>>()?;
        for k in &batch.keys {
            hex_key::<32>("SPKI SHA-256", &k.spki_sha256)?;
        }
        let sessions = batch
            .sessions
            .iter()
            .map(session_row)
            .collect::<Result<Vec<_>, _>>()?;
        let mut stats = CommitStats::default();
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(dberr)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .map_err(dberr)?;
        let mut q = Prepared::default();
        for k in &batch.keys {
            if put_key(&mut q, &mut tx, k)? {
                stats.new_keys += 1;
            }
        }
        for r in &certs {
            if put_cert(&mut q, &mut tx, r)? {
                stats.new_certificates += 1;
            }
        }
        for r in &sessions {
            if put_session(&mut q, &mut tx, r)? {
                stats.new_sessions += 1;
            } else {
                stats.known_sessions += 1;
            }
        }
        tx.commit().map_err(dberr)?;
        Ok(stats)
    }
}
