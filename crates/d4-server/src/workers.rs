//! Glue between the pipelines and `d4-worker`: the per-type workers as [`StreamHandler`]s,
//! and the workers' [`QueueSink`] pushing into the store's analyzer queues.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use d4_proto::Frame;
use d4_store::{PushKey, QueueEntry, QueueKind, QueuePush, Queues};
use d4_worker::{FileLog, Outgoing, PushId, QueueSink, SinkError, Worker, WorkerSet};
use uuid::Uuid;

use crate::pipeline::{HandlerFactory, StreamHandler};

type QueueCache = HashMap<(QueueKind, Uuid), (Vec<Uuid>, Instant)>;

/// Pushes worker output into the store's analyzer queues (blocking: called from the
/// pipeline and gzip threads, never from the async runtime's workers). It needs the
/// store's [`Queues`] role only.
pub struct StoreQueueSink {
    store: Arc<dyn Queues>,
    rt: tokio::runtime::Handle,
    cache: Mutex<QueueCache>,
}

impl StoreQueueSink {
    pub fn new(store: Arc<dyn Queues>, rt: tokio::runtime::Handle) -> StoreQueueSink {
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
    fn push_batch(&self, key: Option<PushId>, batch: Vec<Outgoing>) -> Result<bool, SinkError> {
        let mut pushes = Vec::with_capacity(batch.len());
        for (target, entries) in batch {
            if entries.is_empty() {
                continue;
            }
            let kind = match &target.ext_type {
                Some(ext) => QueueKind::Ext(ext.clone()),
                None => QueueKind::Type(target.d4_type),
            };
            let queues = self.queues(kind, target.sensor)?;
            if queues.is_empty() {
                continue;
            }
            let entries: Vec<QueueEntry> = entries
                .into_iter()
                .map(|e| QueueEntry::from_sensor(target.sensor, e.into_bytes()))
                .collect();
            pushes.push(QueuePush { queues, entries });
        }
        if pushes.is_empty() {
            // nothing for any queue: no store write at all (no key recorded either)
            return Ok(true);
        }
        let key = key.map(|k| PushKey {
            producer: k.producer,
            seq: k.seq,
        });
        let out = self
            .rt
            .block_on(self.store.push_batch(key, pushes, d4_store::now()))
            .map_err(|e| SinkError::Backend(e.to_string()))?;
        if let (None, Some(k)) = (&out, key) {
            tracing::debug!(producer = %k.producer, seq = k.seq, "queue entries pushed before a crash: skipped");
        }
        Ok(out.is_some())
    }

    fn forget(&self, producer: Uuid) -> Result<(), SinkError> {
        self.rt
            .block_on(self.store.forget_producer(producer))
            .map_err(|e| SinkError::Backend(e.to_string()))
    }
}

/// Test-only crash hook (feature `crash-hooks`, never in a release build): with
/// `D4_TEST_CRASH_AFTER_PUSH=N` in the environment every frame is acknowledged on its own
/// (as [`StreamHandler::must_ack`] says) and the process aborts right after its `N`-th keyed
/// queue push of journaled frames was committed, before the journal acknowledgement (the
/// crash tests use it to hit that window on purpose).
#[cfg(feature = "crash-hooks")]
mod hook {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    fn at() -> Option<u64> {
        static AT: OnceLock<Option<u64>> = OnceLock::new();
        *AT.get_or_init(|| {
            std::env::var("D4_TEST_CRASH_AFTER_PUSH")
                .ok()
                .and_then(|v| v.parse().ok())
        })
    }

    pub fn armed() -> bool {
        at().is_some()
    }

    pub fn after_push() {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        if let Some(at) = at() {
            if COUNT.fetch_add(1, Ordering::AcqRel) + 1 == at {
                tracing::error!("D4_TEST_CRASH_AFTER_PUSH reached: aborting (test hook)");
                std::process::abort();
            }
        }
    }
}

#[cfg(not(feature = "crash-hooks"))]
mod hook {
    pub fn armed() -> bool {
        false
    }
    pub fn after_push() {}
}

impl StoreQueueSink {
    /// Forgets the store's record of a retired journal.
    pub fn retire(&self, journal: Uuid) {
        if let Err(e) = self.forget(journal) {
            tracing::warn!(%journal, error = %e, "could not drop the journal's queue marker");
        }
    }
}

/// Opens a `d4-worker` worker per session.
pub struct WorkerHandlers {
    pub set: Arc<WorkerSet>,
    /// Where retired journals' queue markers are forgotten.
    pub queues: Option<Arc<StoreQueueSink>>,
}

/// A session's worker behind the pipeline: output held for the journal's
/// acknowledgements (see `d4_worker::Worker::hold_delivery`).
struct WorkerHandler {
    w: Worker,
    queue: Arc<dyn QueueSink>,
    session: Uuid,
    /// The sequence number of the last frame handled.
    seq: u64,
    /// The key of the last keyed push.
    last_key: Option<u64>,
}

impl WorkerHandler {
    /// Pushes the entries held since the last push, as one batch under the key
    /// (session, `key`): a replay of the same frames repeats keys not greater than it.
    fn push_held(&mut self, key: u64) -> Result<(), String> {
        let batch = self.w.take_entries();
        if batch.iter().all(|(_, e)| e.is_empty()) {
            return Ok(());
        }
        // Keys grow with the frames; two pushes after the same frame (its settle, then
        // the close) take the next key.
        let key = match self.last_key {
            Some(last) if key <= last => last + 1,
            _ => key,
        };
        self.queue
            .push_batch(
                Some(PushId {
                    producer: self.session,
                    seq: key,
                }),
                batch,
            )
            .map_err(|e| e.to_string())?;
        self.last_key = Some(key);
        hook::after_push();
        Ok(())
    }
}

impl StreamHandler for WorkerHandler {
    fn handle(&mut self, seq: u64, frame: &Frame) -> Result<(), String> {
        self.seq = seq;
        self.w
            .handle(frame, SystemTime::now())
            .map_err(|e| e.to_string())
    }
    fn flush(&mut self) -> Result<(), String> {
        self.w.flush().map_err(|e| e.to_string())?;
        // (the key layout of earlier versions: frame << 16 | push number)
        self.push_held(self.seq << 16)
    }
    fn must_ack(&self) -> bool {
        self.w.holds_files() || hook::armed()
    }
    fn acked(&mut self) {
        self.w.release_files();
    }
    fn pushed_keyed(&self) -> bool {
        self.last_key.is_some()
    }
    fn tick(&mut self) -> Result<(), String> {
        self.w.tick(SystemTime::now()).map_err(|e| e.to_string())
    }
    fn close(&mut self) -> Result<(), String> {
        let closed = self.w.close(SystemTime::now()).map_err(|e| e.to_string());
        // The last partial line, queued at the close.
        let pushed = self.push_held((self.seq << 16) | 1);
        closed.and(pushed)
    }
    fn open_file(&self) -> Option<(&std::path::Path, u64)> {
        self.w.open_file()
    }
    fn carry(&self) -> u64 {
        self.w.carry()
    }
}

impl HandlerFactory for WorkerHandlers {
    fn open(
        &self,
        uuid: Uuid,
        d4_type: u8,
        session: Uuid,
        meta: &[Frame],
        files: Arc<dyn FileLog>,
    ) -> Result<Box<dyn StreamHandler>, String> {
        let t = if d4_type == d4_proto::types::EXTENDED {
            d4_proto::types::META_HEADER
        } else {
            d4_type
        };
        let mut w = self.set.worker(uuid, t).map_err(|e| e.to_string())?;
        w.hold_delivery(Some(files));
        for f in meta {
            w.handle(f, SystemTime::now()).map_err(|e| e.to_string())?;
        }
        Ok(Box::new(WorkerHandler {
            w,
            queue: self.set.sink().clone(),
            session,
            seq: 0,
            last_key: None,
        }))
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
    use crate::pipeline::{replay_leftovers, ReplayKeys};
    use bytes::Bytes;
    use d4_proto::{Decoder, Encoder};
    use d4_store::{EmbeddedStore, QueueConfig, Store};
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
            groups: Vec::new(),
        };
        rt.block_on(store.create_queue(q.clone(), 1)).unwrap();
        let sensor = Uuid::new_v4();
        let session = Uuid::new_v4();
        let enc = Encoder::new(sensor, b"k", 3);
        {
            // the first run: frames 0 and 1 handled (pushed, written), only 0 acknowledged
            let sink = Arc::new(StoreQueueSink::new(store.clone(), rt.handle().clone()));
            let set = Arc::new(WorkerSet::new(WorkerConfig::new(&data), sink.clone()).unwrap());
            let f = WorkerHandlers {
                set: set.clone(),
                queues: Some(sink),
            };
            let mut j = Journal::create(&jdir, session, 1 << 20).unwrap();
            let mut w = f
                .open(sensor, 3, session, &[], Arc::new(j.files()))
                .unwrap();
            let mut ends = Vec::new();
            for i in 0..3 {
                ends.push(j.append(&frame(&enc, i)).unwrap());
            }
            j.sync().unwrap();
            for i in 0..2u64 {
                w.handle(i, &frame(&enc, i)).unwrap();
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
        let f = WorkerHandlers {
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
            groups: Vec::new(),
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
            let f = WorkerHandlers {
                set: set.clone(),
                queues: Some(sink),
            };
            let mut j = Journal::create(&jdir, session, 1 << 20).unwrap();
            let mut w = f
                .open(sensor, 3, session, &[], Arc::new(j.files()))
                .unwrap();
            let mut recent = RecentFrames::default();
            for i in 0..5 {
                j.append(&frame(i)).unwrap();
            }
            j.sync().unwrap();
            let mut end = 0;
            for i in 0..3usize {
                let fr = frame(i);
                w.handle(i as u64, &fr).unwrap();
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
        let f = WorkerHandlers {
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
