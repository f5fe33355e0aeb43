//! The write side: [`Batch`] aggregates observations in memory, [`PdnsStore::commit`]
//! writes one batch in one durable transaction (records, indexes, counters).

use std::collections::BTreeMap;

use redb::ReadableTable;

use std::sync::atomic::Ordering;

use super::keys::{rdata_index_key, record_key, reverse_labels_bytes, split_record_key};
use super::{blocks, sort};
use super::{dberr, Agg, PdnsStore, RecordError, META, NAMES, RCODES, RDATA, RECORDS};
use crate::parse::Observation;

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

    /// Forgets the line counters once a commit wrote them (every backend's last step; the
    /// records themselves are drained by the commit).
    pub(crate) fn clear_counts(&mut self) {
        self.lines = 0;
        self.bad.clear();
        self.dist_ttl.clear();
        self.dist_class.clear();
    }
}

/// Drains `map` into a vector in key order (see [`sort`]: no `memcmp` over the prefix the
/// keys share).
fn sorted_entries(map: &mut hashbrown::HashMap<Vec<u8>, Agg>) -> Vec<(Vec<u8>, Agg)> {
    let (keys, aggs): (Vec<Vec<u8>>, Vec<Agg>) = map.drain().unzip();
    let order = sort::sorted_order(&keys);
    let mut slots: Vec<Option<(Vec<u8>, Agg)>> = keys.into_iter().zip(aggs).map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// What one commit changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    pub lines: u64,
    pub new_records: u64,
    pub updated_records: u64,
}

impl PdnsStore {
    /// Writes a batch in one durable transaction and empties it.
    ///
    /// Cost notes (this is the ingest hot path): the batch already merged repeated
    /// observations in memory, so each distinct record costs one lookup and one insert in
    /// `records` — or, when most records of the previous commit were new, one insert
    /// whose returned old value (rare then) is merged and written again: a new record
    /// then costs one B-tree operation, not two. Only a new record adds index members (its
    /// name once per batch, one reverse member); they are merged into the blocked index
    /// tables in key order after the records (one write per block touched, see
    /// [`super::blocks`]). Counters are summed in memory and written once per batch.
    pub fn commit(&self, batch: &mut Batch) -> Result<CommitStats, RecordError> {
        let mut stats = CommitStats {
            lines: batch.lines,
            ..CommitStats::default()
        };
        if batch.is_empty() {
            return Ok(stats);
        }
        let mut entries = sorted_entries(&mut batch.records);
        let rcodes = sorted_entries(&mut batch.rcodes);
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
            let insert_first = self.new_share.load(Ordering::Relaxed) > 500;
            {
                let mut records = tx.open_table(RECORDS).map_err(dberr)?;
                // Entries are in key order, so the records of one name are adjacent.
                let mut last_rev: &[u8] = &[];
                for (key, agg) in entries.iter_mut() {
                    let key: &Vec<u8> = key;
                    agg.seq = seq;
                    let agg: &Agg = agg;
                    let Some((rev, rrtype, rdata)) = split_record_key(key) else {
                        continue;
                    };
                    let existing = if insert_first {
                        agg.encode_into(&mut value);
                        records
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(dberr)?
                            .map(|v| Agg::decode(v.value()))
                    } else {
                        records
                            .get(key.as_slice())
                            .map_err(dberr)?
                            .map(|v| Agg::decode(v.value()))
                    };
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
                            if !insert_first {
                                agg.encode_into(&mut value);
                            }
                        }
                    }
                    for s in &agg.sensors {
                        *per_sensor.entry(s.as_str()).or_default() += agg.count;
                    }
                    if !value.is_empty() {
                        records
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(dberr)?;
                    }
                }
            }
            let distinct = stats.new_records + stats.updated_records;
            if let Some(share) = (stats.new_records * 1000).checked_div(distinct) {
                self.new_share.store(share, Ordering::Relaxed);
            }
            for (keys, def) in [(&mut name_keys, NAMES), (&mut rdata_keys, RDATA)] {
                if keys.is_empty() {
                    continue;
                }
                sort::sort_dedup(keys);
                // A name often has records already (other types, rotating addresses): the
                // merge writes a block only when it gains a member.
                let mut table = tx.open_table(def).map_err(dberr)?;
                blocks::insert_sorted(&mut table, keys).map_err(dberr)?;
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
        batch.clear_counts();
        Ok(stats)
    }
}
