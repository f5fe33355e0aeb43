//! The write side of the embedded store: commit a batch (buckets, attacks, file progress in
//! one transaction), expire, and change the settings (a new attack gap rebuilds attacks).

use redb::{Database, ReadableTable, Table, WriteTransaction};

use super::super::attacks::{merge_items, runs, AttackAgg};
use super::super::codec::{
    decode_attack, decode_bucket, encode_attack, encode_bucket, encode_file, ip_time,
    split_ip_time, split_time_ip, time_ip,
};
use super::super::direct::{self, encode_entry};
use super::{dberr, meta_get, ATTACKS, BUCKETS, BUCKET_TIME, FILES, META, VICTIM_ATTACKS};
use crate::aggregate::BucketRec;
use crate::store::{
    Batch, BucketStats, CommitStats, ExpireStats, FileState, PibsStoreError, StoreConfig,
    BUCKET_SECS,
};

type Bytes<'t> = Table<'t, &'static [u8], &'static [u8]>;

/// The `meta` counters, loaded once per transaction and written back at its end.
#[derive(Debug, Default)]
struct Counters {
    victims: u64,
    buckets: u64,
    attacks: u64,
    files: u64,
    max_span: u64,
}

impl Counters {
    fn load(tx: &WriteTransaction) -> Result<Counters, PibsStoreError> {
        let m = tx.open_table(META).map_err(dberr)?;
        Ok(Counters {
            victims: meta_get(&m, "victims")?,
            buckets: meta_get(&m, "buckets")?,
            attacks: meta_get(&m, "attacks")?,
            files: meta_get(&m, "files")?,
            max_span: meta_get(&m, "max_span")?,
        })
    }

    fn save(&self, tx: &WriteTransaction) -> Result<(), PibsStoreError> {
        let mut m = tx.open_table(META).map_err(dberr)?;
        for (k, v) in [
            ("victims", self.victims),
            ("buckets", self.buckets),
            ("attacks", self.attacks),
            ("files", self.files),
            ("max_span", self.max_span),
        ] {
            m.insert(k, v).map_err(dberr)?;
        }
        Ok(())
    }
}

fn attack_gap(tx: &WriteTransaction) -> Result<u64, PibsStoreError> {
    let m = tx.open_table(META).map_err(dberr)?;
    Ok(meta_get(&m, "attack_gap")?.max(1))
}

/// A bucket a commit changed.
struct Touched {
    new: bool,
    merged: BucketStats,
    /// What the batch added (`None`: a new bucket, all of `merged`).
    delta: Option<BucketStats>,
}

impl Touched {
    fn delta(&self) -> &BucketStats {
        self.delta.as_ref().unwrap_or(&self.merged)
    }
}

/// Whether the victim `ip` has a bucket other than the (new) ones at `starts`.
fn has_other_buckets(bt: &Bytes<'_>, ip: [u8; 16], starts: &[u64]) -> Result<bool, PibsStoreError> {
    let lo = ip_time(ip, 0);
    let hi = ip_time(ip, u64::MAX);
    let mut range = bt.range(&lo[..]..=&hi[..]).map_err(dberr)?;
    for item in range.by_ref().take(starts.len() + 1) {
        let (k, _) = item.map_err(dberr)?;
        let (_, start) = split_ip_time(k.value())?;
        if !starts.contains(&start) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the victim `ip` has any bucket.
fn has_buckets(bt: &Bytes<'_>, ip: [u8; 16]) -> Result<bool, PibsStoreError> {
    let lo = ip_time(ip, 0);
    let hi = ip_time(ip, u64::MAX);
    Ok(bt.range(&lo[..]..=&hi[..]).map_err(dberr)?.next().is_some())
}

/// Merges a batch into the store. Per victim (the entries come sorted by victim, then
/// start): each bucket record is encoded straight from its entry and inserted; only when
/// the insert returns a stored record is that one decoded, merged and written again. A
/// victim none of whose buckets existed and that has no other bucket is new: it has no
/// attack either (every stored attack keeps its last bucket: expiry removes a bucket only
/// after its attack's end), so its attacks are built from the entries and written without
/// reading anything more. Any other victim goes through [`update_attacks`].
pub(super) fn commit(db: &Database, batch: &Batch) -> Result<CommitStats, PibsStoreError> {
    let entries = batch.entries();
    let sensor = batch.sensor.as_str();
    let tx = db.begin_write().map_err(dberr)?;
    let mut stats = CommitStats::default();
    let gap = attack_gap(&tx)?;
    let mut c = Counters::load(&tx)?;
    {
        let mut bt = tx.open_table(BUCKETS).map_err(dberr)?;
        let mut bti = tx.open_table(BUCKET_TIME).map_err(dberr)?;
        let mut at = tx.open_table(ATTACKS).map_err(dberr)?;
        let mut va = tx.open_table(VICTIM_ATTACKS).map_err(dberr)?;
        let mut buf = Vec::with_capacity(512);
        let mut new_by_time: Vec<(u64, [u8; 16])> = Vec::with_capacity(entries.len());
        // per victim: the merged record of each bucket that existed (None: a new bucket)
        let mut merged: Vec<Option<BucketRec>> = Vec::new();
        let mut starts: Vec<u64> = Vec::new();
        // new victims' attacks: key, record (in `arena`), end
        let mut new_attacks: Vec<([u8; 24], usize, usize, u64)> = Vec::new();
        let mut arena: Vec<u8> = Vec::new();
        for group in entries.chunk_by(|a, b| a.victim == b.victim) {
            let ip = group[0].victim;
            merged.clear();
            for e in group {
                let key = ip_time(ip, e.start);
                encode_entry(e, sensor, &mut buf);
                let old = match bt.insert(&key[..], &buf[..]).map_err(dberr)? {
                    Some(v) => Some(decode_bucket(e.start, v.value())?),
                    None => None,
                };
                match old {
                    Some(mut o) => {
                        o.merge(&e.to_rec(sensor));
                        encode_bucket(&o, &mut buf);
                        bt.insert(&key[..], &buf[..]).map_err(dberr)?;
                        stats.updated_buckets += 1;
                        merged.push(Some(o));
                    }
                    None => {
                        new_by_time.push((e.start, ip));
                        c.buckets += 1;
                        stats.new_buckets += 1;
                        merged.push(None);
                    }
                }
            }
            let victim_known = merged.iter().any(Option::is_some) || {
                starts.clear();
                starts.extend(group.iter().map(|e| e.start));
                has_other_buckets(&bt, ip, &starts)?
            };
            if !victim_known {
                c.victims += 1;
                for r in direct::runs(group, gap) {
                    let at = arena.len();
                    r.encode(sensor, &mut buf);
                    arena.extend_from_slice(&buf);
                    new_attacks.push((time_ip(r.start, ip), at, arena.len(), r.end));
                    c.max_span = c.max_span.max(r.end - r.start);
                    c.attacks += 1;
                    stats.attacks_written += 1;
                }
                continue;
            }
            let mut touched: Vec<Touched> = group
                .iter()
                .zip(merged.drain(..))
                .map(|(e, m)| match m {
                    Some(o) => Touched {
                        new: false,
                        merged: o.stats,
                        delta: Some(e.to_rec(sensor).stats),
                    },
                    None => Touched {
                        new: true,
                        merged: e.to_rec(sensor).stats,
                        delta: None,
                    },
                })
                .collect();
            stats.attacks_written +=
                update_attacks(&mut at, &mut va, ip, &mut touched, gap, &mut c)?;
        }
        // New victims' attacks in key order: mostly appended (they are the newest), the
        // B-tree leaves filled in sequence instead of at random places. They were made in
        // `victim_attacks` order (victim, start).
        for (key, _, _, end) in &new_attacks {
            let (start, ip) = split_time_ip(key)?;
            va.insert(&ip_time(ip, start)[..], &end.to_le_bytes()[..])
                .map_err(dberr)?;
        }
        new_attacks.sort_unstable_by_key(|a| a.0);
        for (key, from, to, _) in &new_attacks {
            at.insert(&key[..], &arena[*from..*to]).map_err(dberr)?;
        }
        index_by_time(&mut bti, &mut new_by_time)?;
        if let Some(f) = &batch.file {
            let mut files = tx.open_table(FILES).map_err(dberr)?;
            let existed = files.get(&f.id[..]).map_err(dberr)?.is_some();
            let state = FileState {
                records: f.records,
                done: f.done,
                path: f.path.clone(),
                sensor: f.sensor.clone(),
            };
            files
                .insert(&f.id[..], &encode_file(&state)[..])
                .map_err(dberr)?;
            if !existed {
                c.files += 1;
            }
        }
    }
    c.save(&tx)?;
    tx.commit().map_err(dberr)?;
    Ok(stats)
}

/// Records the new buckets in `bucket_time`: one entry per bucket start, keyed by the
/// start and the lowest victim, holding the victims (16 bytes each), instead of one entry
/// per bucket.
fn index_by_time(bti: &mut Bytes<'_>, new: &mut [(u64, [u8; 16])]) -> Result<(), PibsStoreError> {
    new.sort_unstable();
    let mut val: Vec<u8> = Vec::new();
    for group in new.chunk_by(|a, b| a.0 == b.0) {
        let key = time_ip(group[0].0, group[0].1);
        val.clear();
        if let Some(old) = bti.get(&key[..]).map_err(dberr)? {
            val.extend_from_slice(old.value());
        }
        for (_, ip) in group {
            val.extend_from_slice(ip);
        }
        bti.insert(&key[..], &val[..]).map_err(dberr)?;
    }
    Ok(())
}

/// The victims of a `bucket_time` entry.
fn victims_of(v: &[u8]) -> Result<Vec<[u8; 16]>, PibsStoreError> {
    if v.len() % 16 != 0 {
        return Err(PibsStoreError::Corrupt(format!(
            "bucket time entry of {} bytes",
            v.len()
        )));
    }
    Ok(v.chunks_exact(16)
        .map(|c| {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(c);
            ip
        })
        .collect())
}

/// Updates the attacks of victim `ip` for the buckets a commit touched; returns the attacks
/// written.
fn update_attacks(
    at: &mut Bytes<'_>,
    va: &mut Bytes<'_>,
    ip: [u8; 16],
    touched: &mut Vec<Touched>,
    gap: u64,
    c: &mut Counters,
) -> Result<u64, PibsStoreError> {
    let (Some(tmin), Some(tmax)) = (
        touched.iter().map(|t| t.merged.first_seen).min(),
        touched.iter().map(|t| t.merged.last_seen).max(),
    ) else {
        return Ok(0);
    };
    // The victim's attacks that may join the touched buckets: a victim's attacks are
    // disjoint, so ends grow with starts; walk back from the last that starts early enough.
    let lo = ip_time(ip, 0);
    let hi = ip_time(ip, tmax.saturating_add(gap));
    let mut near: Vec<AttackAgg> = Vec::new();
    for item in va.range(&lo[..]..&hi[..]).map_err(dberr)?.rev() {
        let (k, v) = item.map_err(dberr)?;
        let (_, start) = split_ip_time(k.value())?;
        let end = le_u64(v.value())?;
        if end.saturating_add(gap) <= tmin {
            break;
        }
        let rec = at
            .get(&time_ip(start, ip)[..])
            .map_err(dberr)?
            .ok_or_else(|| {
                PibsStoreError::Corrupt(format!("attack index without attack at {start}"))
            })?;
        near.push(decode_attack(start, rec.value())?);
    }
    let old_starts: Vec<u64> = near.iter().map(|a| a.start).collect();
    let spans: Vec<(u64, u64)> = near.iter().map(AttackAgg::bucket_span).collect();
    let mut items = near;
    for t in touched.drain(..) {
        let s = t.merged.start;
        match spans.iter().position(|(f, l)| *f <= s && s <= *l) {
            Some(i) => items[i].absorb(t.delta(), &t.merged, t.new),
            None => items.push(AttackAgg::from_stats(t.merged)),
        }
    }
    let merged = merge_items(items, gap);
    // (an attack that keeps its start is overwritten below, not removed first)
    for s in old_starts
        .iter()
        .filter(|s| !merged.iter().any(|a| a.start == **s))
    {
        at.remove(&time_ip(*s, ip)[..]).map_err(dberr)?;
        va.remove(&ip_time(ip, *s)[..]).map_err(dberr)?;
    }
    let mut buf = Vec::with_capacity(256);
    for a in &merged {
        write_attack(at, va, ip, a, &mut buf)?;
        c.max_span = c.max_span.max(a.end - a.start);
    }
    c.attacks = (c.attacks + merged.len() as u64).saturating_sub(old_starts.len() as u64);
    Ok(merged.len() as u64)
}

fn write_attack(
    at: &mut Bytes<'_>,
    va: &mut Bytes<'_>,
    ip: [u8; 16],
    a: &AttackAgg,
    buf: &mut Vec<u8>,
) -> Result<(), PibsStoreError> {
    encode_attack(a, buf);
    at.insert(&time_ip(a.start, ip)[..], &buf[..])
        .map_err(dberr)?;
    va.insert(&ip_time(ip, a.start)[..], &a.end.to_le_bytes()[..])
        .map_err(dberr)?;
    Ok(())
}

pub(crate) fn le_u64(b: &[u8]) -> Result<u64, PibsStoreError> {
    let a: [u8; 8] = b
        .try_into()
        .map_err(|_| PibsStoreError::Corrupt("attack index value".into()))?;
    Ok(u64::from_le_bytes(a))
}

/// Removes the buckets that ended before `cutoff` (start + 300 <= cutoff) and the attacks
/// whose last packet came before it.
pub(super) fn expire(db: &Database, cutoff: u64) -> Result<ExpireStats, PibsStoreError> {
    let tx = db.begin_write().map_err(dberr)?;
    let mut c = Counters::load(&tx)?;
    let mut out = ExpireStats::default();
    {
        let mut bt = tx.open_table(BUCKETS).map_err(dberr)?;
        let mut bti = tx.open_table(BUCKET_TIME).map_err(dberr)?;
        let first_kept =
            (cutoff.saturating_sub(BUCKET_SECS - 1)).div_ceil(BUCKET_SECS) * BUCKET_SECS;
        let hi = time_ip(first_kept, [0; 16]);
        let mut old: Vec<([u8; 24], u64, Vec<[u8; 16]>)> = Vec::new();
        for item in bti.range(..&hi[..]).map_err(dberr)? {
            let (k, v) = item.map_err(dberr)?;
            let (t, _) = split_time_ip(k.value())?;
            let mut key = [0u8; 24];
            key.copy_from_slice(k.value());
            old.push((key, t, victims_of(v.value())?));
        }
        let mut victims: Vec<[u8; 16]> = Vec::new();
        for (key, t, ips) in &old {
            bti.remove(&key[..]).map_err(dberr)?;
            for ip in ips {
                if bt.remove(&ip_time(*ip, *t)[..]).map_err(dberr)?.is_some() {
                    out.buckets += 1;
                }
                victims.push(*ip);
            }
        }
        c.buckets = c.buckets.saturating_sub(out.buckets);
        victims.sort_unstable();
        victims.dedup();
        for ip in victims {
            if !has_buckets(&bt, ip)? {
                c.victims = c.victims.saturating_sub(1);
            }
        }
        let mut at = tx.open_table(ATTACKS).map_err(dberr)?;
        let mut va = tx.open_table(VICTIM_ATTACKS).map_err(dberr)?;
        let hi = time_ip(cutoff, [0; 16]);
        let mut gone: Vec<(u64, [u8; 16])> = Vec::new();
        for item in at.range(..&hi[..]).map_err(dberr)? {
            let (k, v) = item.map_err(dberr)?;
            let (start, ip) = split_time_ip(k.value())?;
            if decode_attack(start, v.value())?.end < cutoff {
                gone.push((start, ip));
            }
        }
        for (start, ip) in &gone {
            at.remove(&time_ip(*start, *ip)[..]).map_err(dberr)?;
            va.remove(&ip_time(*ip, *start)[..]).map_err(dberr)?;
        }
        out.attacks = gone.len() as u64;
        c.attacks = c.attacks.saturating_sub(out.attacks);
    }
    c.save(&tx)?;
    tx.commit().map_err(dberr)?;
    Ok(out)
}

/// Stores the settings; a changed attack gap rebuilds every attack from the buckets.
pub(super) fn set_config(db: &Database, cfg: &StoreConfig) -> Result<(), PibsStoreError> {
    if cfg.attack_gap == 0 {
        return Err(PibsStoreError::Invalid {
            what: "attack gap",
            value: "0".into(),
        });
    }
    let tx = db.begin_write().map_err(dberr)?;
    let old_gap = attack_gap(&tx)?;
    {
        let mut m = tx.open_table(META).map_err(dberr)?;
        m.insert("attack_gap", cfg.attack_gap).map_err(dberr)?;
        m.insert("darknet_size", cfg.darknet_size.unwrap_or(0))
            .map_err(dberr)?;
    }
    if old_gap != cfg.attack_gap {
        rebuild_attacks(&tx, cfg.attack_gap)?;
    }
    tx.commit().map_err(dberr)?;
    Ok(())
}

/// Drops every attack and builds them again from the buckets.
fn rebuild_attacks(tx: &WriteTransaction, gap: u64) -> Result<(), PibsStoreError> {
    let mut c = Counters::load(tx)?;
    tx.delete_table(ATTACKS).map_err(dberr)?;
    tx.delete_table(VICTIM_ATTACKS).map_err(dberr)?;
    let bt = tx.open_table(BUCKETS).map_err(dberr)?;
    let mut at = tx.open_table(ATTACKS).map_err(dberr)?;
    let mut va = tx.open_table(VICTIM_ATTACKS).map_err(dberr)?;
    c.attacks = 0;
    c.max_span = 0;
    let mut buf = Vec::new();
    let mut cur: Option<[u8; 16]> = None;
    let mut group: Vec<BucketStats> = Vec::new();
    let mut flush = |ip: [u8; 16], group: &mut Vec<BucketStats>, c: &mut Counters| {
        for a in runs(group, gap) {
            write_attack(&mut at, &mut va, ip, &a, &mut buf)?;
            c.attacks += 1;
            c.max_span = c.max_span.max(a.end - a.start);
        }
        group.clear();
        Ok::<(), PibsStoreError>(())
    };
    for item in bt.iter().map_err(dberr)? {
        let (k, v) = item.map_err(dberr)?;
        let (ip, start) = split_ip_time(k.value())?;
        if let Some(prev) = cur.filter(|p| *p != ip) {
            flush(prev, &mut group, &mut c)?;
        }
        cur = Some(ip);
        let rec: BucketRec = decode_bucket(start, v.value())?;
        group.push(rec.stats);
    }
    if let Some(prev) = cur {
        flush(prev, &mut group, &mut c)?;
    }
    drop(at);
    drop(va);
    drop(bt);
    c.save(tx)?;
    Ok(())
}
