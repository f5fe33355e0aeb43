//! The read side: [`PdnsStore::lookup`] and [`PdnsStore::scan`] walk the `records` table
//! for the five [`Lookup`] kinds (exact name, suffix, prefix through `names`, rdata and
//! CIDR through the blocked `rdata_blocks` reverse index), applying the [`Filter`] and the bounds.

use std::net::IpAddr;
use std::ops::Bound;

use ipnet::IpNet;
use redb::ReadableTable;

use super::blocks::scan_from;
use super::keys::{ip16, ip_text, record_key_rev, reverse_labels, split_record_key, unreverse};
use super::{dberr, Agg, Filter, Lookup, PdnsStore, Record, RecordError, NAMES, RDATA, RECORDS};

type PushFn<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), RecordError> + 'a;

impl PdnsStore {
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

    /// Every record matching, handed to `visit` (see
    /// [`RecordStore::scan`](super::RecordStore::scan)): fails once more than
    /// `max_examined` stored records were read, filtered out or not.
    pub fn scan(
        &self,
        lookup: &Lookup,
        filter: &Filter,
        max_examined: usize,
        visit: &mut dyn FnMut(Record),
    ) -> Result<(), RecordError> {
        self.walk(lookup, filter, max_examined, usize::MAX, visit)
    }

    /// Every record first seen in `[from_ms, until_ms)`: see
    /// [`RecordStore::first_seen_between`](super::RecordStore::first_seen_between).
    pub fn first_seen_between(
        &self,
        from_ms: u64,
        until_ms: u64,
        max_examined: usize,
        visit: &mut dyn FnMut(Record),
    ) -> Result<(), RecordError> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let records = tx.open_table(RECORDS).map_err(dberr)?;
        for (examined, item) in records.iter().map_err(dberr)?.enumerate() {
            if examined >= max_examined {
                return Err(RecordError::TooManyExamined(max_examined));
            }
            let (k, v) = item.map_err(dberr)?;
            let Some((rev, rrtype, rdata)) = split_record_key(k.value()) else {
                continue;
            };
            let a = Agg::decode(v.value());
            if a.first < from_ms || a.first >= until_ms {
                continue;
            }
            visit(a.into_record(
                unreverse(rev),
                rrtype,
                String::from_utf8_lossy(rdata).into_owned(),
            ));
        }
        Ok(())
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
            visit(a.into_record(
                unreverse(rev),
                rrtype,
                String::from_utf8_lossy(rdata).into_owned(),
            ));
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
                scan_from::<_, RecordError>(&names, prefix.as_bytes(), &mut |name| {
                    if !name.starts_with(prefix.as_bytes()) {
                        return Ok(false);
                    }
                    p.clear();
                    reverse_labels(&String::from_utf8_lossy(name), &mut p);
                    p.push(0);
                    scan_prefix(&p, &mut push)?;
                    Ok(true)
                })?;
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
                    scan_from::<_, RecordError>(&ix, &p, &mut |k| {
                        if !k.starts_with(&p) {
                            return Ok(false);
                        }
                        let rest = &k[p.len()..];
                        let (Some(t), Some(rev)) = (rest.get(..2), rest.get(2..)) else {
                            return Ok(true);
                        };
                        let rrtype = u16::from_be_bytes([t[0], t[1]]);
                        record_key_rev(rev, rrtype, value.as_bytes(), &mut rk);
                        if let Some(v) = records.get(rk.as_slice()).map_err(dberr)? {
                            push(&rk, v.value())?;
                        }
                        Ok(true)
                    })?;
                    // ...and A/AAAA under the address, when the value is one.
                    let Ok(ip) = value.parse::<IpAddr>() else {
                        continue;
                    };
                    p.clear();
                    p.push(0);
                    p.extend_from_slice(&ip16(ip));
                    scan_from::<_, RecordError>(&ix, &p, &mut |k| {
                        if !k.starts_with(&p) {
                            return Ok(false);
                        }
                        let (Some(t), Some(rev)) = (k.get(17..19), k.get(19..)) else {
                            return Ok(true);
                        };
                        let rrtype = u16::from_be_bytes([t[0], t[1]]);
                        let text = ip_text(rrtype, ip16(ip));
                        if text != *value {
                            return Ok(true); // `::ffff:1.2.3.4` (AAAA) is not `1.2.3.4` (A)
                        }
                        record_key_rev(rev, rrtype, text.as_bytes(), &mut rk);
                        if let Some(v) = records.get(rk.as_slice()).map_err(dberr)? {
                            push(&rk, v.value())?;
                        }
                        Ok(true)
                    })?;
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
                scan_from::<_, RecordError>(&ix, &p, &mut |k| {
                    if k.first() != Some(&0) {
                        return Ok(false);
                    }
                    let Some(addr) = k.get(1..17) else {
                        return Ok(true);
                    };
                    if addr > &hi[..] {
                        return Ok(false);
                    }
                    let (Some(t), Some(rev)) = (k.get(17..19), k.get(19..)) else {
                        return Ok(true);
                    };
                    let rrtype = u16::from_be_bytes([t[0], t[1]]);
                    let mut a16 = [0u8; 16];
                    a16.copy_from_slice(addr);
                    let text = ip_text(rrtype, a16);
                    record_key_rev(rev, rrtype, text.as_bytes(), &mut rk);
                    if let Some(v) = records.get(rk.as_slice()).map_err(dberr)? {
                        push(&rk, v.value())?;
                    }
                    Ok(true)
                })?;
            }
        }
        Ok(())
    }
}
