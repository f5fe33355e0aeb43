//! The queries of the embedded store. Paging cursors are `t` (time order) or `v` (victim
//! order, for prefix queries) followed by the hex of the last key read; the next page
//! starts strictly after it, so pages stay stable while ingest goes on.

use std::net::IpAddr;
use std::ops::Bound;

use ipnet::IpNet;
use redb::{Database, ReadOnlyTable, ReadableTable};

use super::super::attacks::AttackAgg;
use super::super::codec::{
    decode_attack, decode_bucket, decode_file, ip_time, split_ip_time, split_time_ip, time_ip,
};
use super::commit::le_u64;
use super::{dberr, meta_get, ATTACKS, BUCKETS, BUCKET_TIME, FILES, META, VICTIM_ATTACKS};
use crate::aggregate::{from_ip16, ip16};
use crate::store::{
    Attack, AttackQuery, BucketStats, FileState, Page, PibsStoreError, StoreConfig, StoreInfo,
    BUCKET_SECS,
};

type Bytes = ReadOnlyTable<&'static [u8], &'static [u8]>;

fn darknet(db: &Database) -> Result<(Option<u64>, u64), PibsStoreError> {
    let rx = db.begin_read().map_err(dberr)?;
    let m = rx.open_table(META).map_err(dberr)?;
    let d = meta_get(&m, "darknet_size")?;
    Ok(((d > 0).then_some(d), meta_get(&m, "max_span")?))
}

fn cursor_key(cursor: Option<&str>, tag: char) -> Result<Option<Vec<u8>>, PibsStoreError> {
    let Some(c) = cursor else { return Ok(None) };
    let rest = c.strip_prefix(tag).ok_or(PibsStoreError::Cursor)?;
    let k = hex::decode(rest).map_err(|_| PibsStoreError::Cursor)?;
    if k.len() != 24 {
        return Err(PibsStoreError::Cursor);
    }
    Ok(Some(k))
}

fn matches(a: &AttackAgg, q: &AttackQuery) -> bool {
    if let Some(p) = q.port {
        if !a.ports.contains_key(&p) {
            return false;
        }
    }
    if let Some(m) = q.min_pps {
        if (a.peak_packets as f64 / BUCKET_SECS as f64) < m {
            return false;
        }
    }
    q.since.is_none_or(|s| a.end >= s) && q.until.is_none_or(|u| a.start <= u)
}

pub(super) fn attacks(
    db: &Database,
    q: &AttackQuery,
    cursor: Option<&str>,
    limit: usize,
    max_examined: usize,
) -> Result<Page<Attack>, PibsStoreError> {
    let limit = limit.max(1);
    if q.nets.is_empty() {
        by_time(db, q, cursor, limit, max_examined)
    } else {
        by_nets(db, q, cursor, limit, max_examined)
    }
}

/// Newest first over `attacks` (key: start, ip).
fn by_time(
    db: &Database,
    q: &AttackQuery,
    cursor: Option<&str>,
    limit: usize,
    max_examined: usize,
) -> Result<Page<Attack>, PibsStoreError> {
    let (darknet, max_span) = darknet(db)?;
    let rx = db.begin_read().map_err(dberr)?;
    let at = rx.open_table(ATTACKS).map_err(dberr)?;
    let after = cursor_key(cursor, 't')?;
    let until_key = q.until.map(|u| time_ip(u.saturating_add(1), [0; 16]));
    let upper: Bound<&[u8]> = match (&after, &until_key) {
        (Some(c), Some(u)) => Bound::Excluded(if c[..] < u[..] { &c[..] } else { &u[..] }),
        (Some(c), None) => Bound::Excluded(&c[..]),
        (None, Some(u)) => Bound::Excluded(&u[..]),
        (None, None) => Bound::Unbounded,
    };
    let since_key = q
        .since
        .map(|s| time_ip(s.saturating_sub(max_span), [0; 16]));
    let lower: Bound<&[u8]> = match &since_key {
        Some(s) => Bound::Included(&s[..]),
        None => Bound::Unbounded,
    };
    let mut items = Vec::new();
    let mut examined = 0usize;
    let mut it = at.range::<&[u8]>((lower, upper)).map_err(dberr)?.rev();
    while let Some(item) = it.next() {
        let (k, v) = item.map_err(dberr)?;
        let (start, ip) = split_time_ip(k.value())?;
        examined += 1;
        let a = decode_attack(start, v.value())?;
        if matches(&a, q) {
            items.push(a.to_attack(from_ip16(ip), darknet));
        }
        let full = items.len() >= limit || examined >= max_examined;
        if full {
            let more = it.next().is_some();
            let next = more.then(|| format!("t{}", hex::encode(k.value())));
            return Ok(Page { items, next });
        }
    }
    Ok(Page { items, next: None })
}

/// The nets as sorted, disjoint 16-byte address ranges.
fn ranges(nets: &[IpNet]) -> Vec<([u8; 16], [u8; 16])> {
    let mut r: Vec<([u8; 16], [u8; 16])> = IpNet::aggregate(&nets.to_vec())
        .into_iter()
        .map(|n| (ip16(n.network()), ip16(n.broadcast())))
        .collect();
    r.sort_unstable();
    r
}

/// By victim address over `victim_attacks` (key: ip, start), prefix by prefix.
fn by_nets(
    db: &Database,
    q: &AttackQuery,
    cursor: Option<&str>,
    limit: usize,
    max_examined: usize,
) -> Result<Page<Attack>, PibsStoreError> {
    let (darknet, _) = darknet(db)?;
    let rx = db.begin_read().map_err(dberr)?;
    let at = rx.open_table(ATTACKS).map_err(dberr)?;
    let va = rx.open_table(VICTIM_ATTACKS).map_err(dberr)?;
    let after = cursor_key(cursor, 'v')?;
    let mut items = Vec::new();
    let mut examined = 0usize;
    let mut last: Option<Vec<u8>> = None;
    for (lo, hi) in ranges(&q.nets) {
        let lo_k = ip_time(lo, 0);
        let hi_k = ip_time(hi, u64::MAX);
        if after.as_deref().is_some_and(|c| c >= &hi_k[..]) {
            continue;
        }
        let lower: Bound<&[u8]> = match &after {
            Some(c) if c[..] >= lo_k[..] => Bound::Excluded(&c[..]),
            _ => Bound::Included(&lo_k[..]),
        };
        for item in va
            .range::<&[u8]>((lower, Bound::Included(&hi_k[..])))
            .map_err(dberr)?
        {
            let (k, v) = item.map_err(dberr)?;
            if items.len() >= limit || examined >= max_examined {
                // one more exists: the page ends at the last key read
                let next = last.map(|l| format!("v{}", hex::encode(l)));
                return Ok(Page { items, next });
            }
            examined += 1;
            let (ip, start) = split_ip_time(k.value())?;
            last = Some(k.value().to_vec());
            let end = le_u64(v.value())?;
            if q.since.is_some_and(|s| end < s) || q.until.is_some_and(|u| start > u) {
                continue;
            }
            if let Some(a) = load(&at, start, ip)? {
                if matches(&a, q) {
                    items.push(a.to_attack(from_ip16(ip), darknet));
                }
            }
        }
    }
    Ok(Page { items, next: None })
}

fn load(at: &Bytes, start: u64, ip: [u8; 16]) -> Result<Option<AttackAgg>, PibsStoreError> {
    match at.get(&time_ip(start, ip)[..]).map_err(dberr)? {
        Some(v) => Ok(Some(decode_attack(start, v.value())?)),
        None => Ok(None),
    }
}

pub(super) fn victim(
    db: &Database,
    victim: IpAddr,
    since: u64,
    until: u64,
    max_buckets: usize,
) -> Result<(Vec<Attack>, Vec<BucketStats>), PibsStoreError> {
    let (darknet, _) = darknet(db)?;
    let rx = db.begin_read().map_err(dberr)?;
    let ip = ip16(victim);
    let at = rx.open_table(ATTACKS).map_err(dberr)?;
    let va = rx.open_table(VICTIM_ATTACKS).map_err(dberr)?;
    let mut attacks = Vec::new();
    let lo = ip_time(ip, 0);
    let hi = ip_time(ip, until);
    for item in va.range(&lo[..]..=&hi[..]).map_err(dberr)? {
        let (k, v) = item.map_err(dberr)?;
        let (_, start) = split_ip_time(k.value())?;
        if le_u64(v.value())? < since {
            continue;
        }
        if let Some(a) = load(&at, start, ip)? {
            attacks.push(a.to_attack(victim, darknet));
        }
    }
    let bt = rx.open_table(BUCKETS).map_err(dberr)?;
    let lo = ip_time(ip, since - since % BUCKET_SECS);
    let mut buckets = Vec::new();
    for item in bt.range(&lo[..]..=&hi[..]).map_err(dberr)? {
        if buckets.len() >= max_buckets {
            break;
        }
        let (k, v) = item.map_err(dberr)?;
        let (_, start) = split_ip_time(k.value())?;
        buckets.push(decode_bucket(start, v.value())?.stats);
    }
    Ok((attacks, buckets))
}

pub(super) fn attacks_in(
    db: &Database,
    since: u64,
    until: u64,
    max: usize,
) -> Result<Vec<Attack>, PibsStoreError> {
    let q = AttackQuery {
        since: Some(since),
        until: Some(until),
        ..AttackQuery::default()
    };
    Ok(by_time(db, &q, None, max.max(1), usize::MAX)?.items)
}

pub(super) fn info(db: &Database) -> Result<StoreInfo, PibsStoreError> {
    let rx = db.begin_read().map_err(dberr)?;
    let m = rx.open_table(META).map_err(dberr)?;
    let bti = rx.open_table(BUCKET_TIME).map_err(dberr)?;
    let oldest = match bti.first().map_err(dberr)? {
        Some((k, _)) => Some(split_time_ip(k.value())?.0),
        None => None,
    };
    let newest = match bti.last().map_err(dberr)? {
        Some((k, _)) => Some(split_time_ip(k.value())?.0),
        None => None,
    };
    let d = meta_get(&m, "darknet_size")?;
    Ok(StoreInfo {
        victims: meta_get(&m, "victims")?,
        buckets: meta_get(&m, "buckets")?,
        attacks: meta_get(&m, "attacks")?,
        files: meta_get(&m, "files")?,
        oldest_bucket: oldest,
        newest_bucket: newest,
        attack_gap: meta_get(&m, "attack_gap")?,
        darknet_size: (d > 0).then_some(d),
    })
}

pub(super) fn file(db: &Database, id: &[u8; 32]) -> Result<Option<FileState>, PibsStoreError> {
    let rx = db.begin_read().map_err(dberr)?;
    let f = rx.open_table(FILES).map_err(dberr)?;
    match f.get(&id[..]).map_err(dberr)? {
        Some(v) => Ok(Some(decode_file(v.value())?)),
        None => Ok(None),
    }
}

pub(super) fn config(db: &Database) -> Result<StoreConfig, PibsStoreError> {
    let rx = db.begin_read().map_err(dberr)?;
    let m = rx.open_table(META).map_err(dberr)?;
    let d = meta_get(&m, "darknet_size")?;
    Ok(StoreConfig {
        attack_gap: meta_get(&m, "attack_gap")?.max(1),
        darknet_size: (d > 0).then_some(d),
    })
}
