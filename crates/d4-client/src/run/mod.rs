//! The sender: takes framed reads from the source and delivers them to the destination.
//!
//! For a remote collector, frames are written in batches; a batch counts as delivered once
//! `write_all` + `flush` returned. On any error (connect, TLS, write, or the collector
//! closing the connection) the connection is dropped and re-established with exponential
//! backoff and jitter; the batch that was not confirmed is kept and resent whole (a frame
//! cut by the error is incomplete on the old connection, which the collector discards).
//! While the collector is unreachable, frames go to the on-disk [`Spool`], which is always
//! drained first and in order. When the spool is full, the sender stops taking frames from
//! the source, whose thread then blocks (backpressure). For types 2/254 the meta header is
//! written as type-2 frames at the start of every connection. At the end, the connection is
//! closed properly and the collector's confirmation awaited (`Conn::close`, module `conn`).
//!
//! The sending side, spool and reconnects included, is [`sender`]; the first batch on each
//! connection is a probe ([`PROBE`]) there.

mod sender;
use sender::Sender;
pub use sender::PROBE;

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::Settings;
use crate::dest::{Connector, Destination};
use crate::error::RunError;
use crate::framer::Framer;
use crate::source::{run_source, Emitter, Msg};
use crate::spool::Spool;

/// Frames (reads) buffered between the source thread and the sender.
const CHANNEL: usize = 64;
/// What one run did.
#[derive(Debug, Default, Clone)]
pub struct ClientStats {
    pub frames_in: u64,
    pub bytes_sent: u64,
    pub connects: u64,
    /// Bytes still in the spool at exit (sent at the next start).
    pub spooled_at_exit: u64,
}

/// Runs the client until the source ends (then flushes) or `shutdown` resolves (then
/// flushes what it can and spools the rest). `drain_timeout`: how long to keep trying to
/// deliver after the end of input before leaving the rest in the spool.
pub async fn run(
    settings: Settings,
    drain_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<ClientStats, RunError> {
    let kind = settings.source.clone();
    let (follow, poll) = (settings.follow, settings.poll);
    run_with_source(settings, drain_timeout, shutdown, move |em| {
        run_source(kind, follow, poll, em)
    })
    .await
}

/// [`run`] with the caller's own source instead of `settings.source`: `source` runs on its
/// own thread and hands its reads to the [`Emitter`] (framing, spool, reconnects and the
/// meta header as for any source). It ends the input by returning; `Emitter::emit` blocks
/// while the spool is full (backpressure); `Emitter::free_slots` tells a source that cannot
/// wait whether a send would. `d4 tls --d4` uses
/// it to send its records as `ja3-jl`.
pub async fn run_with_source(
    settings: Settings,
    drain_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send,
    source: impl FnOnce(Emitter) + Send + 'static,
) -> Result<ClientStats, RunError> {
    let framer = Framer::new(
        settings.uuid,
        &settings.key,
        settings.d4_type,
        settings.version,
        settings.snaplen,
    );
    let meta = match (&settings.metaheader, settings.uses_meta_header()) {
        (Some(m), true) => Some(
            framer
                .meta_frames(m)
                .map_err(|e| RunError::Encode(e.to_string()))?,
        ),
        _ => None,
    };
    // the connector is built before the source starts: TLS/CA errors are configuration errors
    let connector = match &settings.destination {
        Destination::Stdout => None,
        Destination::Remote { host, port } => Some(Connector::new(
            host,
            *port,
            settings.tls,
            settings.ca.as_deref(),
            settings.insecure,
            settings.connect_timeout,
        )?),
    };
    let spool = match &connector {
        Some(_) => Some(
            Spool::open(&settings.spool_dir, settings.spool_max)
                .map_err(|e| RunError::Spool(settings.spool_dir.clone(), e))?,
        ),
        None => None,
    };

    let (tx, rx) = mpsc::channel::<Msg>(CHANNEL);
    let stop = Arc::new(AtomicBool::new(false));
    let em = Emitter::new(framer, tx, stop.clone());
    std::thread::Builder::new()
        .name("d4-source".into())
        .spawn(move || source(em))
        .map_err(|e| RunError::Source(e.to_string()))?;

    match (connector, spool) {
        (Some(c), Some(sp)) => {
            let mut s = Sender::new(c, sp, meta, settings.backoff_max, settings.close_timeout);
            s.run(rx, stop, drain_timeout, shutdown).await
        }
        _ => run_stdout(rx, meta, stop, shutdown).await,
    }
}

/// stdout: frames written as they come (`block_in_place`: stdout is a blocking handle); a
/// write error (closed pipe) ends the run with an error. On a signal, the frames already
/// read are written, then the run ends.
async fn run_stdout(
    mut rx: mpsc::Receiver<Msg>,
    meta: Option<Vec<u8>>,
    stop: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<ClientStats, RunError> {
    tokio::pin!(shutdown);
    let mut stats = ClientStats::default();
    let write = |b: &[u8]| {
        tokio::task::block_in_place(|| {
            let mut out = std::io::stdout().lock();
            out.write_all(b).and_then(|()| out.flush())
        })
        .map_err(RunError::Stdout)
    };
    if let Some(m) = &meta {
        write(m)?;
    }
    let mut stopping = false;
    loop {
        let msg = if stopping {
            recv_after_stop(&mut rx).await
        } else {
            tokio::select! {
                m = rx.recv() => m,
                () = &mut shutdown => {
                    tracing::info!("signal: flushing and exiting");
                    stopping = true;
                    stop.store(true, Ordering::Relaxed);
                    continue;
                }
            }
        };
        match msg {
            Some(Msg::Frames(f)) => {
                stats.frames_in += 1;
                stats.bytes_sent += f.len() as u64;
                write(&f)?;
            }
            Some(Msg::Failed(e)) => return Err(RunError::Source(e)),
            None => return Ok(stats),
        }
    }
}

/// After a stop request: what the source still hands over. The source stops before its
/// next read; a source blocked in a read (idle stdin) has nothing more, hence the timeout.
pub(super) async fn recv_after_stop(rx: &mut mpsc::Receiver<Msg>) -> Option<Msg> {
    tokio::time::timeout(Duration::from_millis(300), rx.recv())
        .await
        .ok()
        .flatten()
}
