//! The embedded record store (redb): one row per (rrname, rrtype, rdata) with first seen
//! (minimum), last seen (maximum), summed count and the sensors that reported it, plus the
//! indexes the lookups need.
//!
//! Tables (all keys are bytes, ordered):
//! * `records`: `revname \0 type(be16) rdata` → `first_ms(le64) last_ms(le64) count(le64)
//!   seq(le64) sensors(comma separated)`; `seq` is the commit that last changed the record
//!   (the write watermark that keeps pagination stable under ingest). `revname` is the owner name with its labels reversed
//!   (`www.example.com` → `com.example.www`): an exact name is the range `revname\0…`, a
//!   wildcard `*.example.com` the range of keys starting with `com.example.`.
//! * `names`: owner names in forward order, for prefix search (`www.exam*`).
//! * `rdata`: the reverse index (`/fquery`, `/query/<ip>`, CIDR search), one entry per
//!   record: `rdata \0 type revname` → (), except for A/AAAA where it is
//!   `\0 ip(16 bytes, IPv4 mapped) type revname` (rdata never holds a NUL, so the two
//!   forms cannot collide; addresses in numeric order make CIDR search a range scan).
//! * `rcodes`: like `records`, for error lines (`NXDOMAIN`...), kept apart.
//! * `meta`: counters (`records`, `type:<n>`, `sensor:<id>`, `lines`, `bad:<kind>`...),
//!   `seq` (commits so far) and `layout` ([`LAYOUT`]).
//!
//! Every commit is one durable redb transaction: a crash loses at most the batch in
//! flight, never half of it.
//!
//! The code: this module holds the public types, the record value (`Agg` and its codec) and
//! [`PdnsStore::open`]; `keys` the key codecs, `commit` the write side ([`Batch`],
//! [`PdnsStore::commit`]), `lookup` the reads, `maintain` expiry and counters.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ipnet::IpNet;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

mod commit;
mod keys;
mod lookup;
mod maintain;

pub use commit::{Batch, CommitStats};
pub use keys::reverse_labels;
pub(crate) use keys::{split_record_key, unreverse};

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const NAMES: TableDefinition<&[u8], ()> = TableDefinition::new("names");
const RDATA: TableDefinition<&[u8], ()> = TableDefinition::new("rdata");
const RCODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rcodes");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The on-disk layout version, kept in `meta` (2: `seq` in the values, A/AAAA reverse
/// entries keyed by address; 1 had a separate `ips` table).
pub const LAYOUT: u64 = 2;

/// Most sensor ids remembered per record.
pub const MAX_SENSORS_PER_RECORD: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the passive DNS database {path} is already open in another process (one process owns it: run the ingester inside `d4 pdns serve --queue/--input`, or stop the server first)")]
    Locked { path: String },
    #[error("{path} was written with an older layout of the passive DNS store: move it away and ingest again")]
    OldLayout { path: String },
    #[error("database error: {0}")]
    Db(Box<redb::Error>),
    #[error("the query matches more than {0} records: narrow it (rrtype, time window, a longer suffix/prefix) or raise --max-matches")]
    TooManyMatches(usize),
    #[error("the query reads more than {0} stored records (filters included): narrow it (a longer suffix/prefix, a smaller network) or raise --max-examined")]
    TooManyExamined(usize),
    #[error("redis: {0}")]
    Redis(String),
    #[error("not supported by this backend: {0}")]
    Unsupported(&'static str),
}

/// A record store backend: the embedded [`PdnsStore`] or [`crate::redis_store::RedisRecordStore`].
pub trait RecordStore: Send + Sync {
    /// Writes a batch (one transaction / pipeline) and empties it.
    fn commit(&self, batch: &mut Batch) -> Result<CommitStats, RecordError>;
    /// Every record matching, unordered; fails rather than returning more than `max`.
    fn lookup(
        &self,
        lookup: &Lookup,
        filter: &Filter,
        max: usize,
    ) -> Result<Vec<Record>, RecordError>;
    /// Every record matching, unordered, handed to `visit` one by one (nothing is
    /// collected); fails once more than `max_examined` stored records were read, whether
    /// they pass `filter` or not. The default reads through [`RecordStore::lookup`] with
    /// `max_examined` as its bound (backends that filter while reading override it).
    fn scan(
        &self,
        lookup: &Lookup,
        filter: &Filter,
        max_examined: usize,
        visit: &mut dyn FnMut(Record),
    ) -> Result<(), RecordError> {
        for r in self.lookup(lookup, filter, max_examined)? {
            visit(r);
        }
        Ok(())
    }
    /// Every record first seen in `[from_ms, until_ms)` (any name: what was new in that
    /// period), handed to `visit` unordered; fails once more than `max_examined` stored
    /// records were read. A pass over the whole store (no index by time): for periodic
    /// exports (`d4 misp feed`), not for lookups.
    fn first_seen_between(
        &self,
        from_ms: u64,
        until_ms: u64,
        max_examined: usize,
        visit: &mut dyn FnMut(Record),
    ) -> Result<(), RecordError>;
    /// Counters for `/info`.
    fn info(&self) -> Result<Info, RecordError>;
    /// Removes expired records (expiry per rrtype, seconds); returns how many.
    fn expire(&self, now_ms: u64, ttl: &HashMap<u16, u64>) -> Result<u64, RecordError>;
    /// The write watermark: records changed by later commits have [`Record::seq`] above it.
    /// Read it before a lookup to page stably (see [`crate::query::page_at`]). Backends that
    /// do not track changes return 0 (and [`Record::seq`] 0).
    fn watermark(&self) -> Result<u64, RecordError> {
        Ok(0)
    }
}

impl RecordStore for PdnsStore {
    fn commit(&self, batch: &mut Batch) -> Result<CommitStats, RecordError> {
        PdnsStore::commit(self, batch)
    }
    fn lookup(
        &self,
        lookup: &Lookup,
        filter: &Filter,
        max: usize,
    ) -> Result<Vec<Record>, RecordError> {
        PdnsStore::lookup(self, lookup, filter, max)
    }
    fn scan(
        &self,
        lookup: &Lookup,
        filter: &Filter,
        max_examined: usize,
        visit: &mut dyn FnMut(Record),
    ) -> Result<(), RecordError> {
        PdnsStore::scan(self, lookup, filter, max_examined, visit)
    }
    fn first_seen_between(
        &self,
        from_ms: u64,
        until_ms: u64,
        max_examined: usize,
        visit: &mut dyn FnMut(Record),
    ) -> Result<(), RecordError> {
        PdnsStore::first_seen_between(self, from_ms, until_ms, max_examined, visit)
    }
    fn info(&self) -> Result<Info, RecordError> {
        PdnsStore::info(self)
    }
    fn expire(&self, now_ms: u64, ttl: &HashMap<u16, u64>) -> Result<u64, RecordError> {
        PdnsStore::expire(self, now_ms, ttl)
    }
    fn watermark(&self) -> Result<u64, RecordError> {
        PdnsStore::watermark(self)
    }
}

fn dberr<E: Into<redb::Error>>(e: E) -> RecordError {
    RecordError::Db(Box::new(e.into()))
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub rrname: String,
    pub rrtype: u16,
    pub rdata: String,
    pub time_first_ms: u64,
    pub time_last_ms: u64,
    pub count: u64,
    pub sensors: Vec<String>,
    /// The commit that last changed the record (0 when the backend does not track it).
    pub seq: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Agg {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) count: u64,
    pub(crate) seq: u64,
    pub(crate) sensors: Vec<String>,
}

impl Agg {
    fn merge(&mut self, first: u64, last: u64, count: u64, sensors: &[&str]) {
        self.first = self.first.min(first);
        self.last = self.last.max(last);
        self.count = self.count.saturating_add(count);
        for s in sensors {
            if !s.is_empty()
                && self.sensors.len() < MAX_SENSORS_PER_RECORD
                && !self.sensors.iter().any(|x| x == s)
            {
                self.sensors.push((*s).to_string());
            }
        }
    }
    fn encode_into(&self, v: &mut Vec<u8>) {
        v.clear();
        v.extend_from_slice(&self.first.to_le_bytes());
        v.extend_from_slice(&self.last.to_le_bytes());
        v.extend_from_slice(&self.count.to_le_bytes());
        v.extend_from_slice(&self.seq.to_le_bytes());
        for (i, s) in self.sensors.iter().enumerate() {
            if i > 0 {
                v.push(b',');
            }
            v.extend_from_slice(s.as_bytes());
        }
    }
    fn decode(v: &[u8]) -> Agg {
        let n = |i: usize| {
            v.get(i..i + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0)
        };
        let sensors = v
            .get(32..)
            .map(|s| String::from_utf8_lossy(s))
            .map(|s| {
                s.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Agg {
            first: n(0),
            last: n(8),
            count: n(16),
            seq: n(24),
            sensors,
        }
    }
    /// The [`Record`] of (name, type, rdata) holding these values (every backend builds
    /// its answers with it).
    pub(crate) fn into_record(self, rrname: String, rrtype: u16, rdata: String) -> Record {
        Record {
            rrname,
            rrtype,
            rdata,
            time_first_ms: self.first,
            time_last_ms: self.last,
            count: self.count,
            sensors: self.sensors,
            seq: self.seq,
        }
    }
}

/// What to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Records of one owner name (normalized).
    Name(String),
    /// Records of every name strictly under a suffix (`*.example.com` → `example.com`).
    Suffix(String),
    /// Records of every name starting with a string (`www.exam*` → `www.exam`).
    Prefix(String),
    /// Records whose rdata is exactly one of these values (reverse lookup).
    Rdata(Vec<String>),
    /// A/AAAA records whose address is inside a network.
    Cidr(IpNet),
}

/// Filters applied while scanning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only these types (empty: all).
    pub rrtypes: Vec<u16>,
    /// Only records last seen at or after this time (seconds).
    pub since: Option<u64>,
    /// Only records first seen at or before this time (seconds).
    pub until: Option<u64>,
}

impl Filter {
    pub(crate) fn keep(&self, rrtype: u16, a: &Agg) -> bool {
        (self.rrtypes.is_empty() || self.rrtypes.contains(&rrtype))
            && self.since.is_none_or(|s| a.last / 1000 >= s)
            && self.until.is_none_or(|u| a.first / 1000 <= u)
    }
}

/// Counters shown by `/info`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Info {
    pub records: u64,
    pub rcode_records: u64,
    pub lines_ingested: u64,
    pub lines_rejected: BTreeMap<String, u64>,
    /// Records per type (numbers as strings; mnemonics added by the server).
    pub rrtypes: BTreeMap<u16, u64>,
    /// Observations (summed counts) per sensor id.
    pub sensors: BTreeMap<String, u64>,
}

/// The embedded passive DNS store.
pub struct PdnsStore {
    db: Database,
}

impl PdnsStore {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<PdnsStore, RecordError> {
        let database = match Database::create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(RecordError::Locked {
                    path: path.display().to_string(),
                })
            }
            Err(e) => return Err(dberr(e)),
        };
        let tx = database.begin_write().map_err(dberr)?;
        {
            let records = tx.open_table(RECORDS).map_err(dberr)?;
            tx.open_table(NAMES).map_err(dberr)?;
            tx.open_table(RDATA).map_err(dberr)?;
            tx.open_table(RCODES).map_err(dberr)?;
            let mut meta = tx.open_table(META).map_err(dberr)?;
            let layout = meta.get("layout").map_err(dberr)?.map(|v| v.value());
            match layout {
                Some(LAYOUT) => {}
                None if records.is_empty().map_err(dberr)? => {
                    meta.insert("layout", LAYOUT).map_err(dberr)?;
                }
                _ => {
                    return Err(RecordError::OldLayout {
                        path: path.display().to_string(),
                    })
                }
            }
        }
        tx.commit().map_err(dberr)?;
        Ok(PdnsStore { db: database })
    }

    /// The write watermark (commits so far): see [`RecordStore::watermark`].
    pub fn watermark(&self) -> Result<u64, RecordError> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let meta = tx.open_table(META).map_err(dberr)?;
        Ok(meta
            .get("seq")
            .map_err(dberr)?
            .map(|v| v.value())
            .unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_the_old_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pdns.redb");
        {
            // Layout 1: records, no `layout` counter.
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(RECORDS)
                .unwrap()
                .insert(&b"com.example\0\0\x011.2.3.4"[..], &[0u8; 24][..])
                .unwrap();
            tx.commit().unwrap();
        }
        assert!(matches!(
            PdnsStore::open(&path),
            Err(RecordError::OldLayout { .. })
        ));
        // A fresh file gets the current layout and opens again.
        let fresh = dir.path().join("new.redb");
        drop(PdnsStore::open(&fresh).unwrap());
        let s = PdnsStore::open(&fresh).unwrap();
        assert_eq!(s.watermark().unwrap(), 0);
    }
}
