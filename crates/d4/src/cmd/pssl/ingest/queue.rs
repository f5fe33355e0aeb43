//! `d4 pssl ingest --queue`: the collector's `ja3-jl` analyzer queue (entries are paths of
//! JSON record files, as the reference analyzer reads them) into the passive SSL store,
//! through the shared queue consumer ([`crate::cmd::consume`]), at least once: a batch of
//! entries is committed, then acknowledged. The store calls are synchronous and run in
//! `spawn_blocking`. SIGINT/SIGTERM: the batch in hand is finished, then the run stops.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use d4_pssl::Ingester;
use d4_store::QueueBatch;

use super::{summary, IngestArgs};
use crate::cmd::consume;
use crate::cmd::pssl::PsslArgs;

/// Takes entries from `queue` and ingests them at least once: each batch is committed to
/// the store, then acknowledged (so at most one batch is in flight, and a crash repeats it
/// rather than losing it), until `stop` is set or, with `until_empty`, the queue holds
/// nothing more. Only the collector store's [`d4_store::Queues`] role is needed. The
/// ingester is handed back (its counters) when the run ends.
pub async fn consume_queue(
    ing: Ingester,
    d4: Arc<dyn d4_store::Queues>,
    queue: uuid::Uuid,
    consumer: &str,
    pop_max: usize,
    until_empty: bool,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Ingester> {
    let d = consume::Drain {
        queue,
        consumer,
        pop_max,
        until_empty,
        stop,
        what: "ja3-jl",
    };
    consume::drain(ing, d4, d, |ing: &mut Ingester, batch: &QueueBatch| {
        for e in &batch.entries {
            ing.queue_entry(&e.data)?;
        }
        ing.flush()
    })
    .await
}

pub fn run(
    args: &PsslArgs,
    a: &IngestArgs,
    ing: Ingester,
    queue: uuid::Uuid,
) -> anyhow::Result<ExitCode> {
    let d4cfg = args.queue_store_config()?;
    // The last reference to the store is dropped outside the runtime (the PostgreSQL
    // client must not be dropped on a runtime thread).
    let store = ing.store().clone();
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let started = Instant::now();
    let res = rt.block_on(async {
        let d4: Arc<dyn d4_store::Queues> = d4_store::open(&d4cfg).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut signal = consume::Stop::new();
        let flag = stop.clone();
        tokio::spawn(async move {
            signal.wait().await;
            tracing::info!("stopping after the current batch");
            flag.store(true, Ordering::Relaxed);
        });
        consume_queue(ing, d4, queue, &a.consumer, a.pop_max, a.until_empty, stop).await
    });
    drop(rt);
    let mut ing = res?;
    ing.flush()?;
    let s = ing.stats();
    tracing::info!(
        records_ok = s.records_ok,
        records_bad = s.records_bad,
        files_read = s.files_read,
        files_missing = s.files_missing,
        new_sessions = s.new_sessions,
        "queue ingest done"
    );
    outln!("{}", summary(s, started)?);
    drop(ing);
    drop(store);
    Ok(ExitCode::SUCCESS)
}
