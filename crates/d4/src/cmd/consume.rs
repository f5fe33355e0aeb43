//! The binary's side of the store's one queue consumer ([`d4_store::QueueConsumer`]):
//! the stop signal, consumer names and the loop step every queue reader shares
//! (`d4 queue pop`, `d4 pdns ingest|serve --queue`, `d4 pibs --queue`).
//!
//! Every reader consumes at least once: it leases a batch, processes it, then
//! acknowledges it. A reader stopped by a signal finishes its batch first; one killed
//! (`kill -9`) leaves its leased entries to the next run under the same consumer name
//! (at once) or to any other consumer once the lease expires.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

use d4_store::{ConsumerConfig, QueueBatch, QueueConsumer, Queues};
use uuid::Uuid;

/// SIGINT/SIGTERM, registered when created (so a signal that arrives before the first
/// wait still counts, and never kills the process mid-write).
pub struct Stop {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Stop {
    /// Listens for SIGINT and SIGTERM from now on.
    pub fn new() -> Stop {
        use tokio::signal::unix::{signal, SignalKind};
        Stop {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Never fires (short commands keep the default signal handling).
    pub fn none() -> Stop {
        Stop {
            int: None,
            term: None,
        }
    }

    /// Whether a signal arrived (without waiting).
    pub fn received(&mut self) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        [&mut self.int, &mut self.term]
            .into_iter()
            .flatten()
            .any(|s| s.poll_recv(&mut cx).is_ready())
    }

    /// Waits for a signal.
    pub async fn wait(&mut self) {
        async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = one(&mut self.int) => {}
            () = one(&mut self.term) => {}
        }
    }
}

/// A consumer of `queue` named `name` (`--consumer`), taking up to `batch` entries at a
/// time. It needs the store's [`Queues`] role only.
pub fn consumer(
    store: Arc<dyn Queues>,
    queue: Uuid,
    name: &str,
    batch: usize,
) -> d4_store::Result<QueueConsumer<dyn Queues>> {
    let mut cfg = ConsumerConfig::new(name);
    cfg.batch = batch.max(1);
    QueueConsumer::new(store, queue, cfg)
}

/// The next batch: with `until_empty`, one lease without waiting (`None` once nothing is
/// left); else waits for entries until `cancel` completes (`None`).
pub async fn next(
    c: &mut QueueConsumer<dyn Queues>,
    until_empty: bool,
    cancel: impl Future<Output = ()>,
) -> d4_store::Result<Option<QueueBatch>> {
    if until_empty {
        c.try_batch().await
    } else {
        c.next_batch(cancel).await
    }
}

/// `--consumer NAME`: who takes entries from the queue. A restarted reader with the same
/// name gets back at once what its previous run had taken and not finished; two readers of
/// one queue at the same time need two names.
pub fn check_name(name: &str) -> Result<String, String> {
    d4_store::validate::consumer_name(name)
        .map(|()| name.to_owned())
        .map_err(|e| e.to_string())
}

/// Where a queue reader is (which queue, as whom, how many at once, until when).
pub struct Drain<'a> {
    pub queue: Uuid,
    pub consumer: &'a str,
    pub pop_max: usize,
    /// Stop once the queue is empty (a one-shot drain) instead of waiting for entries.
    pub until_empty: bool,
    /// Set by a signal: the batch in hand is finished, then the reader stops.
    pub stop: Arc<AtomicBool>,
    /// What the entries are, for the log (`ja3-jl`, `passivedns`).
    pub what: &'static str,
}

/// Takes entries from the queue at least once: each batch goes through `process` on a
/// blocking thread (which commits it to the analyzer's store), then is acknowledged, so at
/// most one batch is in flight and a crash repeats it rather than losing it. Runs until
/// `stop` is set or, with `until_empty`, the queue holds nothing more; hands `state` (the
/// analyzer's ingester and its counters) back. Only the store's [`Queues`] role is needed.
pub async fn drain<S, E, F>(
    mut state: S,
    d4: Arc<dyn Queues>,
    d: Drain<'_>,
    process: F,
) -> anyhow::Result<S>
where
    S: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
    F: Fn(&mut S, &QueueBatch) -> Result<(), E> + Send + Copy + 'static,
{
    let queue = d.queue;
    let len = d4
        .queue_len(queue)
        .await
        .with_context(|| format!("analyzer queue {queue}"))?;
    let mut c = consumer(d4.clone(), queue, d.consumer, d.pop_max)?;
    tracing::info!(%queue, entries = d.what, queued = len, consumer = d.consumer, backend = d4.backend(), "consuming analyzer queue");
    let stopped = || {
        let stop = d.stop.clone();
        async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    while !d.stop.load(Ordering::Relaxed) {
        let Some(batch) = next(&mut c, d.until_empty, stopped())
            .await
            .with_context(|| format!("taking entries from analyzer queue {queue}"))?
        else {
            break;
        };
        let (st, batch) = tokio::task::spawn_blocking(move || {
            process(&mut state, &batch)?;
            Ok::<_, E>((state, batch))
        })
        .await??;
        state = st;
        c.ack(batch)
            .await
            .with_context(|| format!("acknowledging entries of analyzer queue {queue}"))?;
    }
    Ok(state)
}
