//! The embedded passive SSL store ([`EmbeddedStore`]) on redb: one file in the data dir.
//!
//! Every table maps bytes to bytes, ordered. Notation: `sha1` 20 raw bytes, `sha256`/`spki`
//! 32, `id` the session id ([`crate::model::Session::id`], 32), `ip` 16 bytes (IPv4 as
//! `::ffff:a.b.c.d`, so a CIDR query of either family is one range scan), `port` u16 be,
//! `ts` the Unix time as 8 bytes that sort like the signed value, `val(k, v)` a kind byte
//! (1 JA3, 2 JA3S, 3 JA4, 4 SNI, 5 IP) then a u16 be length and the bytes (JA3/JA3S as
//! their 16 digest bytes, JA4 and SNI as text, IP as 16 bytes), `agg` first seen (i64 le),
//! last seen (i64 le), count (u64 le).
//!
//! | table | key | value |
//! |---|---|---|
//! | `certs` | sha1 | u32 le length, the [`crate::model::Certificate`] as JSON (no DER), the DER |
//! | `cert_sha256` | sha256 | sha1 |
//! | `cert_stats` | sha1 | agg (sessions carrying it), chain position bits (u64 le) |
//! | `subjects` | subject text, sha1 | empty (subject search scans it, bounded) |
//! | `keys` | spki | the [`crate::model::PublicKey`] as JSON |
//! | `key_certs` | spki, sha1 | empty |
//! | `sessions` | id | the [`crate::model::Session`] as JSON |
//! | `session_ix` | val(k, v), ts, id | empty: sessions by JA3, JA3S, JA4, SNI, client or server IP, oldest first |
//! | `ip_certs` | ip, sha1, port | agg: (server IP, port, certificate) links by address |
//! | `cert_ips` | sha1, ip, port | agg: the same links by certificate |
//! | `fp_ips` | val(k, v), ip | agg: (JA3, client IP), (JA3S, server IP), (JA4, client IP) |
//! | `sni_certs` | val(4, sni), sha1 | agg: (SNI, leaf certificate) |
//! | `distinct` | val(k, v) | empty: the JA3s, JA3Ss, JA4s, SNIs and server IPs seen (for [`Info`](crate::store::Info)) |
//! | `weak_keys` | spki, check, 0, subtest, 0, how | the [`WeakKey`](crate::store::WeakKey) as JSON: weak-key findings |
//! | `meta` | name | u64 le: `layout` ([`LAYOUT`]) and the [`Info`](crate::store::Info) counters |
//!
//! Lookups by sha1, sha256, spki, JA3, JA4 or SNI are point reads or prefix scans; a page
//! cursor is the hex of the last key read (for CIDR answers, the last address), and the
//! next page starts strictly after it. A certificate, key or session is written once; only
//! a new session adds to the links' counts. Every commit is one durable redb transaction.
//!
//! The code: this module opens the file and holds the table list; `keys` the key and value
//! codecs, `commit` the write side, `read` the lookups.

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::store::PsslError;

mod commit;
mod keys;
mod read;
mod weak;

type Table = TableDefinition<'static, &'static [u8], &'static [u8]>;

const CERTS: Table = TableDefinition::new("certs");
const CERT_SHA256: Table = TableDefinition::new("cert_sha256");
const CERT_STATS: Table = TableDefinition::new("cert_stats");
const SUBJECTS: Table = TableDefinition::new("subjects");
const KEYS: Table = TableDefinition::new("keys");
const KEY_CERTS: Table = TableDefinition::new("key_certs");
const SESSIONS: Table = TableDefinition::new("sessions");
const SESSION_IX: Table = TableDefinition::new("session_ix");
const IP_CERTS: Table = TableDefinition::new("ip_certs");
const CERT_IPS: Table = TableDefinition::new("cert_ips");
const FP_IPS: Table = TableDefinition::new("fp_ips");
const SNI_CERTS: Table = TableDefinition::new("sni_certs");
const DISTINCT: Table = TableDefinition::new("distinct");
const WEAK_KEYS: Table = TableDefinition::new("weak_keys");
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");

const ALL: [Table; 14] = [
    CERTS,
    CERT_SHA256,
    CERT_STATS,
    SUBJECTS,
    KEYS,
    KEY_CERTS,
    SESSIONS,
    SESSION_IX,
    IP_CERTS,
    CERT_IPS,
    FP_IPS,
    SNI_CERTS,
    DISTINCT,
    WEAK_KEYS,
];

/// The on-disk layout version, kept in `meta`. Tables added later (`weak_keys`) are
/// created on open, so a file of the same layout without them opens as is.
pub const LAYOUT: u64 = 1;

/// Default bound of [`EmbeddedStore::with_max_examined`].
pub const DEFAULT_MAX_EXAMINED: usize = 2_000_000;

pub(crate) fn dberr<E: Into<redb::Error>>(e: E) -> PsslError {
    PsslError::Db(e.into().to_string())
}

/// The embedded store.
pub struct EmbeddedStore {
    db: Database,
    max_examined: usize,
}

impl EmbeddedStore {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<EmbeddedStore, PsslError> {
        let db = match Database::create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(PsslError::Locked {
                    path: path.display().to_string(),
                })
            }
            Err(e) => return Err(dberr(e)),
        };
        let tx = db.begin_write().map_err(dberr)?;
        {
            for t in ALL {
                tx.open_table(t).map_err(dberr)?;
            }
            let mut meta = tx.open_table(META).map_err(dberr)?;
            let layout = meta.get("layout").map_err(dberr)?.map(|v| v.value());
            match layout {
                Some(LAYOUT) => {}
                None if meta.is_empty().map_err(dberr)? => {
                    meta.insert("layout", LAYOUT).map_err(dberr)?;
                }
                found => {
                    return Err(PsslError::Layout {
                        path: path.display().to_string(),
                        found: found.unwrap_or(0),
                        want: LAYOUT,
                    })
                }
            }
        }
        tx.commit().map_err(dberr)?;
        Ok(EmbeddedStore {
            db,
            max_examined: DEFAULT_MAX_EXAMINED,
        })
    }

    /// Bounds the entries a scanning query (subject search) may read before failing with
    /// [`PsslError::TooManyExamined`].
    pub fn with_max_examined(mut self, n: usize) -> EmbeddedStore {
        self.max_examined = n.max(1);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_the_weak_keys_table_gets_it_on_open() {
        use crate::store::{Page, PsslStore};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pssl.redb");
        {
            // a file of this layout written before `weak_keys` existed
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            for t in &ALL[..ALL.len() - 1] {
                tx.open_table(*t).unwrap();
            }
            tx.open_table(META)
                .unwrap()
                .insert("layout", LAYOUT)
                .unwrap();
            tx.commit().unwrap();
            let rx = db.begin_read().unwrap();
            assert!(rx.open_table(WEAK_KEYS).is_err());
        }
        let s = EmbeddedStore::open(&path).unwrap();
        assert_eq!(s.weak_keys(&Page::first(10)).unwrap().items, Vec::new());
    }

    #[test]
    fn a_file_of_another_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pssl.redb");
        drop(EmbeddedStore::open(&path).unwrap());
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert("layout", 99).unwrap();
            tx.commit().unwrap();
        }
        assert!(matches!(
            EmbeddedStore::open(&path),
            Err(PsslError::Layout {
                found: 99,
                want: LAYOUT,
                ..
            })
        ));
    }
}
