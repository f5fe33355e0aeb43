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

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Bound;
use std::path::Path;

use ipnet::IpNet;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::parse::Observation;

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

type PushFn<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), RecordError> + 'a;

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
}

/// Writes `name` with its labels reversed.
pub fn reverse_labels(name: &str, out: &mut Vec<u8>) {
    let mut first = true;
    for label in name.rsplit('.') {
        if !first {
            out.push(b'.');
        }
        first = false;
        out.extend_from_slice(label.as_bytes());
    }
}

fn record_key(rrname: &str, rrtype: u16, rdata: &str, out: &mut Vec<u8>) {
    out.clear();
    reverse_labels(rrname, out);
    out.push(0);
    out.extend_from_slice(&rrtype.to_be_bytes());
    out.extend_from_slice(rdata.as_bytes());
}

/// The `records` key of an already reversed name (what the `rdata` index holds).
fn record_key_rev(rev: &[u8], rrtype: u16, rdata: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(rev);
    out.push(0);
    out.extend_from_slice(&rrtype.to_be_bytes());
    out.extend_from_slice(rdata);
}

/// (revname, type, rdata) of a `records` key.
pub(crate) fn split_record_key(k: &[u8]) -> Option<(&[u8], u16, &[u8])> {
    let z = memchr::memchr(0, k)?;
    let t = k.get(z + 1..z + 3)?;
    Some((&k[..z], u16::from_be_bytes([t[0], t[1]]), &k[z + 3..]))
}

/// Appends `name` (bytes) with its labels reversed.
fn reverse_labels_bytes(name: &[u8], out: &mut Vec<u8>) {
    let mut first = true;
    for label in name.rsplit(|b| *b == b'.') {
        if !first {
            out.push(b'.');
        }
        first = false;
        out.extend_from_slice(label);
    }
}

pub(crate) fn unreverse(rev: &[u8]) -> String {
    let mut out = Vec::with_capacity(rev.len());
    reverse_labels_bytes(rev, &mut out);
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// The address of an A/AAAA rdata (those are indexed by address).
fn ip_of(rrtype: u16, rdata: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(rdata).ok()?;
    match rrtype {
        crate::rrtype::A => s.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        crate::rrtype::AAAA => s.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        _ => None,
    }
}

/// The `rdata` (reverse) index key of a record.
fn rdata_index_key(rev: &[u8], rrtype: u16, rdata: &[u8], out: &mut Vec<u8>) {
    out.clear();
    match ip_of(rrtype, rdata) {
        Some(ip) => {
            out.push(0);
            out.extend_from_slice(&ip16(ip));
        }
        None => {
            out.extend_from_slice(rdata);
            out.push(0);
        }
    }
    out.extend_from_slice(&rrtype.to_be_bytes());
    out.extend_from_slice(rev);
}

/// The text form of an indexed address, as the parser stores it.
fn ip_text(rrtype: u16, a16: [u8; 16]) -> String {
    let v6 = Ipv6Addr::from(a16);
    match (rrtype, v6.to_ipv4_mapped()) {
        (crate::rrtype::A, Some(v4)) => v4.to_string(),
        _ => v6.to_string(),
    }
}

fn ip16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Observations aggregated in memory before one write transaction.
#[derive(Debug, Default)]
pub struct Batch {
    pub(crate) records: hashbrown::HashMap<Vec<u8>, Agg>,
    pub(crate) rcodes: hashbrown::HashMap<Vec<u8>, Agg>,
    pub(crate) lines: u64,
    pub(crate) bad: BTreeMap<&'static str, u64>,
    /// Lines per TTL and per class (analyzer-d4-passivedns's `dist:ttl`, `dist:class`).
    pub(crate) dist_ttl: hashbrown::HashMap<u32, u64>,
    pub(crate) dist_class: hashbrown::HashMap<String, u64>,
    key: Vec<u8>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds one observation (reported by `sensor`, when known).
    pub fn add(&mut self, o: &Observation<'_>, sensor: Option<&str>) {
        self.lines += 1;
        record_key(&o.rrname, o.rrtype, &o.rdata, &mut self.key);
        let map = if o.rcode {
            &mut self.rcodes
        } else {
            *self.dist_ttl.entry(o.ttl).or_default() += 1;
            match self.dist_class.get_mut(o.class) {
                Some(n) => *n += 1,
                None => {
                    self.dist_class.insert(o.class.to_string(), 1);
                }
            }
            &mut self.records
        };
        let sensors: &[&str] = match &sensor {
            Some(s) => std::slice::from_ref(s),
            None => &[],
        };
        match map.get_mut(self.key.as_slice()) {
            Some(a) => a.merge(o.time_ms, o.time_ms, o.count, sensors),
            None => {
                let mut a = Agg {
                    first: o.time_ms,
                    last: o.time_ms,
                    count: 0,
                    seq: 0,
                    sensors: Vec::new(),
                };
                a.merge(o.time_ms, o.time_ms, o.count, sensors);
                map.insert(self.key.clone(), a);
            }
        }
    }

    /// Counts a rejected line (its reason label).
    pub fn add_bad(&mut self, kind: &'static str) {
        *self.bad.entry(kind).or_default() += 1;
    }

    /// Lines added (accepted) since the last commit.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Distinct (name, type, rdata) in the batch.
    pub fn distinct(&self) -> usize {
        self.records.len() + self.rcodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines == 0 && self.bad.is_empty()
    }
}

/// What one commit changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    pub lines: u64,
    pub new_records: u64,
    pub updated_records: u64,
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

    /// Writes a batch in one durable transaction and empties it.
    ///
    /// Cost notes (this is the ingest hot path): the batch already merged repeated
    /// observations in memory, so each distinct record costs one lookup and one insert in
    /// `records`; only a new record adds index entries (its name once per batch, one
    /// reverse entry), and those are inserted in key order, table by table, after the
    /// records (sorted inserts touch far fewer B-tree pages). Counters are summed in memory
    /// and written once per batch.
    pub fn commit(&self, batch: &mut Batch) -> Result<CommitStats, RecordError> {
        let mut stats = CommitStats {
            lines: batch.lines,
            ..CommitStats::default()
        };
        if batch.is_empty() {
            return Ok(stats);
        }
        let mut entries: Vec<(Vec<u8>, Agg)> = batch.records.drain().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut rcodes: Vec<(Vec<u8>, Agg)> = batch.rcodes.drain().collect();
        rcodes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let tx = self.db.begin_write().map_err(dberr)?;
        {
            let mut meta = tx.open_table(META).map_err(dberr)?;
            let seq = meta
                .get("seq")
                .map_err(dberr)?
                .map(|v| v.value())
                .unwrap_or(0)
                + 1;
            let mut new_records = 0u64;
            let mut new_rcodes = 0u64;
            let mut per_type: hashbrown::HashMap<u16, u64> = hashbrown::HashMap::new();
            let mut per_sensor: hashbrown::HashMap<&str, u64> = hashbrown::HashMap::new();
            let mut name_keys: Vec<Vec<u8>> = Vec::new();
            let mut rdata_keys: Vec<Vec<u8>> = Vec::new();
            let mut value = Vec::with_capacity(128);
            {
                let mut records = tx.open_table(RECORDS).map_err(dberr)?;
                // Entries are in key order, so the records of one name are adjacent.
                let mut last_rev: &[u8] = &[];
                for (key, agg) in &entries {
                    let Some((rev, rrtype, rdata)) = split_record_key(key) else {
                        continue;
                    };
                    let existing = records
                        .get(key.as_slice())
                        .map_err(dberr)?
                        .map(|v| Agg::decode(v.value()));
                    value.clear();
                    match existing {
                        Some(mut old) => {
                            let s: Vec<&str> = agg.sensors.iter().map(String::as_str).collect();
                            old.merge(agg.first, agg.last, agg.count, &s);
                            old.seq = seq;
                            old.encode_into(&mut value);
                            stats.updated_records += 1;
                        }
                        None => {
                            stats.new_records += 1;
                            new_records += 1;
                            *per_type.entry(rrtype).or_default() += 1;
                            if rev != last_rev {
                                let mut n = Vec::with_capacity(rev.len());
                                reverse_labels_bytes(rev, &mut n);
                                name_keys.push(n);
                                last_rev = rev;
                            }
                            let mut ix = Vec::with_capacity(rev.len() + rdata.len().min(17) + 4);
                            rdata_index_key(rev, rrtype, rdata, &mut ix);
                            rdata_keys.push(ix);
                            let mut a = agg.clone();
                            a.seq = seq;
                            a.encode_into(&mut value);
                        }
                    }
                    for s in &agg.sensors {
                        *per_sensor.entry(s.as_str()).or_default() += agg.count;
                    }
                    records
                        .insert(key.as_slice(), value.as_slice())
                        .map_err(dberr)?;
                }
            }
            for (keys, def, names) in [
                (&mut name_keys, NAMES, true),
                (&mut rdata_keys, RDATA, false),
            ] {
                if keys.is_empty() {
                    continue;
                }
                keys.sort_unstable();
                keys.dedup();
                let mut table = tx.open_table(def).map_err(dberr)?;
                for k in keys.iter() {
                    // A name often has records already (other types, rotating addresses):
                    // a lookup is several times cheaper than an insert that changes nothing.
                    if names && table.get(k.as_slice()).map_err(dberr)?.is_some() {
                        continue;
                    }
                    table.insert(k.as_slice(), ()).map_err(dberr)?;
                }
            }
            if !rcodes.is_empty() {
                let mut rc = tx.open_table(RCODES).map_err(dberr)?;
                for (key, agg) in &rcodes {
                    let existing = rc
                        .get(key.as_slice())
                        .map_err(dberr)?
                        .map(|v| Agg::decode(v.value()));
                    let merged = match existing {
                        Some(mut old) => {
                            let s: Vec<&str> = agg.sensors.iter().map(String::as_str).collect();
                            old.merge(agg.first, agg.last, agg.count, &s);
                            old
                        }
                        None => {
                            new_rcodes += 1;
                            agg.clone()
                        }
                    };
                    merged.encode_into(&mut value);
                    rc.insert(key.as_slice(), value.as_slice()).map_err(dberr)?;
                }
            }
            let mut add = |k: &str, n: u64| -> Result<(), RecordError> {
                if n == 0 {
                    return Ok(());
                }
                let old = meta.get(k).map_err(dberr)?.map(|v| v.value()).unwrap_or(0);
                meta.insert(k, old.saturating_add(n)).map_err(dberr)?;
                Ok(())
            };
            add("seq", 1)?;
            add("records", new_records)?;
            add("rcode_records", new_rcodes)?;
            add("lines", batch.lines)?;
            for (t, n) in per_type {
                add(&format!("type:{t}"), n)?;
            }
            for (s, n) in per_sensor {
                add(&format!("sensor:{s}"), n)?;
            }
            for (k, n) in &batch.bad {
                add(&format!("bad:{k}"), *n)?;
            }
        }
        tx.commit().map_err(dberr)?;
        batch.lines = 0;
        batch.bad.clear();
        batch.dist_ttl.clear();
        batch.dist_class.clear();
        Ok(stats)
    }

    /// Every record matching `lookup` and `filter`, in no particular order. Fails rather
    /// than truncating when more than `max` records match.
    pub fn lookup(
        &self,
        lookup: &Lookup,
        filter: &Filter,
        max: usize,
    ) -> Result<Vec<Record>, RecordError> {
        let mut out = Vec::new();
        self.walk(lookup, filter, usize::MAX, max, &mut |r| out.push(r))?;
        Ok(out)
    }

    /// Every record matching, handed to `visit` (see [`RecordStore::scan`]): fails once
    /// more than `max_examined` stored records were read, filtered out or not.
    pub fn scan(
        &self,
        lookup: &Lookup,
        filter: &Filter,
        max_examined: usize,
        visit: &mut dyn FnMut(Record),
    ) -> Result<(), RecordError> {
        self.walk(lookup, filter, max_examined, usize::MAX, visit)
    }

    fn walk(
        &self,
        lookup: &Lookup,
        filter: &Filter,
        max_examined: usize,
        max_matches: usize,
        visit: &mut dyn FnMut(Record),
    ) -> Result<(), RecordError> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let records = tx.open_table(RECORDS).map_err(dberr)?;
        let (mut examined, mut matched) = (0usize, 0usize);
        let mut push = |key: &[u8], value: &[u8]| -> Result<(), RecordError> {
            examined += 1;
            if examined > max_examined {
                return Err(RecordError::TooManyExamined(max_examined));
            }
            let Some((rev, rrtype, rdata)) = split_record_key(key) else {
                return Ok(());
            };
            let a = Agg::decode(value);
            if !filter.keep(rrtype, &a) {
                return Ok(());
            }
            if matched >= max_matches {
                return Err(RecordError::TooManyMatches(max_matches));
            }
            matched += 1;
            visit(Record {
                rrname: unreverse(rev),
                rrtype,
                rdata: String::from_utf8_lossy(rdata).into_owned(),
                time_first_ms: a.first,
                time_last_ms: a.last,
                count: a.count,
                sensors: a.sensors,
                seq: a.seq,
            });
            Ok(())
        };
        let scan_prefix = |prefix: &[u8], push: &mut PushFn<'_>| -> Result<(), RecordError> {
            for item in records
                .range::<&[u8]>((Bound::Included(prefix), Bound::Unbounded))
                .map_err(dberr)?
            {
                let (k, v) = item.map_err(dberr)?;
                if !k.value().starts_with(prefix) {
                    break;
                }
                push(k.value(), v.value())?;
            }
            Ok(())
        };
        let mut p = Vec::new();
        match lookup {
            Lookup::Name(name) => {
                reverse_labels(name, &mut p);
                p.push(0);
                scan_prefix(&p, &mut push)?;
            }
            Lookup::Suffix(suffix) => {
                reverse_labels(suffix, &mut p);
                p.push(b'.');
                scan_prefix(&p, &mut push)?;
            }
            Lookup::Prefix(prefix) => {
                let names = tx.open_table(NAMES).map_err(dberr)?;
                for item in names
                    .range::<&[u8]>((Bound::Included(prefix.as_bytes()), Bound::Unbounded))
                    .map_err(dberr)?
                {
                    let (k, _) = item.map_err(dberr)?;
                    let name = k.value();
                    if !name.starts_with(prefix.as_bytes()) {
                        break;
                    }
                    p.clear();
                    reverse_labels(&String::from_utf8_lossy(name), &mut p);
                    p.push(0);
                    scan_prefix(&p, &mut push)?;
                }
            }
            Lookup::Rdata(values) => {
                let ix = tx.open_table(RDATA).map_err(dberr)?;
                let mut seen = std::collections::HashSet::new();
                let mut rk = Vec::new();
                for value in values {
                    if !seen.insert(value.as_str()) {
                        continue;
                    }
                    // Any type under the text form (`value \0`)...
                    p.clear();
                    p.extend_from_slice(value.as_bytes());
                    p.push(0);
                    for item in ix
                        .range::<&[u8]>((Bound::Included(p.as_slice()), Bound::Unbounded))
                        .map_err(dberr)?
                    {
                        let (k, _) = item.map_err(dberr)?;
                        let k = k.value();
                        if !k.starts_with(&p) {
                            break;
                        }
                        let rest = &k[p.len()..];
                        let (Some(t), Some(rev)) = (rest.get(..2), rest.get(2..)) else {
                            continue;
                        };
                        let rrtype = u16::from_be_bytes([t[0], t[1]]);
                        record_key_rev(rev, rrtype, value.as_bytes(), &mut rk);
                        if let Some(v) = records.get(rk.as_slice()).map_err(dberr)? {
                            push(&rk, v.value())?;
                        }
                    }
                    // ...and A/AAAA under the address, when the value is one.
                    let Ok(ip) = value.parse::<IpAddr>() else {
                        continue;
                    };
                    p.clear();
                    p.push(0);
                    p.extend_from_slice(&ip16(ip));
                    for item in ix
                        .range::<&[u8]>((Bound::Included(p.as_slice()), Bound::Unbounded))
                        .map_err(dberr)?
                    {
                        let (k, _) = item.map_err(dberr)?;
                        let k = k.value();
                        if !k.starts_with(&p) {
                            break;
                        }
                        let (Some(t), Some(rev)) = (k.get(17..19), k.get(19..)) else {
                            continue;
                        };
                        let rrtype = u16::from_be_bytes([t[0], t[1]]);
                        let text = ip_text(rrtype, ip16(ip));
                        if text != *value {
                            continue; // `::ffff:1.2.3.4` (AAAA) is not `1.2.3.4` (A)
                        }
                        record_key_rev(rev, rrtype, text.as_bytes(), &mut rk);
                        if let Some(v) = records.get(rk.as_slice()).map_err(dberr)? {
                            push(&rk, v.value())?;
                        }
                    }
                }
            }
            Lookup::Cidr(net) => {
                let ix = tx.open_table(RDATA).map_err(dberr)?;
                let (lo, hi) = match net {
                    IpNet::V4(n) => (
                        ip16(IpAddr::V4(n.network())),
                        ip16(IpAddr::V4(n.broadcast())),
                    ),
                    IpNet::V6(n) => (
                        ip16(IpAddr::V6(n.network())),
                        ip16(IpAddr::V6(n.broadcast())),
                    ),
                };
                p.clear();
                p.push(0);
                p.extend_from_slice(&lo);
                let mut rk = Vec::new();
                for item in ix
                    .range::<&[u8]>((Bound::Included(p.as_slice()), Bound::Unbounded))
                    .map_err(dberr)?
                {
                    let (k, _) = item.map_err(dberr)?;
                    let k = k.value();
                    if k.first() != Some(&0) {
                        break;
                    }
                    let Some(addr) = k.get(1..17) else { continue };
                    if addr > &hi[..] {
                        break;
                    }
                    let (Some(t), Some(rev)) = (k.get(17..19), k.get(19..)) else {
                        continue;
                    };
                    let rrtype = u16::from_be_bytes([t[0], t[1]]);
                    let mut a16 = [0u8; 16];
                    a16.copy_from_slice(addr);
                    let text = ip_text(rrtype, a16);
                    record_key_rev(rev, rrtype, text.as_bytes(), &mut rk);
                    if let Some(v) = records.get(rk.as_slice()).map_err(dberr)? {
                        push(&rk, v.value())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Counters for `/info`.
    pub fn info(&self) -> Result<Info, RecordError> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let meta = tx.open_table(META).map_err(dberr)?;
        let mut info = Info::default();
        for item in meta.iter().map_err(dberr)? {
            let (k, v) = item.map_err(dberr)?;
            let (k, v) = (k.value(), v.value());
            match k {
                "records" => info.records = v,
                "rcode_records" => info.rcode_records = v,
                "lines" => info.lines_ingested = v,
                _ => {
                    if let Some(t) = k.strip_prefix("type:").and_then(|t| t.parse().ok()) {
                        info.rrtypes.insert(t, v);
                    } else if let Some(s) = k.strip_prefix("sensor:") {
                        info.sensors.insert(s.to_string(), v);
                    } else if let Some(b) = k.strip_prefix("bad:") {
                        info.lines_rejected.insert(b.to_string(), v);
                    }
                }
            }
        }
        Ok(info)
    }

    /// Number of rows in `records` (a direct count, for tests and benchmarks).
    pub fn len(&self) -> Result<u64, RecordError> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(RECORDS).map_err(dberr)?;
        t.len().map_err(dberr)
    }

    pub fn is_empty(&self) -> Result<bool, RecordError> {
        Ok(self.len()? == 0)
    }

    /// Removes the records of the given types last seen more than `ttl` seconds before
    /// `now_ms` (optional expiry per rrtype), with their index entries. Returns how many.
    pub fn expire(&self, now_ms: u64, ttl: &HashMap<u16, u64>) -> Result<u64, RecordError> {
        if ttl.is_empty() {
            return Ok(0);
        }
        let tx = self.db.begin_write().map_err(dberr)?;
        let mut removed = 0u64;
        {
            let mut records = tx.open_table(RECORDS).map_err(dberr)?;
            let mut rdata_ix = tx.open_table(RDATA).map_err(dberr)?;
            let mut meta = tx.open_table(META).map_err(dberr)?;
            let mut doomed: Vec<(Vec<u8>, u16)> = Vec::new();
            for item in records.iter().map_err(dberr)? {
                let (k, v) = item.map_err(dberr)?;
                let Some((_, rrtype, _)) = split_record_key(k.value()) else {
                    continue;
                };
                let Some(secs) = ttl.get(&rrtype) else {
                    continue;
                };
                let a = Agg::decode(v.value());
                if a.last.saturating_add(secs.saturating_mul(1000)) < now_ms {
                    doomed.push((k.value().to_vec(), rrtype));
                }
            }
            let mut per_type: BTreeMap<u16, u64> = BTreeMap::new();
            let mut ix = Vec::new();
            for (key, rrtype) in &doomed {
                let Some((rev, _, rdata)) = split_record_key(key) else {
                    continue;
                };
                records.remove(key.as_slice()).map_err(dberr)?;
                rdata_index_key(rev, *rrtype, rdata, &mut ix);
                rdata_ix.remove(ix.as_slice()).map_err(dberr)?;
                *per_type.entry(*rrtype).or_default() += 1;
                removed += 1;
            }
            // `names` keeps the name: a prefix search over it finds no record and moves on.
            let mut sub = |k: &str, n: u64| -> Result<(), RecordError> {
                let old = meta.get(k).map_err(dberr)?.map(|v| v.value()).unwrap_or(0);
                meta.insert(k, old.saturating_sub(n)).map_err(dberr)?;
                Ok(())
            };
            sub("records", removed)?;
            for (t, n) in per_type {
                sub(&format!("type:{t}"), n)?;
            }
        }
        tx.commit().map_err(dberr)?;
        Ok(removed)
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
