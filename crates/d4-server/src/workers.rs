//! Glue between the pipelines and `d4-worker`: the per-type workers as [`FrameSink`]s,
//! and the workers' [`QueueSink`] pushing into the store's analyzer queues.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use d4_proto::Frame;
use d4_store::{PushKey, QueueEntry, QueueKind, QueuePush, Store};
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
        let now = d4_store::now();
        match crate::pipeline::position::next() {
            // Handling a journaled frame: at most once per position, also across a crash
            // between this commit and the journal acknowledgement.
            Some((journal, pos)) => {
                let out = self
                    .rt
                    .block_on(self.store.push_batch(
                        Some(PushKey {
                            producer: journal,
                            seq: pos,
                        }),
                        vec![QueuePush { queues, entries }],
                        now,
                    ))
                    .map_err(|e| SinkError::Backend(e.to_string()))?;
                if out.is_none() {
                    tracing::debug!(%journal, pos, "queue entries pushed before a crash: skipped");
                }
                crash_hook();
                Ok(())
            }
            None => self
                .rt
                .block_on(self.store.push_entries(queues, entries, now))
                .map(|_| ())
                .map_err(|e| SinkError::Backend(e.to_string())),
        }
    }
}

/// Test-only crash hook: with `D4_TEST_CRASH_AFTER_PUSH=N` in the environment the process
/// aborts right after its `N`-th queue push of a journaled frame has been committed, before
/// the journal acknowledgement (the crash tests use it to hit that window on purpose).
fn crash_hook() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let at = AT.get_or_init(|| {
        std::env::var("D4_TEST_CRASH_AFTER_PUSH")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(at) = at {
        if COUNT.fetch_add(1, Ordering::AcqRel) + 1 == *at {
            tracing::error!("D4_TEST_CRASH_AFTER_PUSH reached: aborting (test hook)");
            std::process::abort();
        }
    }
}

impl StoreQueueSink {
    /// Forgets the store's record of a retired journal.
    pub fn retire(&self, journal: Uuid) {
        if let Err(e) = self.rt.block_on(self.store.forget_producer(journal)) {
            tracing::warn!(%journal, error = %e, "could not drop the journal's queue marker");
        }
    }
}

/// Opens a `d4-worker` worker per session.
pub struct WorkerFactory {
    pub set: Arc<WorkerSet>,
    /// Where retired journals' queue markers are forgotten.
    pub queues: Option<Arc<StoreQueueSink>>,
}

struct WorkerSink {
    w: Worker,
    /// Files saved (rotations), at the last flush.
    committed: u64,
}

impl WorkerSink {
    /// Rotations so far. Queue pushes need no prompt acknowledgement (they are recorded
    /// per journal position, see `push_batch`), but a rotation closes the file
    /// the last acknowledgement names, so it is acknowledged at once.
    fn commits(&self) -> u64 {
        self.w.stats().files_saved
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
    fn open_file(&self) -> Option<(&std::path::Path, u64)> {
        self.w.open_file()
    }
    fn carry(&self) -> u64 {
        self.w.carry()
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
        let mut sink = WorkerSink { w, committed: 0 };
        sink.committed = sink.commits();
        Ok(Box::new(sink))
    }
    fn retire(&self, session: Uuid) {
        if let Some(q) = &self.queues {
            q.retire(session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{cut_uncommitted, Journal};
    use crate::pipeline::{position, replay_leftovers, ReplayKeys};
    use bytes::Bytes;
    use d4_proto::{Decoder, Encoder};
    use d4_store::{EmbeddedStore, QueueConfig};
    use d4_worker::WorkerConfig;

    fn frame(enc: &Encoder, i: u64) -> Frame {
        let mut b = Bytes::from(enc.encode(i, format!("line {i}\n").as_bytes()).unwrap());
        Decoder::new().decode(&mut b).unwrap().unwrap()
    }

    fn lines_on_disk(dir: &std::path::Path) -> Vec<String> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.to_string_lossy().contains(".syslog.txt") {
                    files.push(p);
                }
            }
        }
        files.sort();
        let mut out = String::new();
        for f in files {
            assert!(!f.to_string_lossy().ends_with(".gz"), "gzip is off");
            out.push_str(&std::fs::read_to_string(&f).unwrap());
        }
        out.lines().map(str::to_owned).collect()
    }

    /// A crash between a frame's queue push and its journal acknowledgement: the replay
    /// pushes nothing twice and the file holds every line once (the bytes written for the
    /// unacknowledged frame are cut first).
    #[test]
    fn replay_skips_pushes_made_before_the_crash() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let jdir = tmp.path().join("journal");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&tmp.path().join("db")).unwrap());
        let q = QueueConfig {
            uuid: Uuid::new_v4(),
            kind: QueueKind::Type(3),
            description: "t".into(),
            max_size: 1000,
            sensors: None,
        };
        rt.block_on(store.create_queue(q.clone(), 1)).unwrap();
        let sensor = Uuid::new_v4();
        let session = Uuid::new_v4();
        let enc = Encoder::new(sensor, b"k", 3);
        {
            // the first run: frames 0 and 1 handled (pushed, written), only 0 acknowledged
            let sink = Arc::new(StoreQueueSink::new(store.clone(), rt.handle().clone()));
            let set = Arc::new(WorkerSet::new(WorkerConfig::new(&data), sink.clone()).unwrap());
            let f = WorkerFactory {
                set: set.clone(),
                queues: Some(sink),
            };
            let mut j = Journal::create(&jdir, session, 1 << 20).unwrap();
            let mut w = f.open(sensor, 3, session, &[]).unwrap();
            let mut ends = Vec::new();
            for i in 0..3 {
                ends.push(j.append(&frame(&enc, i)).unwrap());
            }
            j.sync().unwrap();
            for i in 0..2u64 {
                position::with(session, i, || w.handle(&frame(&enc, i))).unwrap();
                w.flush().unwrap();
                if i == 0 {
                    let at = crate::journal::AckPoint {
                        off: ends[0],
                        seq: 1,
                        skip: 0,
                    };
                    j.ack(at, w.open_file()).unwrap();
                }
            }
            // crash: the worker is dropped without closing, nothing else acknowledged
            std::mem::forget(w);
            drop(j);
        }
        let entries = |store: &Arc<dyn Store>| {
            rt.block_on(store.queue_sample(q.uuid, 100))
                .unwrap()
                .into_iter()
                .rev()
                .map(|e| e.text().into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(entries(&store), ["line 0", "line 1"]);
        // restart
        assert_eq!(cut_uncommitted(&jdir).unwrap(), "line 1\n".len() as u64);
        let sink = Arc::new(StoreQueueSink::new(store.clone(), rt.handle().clone()));
        let mut cfg = WorkerConfig::new(&data);
        cfg.gzip = false;
        let set = Arc::new(WorkerSet::new(cfg, sink.clone()).unwrap());
        set.recover().unwrap();
        let f = WorkerFactory {
            set: set.clone(),
            queues: Some(sink),
        };
        assert_eq!(
            replay_leftovers(&jdir, &f, &mut ReplayKeys::new(b"k", [])).unwrap(),
            2
        );
        set.shutdown();
        assert_eq!(
            entries(&store),
            ["line 0", "line 1", "line 2"],
            "no entry twice"
        );
        // (two files: the first run's, cut, and the replay's)
        let mut on_disk = lines_on_disk(&data);
        on_disk.sort();
        assert_eq!(on_disk, ["line 0", "line 1", "line 2"]);
        // the journal and its marker are gone
        assert!(crate::journal::recover(&jdir).unwrap().is_empty());
        assert_eq!(rt.block_on(store.pushed_seq(session)).unwrap(), None);
    }

    /// Lines split across frames: the worker's partial line lives in memory only, so the
    /// journal is acknowledged up to the frame holding its start; after a crash the replay
    /// feeds it again from there and every line is whole, once.
    #[test]
    fn replay_resumes_inside_the_frame_holding_a_partial_line() {
        use crate::journal::RecentFrames;
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let jdir = tmp.path().join("journal");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&tmp.path().join("db")).unwrap());
        let q = QueueConfig {
            uuid: Uuid::new_v4(),
            kind: QueueKind::Type(3),
            description: "t".into(),
            max_size: 1000,
            sensors: None,
        };
        rt.block_on(store.create_queue(q.clone(), 1)).unwrap();
        let sensor = Uuid::new_v4();
        let session = Uuid::new_v4();
        let enc = Encoder::new(sensor, b"k", 3);
        let payloads: [&[u8]; 5] = [b"alpha\nbr", b"av", b"o\ncharlie\nde", b"lta\n", b"echo\n"];
        let frame = |i: usize| {
            let mut b = Bytes::from(enc.encode(i as u64, payloads[i]).unwrap());
            Decoder::new().decode(&mut b).unwrap().unwrap()
        };
        {
            // the first run handles and acknowledges frames 0..3 like the pipeline does,
            // then dies holding "de" of "delta" in memory
            let sink = Arc::new(StoreQueueSink::new(store.clone(), rt.handle().clone()));
            let set = Arc::new(WorkerSet::new(WorkerConfig::new(&data), sink.clone()).unwrap());
            let f = WorkerFactory {
                set: set.clone(),
                queues: Some(sink),
            };
            let mut j = Journal::create(&jdir, session, 1 << 20).unwrap();
            let mut w = f.open(sensor, 3, session, &[]).unwrap();
            let mut recent = RecentFrames::default();
            for i in 0..5 {
                j.append(&frame(i)).unwrap();
            }
            j.sync().unwrap();
            let mut end = 0;
            for i in 0..3usize {
                let fr = frame(i);
                position::with(session, i as u64, || w.handle(&fr)).unwrap();
                w.flush().unwrap();
                end += fr.wire_len() as u64;
                recent.push(
                    end - fr.wire_len() as u64,
                    i as u64,
                    fr.payload.len() as u64,
                    0,
                );
                let at = recent.resume(end, i as u64 + 1, w.carry());
                j.ack(at, w.open_file()).unwrap();
            }
            assert_eq!(w.carry(), 2);
            std::mem::forget(w);
            drop(j);
        }
        cut_uncommitted(&jdir).unwrap();
        let sink = Arc::new(StoreQueueSink::new(store.clone(), rt.handle().clone()));
        let mut cfg = WorkerConfig::new(&data);
        cfg.gzip = false;
        let set = Arc::new(WorkerSet::new(cfg, sink.clone()).unwrap());
        set.recover().unwrap();
        let left = crate::journal::recover(&jdir).unwrap();
        assert_eq!(
            (left[0].first_seq, left[0].skip),
            (2, 10),
            "resume inside frame 2"
        );
        let f = WorkerFactory {
            set: set.clone(),
            queues: Some(sink),
        };
        assert_eq!(
            replay_leftovers(&jdir, &f, &mut ReplayKeys::new(b"k", [])).unwrap(),
            3
        );
        set.shutdown();
        let entries: Vec<String> = rt
            .block_on(store.queue_sample(q.uuid, 100))
            .unwrap()
            .into_iter()
            .rev()
            .map(|e| e.text().into_owned())
            .collect();
        assert_eq!(entries, ["alpha", "bravo", "charlie", "delta", "echo"]);
        let mut on_disk = lines_on_disk(&data);
        on_disk.sort();
        assert_eq!(on_disk, ["alpha", "bravo", "charlie", "delta", "echo"]);
    }
}
