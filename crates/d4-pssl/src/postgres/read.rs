//! The read side of the PostgreSQL store: the [`PsslStore`] queries over the reference's
//! tables joined with d4's (see the [`super`] module doc), links aggregated from the
//! session rows, keyset paging with text cursors.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ::postgres::types::ToSql;
use ::postgres::{Client, Row};
use ipnet::{IpNet, Ipv4Net};

use super::{canon_ip, dberr, hex_key, pg_text, PostgresStore};
use crate::model::{Batch, Certificate, PublicKey, Session};
use crate::store::{
    CertView, CommitStats, Fingerprint, Info, IpCerts, IpSeen, Page, Paged, PsslError, PsslStore,
    Seen, SessionQuery, WeakKey,
};

type Param<'a> = &'a (dyn ToSql + Sync);

/// The link table of sessions and certificates, and a session's time in Unix seconds.
const M: &str = "\"many_sessionRecord_has_many_certificate\"";
pub(super) const TS: &str = "coalesce(extract(epoch FROM s.\"timestamp\")::bigint, 0)";

fn text(b: Option<Vec<u8>>) -> String {
    b.map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// A cursor: the hex of its text.
fn cursor_of(s: &str) -> String {
    hex::encode(s)
}

pub(super) fn cursor_text(page: &Page) -> Result<Option<String>, PsslError> {
    page.cursor
        .as_ref()
        .map(|c| {
            hex::decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(PsslError::Cursor)
        })
        .transpose()
}

/// A cursor `"ip port"` (port optional).
fn ip_cursor(page: &Page) -> Result<(Option<IpAddr>, i32), PsslError> {
    let Some(t) = cursor_text(page)? else {
        return Ok((None, 0));
    };
    let mut it = t.split(' ');
    let ip: IpAddr = it
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(PsslError::Cursor)?;
    let port = match it.next() {
        Some(p) => p.parse().map_err(|_| PsslError::Cursor)?,
        None => 0,
    };
    Ok((Some(ip), port))
}

/// Rows fetched (`limit + 1` asked for) → the page and its next cursor.
pub(super) fn paged<T>(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Paged<T> {
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(|t| cursor_of(&cursor(t)));
        Paged { items, next }
    } else {
        Paged { items, next: None }
    }
}

pub(super) fn fetch(page: &Page) -> (usize, i64) {
    let limit = page.limit.max(1);
    (limit, i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1)
}

fn ip_of(row: &Row, i: usize) -> Result<IpAddr, PsslError> {
    row.try_get::<_, IpAddr>(i)
        .map(canon_ip)
        .map_err(|e| PsslError::Corrupt(e.to_string()))
}

fn count(row: &Row, i: usize) -> u64 {
    u64::try_from(row.get::<_, i64>(i)).unwrap_or(0)
}

fn ip_seen(row: &Row, port: Option<u16>) -> Result<IpSeen, PsslError> {
    Ok(IpSeen {
        ip: ip_of(row, 0)?,
        port,
        first: row.get(2),
        last: row.get(3),
        count: count(row, 4),
    })
}

/// The IPv4 part of a network: itself, or for IPv6 its share of `::ffff:0:0/96`.
fn v4_part(net: IpNet) -> Option<Ipv4Net> {
    match net {
        IpNet::V4(n) => Some(n),
        IpNet::V6(n) => {
            let mapped = Ipv4Addr::UNSPECIFIED.to_ipv6_mapped();
            if n.prefix_len() <= 96 {
                n.contains(&mapped).then(Ipv4Net::default)
            } else {
                let v4 = n.network().to_ipv4_mapped()?;
                Ipv4Net::new(v4, n.prefix_len() - 96).ok()
            }
        }
    }
}

/// The columns of a [`Session`], `s` the `"sessionRecord"` row and `d` its `d4_session` row
/// (absent for the reference's sessions).
pub(super) const SESSION_COLS: &str = "SELECT s.id, coalesce(extract(epoch FROM s.\"timestamp\")::bigint, 0), \
    s.src_ip, s.src_port, s.dst_ip, s.dst_port, s.hash_ja3, coalesce(d.ja3_raw, j.raw, ''), \
    coalesce(d.ja3s, ''), coalesce(d.ja3s_raw, ''), coalesce(d.ja4, ''), coalesce(d.ja4_r, ''), \
    coalesce(d.sni, ''), coalesce(d.alpn, '{}'), coalesce(d.tlsh, (SELECT f.value FROM fuzzy_hash f \
    WHERE f.\"id_sessionRecord\" = s.id ORDER BY f.id LIMIT 1), ''), coalesce(d.transport, ''), \
    coalesce(d.chain, ARRAY(SELECT convert_from(x.hash_certificate, 'UTF8') FROM \
    \"many_sessionRecord_has_many_certificate\" x WHERE x.\"id_sessionRecord\" = s.id \
    ORDER BY x.hash_certificate)) \
    FROM \"sessionRecord\" s LEFT JOIN d4_session d ON d.id = s.id \
    LEFT JOIN ja3 j ON j.hash = s.hash_ja3";

pub(super) fn session_of(row: &Row) -> Result<Session, PsslError> {
    let ip = |i: usize| -> Result<Option<IpAddr>, PsslError> {
        row.try_get::<_, Option<IpAddr>>(i)
            .map(|o| o.map(canon_ip))
            .map_err(|e| PsslError::Corrupt(e.to_string()))
    };
    let port = |i: usize| {
        row.get::<_, Option<i32>>(i)
            .and_then(|p| u16::try_from(p).ok())
    };
    Ok(Session {
        ts: row.get(1),
        client_ip: ip(2)?,
        client_port: port(3),
        server_ip: ip(4)?,
        server_port: port(5),
        ja3: text(row.get(6)),
        ja3_raw: row.get(7),
        ja3s: row.get(8),
        ja3s_raw: row.get(9),
        ja4: row.get(10),
        ja4_r: row.get(11),
        sni: row.get(12),
        alpn: row.get(13),
        tlsh: row.get(14),
        transport: row.get(15),
        chain: row.get(16),
    })
}

fn view(c: &mut Client, sha1: &[u8]) -> Result<Option<CertView>, PsslError> {
    let Some(r) = c
        .query_opt(
            "SELECT c.issuer, c.subject, c.\"is_CA\", c.\"is_SS\", d.sha256, d.der, d.serial, \
             d.not_before, d.not_after, d.sans, coalesce(d.spki, (SELECT k.hash_public_key FROM \
             many_certificate_has_many_public_key k WHERE k.hash_certificate = c.hash \
             ORDER BY 1 LIMIT 1)) FROM certificate c LEFT JOIN d4_certificate d ON d.hash = c.hash \
             WHERE c.hash = $1",
            &[&sha1],
        )
        .map_err(dberr)?
    else {
        return Ok(None);
    };
    let spki = text(r.get(10));
    let certificate = Certificate {
        sha1: String::from_utf8_lossy(sha1).into_owned(),
        sha256: text(r.get(4)),
        der: r.get::<_, Option<Vec<u8>>>(5).unwrap_or_default(),
        subject: r.get::<_, Option<String>>(1).unwrap_or_default(),
        issuer: r.get::<_, Option<String>>(0).unwrap_or_default(),
        serial: r.get::<_, Option<String>>(6).unwrap_or_default(),
        not_before: r.get::<_, Option<i64>>(7).unwrap_or(0),
        not_after: r.get::<_, Option<i64>>(8).unwrap_or(0),
        sans: r.get::<_, Option<Vec<String>>>(9).unwrap_or_default(),
        is_ca: r.get::<_, Option<bool>>(2).unwrap_or(false),
        self_signed: r.get::<_, Option<bool>>(3).unwrap_or(false),
        spki_sha256: spki.clone(),
    };
    let key = c
        .query_opt(
            "SELECT p.type, p.bitsize, p.modulus, p.exponent, x.exponent, p.curve_name, \
             p.\"X\"::text, p.\"Y\"::text FROM public_key p LEFT JOIN d4_public_key x \
             ON x.hash = p.hash WHERE p.hash = $1",
            &[&spki.as_bytes()],
        )
        .map_err(dberr)?
        .map(|k| PublicKey {
            spki_sha256: spki.clone(),
            key_type: k.get::<_, Option<String>>(0).unwrap_or_default(),
            bits: k
                .get::<_, Option<i32>>(1)
                .and_then(|b| u32::try_from(b).ok())
                .unwrap_or(0),
            modulus: k.get(2),
            exponent: k
                .get::<_, Option<String>>(4)
                .and_then(|e| e.parse().ok())
                .or_else(|| {
                    k.get::<_, Option<i32>>(3)
                        .and_then(|e| u64::try_from(e).ok())
                }),
            curve: k.get(5),
            x: k.get(6),
            y: k.get(7),
        });
    let stats = c
        .query_one(
            &format!(
                "SELECT count(*), min({TS}), max({TS}) FROM {M} m JOIN \"sessionRecord\" s \
                 ON s.id = m.\"id_sessionRecord\" WHERE m.hash_certificate = $1"
            ),
            &[&sha1],
        )
        .map_err(dberr)?;
    let hits = count(&stats, 0);
    let bits: i64 = c
        .query_opt(
            "SELECT positions FROM d4_chain_position WHERE hash = $1",
            &[&sha1],
        )
        .map_err(dberr)?
        .map_or(0, |r| r.get(0));
    let positions: Vec<u32> = (0..64).filter(|i| bits & (1i64 << i) != 0).collect();
    Ok(Some(CertView {
        certificate,
        key,
        first_seen: (hits > 0).then(|| stats.get(1)),
        last_seen: (hits > 0).then(|| stats.get(2)),
        hits,
        chain_positions: positions,
    }))
}

impl PsslStore for PostgresStore {
    fn commit(&self, batch: &Batch) -> Result<CommitStats, PsslError> {
        PostgresStore::commit(self, batch)
    }

    fn certificate(&self, sha1_or_sha256: &str) -> Result<Option<CertView>, PsslError> {
        let mut c = self.client()?;
        match sha1_or_sha256.trim().len() {
            40 => view(&mut c, &hex_key::<20>("certificate SHA-1", sha1_or_sha256)?),
            64 => {
                let sha256 = hex_key::<32>("certificate SHA-256", sha1_or_sha256)?;
                let Some(r) = c
                    .query_opt(
                        "SELECT hash FROM d4_certificate WHERE sha256 = $1",
                        &[&sha256],
                    )
                    .map_err(dberr)?
                else {
                    return Ok(None);
                };
                view(&mut c, &r.get::<_, Vec<u8>>(0))
            }
            _ => Err(PsslError::Invalid {
                what: "certificate SHA-1 or SHA-256",
                value: sha1_or_sha256.to_string(),
            }),
        }
    }

    fn certificate_ips(&self, sha1: &str, page: &Page) -> Result<Paged<IpSeen>, PsslError> {
        let sha1 = hex_key::<20>("certificate SHA-1", sha1)?;
        let (after, after_port) = ip_cursor(page)?;
        let (limit, n) = fetch(page);
        let rows = self
            .client()?
            .query(
                &format!(
                    "SELECT s.dst_ip, coalesce(s.dst_port, 0), min({TS}), max({TS}), count(*) \
                     FROM {M} m JOIN \"sessionRecord\" s ON s.id = m.\"id_sessionRecord\" \
                     WHERE m.hash_certificate = $1 AND s.dst_ip IS NOT NULL AND ($2::inet IS NULL \
                     OR (s.dst_ip, coalesce(s.dst_port, 0)) > ($2::inet, $3::int)) \
                     GROUP BY 1, 2 ORDER BY 1, 2 LIMIT $4"
                ),
                &[&sha1, &after, &after_port, &n],
            )
            .map_err(dberr)?;
        let items = rows
            .iter()
            .map(|r| {
                let port = u16::try_from(r.get::<_, i32>(1)).unwrap_or(0);
                ip_seen(r, (port != 0).then_some(port))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(paged(items, limit, |x| {
            format!("{} {}", x.ip, x.port.unwrap_or(0))
        }))
    }

    fn ip_certificates(&self, net: IpNet, page: &Page) -> Result<Paged<IpCerts>, PsslError> {
        let net = net.trunc();
        let v4 = v4_part(net).map(|n| n.to_string());
        let (after, _) = ip_cursor(page)?;
        let (limit, n) = fetch(page);
        let mut c = self.client()?;
        let ips: Vec<IpAddr> = c
            .query(
                &format!(
                    "SELECT DISTINCT s.dst_ip FROM \"sessionRecord\" s WHERE (s.dst_ip <<= \
                     $1::text::inet OR s.dst_ip <<= $2::text::inet) AND ($3::inet IS NULL OR \
                     s.dst_ip > $3) AND EXISTS (SELECT 1 FROM {M} m WHERE \
                     m.\"id_sessionRecord\" = s.id) ORDER BY 1 LIMIT $4"
                ),
                &[&net.to_string(), &v4, &after, &n],
            )
            .map_err(dberr)?
            .iter()
            .map(|r| r.try_get::<_, IpAddr>(0))
            .collect::<Result<_, _>>()
            .map_err(|e| PsslError::Corrupt(e.to_string()))?;
        let more = ips.len() > limit;
        let ips: Vec<IpAddr> = ips.into_iter().take(limit).collect();
        let rows = c
            .query(
                &format!(
                    "SELECT s.dst_ip, m.hash_certificate, coalesce(s.dst_port, 0), min({TS}), \
                     max({TS}), count(*) FROM {M} m JOIN \"sessionRecord\" s \
                     ON s.id = m.\"id_sessionRecord\" WHERE s.dst_ip = ANY($1) GROUP BY 1, 2, 3"
                ),
                &[&ips],
            )
            .map_err(dberr)?;
        type Group = (BTreeMap<String, Seen<String>>, BTreeSet<u16>);
        let mut groups: BTreeMap<usize, Group> = BTreeMap::new();
        for r in &rows {
            let ip: IpAddr = r
                .try_get(0)
                .map_err(|e| PsslError::Corrupt(e.to_string()))?;
            let Some(at) = ips.iter().position(|x| *x == ip) else {
                continue;
            };
            let (certs, ports) = groups.entry(at).or_default();
            let sha1 = text(r.get(1));
            let (first, last, n): (i64, i64, u64) = (r.get(3), r.get(4), count(r, 5));
            certs
                .entry(sha1.clone())
                .and_modify(|o| {
                    o.first = o.first.min(first);
                    o.last = o.last.max(last);
                    o.count = o.count.saturating_add(n);
                })
                .or_insert(Seen {
                    value: sha1,
                    first,
                    last,
                    count: n,
                });
            if let Ok(p) = u16::try_from(r.get::<_, i32>(2)) {
                if p != 0 {
                    ports.insert(p);
                }
            }
        }
        let items: Vec<IpCerts> = groups
            .into_iter()
            .map(|(at, (certs, ports))| IpCerts {
                ip: canon_ip(ips[at]),
                certificates: certs.into_values().collect(),
                ports: ports.into_iter().collect(),
            })
            .collect();
        let next = (more && !ips.is_empty())
            .then(|| ips.last().map(|ip| cursor_of(&ip.to_string())))
            .flatten();
        Ok(Paged { items, next })
    }

    fn fingerprint_ips(&self, fp: &Fingerprint, page: &Page) -> Result<Paged<IpSeen>, PsslError> {
        let (key, cond, ip): (Box<dyn ToSql + Sync>, &str, &str) = match fp {
            Fingerprint::Ja3(d) => (
                Box::new(hex_key::<16>("JA3", d)?),
                "s.hash_ja3 = $1",
                "s.src_ip",
            ),
            Fingerprint::Ja3s(d) => (
                Box::new(String::from_utf8_lossy(&hex_key::<16>("JA3S", d)?).into_owned()),
                "d.ja3s = $1",
                "s.dst_ip",
            ),
            Fingerprint::Ja4(s) => (Box::new(pg_text(s)), "d.ja4 = $1", "s.src_ip"),
        };
        let (after, _) = ip_cursor(page)?;
        let (limit, n) = fetch(page);
        let rows = self
            .client()?
            .query(
                &format!(
                    "SELECT {ip}, 0, min({TS}), max({TS}), count(*) FROM \"sessionRecord\" s \
                     LEFT JOIN d4_session d ON d.id = s.id WHERE {cond} AND {ip} IS NOT NULL \
                     AND ($2::inet IS NULL OR {ip} > $2) GROUP BY 1 ORDER BY 1 LIMIT $3"
                ),
                &[&*key, &after, &n],
            )
            .map_err(dberr)?;
        let items = rows
            .iter()
            .map(|r| ip_seen(r, None))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(paged(items, limit, |x| x.ip.to_string()))
    }

    fn sessions(&self, by: &SessionQuery, page: &Page) -> Result<Paged<Session>, PsslError> {
        let (cond, key): (&str, Box<dyn ToSql + Sync>) = match by {
            SessionQuery::Ja3(d) => ("s.hash_ja3 = $1", Box::new(hex_key::<16>("JA3", d)?)),
            SessionQuery::Ja3s(d) => (
                "d.ja3s = $1",
                Box::new(String::from_utf8_lossy(&hex_key::<16>("JA3S", d)?).into_owned()),
            ),
            SessionQuery::Ja4(s) => ("d.ja4 = $1", Box::new(pg_text(s))),
            SessionQuery::Sni(s) => (
                "d.sni_lower = $1",
                Box::new(pg_text(&s.to_ascii_lowercase())),
            ),
            SessionQuery::Ip(ip) => ("(s.src_ip = $1 OR s.dst_ip = $1)", Box::new(canon_ip(*ip))),
        };
        // Cursor: "time id".
        let (after_ts, after_id) = match cursor_text(page)? {
            None => (None, 0i64),
            Some(t) => {
                let (a, b) = t.split_once(' ').ok_or(PsslError::Cursor)?;
                (
                    Some(a.parse::<i64>().map_err(|_| PsslError::Cursor)?),
                    b.parse::<i64>().map_err(|_| PsslError::Cursor)?,
                )
            }
        };
        let (limit, n) = fetch(page);
        let params: [Param<'_>; 4] = [&*key, &after_ts, &after_id, &n];
        let rows = self
            .client()?
            .query(
                &format!(
                    "{SESSION_COLS} WHERE {cond} AND ($2::bigint IS NULL OR ({TS}, s.id) > \
                     ($2::bigint, $3::bigint)) ORDER BY {TS}, s.id LIMIT $4"
                ),
                &params,
            )
            .map_err(dberr)?;
        let items = rows
            .iter()
            .map(|r| Ok((r.get::<_, i64>(0), session_of(r)?)))
            .collect::<Result<Vec<_>, PsslError>>()?;
        let p = paged(items, limit, |(id, s)| format!("{} {id}", s.ts));
        Ok(Paged {
            items: p.items.into_iter().map(|(_, s)| s).collect(),
            next: p.next,
        })
    }

    fn sessions_between(
        &self,
        from: i64,
        until: i64,
        page: &Page,
    ) -> Result<Paged<Session>, PsslError> {
        super::period::sessions_between(self, from, until, page)
    }

    fn sni_certificates(&self, sni: &str, page: &Page) -> Result<Paged<Seen<String>>, PsslError> {
        let after = cursor_text(page)?;
        let (limit, n) = fetch(page);
        let rows = self
            .client()?
            .query(
                &format!(
                    "SELECT d.chain[1], min({TS}), max({TS}), count(*) FROM d4_session d JOIN \
                     \"sessionRecord\" s ON s.id = d.id WHERE d.sni_lower = $1 AND \
                     cardinality(d.chain) > 0 AND ($2::text IS NULL OR d.chain[1] > $2) \
                     GROUP BY 1 ORDER BY 1 LIMIT $3"
                ),
                &[&pg_text(&sni.to_ascii_lowercase()), &after, &n],
            )
            .map_err(dberr)?;
        let items = rows
            .iter()
            .map(|r| Seen {
                value: r.get(0),
                first: r.get(1),
                last: r.get(2),
                count: count(r, 3),
            })
            .collect();
        Ok(paged(items, limit, |x| x.value.clone()))
    }

    fn subject_search(&self, text_: &str, page: &Page) -> Result<Paged<String>, PsslError> {
        self.hash_list(
            "SELECT hash FROM certificate WHERE strpos(lower(subject), lower($1)) > 0",
            "hash",
            &pg_text(text_),
            page,
        )
    }

    fn key_certificates(&self, spki_sha256: &str, page: &Page) -> Result<Paged<String>, PsslError> {
        let spki = hex_key::<32>("SPKI SHA-256", spki_sha256)?;
        self.hash_list(
            "SELECT hash_certificate FROM many_certificate_has_many_public_key WHERE \
             hash_public_key = $1",
            "hash_certificate",
            &spki,
            page,
        )
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
        let r = self
            .client()?
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM certificate), (SELECT count(*) FROM public_key), \
                     (SELECT count(*) FROM \"sessionRecord\"), \
                     (SELECT count(DISTINCT s.dst_ip) FROM \"sessionRecord\" s WHERE EXISTS \
                      (SELECT 1 FROM {M} m WHERE m.\"id_sessionRecord\" = s.id)), \
                     (SELECT count(*) FROM ja3 WHERE type = 'ja3'), \
                     (SELECT count(*) FROM ja3 WHERE type = 'ja3s'), \
                     (SELECT count(DISTINCT ja4) FROM d4_session WHERE ja4 <> ''), \
                     (SELECT count(DISTINCT sni_lower) FROM d4_session WHERE sni_lower <> ''), \
                     (SELECT count(*) FROM (SELECT DISTINCT s.dst_ip, coalesce(s.dst_port, 0), \
                      m.hash_certificate FROM {M} m JOIN \"sessionRecord\" s \
                      ON s.id = m.\"id_sessionRecord\" WHERE s.dst_ip IS NOT NULL) l)"
                ),
                &[],
            )
            .map_err(dberr)?;
        Ok(Info {
            certificates: count(&r, 0),
            keys: count(&r, 1),
            sessions: count(&r, 2),
            ips: count(&r, 3),
            ja3: count(&r, 4),
            ja3s: count(&r, 5),
            ja4: count(&r, 6),
            sni: count(&r, 7),
            ip_certificate_links: count(&r, 8),
        })
    }
}

impl PostgresStore {
    /// A paged list of hashes: `select` (one hash column `col`, a condition on `$1`) in hash
    /// order after the cursor.
    fn hash_list(
        &self,
        select: &str,
        col: &str,
        arg: Param<'_>,
        page: &Page,
    ) -> Result<Paged<String>, PsslError> {
        let after = cursor_text(page)?.map(String::into_bytes);
        let (limit, n) = fetch(page);
        let rows = self
            .client()?
            .query(
                &format!("{select} AND ($2::bytea IS NULL OR {col} > $2) ORDER BY {col} LIMIT $3"),
                &[arg, &after, &n],
            )
            .map_err(dberr)?;
        let items = rows.iter().map(|r| text(r.get(0))).collect();
        Ok(paged(items, limit, String::clone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_share_of_ipv6_networks() {
        let v4 = |s: &str| v4_part(s.parse().unwrap()).map(|n| n.to_string());
        assert_eq!(v4("::/0").as_deref(), Some("0.0.0.0/0"));
        assert_eq!(v4("::ffff:0:0/96").as_deref(), Some("0.0.0.0/0"));
        assert_eq!(
            v4("::ffff:198.51.100.0/120").as_deref(),
            Some("198.51.100.0/24")
        );
        assert_eq!(v4("2001:db8::/32"), None);
        assert_eq!(v4("10.0.0.0/8").as_deref(), Some("10.0.0.0/8"));
    }
}
