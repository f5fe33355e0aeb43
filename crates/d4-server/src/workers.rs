//! Glue between the pipelines and `d4-worker`: the per-type workers as [`FrameSink`]s,
//! and the workers' [`QueueSink`] pushing into the store's analyzer queues.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use d4_proto::Frame;
use d4_store::{QueueEntry, QueueKind, Store};
use d4_worker::{QueueSink, QueueTarget, SinkError, Worker, WorkerSet};
use uuid::Uuid;

use crate::pipeline::{FrameSink, SinkFactory};

type QueueCache = HashMap<(QueueKind, Uuid), (Vec<Uuid>, Instant)>;

/// Pushes worker output into the store's analyzer queues (blocking: called from the
/// pipeline and gzip threads, never from the async runtime's workers).
pub struct StoreQueueSink {
    store: Arc<dyn Store>,
    rt: tokio::runtime::Handle,
    cache: Mutex<QueueCache>,
}

impl StoreQueueSink {
    pub fn new(store: Arc<dyn Store>, rt: tokio::runtime::Handle) -> StoreQueueSink {
        StoreQueueSink {
            store,
            rt,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn queues(&self, kind: QueueKind, sensor: Uuid) -> Result<Vec<Uuid>, SinkError> {
        let key = (kind, sensor);
        if let Ok(c) = self.cache.lock() {
            if let Some((q, t)) = c.get(&key) {
                if t.elapsed() < Duration::from_secs(1) {
                    return Ok(q.clone());
                }
            }
        }
        let q = self
            .rt
            .block_on(self.store.queues_for(key.0.clone(), sensor))
            .map_err(|e| SinkError::Backend(e.to_string()))?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, (q.clone(), Instant::now()));
        }
        Ok(q)
    }
}

impl QueueSink for StoreQueueSink {
    fn push(&self, target: QueueTarget<'_>, entries: Vec<String>) -> Result<(), SinkError> {
        if entries.is_empty() {
            return Ok(());
        }
        let kind = match target.ext_type {
            Some(ext) => QueueKind::Ext(ext.to_string()),
            None => QueueKind::Type(target.d4_type),
        };
        let queues = self.queues(kind, target.sensor)?;
        if queues.is_empty() {
            return Ok(());
        }
        let entries = entries
            .into_iter()
            .map(|e| QueueEntry::from_sensor(target.sensor, e.into_bytes()))
            .collect();
        self.rt
            .block_on(self.store.push_entries(queues, entries, d4_store::now()))
            .map(|_| ())
            .map_err(|e| SinkError::Backend(e.to_string()))
    }
}

/// Opens a `d4-worker` worker per session.
pub struct WorkerFactory {
    pub set: Arc<WorkerSet>,
}

struct WorkerSink {
    w: Worker,
    /// Queue entries pushed and files saved, at the last flush.
    committed: (u64, u64),
}

impl WorkerSink {
    fn commits(&self) -> (u64, u64) {
        let s = self.w.stats();
        (s.queued, s.files_saved)
    }
}

impl FrameSink for WorkerSink {
    fn handle(&mut self, frame: &Frame) -> Result<(), String> {
        self.w
            .handle(frame, SystemTime::now())
            .map_err(|e| e.to_string())
    }
    fn flush(&mut self) -> Result<(), String> {
        self.committed = self.commits();
        self.w.flush().map_err(|e| e.to_string())
    }
    fn must_ack(&self) -> bool {
        self.commits() != self.committed
    }
    fn tick(&mut self) -> Result<(), String> {
        self.w.tick(SystemTime::now()).map_err(|e| e.to_string())
    }
    fn close(&mut self) -> Result<(), String> {
        self.w.close(SystemTime::now()).map_err(|e| e.to_string())
    }
}

impl SinkFactory for WorkerFactory {
    fn open(
        &self,
        uuid: Uuid,
        d4_type: u8,
        _session: Uuid,
        meta: &[Frame],
    ) -> Result<Box<dyn FrameSink>, String> {
        let t = if d4_type == d4_proto::types::EXTENDED {
            d4_proto::types::META_HEADER
        } else {
            d4_type
        };
        let mut w = self.set.worker(uuid, t).map_err(|e| e.to_string())?;
        for f in meta {
            w.handle(f, SystemTime::now()).map_err(|e| e.to_string())?;
        }
        let mut sink = WorkerSink {
            w,
            committed: (0, 0),
        };
        sink.committed = sink.commits();
        Ok(Box::new(sink))
    }
}
