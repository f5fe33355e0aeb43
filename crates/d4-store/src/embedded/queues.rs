//! Analyzer queues on the embedded store. `queues` holds each queue's meta (settings,
//! window `head..tail`, trimmed count), `queue_entries` the entries keyed (queue,
//! sequence); `queue_times` the push time of entries (a mark (queue, first sequence) →
//! seconds, written at most once per queue and second); `journals` the last seq of each
//! keyed push's producer.

use std::sync::Arc;
use std::time::Duration;

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use super::codec::{be, decode_entry, encode_entry, from_json, to_json};
use super::{write, EmbeddedStore, PUSHED_SEQS, QUEUES, QUEUE_ENTRIES, QUEUE_TIMES};
use crate::model::*;
use crate::{validate, Queues, Result, StoreError};

/// Stored metadata of a queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct QueueMeta {
    config: QueueConfig,
    created: u64,
    last_updated: u64,
    pub(super) head: u64,
    tail: u64,
    trimmed: u64,
}

impl QueueMeta {
    pub(super) fn len(&self) -> u64 {
        self.tail - self.head
    }
    fn public(&self, times: &impl ReadableTable<(u128, u64), u64>) -> Result<Queue> {
        Ok(Queue {
            config: self.config.clone(),
            created: self.created,
            last_updated: self.last_updated,
            len: self.len(),
            trimmed: self.trimmed,
            oldest: oldest_of(times, self)?,
        })
    }
}

/// The push time of the queue's oldest entry: the last mark at or before its head.
/// `None` when the queue is empty.
fn oldest_of(
    times: &impl ReadableTable<(u128, u64), u64>,
    meta: &QueueMeta,
) -> Result<Option<u64>> {
    if meta.len() == 0 {
        return Ok(None);
    }
    let q = meta.config.uuid.as_u128();
    if let Some(item) = times
        .range((q, 0)..=(q, meta.head))
        .map_err(be)?
        .next_back()
    {
        return Ok(Some(item.map_err(be)?.1.value()));
    }
    // Entries queued before marks existed (an older store): the first mark, an estimate.
    match times.range((q, 0)..=(q, u64::MAX)).map_err(be)?.next() {
        Some(item) => Ok(Some(item.map_err(be)?.1.value())),
        None => Ok(None),
    }
}

/// Record that entries from `seq` on were pushed at `now` (unless the queue's last mark
/// already says `now`), and drop the marks older than the one covering the head.
fn mark_push(
    times: &mut redb::Table<(u128, u64), u64>,
    meta: &QueueMeta,
    seq: u64,
    now: u64,
) -> Result<()> {
    let q = meta.config.uuid.as_u128();
    let last = match times.range((q, 0)..=(q, u64::MAX)).map_err(be)?.next_back() {
        Some(item) => Some(item.map_err(be)?.1.value()),
        None => None,
    };
    if last != Some(now) {
        times.insert((q, seq), now).map_err(be)?;
    }
    let cover = match times
        .range((q, 0)..=(q, meta.head))
        .map_err(be)?
        .next_back()
    {
        Some(item) => Some(item.map_err(be)?.0.value().1),
        None => None,
    };
    if let Some(cover) = cover {
        times
            .retain_in((q, 0)..(q, cover), |_, _| false)
            .map_err(be)?;
    }
    Ok(())
}

/// Drop every push-time mark of a queue (emptied or deleted).
fn clear_marks(txn: &WriteTransaction, q: Uuid) -> Result<()> {
    let q = q.as_u128();
    let mut times = txn.open_table(QUEUE_TIMES).map_err(be)?;
    times
        .retain_in((q, 0)..=(q, u64::MAX), |_, _| false)
        .map_err(be)?;
    Ok(())
}

/// Appends `entries` to each of `queues` (sorted, deduplicated) inside `txn`.
fn push_in(
    txn: &WriteTransaction,
    queues: &[Uuid],
    entries: &[QueueEntry],
    now: u64,
) -> Result<PushOutcome> {
    let mut qt = txn.open_table(QUEUES).map_err(be)?;
    let mut et = txn.open_table(QUEUE_ENTRIES).map_err(be)?;
    let mut times = txn.open_table(QUEUE_TIMES).map_err(be)?;
    let encoded: Vec<Vec<u8>> = entries.iter().map(encode_entry).collect();
    let mut out = PushOutcome::default();
    for &quuid in queues {
        let Some(mut meta) = get_queue_meta(&qt, quuid)? else {
            continue;
        };
        let q = quuid.as_u128();
        // Entries that would be trimmed at once are not written at all.
        let keep = (encoded.len() as u64).min(meta.config.max_size) as usize;
        let skipped = (encoded.len() - keep) as u64;
        // (their sequence numbers are reserved and trimmed below, so they
        // count as trimmed, like every entry older than the kept ones).
        meta.tail += skipped;
        let first = meta.tail;
        for e in &encoded[encoded.len() - keep..] {
            et.insert((q, meta.tail), e.as_slice()).map_err(be)?;
            meta.tail += 1;
        }
        out.pushed += encoded.len() as u64;
        let trimmed = trim_queue(&mut et, &mut meta)?;
        out.trimmed += trimmed;
        if keep > 0 {
            mark_push(&mut times, &meta, first, now)?;
        }
        meta.last_updated = now;
        qt.insert(q, to_json(&meta)?.as_slice()).map_err(be)?;
    }
    Ok(out)
}

pub(super) fn get_queue_meta(
    table: &impl ReadableTable<u128, &'static [u8]>,
    q: Uuid,
) -> Result<Option<QueueMeta>> {
    match table.get(q.as_u128()).map_err(be)? {
        Some(g) => Ok(Some(from_json(g.value())?)),
        None => Ok(None),
    }
}

/// Drop the oldest entries of a queue while it holds more than its max size.
fn trim_queue(entries: &mut redb::Table<(u128, u64), &[u8]>, meta: &mut QueueMeta) -> Result<u64> {
    let q = meta.config.uuid.as_u128();
    let over = meta.len().saturating_sub(meta.config.max_size);
    if over > 0 {
        let new_head = meta.head + over;
        entries
            .retain_in((q, meta.head)..(q, new_head), |_, _| false)
            .map_err(be)?;
        meta.head = new_head;
        meta.trimmed += over;
    }
    Ok(over)
}

impl EmbeddedStore {
    fn notifier(&self, q: Uuid) -> Arc<Notify> {
        match self.notifiers.lock() {
            Ok(mut map) => map.entry(q).or_default().clone(),
            Err(_) => Arc::new(Notify::new()),
        }
    }

    fn wake(&self, queues: &[Uuid]) {
        if let Ok(map) = self.notifiers.lock() {
            for q in queues {
                if let Some(n) = map.get(q) {
                    n.notify_waiters();
                }
            }
        }
    }

    fn pop_inline(&self, queue: Uuid, max: usize) -> Result<Vec<QueueEntry>> {
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi {
            tokio::task::block_in_place(|| Self::pop_now(&self.db, queue, max))
        } else {
            Self::pop_now(&self.db, queue, max)
        }
    }

    fn pop_now(db: &redb::Database, queue: Uuid, max: usize) -> Result<Vec<QueueEntry>> {
        write(db, |txn| {
            let mut qt = txn.open_table(QUEUES).map_err(be)?;
            let mut meta = get_queue_meta(&qt, queue)?
                .ok_or_else(|| StoreError::NotFound(format!("queue {queue}")))?;
            let n = (max as u64).min(meta.len());
            if n == 0 {
                return Ok(Vec::new());
            }
            let q = queue.as_u128();
            let mut et = txn.open_table(QUEUE_ENTRIES).map_err(be)?;
            let mut out = Vec::with_capacity(n as usize);
            for item in et.range((q, meta.head)..(q, meta.head + n)).map_err(be)? {
                let (_, v) = item.map_err(be)?;
                out.push(decode_entry(v.value())?);
            }
            et.retain_in((q, meta.head)..(q, meta.head + n), |_, _| false)
                .map_err(be)?;
            meta.head += n;
            qt.insert(q, to_json(&meta)?.as_slice()).map_err(be)?;
            Ok(out)
        })
    }
}

#[async_trait::async_trait]
impl Queues for EmbeddedStore {
    async fn create_queue(&self, config: QueueConfig, now: u64) -> Result<Queue> {
        validate::queue_config(&config)?;
        let q = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(QUEUES).map_err(be)?;
                    if get_queue_meta(&t, config.uuid)?.is_some() {
                        return Err(StoreError::AlreadyExists(format!("queue {}", config.uuid)));
                    }
                    let meta = QueueMeta {
                        config,
                        created: now,
                        last_updated: now,
                        head: 0,
                        tail: 0,
                        trimmed: 0,
                    };
                    t.insert(meta.config.uuid.as_u128(), to_json(&meta)?.as_slice())
                        .map_err(be)?;
                    clear_marks(txn, meta.config.uuid)?;
                    let times = txn.open_table(QUEUE_TIMES).map_err(be)?;
                    meta.public(&times)
                })
            })
            .await?;
        self.emit(StoreEvent::QueuesChanged);
        Ok(q)
    }

    async fn list_queues(&self) -> Result<Vec<Queue>> {
        self.run(|db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(QUEUES).map_err(be)?;
            let times = txn.open_table(QUEUE_TIMES).map_err(be)?;
            let mut out = Vec::new();
            for item in t.iter().map_err(be)? {
                let (_, v) = item.map_err(be)?;
                out.push(from_json::<QueueMeta>(v.value())?.public(&times)?);
            }
            Ok(out)
        })
        .await
    }

    async fn get_queue(&self, uuid: Uuid) -> Result<Option<Queue>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(QUEUES).map_err(be)?;
            let times = txn.open_table(QUEUE_TIMES).map_err(be)?;
            get_queue_meta(&t, uuid)?
                .map(|m| m.public(&times))
                .transpose()
        })
        .await
    }

    async fn update_queue(&self, config: QueueConfig, now: u64) -> Result<Queue> {
        validate::queue_config(&config)?;
        let q = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(QUEUES).map_err(be)?;
                    let mut meta = get_queue_meta(&t, config.uuid)?
                        .ok_or_else(|| StoreError::NotFound(format!("queue {}", config.uuid)))?;
                    meta.config = config;
                    meta.last_updated = now;
                    let mut et = txn.open_table(QUEUE_ENTRIES).map_err(be)?;
                    trim_queue(&mut et, &mut meta)?;
                    t.insert(meta.config.uuid.as_u128(), to_json(&meta)?.as_slice())
                        .map_err(be)?;
                    let times = txn.open_table(QUEUE_TIMES).map_err(be)?;
                    meta.public(&times)
                })
            })
            .await?;
        self.emit(StoreEvent::QueuesChanged);
        Ok(q)
    }

    async fn delete_queue(&self, uuid: Uuid) -> Result<bool> {
        let existed = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(QUEUES).map_err(be)?;
                    let Some(meta) = get_queue_meta(&t, uuid)? else {
                        return Ok(false);
                    };
                    let q = uuid.as_u128();
                    let mut et = txn.open_table(QUEUE_ENTRIES).map_err(be)?;
                    et.retain_in((q, meta.head)..(q, meta.tail), |_, _| false)
                        .map_err(be)?;
                    super::consume::drop_leases(txn, uuid)?;
                    clear_marks(txn, uuid)?;
                    t.remove(q).map_err(be)?;
                    Ok(true)
                })
            })
            .await?;
        if existed {
            if let Ok(mut map) = self.notifiers.lock() {
                if let Some(n) = map.remove(&uuid) {
                    n.notify_waiters();
                }
            }
            self.emit(StoreEvent::QueuesChanged);
        }
        Ok(existed)
    }

    async fn queues_for(&self, kind: QueueKind, sensor: Uuid) -> Result<Vec<Uuid>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(QUEUES).map_err(be)?;
            let groups = SensorGroup::names_holding(&super::groups::read_groups(&txn)?, sensor);
            let mut out = Vec::new();
            for item in t.iter().map_err(be)? {
                let (_, v) = item.map_err(be)?;
                let m: QueueMeta = from_json(v.value())?;
                if m.config.kind == kind && m.config.selects(sensor, &groups) {
                    out.push(m.config.uuid);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn push_batch(
        &self,
        key: Option<PushKey>,
        pushes: Vec<QueuePush>,
        now: u64,
    ) -> Result<Option<PushOutcome>> {
        // Each push's queues sorted and deduplicated; empty pushes dropped.
        let pushes: Vec<QueuePush> = pushes
            .into_iter()
            .map(|mut p| {
                p.queues.sort();
                p.queues.dedup();
                p
            })
            .filter(|p| !p.queues.is_empty() && !p.entries.is_empty())
            .collect();
        if key.is_none() && pushes.is_empty() {
            return Ok(Some(PushOutcome::default()));
        }
        let mut woken: Vec<Uuid> = pushes.iter().flat_map(|p| p.queues.clone()).collect();
        woken.sort();
        woken.dedup();
        let out = self
            .run(move |db| {
                write(db, |txn| {
                    if let Some(key) = key {
                        let mut seqs = txn.open_table(PUSHED_SEQS).map_err(be)?;
                        let p = key.producer.as_u128();
                        let last = seqs.get(p).map_err(be)?.map(|g| g.value());
                        if last.is_some_and(|l| l >= key.seq) {
                            return Ok(None);
                        }
                        seqs.insert(p, key.seq).map_err(be)?;
                    }
                    let mut total = PushOutcome::default();
                    for push in &pushes {
                        let out = push_in(txn, &push.queues, &push.entries, now)?;
                        total.pushed += out.pushed;
                        total.trimmed += out.trimmed;
                    }
                    Ok(Some(total))
                })
            })
            .await?;
        if out.is_some() {
            self.wake(&woken);
        }
        Ok(out)
    }

    async fn pushed_seq(&self, producer: Uuid) -> Result<Option<u64>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let seqs = txn.open_table(PUSHED_SEQS).map_err(be)?;
            let v = seqs.get(producer.as_u128()).map_err(be)?.map(|g| g.value());
            Ok(v)
        })
        .await
    }

    async fn forget_producer(&self, producer: Uuid) -> Result<()> {
        self.run(move |db| {
            write(db, |txn| {
                let mut seqs = txn.open_table(PUSHED_SEQS).map_err(be)?;
                seqs.remove(producer.as_u128()).map_err(be)?;
                Ok(())
            })
        })
        .await
    }

    async fn pop_entries(&self, queue: Uuid, max: usize) -> Result<Vec<QueueEntry>> {
        self.run(move |db| Self::pop_now(db, queue, max)).await
    }

    async fn pop_entries_blocking(
        &self,
        queue: Uuid,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<QueueEntry>> {
        // Cancel-safe: the pop itself runs without an await point (block_in_place on a
        // multi-thread runtime), so a dropped future has either popped and returned, or
        // popped nothing. Only the wait is cancelled.
        let deadline = tokio::time::Instant::now() + timeout;
        let notify = self.notifier(queue);
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self.pop_inline(queue, max)?;
            if !got.is_empty() {
                return Ok(got);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn lease_entries(
        &self,
        queue: Uuid,
        consumer: String,
        max: usize,
        lease_secs: u64,
        now: u64,
    ) -> Result<Vec<LeasedEntry>> {
        self.lease_impl(queue, consumer, max, lease_secs, now).await
    }

    async fn ack_entries(&self, queue: Uuid, consumer: String, ids: Vec<u64>) -> Result<u64> {
        self.ack_impl(queue, consumer, ids).await
    }

    async fn queue_len(&self, queue: Uuid) -> Result<u64> {
        self.get_queue(queue)
            .await?
            .map(|q| q.len)
            .ok_or_else(|| StoreError::NotFound(format!("queue {queue}")))
    }

    async fn queue_sample(&self, queue: Uuid, n: usize) -> Result<Vec<QueueEntry>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let qt = txn.open_table(QUEUES).map_err(be)?;
            let meta = get_queue_meta(&qt, queue)?
                .ok_or_else(|| StoreError::NotFound(format!("queue {queue}")))?;
            let q = queue.as_u128();
            let et = txn.open_table(QUEUE_ENTRIES).map_err(be)?;
            let mut out = Vec::new();
            for item in et
                .range((q, meta.head)..(q, meta.tail))
                .map_err(be)?
                .rev()
                .take(n)
            {
                let (_, v) = item.map_err(be)?;
                out.push(decode_entry(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn empty_queue(&self, queue: Uuid) -> Result<u64> {
        self.run(move |db| {
            write(db, |txn| {
                let mut qt = txn.open_table(QUEUES).map_err(be)?;
                let mut meta = get_queue_meta(&qt, queue)?
                    .ok_or_else(|| StoreError::NotFound(format!("queue {queue}")))?;
                let q = queue.as_u128();
                let n = meta.len();
                let mut et = txn.open_table(QUEUE_ENTRIES).map_err(be)?;
                et.retain_in((q, meta.head)..(q, meta.tail), |_, _| false)
                    .map_err(be)?;
                meta.head = meta.tail;
                qt.insert(q, to_json(&meta)?.as_slice()).map_err(be)?;
                clear_marks(txn, queue)?;
                Ok(n)
            })
        })
        .await
    }
}
