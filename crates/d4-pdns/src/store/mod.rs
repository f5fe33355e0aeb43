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
//! * `name_blocks`: owner names in forward order, for prefix search (`www.exam*`).
//! * `rdata_blocks`: the reverse index (`/fquery`, `/query/<ip>`, CIDR search), one member
//!   per record: `rdata \0 type revname`, except for A/AAAA where it is
//!   `\0 ip(16 bytes, IPv4 mapped) type revname` (rdata never holds a NUL, so the two
//!   forms cannot collide; addresses in numeric order make CIDR search a range scan).
//!
//!   Both index tables are sorted sets stored as prefix-compressed blocks of ~1 KiB (one
//!   redb entry per block, keyed by its last member: [`blocks`]), not one entry per
//!   member: a batch of new records costs one write per block touched, not one B-tree
//!   insert per index key (layout 3; layout 2 had `names`/`rdata` with one entry per key
//!   and is migrated when opened).
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

mod blocks;
mod commit;
mod keys;
mod lookup;
mod maintain;
mod sort;

pub use commit::{Batch, CommitStats};
pub use keys::reverse_labels;
pub(crate) use keys::{split_record_key, unreverse};

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const NAMES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("name_blocks");
const RDATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rdata_blocks");
/// Layout 2's index tables (one entry per key), migrated by [`PdnsStore::open`].
const NAMES_V2: TableDefinition<&[u8], ()> = TableDefinition::new("names");
const RDATA_V2: TableDefinition<&[u8], ()> = TableDefinition::new("rdata");
const RCODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rcodes");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The on-disk layout version, kept in `meta` (3: the index tables as blocks; 2: one
/// index entry per key, migrated on open; 1 had a separate `ips` table, refused).
pub const LAYOUT: u64 = 3;

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

impl From<redb::StorageError> for RecordError {
    fn from(e: redb::StorageError) -> Self {
        dberr(e)
    }
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
    /// Share of new records in the last commit, per mille: picks how the next commit
    /// writes records (see `commit`).
    new_share: std::sync::atomic::AtomicU64,
}

/// Layout 2 → 3: the one-entry-per-key index tables become blocked sets (their entries
/// are read in order, so the blocks are built sequentially), then are deleted.
fn migrate_v2(tx: &redb::WriteTransaction) -> Result<(), RecordError> {
    for (old, new) in [(NAMES_V2, NAMES), (RDATA_V2, RDATA)] {
        {
            let from = tx.open_table(old).map_err(dberr)?;
            let mut to = tx.open_table(new).map_err(dberr)?;
            let mut b = blocks::Builder::default();
            for item in from.iter().map_err(dberr)? {
                let (k, _) = item.map_err(dberr)?;
                b.push(&mut to, k.value()).map_err(dberr)?;
            }
            b.finish(&mut to).map_err(dberr)?;
        }
        tx.delete_table(old).map_err(dberr)?;
    }
    Ok(())
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
                Some(2) => {
                    migrate_v2(&tx)?;
                    meta.insert("layout", LAYOUT).map_err(dberr)?;
                    tracing::info!(
                        path = %path.display(),
                        "passive DNS store: index tables migrated to layout {LAYOUT}"
                    );
                }
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
        Ok(PdnsStore {
            db: database,
            new_share: std::sync::atomic::AtomicU64::new(1000),
        })
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

    #[test]
    fn a_layout_2_file_is_migrated_to_blocked_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pdns.redb");
        let mut agg = Vec::new();
        Agg {
            first: 1000,
            last: 2000,
            count: 3,
            seq: 1,
            sensors: vec![],
        }
        .encode_into(&mut agg);
        {
            // Layout 2: one index entry per key in `names` / `rdata`.
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut records = tx.open_table(RECORDS).unwrap();
                let mut names = tx.open_table(NAMES_V2).unwrap();
                let mut rdata = tx.open_table(RDATA_V2).unwrap();
                let mut k = Vec::new();
                for i in 0..300u32 {
                    let name = format!("host{i}.example.com");
                    let ip = format!("10.0.{}.{}", i / 256, i % 256);
                    keys::record_key(&name, crate::rrtype::A, &ip, &mut k);
                    records.insert(k.as_slice(), agg.as_slice()).unwrap();
                    names.insert(name.as_bytes(), ()).unwrap();
                    let mut rev = Vec::new();
                    reverse_labels(&name, &mut rev);
                    keys::rdata_index_key(&rev, crate::rrtype::A, ip.as_bytes(), &mut k);
                    rdata.insert(k.as_slice(), ()).unwrap();
                }
                tx.open_table(META).unwrap().insert("layout", 2).unwrap();
            }
            tx.commit().unwrap();
        }
        let s = PdnsStore::open(&path).unwrap();
        let f = Filter::default();
        let prefix = s.lookup(&Lookup::Prefix("host29".into()), &f, 100).unwrap();
        assert_eq!(prefix.len(), 11, "host29, host290..299");
        let cidr = s
            .lookup(&Lookup::Cidr("10.0.1.0/28".parse().unwrap()), &f, 100)
            .unwrap();
        assert_eq!(cidr.len(), 16);
        let rdata = s
            .lookup(&Lookup::Rdata(vec!["10.0.0.7".into()]), &f, 100)
            .unwrap();
        assert_eq!(rdata[0].rrname, "host7.example.com");
        drop(s);
        // the old tables are gone, the layout is current, and it opens again
        let s = PdnsStore::open(&path).unwrap();
        let tx = s.db.begin_read().unwrap();
        assert!(tx.open_table(NAMES_V2).is_err());
        let meta = tx.open_table(META).unwrap();
        assert_eq!(meta.get("layout").unwrap().unwrap().value(), LAYOUT);
    }
}
