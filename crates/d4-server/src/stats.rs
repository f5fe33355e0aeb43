//! Per-day stats aggregated in memory and flushed to the store in batches (one
//! `record_activity` call per flush, not one per frame).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use d4_store::{ActivityBatch, SeenUpdate, Sensors, StatsDelta};
use uuid::Uuid;

#[derive(Default)]
struct Seen {
    ext: Option<String>,
    time: u64,
    connections: u32,
}

#[derive(Default)]
struct Inner {
    counts: HashMap<(u32, Uuid, IpAddr, u8), (u64, u64)>,
    seen: HashMap<(Uuid, IpAddr, u8), Seen>,
}

/// The aggregator shared by every session.
#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
    frames_since_flush: AtomicU64,
    pub notify: tokio::sync::Notify,
    flush_frames: u64,
    metrics: Option<Arc<crate::metrics::ServerMetrics>>,
}

impl Stats {
    pub fn new(flush_frames: u64) -> Stats {
        Stats {
            flush_frames: flush_frames.max(1),
            ..Default::default()
        }
    }

    /// Also counts the accepted frames in `metrics` (`/metrics`).
    pub fn with_metrics(flush_frames: u64, metrics: Arc<crate::metrics::ServerMetrics>) -> Stats {
        Stats {
            metrics: Some(metrics),
            ..Stats::new(flush_frames)
        }
    }

    /// Counts accepted frames of one session.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &self,
        now: u64,
        uuid: Uuid,
        ip: IpAddr,
        d4_type: u8,
        ext: Option<&str>,
        frames: u64,
        bytes: u64,
    ) {
        if frames == 0 {
            return;
        }
        if let Some(m) = &self.metrics {
            m.accepted(d4_type, frames, bytes);
        }
        let day = d4_store::day_of(now);
        if let Ok(mut g) = self.inner.lock() {
            let c = g.counts.entry((day, uuid, ip, d4_type)).or_default();
            c.0 += frames;
            c.1 += bytes;
            let s = g.seen.entry((uuid, ip, d4_type)).or_default();
            s.time = s.time.max(now);
            if let Some(e) = ext {
                if s.ext.as_deref() != Some(e) {
                    s.ext = Some(e.to_owned());
                }
            }
        }
        let n = self.frames_since_flush.fetch_add(frames, Ordering::Relaxed) + frames;
        if n >= self.flush_frames {
            self.notify.notify_one();
        }
    }

    /// A connection of `uuid` from `ip` authenticated: one entry of the sensor's IP history
    /// (recorded once per connection, whatever the frames and reads that follow).
    pub fn connected(&self, now: u64, uuid: Uuid, ip: IpAddr, d4_type: u8) {
        if let Ok(mut g) = self.inner.lock() {
            let s = g.seen.entry((uuid, ip, d4_type)).or_default();
            s.time = s.time.max(now);
            s.connections = s.connections.saturating_add(1);
        }
    }

    /// Takes what was aggregated since the last call.
    pub fn take(&self) -> ActivityBatch {
        self.frames_since_flush.store(0, Ordering::Relaxed);
        let inner = match self.inner.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(_) => return ActivityBatch::default(),
        };
        ActivityBatch {
            stats: inner
                .counts
                .into_iter()
                .map(|((day, uuid, ip, d4_type), (frames, bytes))| StatsDelta {
                    day,
                    uuid,
                    ip,
                    d4_type,
                    frames,
                    bytes,
                })
                .collect(),
            seen: inner
                .seen
                .into_iter()
                .map(|((uuid, ip, d4_type), s)| SeenUpdate {
                    uuid,
                    ip,
                    d4_type,
                    ext: s.ext,
                    time: s.time,
                    connections: s.connections,
                })
                .collect(),
        }
    }

    /// Flushes to the store; on error the batch is logged and dropped (stats are not
    /// worth blocking the data path for).
    pub async fn flush(&self, store: &dyn Sensors) {
        let batch = self.take();
        if batch.is_empty() {
            return;
        }
        if let Err(e) = store.record_activity(batch).await {
            tracing::warn!(error = %e, "could not flush stats to the store");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates() {
        let s = Stats::new(10);
        let u = Uuid::new_v4();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        s.add(1_700_000_000, u, ip, 3, None, 2, 100);
        s.add(1_700_000_001, u, ip, 3, None, 1, 50);
        let b = s.take();
        assert_eq!(b.stats.len(), 1);
        assert_eq!((b.stats[0].frames, b.stats[0].bytes), (3, 150));
        assert_eq!(b.stats[0].day, 20231114);
        assert_eq!(b.seen[0].time, 1_700_000_001);
        assert!(s.take().is_empty());
    }

    #[test]
    fn connections_are_counted_once_each_and_ext_is_kept() {
        let s = Stats::new(10);
        let u = Uuid::new_v4();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        s.connected(100, u, ip, 2);
        s.add(100, u, ip, 2, None, 1, 10);
        s.add(101, u, ip, 254, Some("ja3-jl"), 3, 30);
        s.add(102, u, ip, 254, None, 1, 10);
        s.connected(103, u, ip, 2);
        let mut b = s.take();
        b.seen.sort_by_key(|x| x.d4_type);
        assert_eq!(b.seen.len(), 2);
        assert_eq!((b.seen[0].d4_type, b.seen[0].connections), (2, 2));
        assert_eq!(b.seen[0].time, 103);
        assert_eq!(b.seen[1].ext.as_deref(), Some("ja3-jl"));
        assert_eq!(b.seen[1].connections, 0);
    }
}
