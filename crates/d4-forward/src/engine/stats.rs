//! A rule's counters on this server: updated by its reader and senders, persisted in
//! their state files (so they survive restarts), reported to the store and rendered on
//! `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use d4_store::ForwardStats;

use super::state::SentState;

#[derive(Default)]
pub struct RuleCounters {
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    pub duplicates: AtomicU64,
    /// Spool frames confirmed (left the spool).
    pub consumed: AtomicU64,
    /// Frames put in the spool.
    pub spooled_total: AtomicU64,
    pub spooled_bytes: AtomicU64,
    pub filtered: AtomicU64,
    pub dropped: AtomicU64,
    pub lag: AtomicU64,
    /// Connected streams.
    pub connected: AtomicU64,
    pub last_forward: AtomicU64,
    pub last_error: Mutex<Option<(String, u64)>>,
    /// Who set `last_error` (see [`RuleCounters::error_from`]).
    pub error_source: AtomicU64,
    /// Failed spool writes (each abandons a pass; the frames are read again).
    pub spool_errors: AtomicU64,
}

impl RuleCounters {
    /// Adds what a stream's `sent.json` says was done before this run.
    pub fn add_sent(&self, s: &SentState) {
        self.frames.fetch_add(s.frames, Relaxed);
        self.bytes.fetch_add(s.bytes, Relaxed);
        self.duplicates.fetch_add(s.duplicates, Relaxed);
        self.consumed.fetch_add(s.consumed, Relaxed);
        if let Some(t) = s.last_forward_time {
            self.last_forward.fetch_max(t, Relaxed);
        }
    }

    pub fn error(&self, msg: String, now: u64) {
        self.error_from(0, msg, now);
    }

    /// The last error, set by `source` (a sender's id; 0: anyone else).
    pub fn error_from(&self, source: u64, msg: String, now: u64) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some((msg, now));
            self.error_source.store(source, Relaxed);
        }
    }

    /// Forgets the last error if `source` set it (its problem is over: a sender whose
    /// connection carried a confirmed batch again).
    pub fn clear_error_from(&self, source: u64) {
        if let Ok(mut e) = self.last_error.lock() {
            if e.is_some() && source != 0 && self.error_source.load(Relaxed) == source {
                *e = None;
            }
        }
    }

    pub fn snapshot(&self) -> ForwardStats {
        let spooled = self.spooled_total.load(Relaxed);
        let consumed = self.consumed.load(Relaxed);
        let last_error = self.last_error.lock().ok().and_then(|e| e.clone());
        let last_forward = self.last_forward.load(Relaxed);
        ForwardStats {
            frames_forwarded: self.frames.load(Relaxed),
            bytes_forwarded: self.bytes.load(Relaxed),
            frames_spooled: spooled.saturating_sub(consumed),
            bytes_spooled: self.spooled_bytes.load(Relaxed),
            frames_filtered: self.filtered.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            spool_errors: self.spool_errors.load(Relaxed),
            lag_secs: self.lag.load(Relaxed),
            connected: self.connected.load(Relaxed) > 0,
            last_error_time: last_error.as_ref().map(|e| e.1),
            last_error: last_error.map(|e| e.0),
            last_forward_time: (last_forward > 0).then_some(last_forward),
        }
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `d4_forward_*{rule}` series of these rules, in the Prometheus text format.
pub fn render(rules: &[(String, ForwardStats)], out: &mut String) {
    type Get = fn(&ForwardStats) -> u64;
    let series: [(&str, &str, &str, Get); 11] = [
        (
            "d4_forward_frames_total",
            "counter",
            "Frames written to the partner (prologues and resends included).",
            |s| s.frames_forwarded,
        ),
        (
            "d4_forward_bytes_total",
            "counter",
            "Payload bytes written to the partner.",
            |s| s.bytes_forwarded,
        ),
        (
            "d4_forward_spooled_bytes",
            "gauge",
            "Bytes waiting in the rule's spool.",
            |s| s.bytes_spooled,
        ),
        (
            "d4_forward_filtered_total",
            "counter",
            "Frames read from the journal that the rule's filter did not take.",
            |s| s.frames_filtered,
        ),
        (
            "d4_forward_duplicates_total",
            "counter",
            "Frames sent again after a reconnect or a restart.",
            |s| s.duplicates,
        ),
        (
            "d4_forward_lag_seconds",
            "gauge",
            "Age of the newest frame the rule read; 0 when caught up.",
            |s| s.lag_secs,
        ),
        (
            "d4_forward_connected",
            "gauge",
            "1 when the partner is connected.",
            |s| u64::from(s.connected),
        ),
        (
            "d4_forward_spooled_frames",
            "gauge",
            "Frames waiting in the rule's spool.",
            |s| s.frames_spooled,
        ),
        (
            "d4_forward_dropped_total",
            "counter",
            "Lines or packets a privacy transform removed or could not handle (not sent).",
            |s| s.dropped,
        ),
        (
            "d4_forward_spool_errors_total",
            "counter",
            "Spool writes that failed (the rule reads the same frames again once one succeeds).",
            |s| s.spool_errors,
        ),
        (
            "d4_forward_last_error_time_seconds",
            "gauge",
            "Unix time of the rule's last error (0: none); the text is in `d4 forward show`.",
            |s| s.last_error_time.unwrap_or(0),
        ),
    ];
    for (name, kind, help, get) in series {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (rule, s) in rules {
            let _ = writeln!(out, "{name}{{rule=\"{}\"}} {}", label(rule), get(s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_and_render() {
        let c = RuleCounters::default();
        c.add_sent(&SentState {
            frames: 5,
            bytes: 50,
            duplicates: 1,
            consumed: 3,
            consumed_bytes: 30,
            unconfirmed: 0,
            last_forward_time: Some(7),
            unpublished: Default::default(),
        });
        c.spooled_total.store(4, Relaxed);
        c.connected.store(1, Relaxed);
        c.spool_errors.store(2, Relaxed);
        let s = c.snapshot();
        assert_eq!(s.spool_errors, 2);
        assert_eq!(
            (s.frames_forwarded, s.frames_spooled, s.connected),
            (5, 1, true)
        );
        let mut out = String::new();
        render(&[("r\"1".into(), s)], &mut out);
        assert!(
            out.contains("d4_forward_frames_total{rule=\"r\\\"1\"} 5"),
            "{out}"
        );
        assert!(out.contains("d4_forward_connected{rule=\"r\\\"1\"} 1"));
        assert!(out.contains("# TYPE d4_forward_lag_seconds gauge"));
        assert!(
            out.contains("d4_forward_spool_errors_total{rule=\"r\\\"1\"} 2"),
            "{out}"
        );
    }
}
