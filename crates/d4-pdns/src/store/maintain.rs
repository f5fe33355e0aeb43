//! Upkeep and counters: [`PdnsStore::info`] (the `/info` counters from `meta`),
//! [`PdnsStore::len`] and [`PdnsStore::expire`] (expiry per rrtype, index entries included).

use std::collections::{BTreeMap, HashMap};

use redb::{ReadableTable, ReadableTableMetadata};

use super::blocks::remove_sorted;
use super::keys::{rdata_index_key, split_record_key};
use super::{dberr, Agg, Info, PdnsStore, RecordError, META, RDATA, RECORDS};

impl PdnsStore {
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
            let mut ix_keys = Vec::with_capacity(doomed.len());
            for (key, rrtype) in &doomed {
                let Some((rev, _, rdata)) = split_record_key(key) else {
                    continue;
                };
                records.remove(key.as_slice()).map_err(dberr)?;
                let mut ix = Vec::new();
                rdata_index_key(rev, *rrtype, rdata, &mut ix);
                ix_keys.push(ix);
                *per_type.entry(*rrtype).or_default() += 1;
                removed += 1;
            }
            super::sort::sort_dedup(&mut ix_keys);
            remove_sorted(&mut rdata_ix, &ix_keys).map_err(dberr)?;
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
