//! Delivery of accepted frames: one pipeline per session, off the network tasks.
//!
//! The connection task sends accepted frames; the pipeline thread ([`run`]) appends them
//! to the session's [`Journal`], syncs it (one fsync per batch), then hands each frame to
//! the session's [`StreamHandler`] (the per-type worker), flushes it and acknowledges the
//! entry in the journal. The [`Backlog`] counts frames sent but not yet acknowledged: the
//! connection task stops reading the socket when it passes the sensor's stream limit.
//! [`replay`] hands the journals of a previous run to fresh handlers at start.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use d4_proto::Frame;
use uuid::Uuid;

use crate::journal::Journal;

mod replay;
mod run;

pub use replay::{replay_leftovers, ReplayKeys};

/// Wire bytes of small frames handed to a handler between two flush + acknowledgement
/// points (below the workers' 64 KiB file buffers, so the output reaches the kernel only
/// at those points).
pub const ACK_DEFER_BYTES: usize = 16 * 1024;

/// Where the frames of one session go (the per-type worker). Called from one thread.
pub trait StreamHandler: Send {
    /// Handles frame number `seq` of the session (numbered from 0 in the journal), in
    /// stream order.
    fn handle(&mut self, seq: u64, frame: &Frame) -> Result<(), String>;
    /// Makes everything handled so far durable against a crash of this process (bytes
    /// written to the kernel, the queue entries of the frames handled since the last
    /// flush pushed in one batch, under the idempotency key (session, last frame's seq)
    /// so that a replay of those frames pushes nothing): called before an
    /// acknowledgement.
    fn flush(&mut self) -> Result<(), String>;
    /// Whether what was handled since the last flush must be acknowledged at once (the
    /// worker rotated: the finished file waits for an acknowledgement that no longer
    /// names it before it is gzipped). When false, the pipeline may handle a few more
    /// small frames (up to [`ACK_DEFER_BYTES`]) before one flush and one acknowledgement.
    fn must_ack(&self) -> bool {
        true
    }
    /// An acknowledgement written after the last flush (or the journal removed): files
    /// finished before it can be gzipped and queued.
    fn acked(&mut self) {}
    /// Whether a keyed queue push was made (the store keeps the session's last key until
    /// [`HandlerFactory::retire`]).
    fn pushed_keyed(&self) -> bool {
        false
    }
    /// Called every second or so while the sensor is silent (time-based rotation).
    fn tick(&mut self) -> Result<(), String>;
    /// End of the session: finish files.
    fn close(&mut self) -> Result<(), String>;
    /// The file being written and its length once `flush` returned (recorded with the
    /// journal acknowledgement; after a crash, bytes past it are cut before replay).
    fn open_file(&self) -> Option<(&std::path::Path, u64)> {
        None
    }
    /// How many of the last payload bytes handled live in memory only (a partial line):
    /// the journal is acknowledged only up to them, so that a replay feeds them again.
    fn carry(&self) -> u64 {
        0
    }
}

/// Opens the handler of a session at its first frame.
pub trait HandlerFactory: Send + Sync {
    /// `meta` holds the type-2 frames of a replayed 2/254 session whose first replayed
    /// frame comes after them (the handler needs them to know its extended type; they were
    /// handled already and must not be written again). `files` is the journal's log of
    /// files created between acknowledgements.
    fn open(
        &self,
        uuid: Uuid,
        d4_type: u8,
        session: Uuid,
        meta: &[Frame],
        files: Arc<dyn d4_worker::FileLog>,
    ) -> Result<Box<dyn StreamHandler>, String>;
    /// The session's journal is gone: forget the queue-push key recorded for it. Called
    /// only when a keyed push was made ([`StreamHandler::pushed_keyed`]).
    fn retire(&self, _session: Uuid) {}
}

/// Shared progress of one pipeline: the frames and bytes sent to it but not yet
/// acknowledged, and the error that ends the session.
#[derive(Default)]
pub struct Backlog {
    frames: AtomicU64,
    bytes: AtomicU64,
    failed: AtomicBool,
    error: Mutex<Option<String>>,
    /// Unix ms when `frames` last went from 0 to more (0: nothing pending), for the
    /// worker-lag gauge.
    behind_since: AtomicU64,
    /// Woken whenever entries were acknowledged or the pipeline failed.
    pub changed: tokio::sync::Notify,
}

impl Backlog {
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Acquire)
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }
    /// Unix ms since when frames are pending without interruption (0: none pending).
    pub fn behind_since_ms(&self) -> u64 {
        self.behind_since.load(Ordering::Relaxed)
    }
    /// The worker's error, once (the session must end).
    pub fn take_error(&self) -> Option<String> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.error.lock().ok().and_then(|mut e| e.take())
    }
    fn done(&self, frames: u64, bytes: u64) {
        if self.frames.fetch_sub(frames, Ordering::AcqRel) == frames {
            // Caught up. A send racing with this one re-marks it below or by itself.
            self.behind_since.store(0, Ordering::Relaxed);
            if self.frames.load(Ordering::Acquire) > 0 {
                let _ = self.behind_since.compare_exchange(
                    0,
                    crate::metrics::now_ms(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.changed.notify_waiters();
        self.changed.notify_one();
    }
    fn fail(&self, msg: String) {
        if let Ok(mut e) = self.error.lock() {
            if e.is_none() && !self.failed.load(Ordering::Acquire) {
                *e = Some(msg);
            }
        }
        self.failed.store(true, Ordering::Release);
        self.changed.notify_waiters();
        self.changed.notify_one();
    }
}

/// The sending half, owned by the connection task.
pub struct Pipeline {
    tx: Option<Sender<Vec<Frame>>>,
    backlog: Arc<Backlog>,
    thread: Option<JoinHandle<()>>,
}

/// Called with (sensor, message) when a worker refuses a session's data.
pub type ErrorHook = Arc<dyn Fn(Uuid, String) + Send + Sync>;

/// Settings of the pipelines.
#[derive(Clone)]
pub struct PipelineConfig {
    pub journal_dir: std::path::PathBuf,
    pub segment_bytes: u64,
    pub fsync: bool,
    /// Write the journal with `O_DIRECT` where the filesystem supports it.
    pub direct: bool,
    /// Records a worker error as the sensor's last error (even after the connection ended).
    pub on_error: Option<ErrorHook>,
    /// Told about the journal's files and durable ends (the forwarding engine).
    pub tap: Option<Arc<dyn crate::tap::JournalTap>>,
}

impl Pipeline {
    /// Starts the pipeline of a session (journal created now, handler opened at the first
    /// frame).
    pub fn start(
        cfg: &PipelineConfig,
        session: Uuid,
        handlers: Arc<dyn HandlerFactory>,
    ) -> std::io::Result<Pipeline> {
        let mut journal =
            Journal::create_with(&cfg.journal_dir, session, cfg.segment_bytes, cfg.direct)?;
        journal.set_tap(cfg.tap.clone());
        let (tx, rx) = mpsc::channel();
        let backlog = Arc::new(Backlog::default());
        let p = backlog.clone();
        let fsync = cfg.fsync;
        let hook = cfg.on_error.clone();
        let thread = std::thread::Builder::new()
            .name(format!("d4-session-{}", &session.simple().to_string()[..8]))
            .stack_size(256 * 1024)
            .spawn(move || {
                run::run(
                    rx,
                    run::Delivery::new(journal, p, handlers, session, fsync, hook),
                )
            })?;
        Ok(Pipeline {
            tx: Some(tx),
            backlog,
            thread: Some(thread),
        })
    }

    pub fn backlog(&self) -> &Arc<Backlog> {
        &self.backlog
    }

    /// Queues one accepted frame.
    #[cfg(test)]
    pub fn send(&self, frame: Frame) -> bool {
        self.send_batch(vec![frame])
    }

    /// Queues accepted frames, in stream order (one channel message for all of them).
    pub fn send_batch(&self, frames: Vec<Frame>) -> bool {
        if frames.is_empty() {
            return true;
        }
        let bytes: usize = frames.iter().map(Frame::wire_len).sum();
        if self
            .backlog
            .frames
            .fetch_add(frames.len() as u64, Ordering::AcqRel)
            == 0
        {
            let _ = self.backlog.behind_since.compare_exchange(
                0,
                crate::metrics::now_ms(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        self.backlog.bytes.fetch_add(bytes as u64, Ordering::AcqRel);
        match &self.tx {
            Some(tx) => tx.send(frames).is_ok(),
            None => false,
        }
    }

    /// Ends the session: the thread drains what is queued, closes the handler, removes the
    /// journal, and this returns its handle to join.
    pub fn close(mut self) -> Option<JoinHandle<()>> {
        self.tx.take();
        self.thread.take()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.tx.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use d4_proto::{Decoder, Encoder};

    #[derive(Default)]
    struct Seen {
        frames: usize,
        flushes: usize,
        /// frames handled but not flushed when an ack could happen
        max_unflushed_bytes: usize,
    }

    struct Rec {
        seen: Arc<Mutex<Seen>>,
        unflushed: usize,
        commit: bool,
    }

    impl StreamHandler for Rec {
        fn handle(&mut self, _: u64, frame: &Frame) -> Result<(), String> {
            self.unflushed += frame.wire_len();
            let mut s = self.seen.lock().unwrap();
            s.frames += 1;
            s.max_unflushed_bytes = s.max_unflushed_bytes.max(self.unflushed);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), String> {
            self.unflushed = 0;
            self.seen.lock().unwrap().flushes += 1;
            Ok(())
        }
        fn must_ack(&self) -> bool {
            self.commit
        }
        fn tick(&mut self) -> Result<(), String> {
            Ok(())
        }
        fn close(&mut self) -> Result<(), String> {
            Ok(())
        }
    }

    struct Factory(Arc<Mutex<Seen>>, bool);

    impl HandlerFactory for Factory {
        fn open(
            &self,
            _: Uuid,
            _: u8,
            _: Uuid,
            _: &[Frame],
            _: Arc<dyn d4_worker::FileLog>,
        ) -> Result<Box<dyn StreamHandler>, String> {
            Ok(Box::new(Rec {
                seen: self.0.clone(),
                unflushed: 0,
                commit: self.1,
            }))
        }
    }

    fn run_frames(commit: bool, n: usize, size: usize) -> Seen {
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let cfg = PipelineConfig {
            journal_dir: dir.path().to_path_buf(),
            segment_bytes: 1 << 20,
            fsync: false,
            direct: true,
            on_error: None,
            tap: None,
        };
        let p = Pipeline::start(
            &cfg,
            Uuid::new_v4(),
            Arc::new(Factory(seen.clone(), commit)),
        )
        .unwrap();
        let enc = Encoder::new(Uuid::new_v4(), b"k", 7);
        let mut batch = Vec::new();
        for i in 0..n {
            let mut b = Bytes::from(enc.encode(i as u64, &vec![7u8; size]).unwrap());
            batch.push(Decoder::new().decode(&mut b).unwrap().unwrap());
            if batch.len() == 300 {
                assert!(p.send_batch(std::mem::take(&mut batch)));
            }
        }
        assert!(p.send_batch(batch));
        let backlog = p.backlog().clone();
        p.close().unwrap().join().unwrap();
        assert_eq!(backlog.frames(), 0);
        assert_eq!(backlog.bytes(), 0);
        // every frame handled and acknowledged: the journal was removed
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap()
    }

    #[test]
    fn small_frames_are_acknowledged_together_within_the_bound() {
        let s = run_frames(false, 5000, 64);
        assert_eq!(s.frames, 5000);
        assert!(s.flushes < 5000 / 50, "{} flushes", s.flushes);
        assert!(s.max_unflushed_bytes <= ACK_DEFER_BYTES);
        // big frames: one flush + ack each
        let s = run_frames(false, 20, 20_000);
        assert_eq!((s.frames, s.flushes), (20, 20));
    }

    /// Records the tap's calls; hard-links each segment like the forwarding engine.
    struct LinkTap {
        to: std::path::PathBuf,
        calls: Mutex<Vec<String>>,
    }

    impl crate::tap::JournalTap for LinkTap {
        fn segment_created(&self, _: Uuid, seg: u64, path: &std::path::Path) {
            std::fs::hard_link(path, self.to.join(format!("{seg}.jnl"))).unwrap();
            self.calls.lock().unwrap().push(format!("seg {seg}"));
        }
        fn meta_created(&self, _: Uuid, _: &std::path::Path) {
            self.calls.lock().unwrap().push("meta".into());
        }
        fn synced(&self, _: Uuid, seg: u64, end: u64) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("synced {seg} {end}"));
        }
        fn closed(&self, _: Uuid) {
            self.calls.lock().unwrap().push("closed".into());
        }
    }

    #[test]
    fn the_tap_sees_every_segment_and_keeps_its_links() {
        let dir = tempfile::tempdir().unwrap();
        let links = tempfile::tempdir().unwrap();
        let tap = Arc::new(LinkTap {
            to: links.path().to_path_buf(),
            calls: Mutex::new(Vec::new()),
        });
        let cfg = PipelineConfig {
            journal_dir: dir.path().to_path_buf(),
            segment_bytes: 1000,
            fsync: false,
            direct: true,
            on_error: None,
            tap: Some(tap.clone()),
        };
        let seen = Arc::new(Mutex::new(Seen::default()));
        let p = Pipeline::start(&cfg, Uuid::new_v4(), Arc::new(Factory(seen, true))).unwrap();
        let enc = Encoder::new(Uuid::new_v4(), b"k", 3);
        let mut wire = Vec::new();
        for i in 0..10u64 {
            let raw = enc.encode(i, &[b'a' + i as u8; 400]).unwrap();
            wire.extend_from_slice(&raw);
            let mut b = Bytes::from(raw);
            assert!(p.send(Decoder::new().decode(&mut b).unwrap().unwrap()));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        p.close().unwrap().join().unwrap();
        // the journal removed its names; the links hold every frame, in order
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let calls = tap.calls.lock().unwrap().clone();
        assert_eq!(calls.first().map(String::as_str), Some("seg 0"));
        assert_eq!(calls.last().map(String::as_str), Some("closed"));
        let mut got = Vec::new();
        let mut seg = 0;
        while let Ok(bytes) = std::fs::read(links.path().join(format!("{seg}.jnl"))) {
            // up to the last synced end reported for that segment
            let end = calls
                .iter()
                .filter_map(|c| c.strip_prefix(&format!("synced {seg} ")))
                .filter_map(|e| e.parse::<usize>().ok())
                .max()
                .unwrap_or(0);
            got.extend_from_slice(&bytes[..end]);
            seg += 1;
        }
        assert!(seg > 1, "several segments: {calls:?}");
        assert_eq!(got, wire);
    }

    #[test]
    fn a_sink_that_committed_is_acknowledged_at_once() {
        let s = run_frames(true, 1000, 64);
        assert_eq!((s.frames, s.flushes), (1000, 1000));
    }
}
