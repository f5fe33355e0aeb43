//! Leased consumption of the queues on the embedded store. A lease moves entries out of
//! the queue's window (`queue_entries`, head advanced) into `queue_leases`, keyed (queue,
//! sequence) like the entries: the sequence number is the entry's id. A lease record is
//! the lease expiry (u64 little-endian), the consumer name (length byte, then the name)
//! and the entry (as in `queue_entries`). An acknowledgement deletes the record.

use redb::ReadableTable;
use uuid::Uuid;

use super::codec::{be, decode_entry, to_json};
use super::queues::get_queue_meta;
use super::{write, EmbeddedStore, QUEUES, QUEUE_ENTRIES, QUEUE_LEASES};
use crate::model::*;
use crate::{validate, Result, StoreError};

/// One record of `queue_leases`.
struct LeaseRecord {
    expires: u64,
    consumer: String,
    /// The entry, encoded as in `queue_entries`.
    entry: Vec<u8>,
}

fn encode_lease(consumer: &str, expires: u64, entry: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + consumer.len() + entry.len());
    out.extend_from_slice(&expires.to_le_bytes());
    // Consumer names are at most 64 bytes (validate::consumer_name).
    out.push(consumer.len().min(255) as u8);
    out.extend_from_slice(&consumer.as_bytes()[..consumer.len().min(255)]);
    out.extend_from_slice(entry);
    out
}

fn decode_lease(b: &[u8]) -> Result<LeaseRecord> {
    let corrupt = || StoreError::Backend("corrupt lease record".into());
    let (exp, rest) = b.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let (&n, rest) = rest.split_first().ok_or_else(corrupt)?;
    let n = n as usize;
    if rest.len() < n {
        return Err(corrupt());
    }
    let (name, entry) = rest.split_at(n);
    Ok(LeaseRecord {
        expires: u64::from_le_bytes(*exp),
        consumer: String::from_utf8(name.to_vec()).map_err(|_| corrupt())?,
        entry: entry.to_vec(),
    })
}

/// Every (queue, seq) key of one queue.
fn all_of(q: u128) -> std::ops::RangeInclusive<(u128, u64)> {
    (q, 0)..=(q, u64::MAX)
}

impl EmbeddedStore {
    /// See [`crate::Queues::lease_entries`].
    pub(super) async fn lease_impl(
        &self,
        queue: Uuid,
        consumer: String,
        max: usize,
        lease_secs: u64,
        now: u64,
    ) -> Result<Vec<LeasedEntry>> {
        validate::consumer_name(&consumer)?;
        self.run(move |db| {
            // An idle consumer polls: answer "nothing" without a write transaction.
            if nothing_to_lease(db, queue, &consumer, now)? || max == 0 {
                return Ok(Vec::new());
            }
            write(db, |txn| {
                let mut qt = txn.open_table(QUEUES).map_err(be)?;
                let mut meta = get_queue_meta(&qt, queue)?
                    .ok_or_else(|| StoreError::NotFound(format!("queue {queue}")))?;
                if max == 0 {
                    return Ok(Vec::new());
                }
                let q = queue.as_u128();
                let expires = now.saturating_add(lease_secs);
                let mut lt = txn.open_table(QUEUE_LEASES).map_err(be)?;
                // Again first: this consumer's unacknowledged entries, then expired ones.
                let (mut mine, mut expired) = (Vec::new(), Vec::new());
                for item in lt.range(all_of(q)).map_err(be)? {
                    let (k, v) = item.map_err(be)?;
                    let rec = decode_lease(v.value())?;
                    if rec.consumer == consumer {
                        mine.push((k.value().1, rec.entry));
                    } else if rec.expires <= now {
                        expired.push((k.value().1, rec.entry));
                    }
                }
                let mut out = Vec::new();
                for (seq, raw) in mine.into_iter().chain(expired).take(max) {
                    lt.insert((q, seq), encode_lease(&consumer, expires, &raw).as_slice())
                        .map_err(be)?;
                    out.push(LeasedEntry {
                        id: seq,
                        entry: decode_entry(&raw)?,
                    });
                }
                // Then the oldest queued entries.
                let n = ((max - out.len()) as u64).min(meta.len());
                if n > 0 {
                    let mut et = txn.open_table(QUEUE_ENTRIES).map_err(be)?;
                    let range = (q, meta.head)..(q, meta.head + n);
                    let mut fresh = Vec::with_capacity(n as usize);
                    for item in et.range(range.clone()).map_err(be)? {
                        let (k, v) = item.map_err(be)?;
                        fresh.push((k.value().1, v.value().to_vec()));
                    }
                    et.retain_in(range, |_, _| false).map_err(be)?;
                    meta.head += n;
                    qt.insert(q, to_json(&meta)?.as_slice()).map_err(be)?;
                    for (seq, raw) in fresh {
                        lt.insert((q, seq), encode_lease(&consumer, expires, &raw).as_slice())
                            .map_err(be)?;
                        out.push(LeasedEntry {
                            id: seq,
                            entry: decode_entry(&raw)?,
                        });
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    /// See [`crate::Queues::ack_entries`].
    pub(super) async fn ack_impl(
        &self,
        queue: Uuid,
        consumer: String,
        ids: Vec<u64>,
    ) -> Result<u64> {
        validate::consumer_name(&consumer)?;
        if ids.is_empty() {
            return Ok(0);
        }
        self.run(move |db| {
            write(db, |txn| {
                let q = queue.as_u128();
                let mut lt = txn.open_table(QUEUE_LEASES).map_err(be)?;
                let mut n = 0;
                for id in ids {
                    let mine = match lt.get((q, id)).map_err(be)? {
                        Some(v) => decode_lease(v.value())?.consumer == consumer,
                        None => false,
                    };
                    if mine {
                        lt.remove((q, id)).map_err(be)?;
                        n += 1;
                    }
                }
                Ok(n)
            })
        })
        .await
    }
}

/// Whether a lease would find nothing: no queued entry, nothing held by `consumer`, no
/// expired lease. `NotFound` if no queue.
fn nothing_to_lease(db: &redb::Database, queue: Uuid, consumer: &str, now: u64) -> Result<bool> {
    let txn = db.begin_read().map_err(be)?;
    let qt = txn.open_table(QUEUES).map_err(be)?;
    let meta = get_queue_meta(&qt, queue)?
        .ok_or_else(|| StoreError::NotFound(format!("queue {queue}")))?;
    if meta.len() > 0 {
        return Ok(false);
    }
    let lt = txn.open_table(QUEUE_LEASES).map_err(be)?;
    for item in lt.range(all_of(queue.as_u128())).map_err(be)? {
        let (_, v) = item.map_err(be)?;
        let rec = decode_lease(v.value())?;
        if rec.consumer == consumer || rec.expires <= now {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Drop every lease of a deleted queue (inside its deletion's transaction).
pub(super) fn drop_leases(txn: &redb::WriteTransaction, queue: Uuid) -> Result<()> {
    let mut lt = txn.open_table(QUEUE_LEASES).map_err(be)?;
    lt.retain_in(all_of(queue.as_u128()), |_, _| false)
        .map_err(be)?;
    Ok(())
}
