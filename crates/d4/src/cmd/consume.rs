//! The binary's side of the store's one queue consumer ([`d4_store::QueueConsumer`]):
//! the stop signal, consumer names and the loop step every queue reader shares
//! (`d4 queue pop`, `d4 pdns ingest|serve --queue`, `d4 pibs --queue`).
//!
//! Every reader consumes at least once: it leases a batch, processes it, then
//! acknowledges it. A reader stopped by a signal finishes its batch first; one killed
//! (`kill -9`) leaves its leased entries to the next run under the same consumer name
//! (at once) or to any other consumer once the lease expires.

use std::future::Future;
use std::sync::Arc;

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
