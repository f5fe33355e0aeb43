//! The sender of a remote destination: batches from the source to the connection, the
//! spool while the collector is away, reconnects with backoff, the proper close.
//!
//! The first batch on each connection is a probe ([`Probe`]): it stays in the spool, and
//! nothing else is written, until the connection has stood [`PROBE`] after it. A collector
//! that refuses this sensor (unknown UUID, wrong key, blocklisted) accepts, reads the first
//! frame or two and closes; the probe is then sent again on the next connection instead of
//! being lost. The price: a new connection starts streaming [`PROBE`] after its first
//! write (a short run ends a second later), and a collector that stops on its own within
//! that second, or a client stopped within it, sends the probe twice (again on the next
//! connection, or at the next start).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{recv_after_stop, ClientStats};
use crate::backoff::Backoff;
use crate::conn::Conn;
use crate::dest::Connector;
use crate::error::RunError;
use crate::source::Msg;
use crate::spool::Spool;

/// A batch of frames written in one go (spool drain or direct).
const BATCH: usize = 256 * 1024;
/// What the log says when the collector ends a connection during its probe.
const REFUSED: &str = "does the collector refuse this sensor? check its UUID and key there; \
                       the batch is kept and sent again";

/// How long a connection must stand after its first batch before that batch counts as
/// delivered (see [`Probe`]).
pub const PROBE: Duration = Duration::from_secs(1);

/// Where the current connection stands with its first batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Nothing written yet: the next batch is the probe (taken from the spool).
    Pending,
    /// The probe, the first `n` bytes of the spool, was written at `at`: it stays in the
    /// spool and nothing else is written until the connection stood [`PROBE`] (then it is
    /// consumed) or the collector ended it (then it is sent again on the next one).
    Held { n: usize, at: Instant },
    /// The collector kept the connection: batches count as delivered once written.
    Done,
}

pub(super) struct Sender {
    connector: Connector,
    spool: Spool,
    meta: Option<Vec<u8>>,
    backoff: Backoff,
    conn: Option<Conn>,
    /// When the current connection was made.
    connected_at: Option<Instant>,
    /// The current connection's first batch.
    probe: Probe,
    close_timeout: Duration,
    stats: ClientStats,
    fail_count: u64,
    full_logged: bool,
}

enum Event {
    Shutdown,
    Msg(Option<Msg>),
    Retry,
    PeerClosed,
}

impl Sender {
    pub(super) fn new(
        connector: Connector,
        spool: Spool,
        meta: Option<Vec<u8>>,
        backoff_max: Duration,
        close_timeout: Duration,
    ) -> Sender {
        Sender {
            connector,
            spool,
            meta,
            backoff: Backoff::new(Duration::from_millis(250), backoff_max),
            conn: None,
            connected_at: None,
            probe: Probe::Pending,
            close_timeout,
            stats: ClientStats::default(),
            fail_count: 0,
            full_logged: false,
        }
    }

    fn spool_err(&self, e: std::io::Error) -> RunError {
        RunError::Spool(self.spool.dir().to_path_buf(), e)
    }

    /// Appends to the spool; never drops.
    fn spool_frames(&mut self, frames: &[u8]) -> Result<(), RunError> {
        self.spool.push(frames).map_err(|e| self.spool_err(e))?;
        // handed to the OS at once: a killed client loses nothing it had read
        self.spool.flush().map_err(|e| self.spool_err(e))?;
        if self.spool.is_full() && !self.full_logged {
            tracing::warn!(
                bytes = self.spool.bytes(),
                dir = %self.spool.dir().display(),
                "spool full: stopped reading the source until the collector is back (no data dropped)"
            );
            self.full_logged = true;
        }
        Ok(())
    }

    async fn try_connect(&mut self) -> bool {
        match self.connector.connect().await {
            Ok(link) => {
                let mut conn = Conn::new(link);
                if let Some(m) = &self.meta {
                    if let Err(e) = conn.write(m).await {
                        tracing::warn!(dest = ?self.connector, "sending the meta header failed: {e}");
                        conn.reader.abort();
                        return false;
                    }
                }
                self.stats.connects += 1;
                if self.fail_count > 0 || self.stats.connects > 1 {
                    tracing::info!(dest = ?self.connector, spooled = self.spool.bytes(), "connected again");
                } else {
                    tracing::info!(dest = ?self.connector, "connected");
                }
                self.fail_count = 0;
                // the backoff resets only once this connection proved stable (see
                // `delay_after_loss`): a collector that refuses the sensor closes at once
                self.connected_at = Some(Instant::now());
                self.probe = Probe::Pending;
                self.conn = Some(conn);
                true
            }
            Err(e) => {
                self.fail_count += 1;
                if self.fail_count == 1 {
                    tracing::warn!(dest = ?self.connector, "cannot connect ({e}): spooling and retrying");
                } else {
                    tracing::debug!(dest = ?self.connector, attempt = self.fail_count, "cannot connect: {e}");
                }
                false
            }
        }
    }

    /// The delay before reconnecting after the connection was lost: back to the shortest
    /// when it had been up [`crate::backoff::STABLE`], else the next longer one (a collector that refuses
    /// this sensor accepts, reads the first frame and closes: no reconnect loop).
    fn delay_after_loss(&mut self) -> Duration {
        let up = self
            .connected_at
            .take()
            .map_or(Duration::ZERO, |t| t.elapsed());
        self.backoff.after_loss(up)
    }

    fn drop_conn(&mut self, why: &str) {
        tracing::warn!(dest = ?self.connector, "connection lost ({why}): spooling and reconnecting");
        if let Some(c) = self.conn.take() {
            c.reader.abort();
        }
        // a probe held on it stays in the spool: the first batch of the next connection
        self.probe = Probe::Pending;
    }

    /// Writes the oldest spooled batch without consuming it: its length (0: the spool is
    /// empty), or `None` when the connection failed (dropped; `probe`: the hint that the
    /// collector may refuse the sensor goes with it in the log).
    async fn write_oldest(&mut self, probe: bool) -> Result<Option<usize>, RunError> {
        let batch = self.spool.peek(BATCH).map_err(|e| self.spool_err(e))?;
        if batch.is_empty() {
            return Ok(Some(0));
        }
        let Some(conn) = &mut self.conn else {
            return Ok(None);
        };
        match conn.write(&batch).await {
            Ok(()) => Ok(Some(batch.len())),
            // a collector that refuses resets the connection while a large first batch is
            // still being written
            Err(e) if probe => {
                self.drop_conn(&format!("{e}, while writing the first batch: {REFUSED}"));
                Ok(None)
            }
            Err(e) => {
                self.drop_conn(&e.to_string());
                Ok(None)
            }
        }
    }

    /// Counts the first `n` spooled bytes as delivered.
    fn consume(&mut self, n: usize) -> Result<(), RunError> {
        self.stats.bytes_sent += n as u64;
        self.spool.consume(n).map_err(|e| self.spool_err(e))?;
        if !self.spool.is_full() {
            self.full_logged = false;
        }
        Ok(())
    }

    /// Writes the probe (the oldest spooled batch, kept in the spool); false when the
    /// connection failed.
    async fn write_probe(&mut self) -> Result<bool, RunError> {
        Ok(match self.write_oldest(true).await? {
            Some(0) => true,
            Some(n) => {
                self.probe = Probe::Held {
                    n,
                    at: Instant::now(),
                };
                true
            }
            None => false,
        })
    }

    /// The probe stood: it counts as delivered.
    fn release_probe(&mut self) -> Result<(), RunError> {
        if let Probe::Held { n, .. } = self.probe {
            self.consume(n)?;
        }
        self.probe = Probe::Done;
        Ok(())
    }

    /// Writes the oldest spooled batch and consumes it; false when the connection failed.
    async fn drain_one(&mut self) -> Result<bool, RunError> {
        Ok(match self.write_oldest(false).await? {
            Some(0) => true,
            Some(n) => {
                self.consume(n)?;
                if self.spool.is_empty() {
                    tracing::info!("spool drained");
                }
                true
            }
            None => false,
        })
    }

    /// Writes frames directly (spool empty); on failure they go to the spool, in order.
    async fn send_direct(&mut self, batch: Vec<u8>) -> Result<(), RunError> {
        let res = match &mut self.conn {
            Some(c) => c.write(&batch).await,
            None => Err(std::io::Error::other("not connected")),
        };
        match res {
            Ok(()) => self.stats.bytes_sent += batch.len() as u64,
            Err(e) => {
                self.drop_conn(&e.to_string());
                self.spool_frames(&batch)?;
            }
        }
        Ok(())
    }

    fn gather(
        &mut self,
        rx: &mut mpsc::Receiver<Msg>,
        first: Vec<u8>,
    ) -> (Vec<u8>, Option<String>) {
        self.stats.frames_in += 1;
        // bound for the spool: what the batch may take without going past its limit (the
        // first frame always goes, so the spool exceeds its bound by at most one frame);
        // unbounded only when it is written directly (see the caller)
        let limit = if self.conn.is_some() && self.spool.is_empty() && self.probe == Probe::Done {
            BATCH
        } else {
            BATCH.min(usize::try_from(self.spool.room()).unwrap_or(usize::MAX))
        };
        let mut batch = first;
        while batch.len() < limit {
            match rx.try_recv() {
                Ok(Msg::Frames(f)) => {
                    self.stats.frames_in += 1;
                    batch.extend_from_slice(&f);
                }
                Ok(Msg::Failed(e)) => return (batch, Some(e)),
                Err(_) => break,
            }
        }
        (batch, None)
    }

    pub(super) async fn run(
        &mut self,
        mut rx: mpsc::Receiver<Msg>,
        stop: Arc<AtomicBool>,
        drain_timeout: Duration,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<ClientStats, RunError> {
        tokio::pin!(shutdown);
        let mut next_attempt = Instant::now();
        let mut source_done = false;
        let mut source_error: Option<String> = None;
        let mut drain_deadline: Option<Instant> = None;
        let mut stopping = false;
        loop {
            if source_done && drain_deadline.is_none() {
                drain_deadline = Some(Instant::now() + drain_timeout);
            }
            if stopping || (source_done && self.spool.is_empty()) {
                break;
            }
            // the drain deadline only applies while the collector is unreachable: a
            // connected, draining client keeps going (stalled writes time out on their own)
            if self.conn.is_none() && drain_deadline.is_some_and(|d| Instant::now() >= d) {
                tracing::warn!(
                    bytes = self.spool.bytes(),
                    "collector still unreachable at the end of input: the spooled frames will be sent at the next start"
                );
                break;
            }
            if self.conn.is_none() && Instant::now() >= next_attempt {
                let connected = tokio::select! {
                    c = self.try_connect() => c,
                    () = &mut shutdown => { stopping = true; continue; }
                };
                if !connected {
                    next_attempt = Instant::now() + self.backoff.next_delay();
                }
                continue;
            }
            let peer_closed = self.conn.as_mut().is_some_and(|c| c.peer_closed());
            if peer_closed {
                if let Some(c) = self.conn.take() {
                    if let Probe::Held { n, .. } = self.probe {
                        tracing::warn!(dest = ?self.connector, bytes = n, "the collector closed the connection right after the first batch: {REFUSED}");
                    } else {
                        tracing::warn!(dest = ?self.connector, "the collector closed the connection: reconnecting");
                    }
                    if let Err(e) = c.close(self.close_timeout).await {
                        tracing::debug!(dest = ?self.connector, "closing: {e}");
                    }
                }
                self.probe = Probe::Pending;
                next_attempt = Instant::now() + self.delay_after_loss();
                continue;
            }
            if let Probe::Held { at, .. } = self.probe {
                if self.conn.is_some() && Instant::now() >= at + PROBE {
                    self.release_probe()?;
                    // (the spool may be empty now: look at the end of input again)
                    continue;
                }
                // (at the end of input too: a collector that refuses may read the probe,
                // then close; our own close would cross its end and look confirmed)
            }
            if self.conn.is_some() && !self.spool.is_empty() {
                // keep taking the source's frames into the spool while draining it
                while !source_done && !self.spool.is_full() {
                    match rx.try_recv() {
                        Ok(Msg::Frames(f)) => {
                            self.stats.frames_in += 1;
                            self.spool_frames(&f)?;
                        }
                        Ok(Msg::Failed(e)) => {
                            source_error = Some(e);
                            source_done = true;
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => source_done = true,
                    }
                }
                let ok = match self.probe {
                    Probe::Pending => tokio::select! {
                        r = self.write_probe() => Some(r?),
                        () = &mut shutdown => { stopping = true; continue; }
                    },
                    Probe::Done => tokio::select! {
                        r = self.drain_one() => Some(r?),
                        () = &mut shutdown => { stopping = true; continue; }
                    },
                    // the probe stands: wait below (taking the source's frames meanwhile)
                    Probe::Held { .. } => None,
                };
                match ok {
                    None => {}
                    Some(true) => continue,
                    Some(false) => {
                        next_attempt = Instant::now() + self.delay_after_loss();
                        continue;
                    }
                }
            }
            // wait for something to do: while connected, the end of the probe's wait (the
            // drain deadline only counts while the collector is unreachable)
            let can_take = !source_done && !self.spool.is_full();
            let wake = match (&self.conn, self.probe) {
                (None, _) => drain_deadline.map_or(next_attempt, |d| d.min(next_attempt)),
                (Some(_), Probe::Held { at, .. }) => at + PROBE,
                (Some(_), _) => Instant::now() + Duration::from_secs(3600),
            };
            let ev = {
                let closed = async {
                    match self.conn.as_mut() {
                        Some(c) => {
                            c.peer_end().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    () = &mut shutdown => Event::Shutdown,
                    m = rx.recv(), if can_take => Event::Msg(m),
                    () = tokio::time::sleep_until(wake) => Event::Retry,
                    () = closed => Event::PeerClosed,
                }
            };
            match ev {
                Event::Shutdown => stopping = true,
                Event::Retry | Event::PeerClosed => {}
                Event::Msg(None) => source_done = true,
                Event::Msg(Some(Msg::Failed(e))) => {
                    source_error = Some(e);
                    source_done = true;
                }
                Event::Msg(Some(Msg::Frames(f))) => {
                    let (batch, err) = self.gather(&mut rx, f);
                    if let Some(e) = err {
                        source_error = Some(e);
                        source_done = true;
                    }
                    // direct only once the connection's probe stood; the first batch on
                    // a connection goes through the spool (it is the probe)
                    if self.conn.is_some() && self.spool.is_empty() && self.probe == Probe::Done {
                        self.send_direct(batch).await?;
                        if self.conn.is_none() {
                            next_attempt = Instant::now() + self.delay_after_loss();
                        }
                    } else {
                        self.spool_frames(&batch)?;
                    }
                }
            }
        }
        // when the run ended: a probe that stood until then counts as delivered (below)
        let ended_at = Instant::now();
        if stopping {
            tracing::info!("signal: flushing and exiting");
            // frames already read from the source are kept: sent if possible, else spooled
            stop.store(true, Ordering::Relaxed);
            let mut rest = Vec::new();
            while let Some(m) = recv_after_stop(&mut rx).await {
                if let Msg::Frames(f) = m {
                    self.stats.frames_in += 1;
                    rest.extend_from_slice(&f);
                }
            }
            if !rest.is_empty() {
                if self.conn.is_some() && self.spool.is_empty() && self.probe == Probe::Done {
                    let fut = self.send_direct(rest.clone());
                    match tokio::time::timeout(Duration::from_secs(5), fut).await {
                        Ok(r) => r?,
                        Err(_) => {
                            // not known to be written: kept (the stuck connection is
                            // dropped; a frame cut on it is discarded by the collector)
                            tracing::warn!("flush timed out: the frames stay in the spool");
                            if let Some(c) = self.conn.take() {
                                c.reader.abort();
                            }
                            self.spool_frames(&rest)?;
                        }
                    }
                } else {
                    self.spool_frames(&rest)?;
                }
            }
        }
        if let (Some(c), Probe::Held { n, at }) = (&mut self.conn, self.probe) {
            // the loop left before looking at the connection: it must still be up
            if ended_at >= at + PROBE && !c.peer_closed() {
                self.release_probe()?;
            } else {
                // its close could not tell a collector that took it from one that refused
                // (an end crossing ours): sent again at the next start rather than lost
                tracing::info!(bytes = n, "the connection's first batch had not stood a second (or the collector closed the connection): it stays in the spool and is sent again at the next start");
            }
        }
        let mut unconfirmed = None;
        if let Some(c) = self.conn.take() {
            if let Err(e) = c.close(self.close_timeout).await {
                tracing::error!(
                    dest = ?self.connector,
                    "the collector did not confirm the end of the stream ({e}): the last data may not have arrived"
                );
                unconfirmed = Some(e);
            }
        }
        self.spool.sync().map_err(|e| self.spool_err(e))?;
        self.stats.spooled_at_exit = self.spool.bytes();
        tracing::info!(
            frames = self.stats.frames_in,
            bytes_sent = self.stats.bytes_sent,
            connects = self.stats.connects,
            spooled = self.stats.spooled_at_exit,
            "client stopped"
        );
        match (source_error, unconfirmed) {
            (Some(e), _) => Err(RunError::Source(e)),
            (None, Some(e)) => Err(RunError::Unconfirmed(e)),
            (None, None) => Ok(self.stats.clone()),
        }
    }
}
