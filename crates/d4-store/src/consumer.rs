//! [`QueueConsumer`]: the one loop that reads an analyzer queue, at least once.
//!
//! ```text
//! let mut consumer = QueueConsumer::new(store, queue, ConsumerConfig::new("pdns-ingest"))?;
//! while let Some(batch) = consumer.next_batch(stop.wait()).await? {
//!     process(&batch.entries)?;          // a crash here: the batch comes back
//!     consumer.ack(batch).await?;        // gone for good
//! }
//! ```
//!
//! [`QueueConsumer::next_batch`] leases up to `batch` entries to the consumer's name
//! ([`Queues::lease_entries`]) and waits, polling with a growing interval (up to
//! `max_poll`), while the queue is empty. [`QueueConsumer::ack`] acknowledges a processed
//! batch ([`Queues::ack_entries`]).
//!
//! Guarantees:
//! - **Cancel-safe**: `next_batch` returns `Ok(None)` as soon as its `cancel` future
//!   completes; dropping it anywhere loses nothing. Entries leased but not acknowledged
//!   (cancelled mid-lease, not processed, the process killed with `kill -9`) are delivered
//!   again: at once to a consumer of the same name (the restarted process), after
//!   `lease_secs` to any other consumer.
//! - **At least once**: an entry is gone only after `ack`. A batch processed but not
//!   acknowledged (a crash between the two) is processed again, so processing should be
//!   idempotent or tolerate repeats. Processing longer than `lease_secs` lets another
//!   consumer take the entries over: choose `lease_secs` well above a batch's time.
//! - One name is one sequential consumer: two processes must not share a name (each
//!   would receive the other's unacknowledged entries).
//!
//! Reference analyzers that `RPOP` the Redis lists keep working beside it: leased entries
//! are moved out of the list until acknowledged or expired.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::model::*;
use crate::{validate, Queues, Result, StoreError};

/// First wait after an empty lease; doubled up to [`ConsumerConfig::max_poll`].
const MIN_POLL: Duration = Duration::from_millis(20);

/// Settings of a [`QueueConsumer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// The consumer's name ([`validate::consumer_name`]): the same name after a restart
    /// gets back what the previous run left unacknowledged.
    pub name: String,
    /// Most entries per batch (at least 1).
    pub batch: usize,
    /// How long a batch stays leased without an acknowledgement before another consumer
    /// may take it over.
    pub lease_secs: u64,
    /// Longest wait between two leases while the queue is empty.
    pub max_poll: Duration,
}

impl ConsumerConfig {
    /// `name`, batches of 1000, leases of 5 minutes, polls at most every 500 ms.
    pub fn new(name: impl Into<String>) -> ConsumerConfig {
        ConsumerConfig {
            name: name.into(),
            batch: 1000,
            lease_secs: 300,
            max_poll: Duration::from_millis(500),
        }
    }
}

/// Entries leased to a consumer, to acknowledge with [`QueueConsumer::ack`] once processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueBatch {
    /// The entries, oldest first.
    pub entries: Vec<QueueEntry>,
    ids: Vec<u64>,
}

impl QueueBatch {
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// An at-least-once reader of one queue (see the module doc). It needs the store's
/// [`Queues`] role only: by default it holds an `Arc<dyn Queues>` (an `Arc<dyn Store>`
/// upcasts to it).
#[derive(Debug)]
pub struct QueueConsumer<Q: Queues + ?Sized = dyn Queues> {
    store: Arc<Q>,
    queue: Uuid,
    config: ConsumerConfig,
    idle: Duration,
}

impl<Q: Queues + ?Sized> QueueConsumer<Q> {
    /// A consumer of `queue`. `Invalid` for a bad name or a batch of 0.
    pub fn new(store: Arc<Q>, queue: Uuid, config: ConsumerConfig) -> Result<QueueConsumer<Q>> {
        validate::consumer_name(&config.name)?;
        if config.batch == 0 {
            return Err(StoreError::Invalid(
                "the batch size must be at least 1".into(),
            ));
        }
        Ok(QueueConsumer {
            store,
            queue,
            config,
            idle: MIN_POLL,
        })
    }

    /// Changes the most entries per batch from the next lease on (at least 1).
    pub fn set_batch(&mut self, batch: usize) {
        self.config.batch = batch.max(1);
    }

    /// The queue read.
    pub fn queue(&self) -> Uuid {
        self.queue
    }

    /// The next batch (at least one entry), waiting while the queue is empty; `None` once
    /// `cancel` completes. Cancel-safe (see the module doc).
    pub async fn next_batch<C: Future<Output = ()>>(
        &mut self,
        cancel: C,
    ) -> Result<Option<QueueBatch>> {
        tokio::pin!(cancel);
        loop {
            let leased = tokio::select! {
                biased;
                () = &mut cancel => return Ok(None),
                r = self.try_batch() => r?,
            };
            if let Some(batch) = leased {
                self.idle = MIN_POLL;
                return Ok(Some(batch));
            }
            tokio::select! {
                biased;
                () = &mut cancel => return Ok(None),
                () = tokio::time::sleep(self.idle) => {}
            }
            self.idle = (self.idle * 2).min(self.config.max_poll.max(MIN_POLL));
        }
    }

    /// One lease without waiting: the next batch, or `None` when nothing is there for
    /// this consumer now (for consumers that stop once the queue is empty).
    pub async fn try_batch(&mut self) -> Result<Option<QueueBatch>> {
        let leased = self
            .store
            .lease_entries(
                self.queue,
                self.config.name.clone(),
                self.config.batch,
                self.config.lease_secs,
                crate::now(),
            )
            .await?;
        if leased.is_empty() {
            return Ok(None);
        }
        let (ids, entries) = leased.into_iter().map(|l| (l.id, l.entry)).unzip();
        Ok(Some(QueueBatch { entries, ids }))
    }

    /// Acknowledge a processed batch: its entries are gone for good. Returns how many
    /// were still leased to this consumer (fewer when a lease expired and another
    /// consumer took entries over).
    pub async fn ack(&mut self, batch: QueueBatch) -> Result<u64> {
        self.store
            .ack_entries(self.queue, self.config.name.clone(), batch.ids)
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::{EmbeddedStore, Store};

    async fn setup() -> (tempfile::TempDir, Arc<dyn Store>, Uuid) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let q = Uuid::new_v4();
        store
            .create_queue(
                QueueConfig {
                    uuid: q,
                    kind: QueueKind::Type(8),
                    description: String::new(),
                    max_size: 100,
                    sensors: None,
                    groups: Vec::new(),
                },
                1,
            )
            .await
            .unwrap();
        (dir, store, q)
    }

    fn texts(b: &QueueBatch) -> Vec<String> {
        b.entries.iter().map(|e| e.text().into_owned()).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancel_while_waiting_then_entries() {
        let (_dir, store, q) = setup().await;
        let mut c = QueueConsumer::new(store.clone(), q, ConsumerConfig::new("t")).unwrap();
        let waited = tokio::time::timeout(
            Duration::from_secs(5),
            c.next_batch(tokio::time::sleep(Duration::from_millis(100))),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(waited, None, "cancelled");
        let pusher = {
            let store = store.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                store
                    .push_entries(vec![q], vec![QueueEntry::new("late")], 2)
                    .await
                    .unwrap();
            })
        };
        let b = c.next_batch(std::future::pending()).await.unwrap().unwrap();
        pusher.await.unwrap();
        assert_eq!(texts(&b), ["late"]);
        assert_eq!(c.ack(b).await.unwrap(), 1);
        assert_eq!(store.queue_len(q).await.unwrap(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unacknowledged_batch_comes_back_to_the_same_name() {
        let (_dir, store, q) = setup().await;
        let entries = (0..5).map(|i| QueueEntry::new(format!("e{i}"))).collect();
        store.push_entries(vec![q], entries, 2).await.unwrap();
        let mut cfg = ConsumerConfig::new("ingest");
        cfg.batch = 3;
        let mut first = QueueConsumer::new(store.clone(), q, cfg.clone()).unwrap();
        let b = first
            .next_batch(std::future::pending())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(texts(&b), ["e0", "e1", "e2"]);
        drop(first); // killed before acknowledging
        let mut second = QueueConsumer::new(store.clone(), q, cfg).unwrap();
        let again = second
            .next_batch(std::future::pending())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(texts(&again), ["e0", "e1", "e2"]);
        assert_eq!(second.ack(again).await.unwrap(), 3);
        let rest = second
            .next_batch(std::future::pending())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(texts(&rest), ["e3", "e4"]);
        assert_eq!(second.ack(rest).await.unwrap(), 2);
        assert!(matches!(
            QueueConsumer::new(store, q, ConsumerConfig::new("bad name")),
            Err(StoreError::Invalid(_))
        ));
    }
}
