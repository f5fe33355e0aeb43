//! Delivery of accepted frames: one pipeline per session, off the network tasks.
//!
//! The connection task sends accepted frames; the pipeline thread appends them to the
//! session's [`Journal`], syncs it (one fsync per batch), then hands each frame to the
//! session's [`FrameSink`] (the per-type worker), flushes it and acknowledges the entry
//! in the journal. `pending` counts frames sent but not yet acknowledged: the connection
//! task stops reading the socket when it passes the sensor's stream limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use d4_proto::{Frame, HmacKey};
use uuid::Uuid;

use crate::journal::{Journal, RecentFrames, Replayed};

/// Wire bytes of small frames handed to a sink between two flush + acknowledgement
/// points (below the workers' 64 KiB file buffers, so the output reaches the kernel only
/// at those points).
pub const ACK_DEFER_BYTES: usize = 16 * 1024;

/// Where the frames of one session go (the per-type worker). Called from one thread.
pub trait FrameSink: Send {
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
    /// [`SinkFactory::retire`]).
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

/// Opens the sink of a session at its first frame.
pub trait SinkFactory: Send + Sync {
    /// `meta` holds the type-2 frames of a replayed 2/254 session whose first replayed
    /// frame comes after them (the sink needs them to know its extended type; they were
    /// handled already and must not be written again). `files` is the journal's log of
    /// files created between acknowledgements.
    fn open(
        &self,
        uuid: Uuid,
        d4_type: u8,
        session: Uuid,
        meta: &[Frame],
        files: Arc<dyn d4_worker::FileLog>,
    ) -> Result<Box<dyn FrameSink>, String>;
    /// The session's journal is gone: forget the queue-push key recorded for it. Called
    /// only when a keyed push was made ([`FrameSink::pushed_keyed`]).
    fn retire(&self, _session: Uuid) {}
}

/// Shared progress of one pipeline.
#[derive(Default)]
pub struct Pending {
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

impl Pending {
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
    pending: Arc<Pending>,
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
}

impl Pipeline {
    /// Starts the pipeline of a session (journal created now, sink opened at the first
    /// frame).
    pub fn start(
        cfg: &PipelineConfig,
        session: Uuid,
        sinks: Arc<dyn SinkFactory>,
    ) -> std::io::Result<Pipeline> {
        let journal =
            Journal::create_with(&cfg.journal_dir, session, cfg.segment_bytes, cfg.direct)?;
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(Pending::default());
        let p = pending.clone();
        let fsync = cfg.fsync;
        let hook = cfg.on_error.clone();
        let thread = std::thread::Builder::new()
            .name(format!("d4-session-{}", &session.simple().to_string()[..8]))
            .stack_size(256 * 1024)
            .spawn(move || run(rx, journal, p, sinks, session, fsync, hook))?;
        Ok(Pipeline {
            tx: Some(tx),
            pending,
            thread: Some(thread),
        })
    }

    pub fn pending(&self) -> &Arc<Pending> {
        &self.pending
    }

    /// Queues one accepted frame.
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
            .pending
            .frames
            .fetch_add(frames.len() as u64, Ordering::AcqRel)
            == 0
        {
            let _ = self.pending.behind_since.compare_exchange(
                0,
                crate::metrics::now_ms(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        self.pending.bytes.fetch_add(bytes as u64, Ordering::AcqRel);
        match &self.tx {
            Some(tx) => tx.send(frames).is_ok(),
            None => false,
        }
    }

    /// Ends the session: the thread drains what is queued, closes the sink, removes the
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

fn run(
    rx: Receiver<Vec<Frame>>,
    mut journal: Journal,
    pending: Arc<Pending>,
    sinks: Arc<dyn SinkFactory>,
    session: Uuid,
    fsync: bool,
    hook: Option<ErrorHook>,
) {
    let fail = |uuid: Uuid, e: String| {
        tracing::warn!(%session, sensor = %uuid.simple(), error = %e, "worker refused the data");
        if let Some(h) = &hook {
            h(uuid, format!("worker: {e}"));
        }
        pending.fail(e);
    };
    let mut sink: Option<Box<dyn FrameSink>> = None;
    let mut failed = false;
    let mut batch: Vec<Frame> = Vec::new();
    let mut ends: Vec<u64> = Vec::new();
    let mut journal_ok = true;
    let mut seq: u64 = 0;
    let mut recent = RecentFrames::default();
    // The last acknowledgement point and the frames' end it was computed from.
    let mut last_at: Option<crate::journal::AckPoint> = None;
    let files: Arc<dyn d4_worker::FileLog> = Arc::new(journal.files());
    'outer: loop {
        let first = match rx.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(f) => f,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let (Some(s), false) = (sink.as_mut(), failed) {
                    if let Err(e) = s.tick() {
                        failed = true;
                        pending.fail(e);
                    } else if s.must_ack() && journal_ok {
                        // A time-based rotation while the sensor is silent: the same
                        // resume point, acknowledged again without the finished file.
                        let r = s
                            .flush()
                            .map_err(io_err)
                            .and_then(|()| journal.ack(last_at.unwrap_or_default(), s.open_file()));
                        match r {
                            Ok(new_segment) => {
                                if new_segment {
                                    recent.clear();
                                }
                                s.acked();
                            }
                            Err(e) => {
                                tracing::error!(%session, error = %e, "journal ack failed");
                                journal_ok = false;
                            }
                        }
                    }
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        // Gather what is queued (bounded), then journal it with one write.
        let mut bytes = 0usize;
        let mut next = Some(first);
        while let Some(frames) = next.take() {
            bytes += frames.iter().map(Frame::wire_len).sum::<usize>();
            if batch.is_empty() {
                batch = frames;
            } else {
                batch.extend(frames);
            }
            if batch.len() >= 4096 || bytes >= 8 << 20 {
                break;
            }
            match rx.try_recv() {
                Ok(f) => next = Some(f),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => {}
            }
        }
        ends.clear();
        if journal_ok {
            if let Err(e) = journal.append_batch(&batch, &mut ends) {
                tracing::error!(%session, error = %e, "journal append failed");
                journal_ok = false;
            }
        }
        if fsync && journal_ok {
            if let Err(e) = journal.sync() {
                tracing::error!(%session, error = %e, "journal sync failed");
                journal_ok = false;
            }
        }
        // Hand the batch to the worker. Small frames are acknowledged together: the
        // worker's buffered output is flushed to the kernel and the journal acknowledged
        // right after it, at most ACK_DEFER_BYTES apart (and at once when the sink asks,
        // e.g. after a rotation). A crash before the acknowledgement replays those frames:
        // their file bytes are cut back to the acknowledged length first and their queue
        // pushes are skipped by their key, so nothing is delivered twice.
        let mut unacked: Option<u64> = None;
        let (mut deferred, mut done_frames, mut done_bytes) = (0usize, 0u64, 0u64);
        let mut last_uuid = Uuid::nil();
        macro_rules! settle {
            () => {
                if let (Some(s), false) = (sink.as_mut(), failed) {
                    if let Err(e) = s.flush() {
                        failed = true;
                        fail(last_uuid, e);
                    }
                }
                // A frame the worker refused is acknowledged too: replaying it would
                // fail the same way.
                if let (Some(end), true) = (unacked.take(), journal_ok) {
                    let carry = match (&sink, failed) {
                        (Some(s), false) => s.carry(),
                        _ => 0,
                    };
                    let at = recent.resume(end, seq, carry);
                    let file = sink.as_ref().and_then(|s| s.open_file());
                    match journal.ack(at, file) {
                        Ok(new_segment) => {
                            if new_segment {
                                recent.clear();
                            }
                            last_at = Some(at);
                            if let Some(s) = sink.as_mut() {
                                s.acked();
                            }
                        }
                        Err(e) => {
                            tracing::error!(%session, error = %e, "journal ack failed");
                            journal_ok = false;
                        }
                    }
                }
                if done_frames > 0 {
                    pending.done(done_frames, done_bytes);
                }
                #[allow(unused_assignments)]
                {
                    (deferred, done_frames, done_bytes) = (0, 0, 0);
                }
            };
        }
        for (i, f) in batch.drain(..).enumerate() {
            let len = f.wire_len();
            if deferred > 0 && deferred + len > ACK_DEFER_BYTES {
                settle!();
            }
            last_uuid = f.header.uuid;
            if !failed {
                if sink.is_none() {
                    match sinks.open(f.header.uuid, f.header.d4_type, session, &[], files.clone()) {
                        Ok(s) => sink = Some(s),
                        Err(e) => {
                            failed = true;
                            fail(f.header.uuid, e);
                        }
                    }
                }
                if let Some(s) = sink.as_mut() {
                    if let Err(e) = s.handle(seq, &f) {
                        failed = true;
                        fail(f.header.uuid, e);
                    }
                }
            }
            let end = ends.get(i).copied();
            if let Some(end) = end {
                recent.push(
                    end.saturating_sub(len as u64),
                    seq,
                    f.payload.len() as u64,
                    0,
                );
            }
            seq += 1;
            unacked = end.or(unacked);
            deferred += len;
            done_frames += 1;
            done_bytes += len as u64;
            if deferred >= ACK_DEFER_BYTES || sink.as_ref().is_none_or(|s| s.must_ack()) {
                settle!();
            }
        }
        if done_frames > 0 {
            settle!();
        }
        if !journal_ok {
            pending.fail("the session journal failed (disk full?)".into());
            // keep draining so that the connection task is never stuck
            continue 'outer;
        }
    }
    if let Some(s) = sink.as_mut() {
        if let Err(e) = s.close() {
            tracing::warn!(%session, error = %e, "closing the worker failed");
        }
    }
    if journal_ok {
        if sink.as_ref().is_some_and(|s| s.pushed_keyed()) {
            sinks.retire(session);
        }
        match journal.finish() {
            // Nothing to replay any more: the last files can be gzipped and queued.
            Ok(()) => {
                if let Some(s) = sink.as_mut() {
                    s.acked();
                }
            }
            Err(e) => tracing::warn!(%session, error = %e, "removing the journal failed"),
        }
    }
}

fn io_err(e: String) -> std::io::Error {
    std::io::Error::other(e)
}

/// The HMAC keys a replay checks journaled frames with: the sensor's own key when it has
/// one, else the default key (the same choice as a live session).
pub struct ReplayKeys {
    default: HmacKey,
    keys: HashMap<Uuid, Vec<u8>>,
    prepared: HashMap<Uuid, HmacKey>,
}

impl ReplayKeys {
    /// `keys`: the sensors' own keys (sensors without one are left out).
    pub fn new(default_key: &[u8], keys: impl IntoIterator<Item = (Uuid, Vec<u8>)>) -> Self {
        ReplayKeys {
            default: HmacKey::new(default_key),
            keys: keys.into_iter().collect(),
            prepared: HashMap::new(),
        }
    }

    /// Whether the frame's HMAC verifies with its sensor's key.
    pub fn verify(&mut self, frame: &Frame) -> bool {
        let uuid = frame.header.uuid;
        match self.keys.get(&uuid) {
            Some(k) => self
                .prepared
                .entry(uuid)
                .or_insert_with(|| HmacKey::new(k))
                .verify(frame),
            None => self.default.verify(frame),
        }
    }
}

/// Replays the journals left by a previous run through fresh sinks, checking each frame's
/// HMAC with `keys` first. Returns the number of frames replayed.
pub fn replay_leftovers(
    dir: &std::path::Path,
    sinks: &dyn SinkFactory,
    keys: &mut ReplayKeys,
) -> std::io::Result<u64> {
    let mut total = 0;
    for left in crate::journal::recover(dir)? {
        let mut sink: Option<Box<dyn FrameSink>> = None;
        let mut err: Option<String> = None;
        let meta = left.meta_frames.clone();
        if !left.meta_verifies(|f| keys.verify(f)) {
            let session = left.session;
            let kept = left.quarantine()?;
            tracing::error!(
                %session,
                kept = %kept.display(),
                "a journaled meta header (type 2) failed its HMAC check: the session was \
                 not replayed and its journal was kept"
            );
            continue;
        }
        let files = left.files()?;
        let log: Arc<dyn d4_worker::FileLog> = Arc::new(files.clone());
        let end = left.replay_with(
            &files,
            |f| keys.verify(f),
            |seq, f| {
                if err.is_some() {
                    return Ok(Replayed::default());
                }
                if let Some(s) = sink.as_mut() {
                    // the previous frame was acknowledged (replay_with does it)
                    s.acked();
                }
                if sink.is_none() {
                    let ctx: &[Frame] = if f.header.d4_type == d4_proto::types::EXTENDED {
                        &meta
                    } else {
                        &[]
                    };
                    match sinks.open(
                        f.header.uuid,
                        f.header.d4_type,
                        left.session,
                        ctx,
                        log.clone(),
                    ) {
                        Ok(s) => sink = Some(s),
                        Err(e) => {
                            err = Some(e);
                            return Ok(Replayed::default());
                        }
                    }
                }
                if let Some(s) = sink.as_mut() {
                    if let Err(e) = s.handle(seq, &f).and_then(|_| s.flush()) {
                        err = Some(e);
                    }
                }
                Ok(match (&sink, &err) {
                    (Some(s), None) => Replayed {
                        file: s.open_file().map(|(p, l)| (p.to_path_buf(), l)),
                        carry: s.carry(),
                    },
                    (Some(s), Some(_)) => Replayed {
                        file: s.open_file().map(|(p, l)| (p.to_path_buf(), l)),
                        carry: 0,
                    },
                    _ => Replayed::default(),
                })
            },
        )?;
        let n = end.frames;
        if let Some(s) = sink.as_mut() {
            s.acked();
            if let Err(e) = s.flush().and_then(|_| s.close()) {
                err.get_or_insert(e);
            }
        }
        match err {
            Some(e) => {
                tracing::warn!(session = %left.session, error = %e, "replay of a journal failed")
            }
            None => tracing::info!(session = %left.session, frames = n, "journal replayed"),
        }
        total += n;
        // The key may have been recorded by the crashed run even when nothing was pushed
        // during the replay.
        sinks.retire(left.session);
        match end.refused {
            None => left.finish()?,
            Some(seq) => {
                let session = left.session;
                let kept = left.quarantine()?;
                tracing::error!(
                    %session,
                    frame = seq,
                    replayed = n,
                    kept = %kept.display(),
                    "a journaled frame failed its HMAC check or could not be decoded, with \
                     more written after it (the journal was altered on disk, or the \
                     sensor's key changed since): the replay of this session stopped there \
                     and its journal was kept"
                );
            }
        }
        // The journal is gone (or set aside, never replayed again): the last files can be
        // gzipped and queued.
        if let Some(s) = sink.as_mut() {
            s.acked();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use d4_proto::{Decoder, Encoder};

    /// The replay checks a frame with its sensor's own key when the sensor has one, and
    /// with the default key otherwise, as a live session does.
    #[test]
    fn replay_keys_choose_like_a_session() {
        let own = Uuid::new_v4();
        let other = Uuid::new_v4();
        let frame = |uuid, key: &[u8]| {
            let enc = Encoder::new(uuid, key, 3);
            let mut b = Bytes::from(enc.encode(1, b"x\n").unwrap());
            Decoder::new().decode(&mut b).unwrap().unwrap()
        };
        let mut keys = ReplayKeys::new(b"default", [(own, b"own key".to_vec())]);
        assert!(keys.verify(&frame(own, b"own key")));
        assert!(!keys.verify(&frame(own, b"default")));
        assert!(keys.verify(&frame(other, b"default")));
        assert!(!keys.verify(&frame(other, b"own key")));
        // the prepared key is reused
        assert!(keys.verify(&frame(own, b"own key")));
    }

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

    impl FrameSink for Rec {
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

    impl SinkFactory for Factory {
        fn open(
            &self,
            _: Uuid,
            _: u8,
            _: Uuid,
            _: &[Frame],
            _: Arc<dyn d4_worker::FileLog>,
        ) -> Result<Box<dyn FrameSink>, String> {
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
        let pending = p.pending().clone();
        p.close().unwrap().join().unwrap();
        assert_eq!(pending.frames(), 0);
        assert_eq!(pending.bytes(), 0);
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

    #[test]
    fn a_sink_that_committed_is_acknowledged_at_once() {
        let s = run_frames(true, 1000, 64);
        assert_eq!((s.frames, s.flushes), (1000, 1000));
    }
}
