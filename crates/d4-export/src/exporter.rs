//! The driver: hands one batch of entries at a time to the sink and returns `Ok` only once
//! the sink took all of them, so that the caller may acknowledge the batch to the queue.
//!
//! Per batch: look whether the receiver is still there, format and write every entry
//! (waiting for the `--rate` bucket; datagrams larger than the socket takes are counted as
//! oversize and skipped), flush, look again. A failure anywhere drops the connection, waits
//! (exponential backoff with jitter, 100 ms doubling up to [`ExportConfig::max_backoff`]),
//! reconnects and sends the WHOLE batch again: at least once, duplicates only of the batch
//! in hand. An outage is logged once when it starts and once when it ends, not per try.
//! The wait goes back to 100 ms only after a connection proved itself ([`Proven`]): a
//! receiver that accepts and closes at once (it refuses us) is tried less and less often,
//! not every 100 ms.
//!
//! The stop flag (SIGINT/SIGTERM) is looked at while waiting (backoff, rate limit): then
//! [`send_batch`](Exporter::send_batch) returns [`ExportError::Stopped`] and the caller
//! leaves the batch unacknowledged (delivered again by the next run). A batch that flows
//! is finished first. Stdout is not reconnected: an error writing it is final.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use d4_client::backoff::Backoff;
use rustls::ClientConfig;

use crate::newline::{self, Newline};
use crate::rate::TokenBucket;
use crate::sink::{Conn, Sent};
use crate::spec::{SinkSpec, SyslogProto};
use crate::syslog::{self, SyslogHeader};
use crate::tls::{self, TlsConfigError, TlsOptions};

/// The largest UDP payload over IPv4 (65535 − 20 − 8): the default `--max-datagram`.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Everything `d4 export` needs besides the entries.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    pub sink: SinkSpec,
    pub newline: Newline,
    /// `--rate`: most entries per second.
    pub rate: Option<u32>,
    /// The syslog header (for `syslog://`).
    pub syslog: Option<SyslogHeader>,
    /// TLS options (for `tls://`).
    pub tls: TlsOptions,
    /// Datagrams larger than this are counted as oversize and not sent.
    pub max_datagram: usize,
    /// Longest wait between two reconnect tries.
    pub max_backoff: Duration,
}

/// Why a batch was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A signal arrived while waiting: the batch is to be left unacknowledged.
    #[error("stopped by a signal before the batch was delivered")]
    Stopped,
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    #[error("syslog:// needs the syslog header settings")]
    NoSyslogHeader,
    #[error("writing to stdout: {0}")]
    Stdout(std::io::Error),
}

/// Counters, shared with the caller (they survive a stopped run).
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Entries of delivered batches (oversize ones included).
    pub entries: AtomicU64,
    /// Batches delivered (the caller acknowledges each).
    pub batches: AtomicU64,
    /// Datagrams larger than the limit: counted, not sent.
    pub oversize: AtomicU64,
    /// Writes to the sink, repeats after a reconnect included.
    pub writes: AtomicU64,
    /// Batches sent again after the connection failed.
    pub resent_batches: AtomicU64,
    /// Successful connections.
    pub connections: AtomicU64,
}

impl ExportStats {
    /// The counters as JSON.
    pub fn to_json(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            r#"{{"entries":{},"batches":{},"oversize":{},"writes":{},"resent_batches":{},"connections":{}}}"#,
            g(&self.entries),
            g(&self.batches),
            g(&self.oversize),
            g(&self.writes),
            g(&self.resent_batches),
            g(&self.connections)
        )
    }
}

/// An outage in progress (for logging once at the start and once at the end).
#[derive(Debug)]
struct Outage {
    since: Instant,
    tries: u32,
}

/// The current connection, for the backoff: when it was made, and when a batch was last
/// taken on it (the check after the batch found the receiver still there). What it stood
/// is the time between the two ([`Backoff::after_loss`]: the next loss starts again at the
/// shortest wait once that is 2 s). Not a count of batches: back-to-back batches take
/// microseconds, several pass before the close of a receiver that refuses us arrives.
#[derive(Debug, Clone, Copy)]
struct Proven {
    since: Instant,
    alive_at: Instant,
}

impl Proven {
    fn stood(&self) -> Duration {
        self.alive_at.duration_since(self.since)
    }
}

/// What went wrong in one attempt at a batch.
enum Attempt {
    /// The connection failed: reconnect and send the batch again.
    Transport(std::io::Error),
    Stopped,
    Fatal(ExportError),
}

/// Sends batches of entries to one sink (see the module doc).
#[derive(Debug)]
pub struct Exporter {
    config: ExportConfig,
    tls: Option<Arc<ClientConfig>>,
    conn: Option<Conn>,
    rate: Option<TokenBucket>,
    backoff: Backoff,
    /// The current connection's record (see [`Proven`]).
    proven: Option<Proven>,
    outage: Option<Outage>,
    stop: Arc<AtomicBool>,
    stats: Arc<ExportStats>,
    started: Instant,
    buf: Vec<u8>,
}

impl Exporter {
    /// Checks the settings (reads the TLS files); connects on the first batch.
    pub fn new(config: ExportConfig, stop: Arc<AtomicBool>) -> Result<Exporter, ExportError> {
        let tls = match config.sink {
            SinkSpec::Tls(_) => Some(tls::client_config(&config.tls)?),
            _ => None,
        };
        if config.sink.is_syslog() && config.syslog.is_none() {
            return Err(ExportError::NoSyslogHeader);
        }
        Ok(Exporter {
            rate: config.rate.map(TokenBucket::new),
            backoff: Backoff::new(Duration::from_millis(100), config.max_backoff),
            config,
            tls,
            conn: None,
            proven: None,
            outage: None,
            stop,
            stats: Arc::new(ExportStats::default()),
            started: Instant::now(),
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// The counters (a handle that outlives the exporter).
    pub fn stats(&self) -> Arc<ExportStats> {
        self.stats.clone()
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn wait(&self, d: Duration) -> bool {
        wait(&self.stop, d)
    }

    /// Delivers every entry of the batch (see the module doc): `Ok` once the sink took
    /// them all, [`ExportError::Stopped`] when a signal came while waiting.
    pub fn send_batch<I, B>(&mut self, entries: I) -> Result<(), ExportError>
    where
        I: IntoIterator<Item = B> + Clone,
        B: AsRef<[u8]>,
    {
        loop {
            if self.conn.is_none() {
                self.connect()?;
            }
            match self.attempt(entries.clone()) {
                Ok((n, oversize)) => {
                    self.stats.entries.fetch_add(n, Ordering::Relaxed);
                    self.stats.oversize.fetch_add(oversize, Ordering::Relaxed);
                    self.stats.batches.fetch_add(1, Ordering::Relaxed);
                    if let Some(p) = &mut self.proven {
                        p.alive_at = Instant::now();
                    }
                    return Ok(());
                }
                Err(Attempt::Stopped) => return Err(ExportError::Stopped),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Transport(e)) => {
                    self.conn = None;
                    self.stats.resent_batches.fetch_add(1, Ordering::Relaxed);
                    self.failed(&e);
                    let up = self.proven.take().map_or(Duration::ZERO, |p| p.stood());
                    let d = self.backoff.after_loss(up);
                    if !self.wait(d) {
                        return Err(ExportError::Stopped);
                    }
                }
            }
        }
    }

    fn failed(&mut self, e: &std::io::Error) {
        match &mut self.outage {
            Some(o) => {
                o.tries += 1;
                tracing::debug!(sink = %self.config.sink, error = %e, tries = o.tries, "sink still unavailable");
            }
            None => {
                tracing::warn!(sink = %self.config.sink, error = %e, "sink unavailable: retrying with backoff, entries stay in the queue");
                self.outage = Some(Outage {
                    since: Instant::now(),
                    tries: 1,
                });
            }
        }
    }

    /// Connects, retrying with backoff until it works or the stop flag is set.
    fn connect(&mut self) -> Result<(), ExportError> {
        loop {
            if self.stopped() {
                return Err(ExportError::Stopped);
            }
            match Conn::connect(&self.config.sink, self.tls.as_ref()) {
                Ok(c) => {
                    self.stats.connections.fetch_add(1, Ordering::Relaxed);
                    match self.outage.take() {
                        Some(o) => tracing::info!(
                            sink = %self.config.sink,
                            kind = c.kind(),
                            tries = o.tries,
                            down_secs = o.since.elapsed().as_secs_f64(),
                            "sink reachable again"
                        ),
                        None => {
                            tracing::info!(sink = %self.config.sink, kind = c.kind(), "connected")
                        }
                    }
                    // the wait starts again at the shortest only once this connection
                    // proved itself (see `Proven`), not here: a receiver that refuses us
                    // accepts and closes at once
                    let now = Instant::now();
                    self.proven = Some(Proven {
                        since: now,
                        alive_at: now,
                    });
                    self.conn = Some(c);
                    return Ok(());
                }
                Err(e) => {
                    if self.config.sink == SinkSpec::Stdout {
                        return Err(ExportError::Stdout(e));
                    }
                    self.failed(&e);
                    let d = self.backoff.next_delay();
                    if !self.wait(d) {
                        return Err(ExportError::Stopped);
                    }
                }
            }
        }
    }

    fn io_err(&self, e: std::io::Error) -> Attempt {
        if self.config.sink == SinkSpec::Stdout {
            Attempt::Fatal(ExportError::Stdout(e))
        } else {
            Attempt::Transport(e)
        }
    }

    /// One try at the batch on the current connection: (entries, oversize).
    fn attempt<I, B>(&mut self, entries: I) -> Result<(u64, u64), Attempt>
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        let mut conn = self
            .conn
            .take()
            .ok_or_else(|| Attempt::Transport(std::io::Error::other("not connected")))?;
        let r = self.attempt_on(&mut conn, entries);
        if r.is_ok() || matches!(r, Err(Attempt::Stopped)) {
            self.conn = Some(conn);
        }
        r
    }

    fn attempt_on<I, B>(&mut self, conn: &mut Conn, entries: I) -> Result<(u64, u64), Attempt>
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        conn.check_alive().map_err(|e| self.io_err(e))?;
        let dgram = conn.is_datagram();
        let (mut n, mut oversize) = (0u64, 0u64);
        for e in entries {
            if let Some(bucket) = &mut self.rate {
                while let Err(w) = bucket.take(self.started.elapsed()) {
                    // what the receiver may see now, before waiting
                    if let Err(e) = conn.flush() {
                        return Err(self.io_err(e));
                    }
                    if !wait(&self.stop, w) {
                        return Err(Attempt::Stopped);
                    }
                }
            }
            self.buf.clear();
            format_entry(&self.config, dgram, e.as_ref(), &mut self.buf);
            n += 1;
            if dgram && self.buf.len() > self.config.max_datagram {
                oversize += 1;
                continue;
            }
            match conn.send(&self.buf) {
                Ok(Sent::Yes) => {
                    self.stats.writes.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Sent::Oversize) => oversize += 1,
                Err(e) => return Err(self.io_err(e)),
            }
        }
        conn.flush().map_err(|e| self.io_err(e))?;
        conn.check_alive().map_err(|e| self.io_err(e))?;
        Ok((n, oversize))
    }
}

/// Sleeps `d` in slices, `false` when the stop flag was set meanwhile.
fn wait(stop: &AtomicBool, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// One entry as the sink gets it: a line (stream sinks), the body (datagrams), a syslog
/// message (octet-counted over TCP).
fn format_entry(config: &ExportConfig, dgram: bool, entry: &[u8], out: &mut Vec<u8>) {
    match (&config.sink, &config.syslog) {
        (SinkSpec::Syslog { proto, .. }, Some(h)) => {
            let body = newline::body(config.newline, entry);
            let now = chrono::Utc::now();
            match proto {
                SyslogProto::Udp => h.push_message(now, &body, out),
                SyslogProto::Tcp => {
                    let mut msg = Vec::with_capacity(body.len() + 80);
                    h.push_message(now, &body, &mut msg);
                    syslog::push_octet_counted(&msg, out);
                }
            }
        }
        _ if dgram => out.extend_from_slice(&newline::body(config.newline, entry)),
        _ => newline::push_line(config.newline, entry, out),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::atomic::AtomicUsize;

    fn config(addr: std::net::SocketAddr) -> ExportConfig {
        ExportConfig {
            sink: SinkSpec::parse(&format!("tcp://{addr}")).unwrap(),
            newline: Newline::default(),
            rate: None,
            syslog: None,
            tls: Default::default(),
            max_datagram: MAX_UDP_PAYLOAD,
            max_backoff: Duration::from_secs(30),
        }
    }

    /// Sends batches of two lines until `stop` is set (a thread), returns the exporter's
    /// counters.
    fn export_until(addr: std::net::SocketAddr, secs: u64) -> Arc<ExportStats> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut ex = Exporter::new(config(addr), stop.clone()).unwrap();
        let stats = ex.stats();
        let stopped = stop.clone();
        let t = std::thread::spawn(move || {
            let lines = [b"one".to_vec(), b"two".to_vec()];
            // (a batch that flows is finished whatever the flag: look at it between them)
            while !stopped.load(Ordering::Relaxed) && ex.send_batch(lines.iter()).is_ok() {}
        });
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        stats
    }

    /// A receiver that accepts and closes at once (it refuses us) is tried less and less
    /// often; before the fix the backoff was reset at every connect: a try every 100 ms.
    #[test]
    fn a_receiver_that_refuses_is_retried_with_growing_delays() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let a = accepted.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                a.fetch_add(1, Ordering::Relaxed);
                // it closes a little later, as one over a network would: batches pass
                // before the close arrives
                std::thread::sleep(Duration::from_millis(20));
                drop(s);
            }
        });
        let stats = export_until(addr, 4);
        let n = accepted.load(Ordering::Relaxed);
        // waits of 50–100, 100–200, 200–400, 400–800, 800–1600, 1600–3200 ms: the 7th
        // try at 3.15 s at the earliest, the 8th after 6 s; every 100 ms would be 30 or more
        assert!((3..=7).contains(&n), "{n} connections in 4 s");
        assert!(
            stats.resent_batches.load(Ordering::Relaxed) >= 2,
            "{}",
            stats.to_json()
        );
    }

    /// After refusals (the wait grew to 0.8–1.6 s), a receiver that takes batches for more
    /// than 2 s: once it goes away, the next try comes after the shortest wait.
    #[test]
    fn a_connection_that_stood_resets_the_wait() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let gap = Arc::new(std::sync::Mutex::new(None));
        let g = gap.clone();
        std::thread::spawn(move || {
            let mut closed_at = None;
            for (i, s) in l.incoming().enumerate() {
                let Ok(s) = s else { continue };
                match i {
                    // four refusals
                    0..=3 => drop(s),
                    // takes everything for 2.5 s, then goes away
                    4 => {
                        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                        let end = Instant::now() + Duration::from_millis(2500);
                        let mut r = BufReader::new(s);
                        let mut line = String::new();
                        while Instant::now() < end {
                            line.clear();
                            let _ = r.read_line(&mut line);
                        }
                        closed_at = Some(Instant::now());
                    }
                    _ => {
                        if let Some(c) = closed_at.take() {
                            *g.lock().unwrap() = Some(c.elapsed());
                        }
                        let mut r = BufReader::new(s);
                        let mut line = String::new();
                        while r.read_line(&mut line).unwrap_or(0) > 0 {
                            line.clear();
                        }
                    }
                }
            }
        });
        let stats = export_until(addr, 6);
        let gap = gap
            .lock()
            .unwrap()
            .expect("no connection after the one that stood");
        // the shortest wait (50–100 ms) plus noticing the close; without the reset the
        // wait would be 0.8–1.6 s or more
        assert!(
            gap < Duration::from_millis(700),
            "{gap:?}; {}",
            stats.to_json()
        );
    }
}
