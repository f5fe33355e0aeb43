//! Live counters of the collector for `/metrics` (Prometheus text format): connections,
//! accepted frames and bytes by type, refusals by reason, and how far the workers are
//! behind. Plain relaxed atomics, bumped a few times per read (never a lock on the data
//! path); the pending-work gauges are computed at scrape time from the live pipelines.
//!
//! This module renders the text itself so the server does not depend on the web crate:
//! the binary registers [`ServerMetrics::render`] with the web UI.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::pipeline::Backlog;
use crate::session::Reason;

/// Kind of listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Tls = 0,
    Plain = 1,
}

const LISTENERS: [&str; 2] = ["tls", "plain"];

/// Every refusal reason, as exported in the `reason` label: the codes of
/// [`Reason::code`] (`-` → `_`), then the TLS handshake failures. A fixed set: every
/// value is exported, zeros included, so rates work from the first scrape.
pub const REFUSAL_REASONS: &[&str] = &[
    "ip_blocked",
    "uuid_blocked",
    "ip_blocked_by_uuid",
    "invalid_uuid",
    "uuid_changed",
    "not_registered",
    "bad_hmac",
    "type_not_accepted",
    "ext_type_not_accepted",
    "bad_meta_header",
    "type_254_first",
    "type_changed",
    "duplicate",
    "ext_sessions_limit",
    "oversize",
    "bad_version",
    "framing",
    "header_timeout",
    "idle_timeout",
    "kicked",
    "stream_limit",
    "worker",
    "too_many_connections",
    "preauth_memory",
    "tls_handshake_failed",
    "tls_handshake_timeout",
];

/// Index of the TLS handshake failure reasons in [`REFUSAL_REASONS`].
const TLS_FAILED: usize = REFUSAL_REASONS.len() - 2;
const TLS_TIMEOUT: usize = REFUSAL_REASONS.len() - 1;

/// The collector's counters. Shared (`Arc`) by the server and whoever renders them.
pub struct ServerMetrics {
    conns_open: [AtomicU64; 2],
    conns_total: [AtomicU64; 2],
    frames: Box<[AtomicU64; 256]>,
    bytes: Box<[AtomicU64; 256]>,
    refusals: Box<[AtomicU64; REFUSAL_REASONS.len()]>,
    store_failures: [AtomicU64; STORE_OPS.len()],
    pipelines: Mutex<HashMap<Uuid, Arc<Backlog>>>,
    /// More series rendered after the server's own (the forwarding engine's).
    extra: Mutex<Vec<MetricsRenderer>>,
}

/// Appends complete Prometheus text lines (with `# HELP` and `# TYPE`) to `out`.
pub type MetricsRenderer = Arc<dyn Fn(&mut String) + Send + Sync>;

/// Store writes the data path does not wait for, counted in `d4_store_failures_total`
/// when they fail (a fixed set: every value is exported, zeros included).
pub const STORE_OPS: &[&str] = &[
    "claim-session",
    "release-session",
    "renew-sessions",
    "clear-sessions",
    "record-error",
    "record-partner-meta",
    "auto-block",
    "refresh",
];

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics {
            conns_open: Default::default(),
            conns_total: Default::default(),
            frames: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
            bytes: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
            refusals: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
            store_failures: Default::default(),
            pipelines: Mutex::new(HashMap::new()),
            extra: Mutex::new(Vec::new()),
        }
    }
}

impl std::fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerMetrics").finish_non_exhaustive()
    }
}

/// The `reason` label of a refusal.
pub fn reason_label(r: &Reason) -> &'static str {
    let code = r.code().as_bytes();
    let same = |l: &str| {
        l.len() == code.len()
            && l.bytes()
                .zip(code.iter())
                .all(|(a, b)| a == *b || (a == b'_' && *b == b'-'))
    };
    REFUSAL_REASONS
        .iter()
        .find(|l| same(l))
        .copied()
        .unwrap_or("framing")
}

impl ServerMetrics {
    pub fn new() -> ServerMetrics {
        ServerMetrics::default()
    }

    /// A connection was accepted.
    pub fn connection_opened(&self, l: Listener) {
        self.conns_open[l as usize].fetch_add(1, Relaxed);
        self.conns_total[l as usize].fetch_add(1, Relaxed);
    }

    /// A connection ended.
    pub fn connection_closed(&self, l: Listener) {
        self.conns_open[l as usize].fetch_sub(1, Relaxed);
    }

    /// Accepted frames (and their payload bytes) of one type.
    #[inline]
    pub fn accepted(&self, d4_type: u8, frames: u64, bytes: u64) {
        self.frames[usize::from(d4_type)].fetch_add(frames, Relaxed);
        self.bytes[usize::from(d4_type)].fetch_add(bytes, Relaxed);
    }

    /// A connection was refused or closed for this reason.
    pub fn refused(&self, r: &Reason) {
        let label = reason_label(r);
        if let Some(i) = REFUSAL_REASONS.iter().position(|l| *l == label) {
            self.refusals[i].fetch_add(1, Relaxed);
        }
    }

    /// A TLS handshake failed (`timed_out`: it did not finish in time).
    pub fn tls_handshake_failed(&self, timed_out: bool) {
        let i = if timed_out { TLS_TIMEOUT } else { TLS_FAILED };
        self.refusals[i].fetch_add(1, Relaxed);
    }

    /// A store write of the kind `op` (one of [`STORE_OPS`]) failed; the caller logs it.
    pub fn store_failure(&self, op: &str) {
        if let Some(i) = STORE_OPS.iter().position(|o| *o == op) {
            self.store_failures[i].fetch_add(1, Relaxed);
        }
    }

    /// Failures counted for a store operation (tests, logs).
    pub fn store_failures(&self, op: &str) -> u64 {
        STORE_OPS
            .iter()
            .position(|o| *o == op)
            .map(|i| self.store_failures[i].load(Relaxed))
            .unwrap_or(0)
    }

    /// Watch a session's pipeline (pending work) until it is done. Finished pipelines are
    /// dropped here too, not only at scrape time: without a scraper the registry stays
    /// bounded by the live sessions.
    pub fn track_pipeline(&self, session: Uuid, pending: Arc<Backlog>) {
        if let Ok(mut p) = self.pipelines.lock() {
            retain_live(&mut p);
            p.insert(session, pending);
        }
    }

    /// Refusals counted for a `reason` label (tests, logs).
    pub fn refusals(&self, label: &str) -> u64 {
        REFUSAL_REASONS
            .iter()
            .position(|l| *l == label)
            .map(|i| self.refusals[i].load(Relaxed))
            .unwrap_or(0)
    }

    /// (frames, bytes, sessions behind, seconds since the most-behind worker was last
    /// caught up) over the live pipelines; finished ones are dropped from the registry.
    pub fn pending(&self, now_ms: u64) -> (u64, u64, u64, u64) {
        let (mut frames, mut bytes, mut behind, mut oldest) = (0, 0, 0, 0);
        if let Ok(mut p) = self.pipelines.lock() {
            retain_live(&mut p);
            for pend in p.values() {
                let f = pend.frames();
                if f == 0 {
                    continue;
                }
                frames += f;
                bytes += pend.bytes();
                behind += 1;
                let since = pend.behind_since_ms();
                if since > 0 {
                    oldest = oldest.max(now_ms.saturating_sub(since) / 1000);
                }
            }
        }
        (frames, bytes, behind, oldest)
    }

    /// Appends the Prometheus text of every counter.
    /// Adds series rendered after the server's own at every scrape.
    pub fn add_renderer(&self, r: MetricsRenderer) {
        if let Ok(mut e) = self.extra.lock() {
            e.push(r);
        }
    }

    pub fn render(&self, out: &mut String) {
        self.render_own(out);
        let extra: Vec<MetricsRenderer> = self.extra.lock().map(|e| e.clone()).unwrap_or_default();
        for r in extra {
            r(out);
        }
    }

    fn render_own(&self, out: &mut String) {
        head(
            out,
            "d4_connections",
            "gauge",
            "Sensor connections open now, by listener (tls, plain).",
        );
        for (i, l) in LISTENERS.iter().enumerate() {
            let v = self.conns_open[i].load(Relaxed);
            let _ = writeln!(out, "d4_connections{{listener=\"{l}\"}} {v}");
        }
        head(
            out,
            "d4_connections_total",
            "counter",
            "Sensor connections accepted since start, by listener.",
        );
        for (i, l) in LISTENERS.iter().enumerate() {
            let v = self.conns_total[i].load(Relaxed);
            let _ = writeln!(out, "d4_connections_total{{listener=\"{l}\"}} {v}");
        }
        head(
            out,
            "d4_frames_accepted_total",
            "counter",
            "Frames accepted since start, by D4 type.",
        );
        let mut bytes_lines = String::new();
        for t in 0..256usize {
            let f = self.frames[t].load(Relaxed);
            if f == 0 {
                continue;
            }
            let b = self.bytes[t].load(Relaxed);
            let _ = writeln!(out, "d4_frames_accepted_total{{type=\"{t}\"}} {f}");
            let _ = writeln!(bytes_lines, "d4_bytes_accepted_total{{type=\"{t}\"}} {b}");
        }
        head(
            out,
            "d4_bytes_accepted_total",
            "counter",
            "Payload bytes of the frames accepted since start, by D4 type.",
        );
        out.push_str(&bytes_lines);
        head(
            out,
            "d4_refused_total",
            "counter",
            "Connections refused or closed by a rule since start, by reason.",
        );
        for (i, r) in REFUSAL_REASONS.iter().enumerate() {
            let v = self.refusals[i].load(Relaxed);
            let _ = writeln!(out, "d4_refused_total{{reason=\"{r}\"}} {v}");
        }
        head(
            out,
            "d4_store_failures_total",
            "counter",
            "Store writes that failed since start (logged each time), by operation.",
        );
        for (i, op) in STORE_OPS.iter().enumerate() {
            let v = self.store_failures[i].load(Relaxed);
            let _ = writeln!(out, "d4_store_failures_total{{op=\"{op}\"}} {v}");
        }
        let now_ms = now_ms();
        let (frames, bytes, behind, oldest) = self.pending(now_ms);
        let gauges = [
            (
                "d4_worker_pending_frames",
                "Frames accepted (journaled or being journaled) that the workers have not handled yet.",
                frames,
            ),
            (
                "d4_worker_pending_bytes",
                "Wire bytes of the frames the workers have not handled yet.",
                bytes,
            ),
            (
                "d4_worker_sessions_behind",
                "Sessions whose worker has frames pending.",
                behind,
            ),
            (
                "d4_worker_lag_seconds",
                "Seconds since the most-behind session's worker last had nothing pending (an upper bound of the age of the oldest pending frame; 0 when no worker is behind).",
                oldest,
            ),
        ];
        for (name, help, v) in gauges {
            head(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {v}");
        }
    }
}

/// Drops the pipelines only the registry still holds (their session and thread are gone)
/// and that have nothing pending.
fn retain_live(p: &mut HashMap<Uuid, Arc<Backlog>>) {
    p.retain(|_, pend| Arc::strong_count(pend) > 1 || pend.frames() > 0);
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_label() {
        let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let all = [
            Reason::IpBlocked(ip),
            Reason::UuidBlocked,
            Reason::IpBlockedByUuid(ip),
            Reason::InvalidUuid,
            Reason::UuidChanged {
                was: String::new(),
                now: String::new(),
            },
            Reason::NotRegistered,
            Reason::BadHmac,
            Reason::TypeNotAccepted(1),
            Reason::ExtTypeNotAccepted(String::new()),
            Reason::BadMetaHeader(String::new()),
            Reason::Type254First,
            Reason::TypeChanged { from: 1, to: 2 },
            Reason::Duplicate(1),
            Reason::TooManyExtSessions(4),
            Reason::Oversize {
                declared: 2,
                max: 1,
            },
            Reason::BadVersion(2),
            Reason::Framing(String::new()),
            Reason::HeaderTimeout(1),
            Reason::IdleTimeout(1),
            Reason::Kicked,
            Reason::StreamLimit(1),
            Reason::Worker(String::new()),
            Reason::TooManyConnections,
            Reason::PreAuthMemory,
        ];
        let mut seen = std::collections::HashSet::new();
        for r in &all {
            let l = reason_label(r);
            assert_eq!(l, r.code().replace('-', "_"), "{r:?}");
            assert!(seen.insert(l), "{l} twice");
        }
        assert_eq!(seen.len() + 2, REFUSAL_REASONS.len());
    }

    #[test]
    fn finished_pipelines_dropped_without_a_scrape() {
        let m = ServerMetrics::new();
        let live = Arc::new(Backlog::default());
        m.track_pipeline(Uuid::new_v4(), live.clone());
        for _ in 0..100 {
            // A session that ended: the registry holds its only reference.
            m.track_pipeline(Uuid::new_v4(), Arc::new(Backlog::default()));
        }
        // The live one and the last finished one (dropped at the next track or scrape).
        assert_eq!(m.pipelines.lock().unwrap().len(), 2);
        drop(live);
        assert_eq!(m.pending(now_ms()), (0, 0, 0, 0));
        assert!(m.pipelines.lock().unwrap().is_empty());
    }

    #[test]
    fn counts_and_renders() {
        let m = ServerMetrics::new();
        m.connection_opened(Listener::Plain);
        m.connection_opened(Listener::Plain);
        m.connection_closed(Listener::Plain);
        m.connection_opened(Listener::Tls);
        m.accepted(3, 2, 100);
        m.accepted(3, 1, 50);
        m.accepted(254, 1, 7);
        m.refused(&Reason::BadHmac);
        m.refused(&Reason::BadHmac);
        m.refused(&Reason::Oversize {
            declared: 2,
            max: 1,
        });
        m.tls_handshake_failed(true);
        assert_eq!(m.refusals("bad_hmac"), 2);
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "d4_connections{listener=\"plain\"} 1",
            "d4_connections{listener=\"tls\"} 1",
            "d4_connections_total{listener=\"plain\"} 2",
            "d4_frames_accepted_total{type=\"3\"} 3",
            "d4_bytes_accepted_total{type=\"3\"} 150",
            "d4_frames_accepted_total{type=\"254\"} 1",
            "d4_refused_total{reason=\"bad_hmac\"} 2",
            "d4_refused_total{reason=\"oversize\"} 1",
            "d4_refused_total{reason=\"kicked\"} 0",
            "d4_refused_total{reason=\"tls_handshake_timeout\"} 1",
            "d4_worker_pending_frames 0",
            "d4_worker_lag_seconds 0",
            "# TYPE d4_refused_total counter",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in\n{out}");
        }
        assert!(!out.contains("type=\"1\""), "types never seen are left out");
        // Every sample has a HELP and a TYPE line.
        for l in out.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(out.contains(&format!("# TYPE {name} ")), "{name}");
            assert!(out.contains(&format!("# HELP {name} ")), "{name}");
        }
    }

    /// A worker that handles nothing until told to: the lag gauges see the pending
    /// frames and their age, then zero once it catches up.
    #[test]
    fn pending_work_and_lag() {
        use crate::pipeline::{HandlerFactory, Pipeline, PipelineConfig, StreamHandler};
        use std::sync::mpsc;

        struct Gated(Mutex<Option<mpsc::Receiver<()>>>);
        struct GatedHandler(mpsc::Receiver<()>);
        impl StreamHandler for GatedHandler {
            fn handle(&mut self, _: u64, _: &d4_proto::Frame) -> Result<(), String> {
                self.0
                    .recv_timeout(std::time::Duration::from_secs(20))
                    .map_err(|e| e.to_string())
            }
            fn flush(&mut self) -> Result<(), String> {
                Ok(())
            }
            fn tick(&mut self) -> Result<(), String> {
                Ok(())
            }
            fn close(&mut self) -> Result<(), String> {
                Ok(())
            }
        }
        impl HandlerFactory for Gated {
            fn open(
                &self,
                _: Uuid,
                _: u8,
                _: Uuid,
                _: &[d4_proto::Frame],
                _: Arc<dyn d4_worker::FileLog>,
            ) -> Result<Box<dyn StreamHandler>, String> {
                let rx = self.0.lock().unwrap().take().ok_or("opened twice")?;
                Ok(Box::new(GatedHandler(rx)))
            }
        }

        let dir = tempfile::tempdir().unwrap();
        let (go, rx) = mpsc::channel();
        let cfg = PipelineConfig {
            journal_dir: dir.path().to_path_buf(),
            segment_bytes: 1 << 20,
            fsync: false,
            direct: true,
            on_error: None,
            tap: None,
        };
        let session = Uuid::new_v4();
        let p = Pipeline::start(&cfg, session, Arc::new(Gated(Mutex::new(Some(rx))))).unwrap();
        let m = ServerMetrics::new();
        m.track_pipeline(session, p.backlog().clone());
        let enc = d4_proto::Encoder::new(Uuid::new_v4(), b"k", 3);
        let mut wire_len = 0;
        for i in 0..3u64 {
            let wire = bytes::Bytes::from(enc.encode(i, b"line\n").unwrap());
            let f = d4_proto::Decoder::new()
                .decode(&mut wire.clone())
                .unwrap()
                .unwrap();
            wire_len += f.wire_len() as u64;
            assert!(p.send(f));
        }
        let t0 = now_ms();
        let (frames, bytes, behind, _) = m.pending(t0);
        assert_eq!((frames, bytes, behind), (3, wire_len, 1));
        let (_, _, _, lag) = m.pending(t0 + 5_000);
        assert!((4..=6).contains(&lag), "lag {lag}");
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.lines().any(|l| l == "d4_worker_pending_frames 3"),
            "{out}"
        );
        // The worker catches up: everything back to zero, the finished pipeline dropped.
        for _ in 0..3 {
            go.send(()).unwrap();
        }
        let h = p.close().unwrap();
        h.join().unwrap();
        assert_eq!(m.pending(now_ms()), (0, 0, 0, 0));
        assert!(m.pipelines.lock().unwrap().is_empty());
    }
}
