//! The embedded backscatter store ([`EmbeddedPibsStore`]) on redb: one file,
//! `<data-dir>/pibs.redb`, owned by one process at a time.
//!
//! Tables map bytes to bytes, ordered. `ip` is the victim as 16 bytes (IPv4 as
//! `::ffff:a.b.c.d`, so a prefix of either family is one key range), times are unix
//! seconds as big-endian u64 (so they sort), records are LEB128 varints after a version
//! byte ([`super::codec`]).
//!
//! | table | key | value |
//! |---|---|---|
//! | `buckets` | ip, bucket start | packets, first/last seen, kinds, ports, protocols, sensors, distinct-address counter |
//! | `bucket_time` | bucket start, lowest ip | the victims (16 bytes each) whose bucket at that start a commit created: buckets by time (expiry, oldest/newest), one entry per start and commit |
//! | `attacks` | attack start, ip | end, packets, peak bucket packets, buckets, ports, protocols, kinds, sensors |
//! | `victim_attacks` | ip, attack start | end (u64 le): a victim's attacks, and attacks by prefix |
//! | `files` | file identity (32 bytes) | records read, done, path, sensor |
//! | `meta` | name | u64: `layout`, `attack_gap`, `darknet_size` (0: unknown), `max_span` (longest attack seen, seconds), counters `victims`, `buckets`, `attacks`, `files` |
//!
//! A commit ([`super::PibsStore::commit`]) is one durable write transaction: it merges the
//! batch's buckets, updates the attacks of the victims it touched (incrementally: a bucket
//! inside an attack adds to it, new buckets become runs, neighbours closer than the gap
//! join) and records the file's progress, so a crash never leaves a bucket counted without
//! its file position or the other way round. `/attacks` scans `attacks` newest first over
//! `[since - max_span, until]`; a prefix query scans `victim_attacks` over the prefix.
//!
//! The code: this module opens the file and holds the table list; `commit` is the write
//! side, `read` the queries.

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{
    Attack, AttackQuery, Batch, BucketStats, CommitStats, ExpireStats, FileState, Page, PibsStore,
    PibsStoreError, StoreConfig, StoreInfo, DEFAULT_ATTACK_GAP,
};

mod commit;
mod read;

type Table = TableDefinition<'static, &'static [u8], &'static [u8]>;

pub(crate) const BUCKETS: Table = TableDefinition::new("buckets");
pub(crate) const BUCKET_TIME: Table = TableDefinition::new("bucket_time");
pub(crate) const ATTACKS: Table = TableDefinition::new("attacks");
pub(crate) const VICTIM_ATTACKS: Table = TableDefinition::new("victim_attacks");
pub(crate) const FILES: Table = TableDefinition::new("files");
pub(crate) const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");

const ALL: [Table; 5] = [BUCKETS, BUCKET_TIME, ATTACKS, VICTIM_ATTACKS, FILES];

/// The on-disk layout version, kept in `meta`.
pub const LAYOUT: u64 = 2;

/// Default bound of the entries one `attacks` page may read (filters that match little
/// return a shorter page with a cursor rather than scanning on).
pub const DEFAULT_MAX_EXAMINED: usize = 20_000;

pub(crate) fn dberr<E: Into<redb::Error>>(e: E) -> PibsStoreError {
    PibsStoreError::Db(e.into().to_string())
}

/// The embedded store.
pub struct EmbeddedPibsStore {
    db: Database,
    max_examined: usize,
}

/// Opens (creating it if needed) the embedded store at `path` (`<data-dir>/pibs.redb`).
pub fn open_embedded(path: &Path) -> Result<EmbeddedPibsStore, PibsStoreError> {
    EmbeddedPibsStore::open(path)
}

impl EmbeddedPibsStore {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<EmbeddedPibsStore, PibsStoreError> {
        let db = match Database::create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(PibsStoreError::Locked {
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
                    meta.insert("attack_gap", DEFAULT_ATTACK_GAP)
                        .map_err(dberr)?;
                }
                found => {
                    return Err(PibsStoreError::Layout {
                        path: path.display().to_string(),
                        found: found.unwrap_or(0),
                        want: LAYOUT,
                    })
                }
            }
        }
        tx.commit().map_err(dberr)?;
        Ok(EmbeddedPibsStore {
            db,
            max_examined: DEFAULT_MAX_EXAMINED,
        })
    }

    /// Bounds the entries one `attacks` page may read (at least 1).
    pub fn with_max_examined(mut self, n: usize) -> EmbeddedPibsStore {
        self.max_examined = n.max(1);
        self
    }
}

/// Reads a `meta` value (0 when absent).
pub(crate) fn meta_get<T: ReadableTable<&'static str, u64>>(
    t: &T,
    name: &str,
) -> Result<u64, PibsStoreError> {
    Ok(t.get(name).map_err(dberr)?.map(|v| v.value()).unwrap_or(0))
}

impl PibsStore for EmbeddedPibsStore {
    fn attacks(
        &self,
        q: &AttackQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Attack>, PibsStoreError> {
        read::attacks(&self.db, q, cursor, limit, self.max_examined)
    }

    fn victim(
        &self,
        ip: std::net::IpAddr,
        since: u64,
        until: u64,
        max_buckets: usize,
    ) -> Result<(Vec<Attack>, Vec<BucketStats>), PibsStoreError> {
        read::victim(&self.db, ip, since, until, max_buckets)
    }

    fn attacks_in(
        &self,
        since: u64,
        until: u64,
        max: usize,
    ) -> Result<Vec<Attack>, PibsStoreError> {
        read::attacks_in(&self.db, since, until, max)
    }

    fn info(&self) -> Result<StoreInfo, PibsStoreError> {
        read::info(&self.db)
    }

    fn file(&self, id: &[u8; 32]) -> Result<Option<FileState>, PibsStoreError> {
        read::file(&self.db, id)
    }

    fn commit(&self, batch: &Batch) -> Result<CommitStats, PibsStoreError> {
        commit::commit(&self.db, batch)
    }

    fn expire(&self, cutoff: u64) -> Result<ExpireStats, PibsStoreError> {
        commit::expire(&self.db, cutoff)
    }

    fn config(&self) -> Result<StoreConfig, PibsStoreError> {
        read::config(&self.db)
    }

    fn set_config(&self, cfg: &StoreConfig) -> Result<(), PibsStoreError> {
        commit::set_config(&self.db, cfg)
    }
}
