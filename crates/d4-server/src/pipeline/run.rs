//! The pipeline thread of one session: gathers what the connection task sent, journals
//! it (one write and one fsync per batch), hands each frame to the session's
//! [`StreamHandler`] and acknowledges it in the journal at settle points, at most
//! [`ACK_DEFER_BYTES`] apart (at once when the handler asks, e.g. after a rotation).
//!
//! A crash before an acknowledgement replays the frames after it: their file bytes are
//! cut back to the acknowledged length first and their queue pushes are skipped by their
//! key, so nothing is delivered twice.

use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use d4_proto::Frame;
use uuid::Uuid;

use super::{Backlog, ErrorHook, HandlerFactory, StreamHandler, ACK_DEFER_BYTES};
use crate::journal::{AckPoint, Journal, RecentFrames};

/// Runs the pipeline thread until the connection task drops its sender, then closes the
/// handler and removes the journal.
pub(super) fn run(rx: Receiver<Vec<Frame>>, mut delivery: Delivery) {
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(f) => f,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                delivery.tick();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        delivery.deliver(gather(&rx, first));
    }
    delivery.close();
}

/// Gathers what is queued after `first` (bounded), to be journaled with one write.
fn gather(rx: &Receiver<Vec<Frame>>, first: Vec<Frame>) -> Vec<Frame> {
    let mut batch: Vec<Frame> = Vec::new();
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
    batch
}

/// Frames handled since the last settle point.
#[derive(Default)]
struct Unsettled {
    /// Journal end position of the last of them (what the next acknowledgement covers).
    end: Option<u64>,
    frames: u64,
    /// Their wire bytes.
    bytes: usize,
}

/// The state of a session's pipeline thread: its journal, its handler (opened at the
/// first frame) and where delivery stands.
pub(super) struct Delivery {
    journal: Journal,
    backlog: Arc<Backlog>,
    handlers: Arc<dyn HandlerFactory>,
    session: Uuid,
    fsync: bool,
    hook: Option<ErrorHook>,
    handler: Option<Box<dyn StreamHandler>>,
    /// The handler refused data: later frames are journaled and acknowledged (replaying
    /// them would fail the same way), not handled.
    failed: bool,
    /// Cleared when the journal failed (disk full?): the session must end.
    journal_ok: bool,
    /// Sequence number of the next frame.
    seq: u64,
    recent: RecentFrames,
    /// The last acknowledgement point.
    last_at: Option<AckPoint>,
    files: Arc<dyn d4_worker::FileLog>,
    /// Journal end position of each frame of the batch being delivered.
    ends: Vec<u64>,
    unsettled: Unsettled,
    /// Sensor of the last frame handled (for the error a failed flush records).
    last_uuid: Uuid,
}

impl Delivery {
    pub(super) fn new(
        journal: Journal,
        backlog: Arc<Backlog>,
        handlers: Arc<dyn HandlerFactory>,
        session: Uuid,
        fsync: bool,
        hook: Option<ErrorHook>,
    ) -> Delivery {
        let files: Arc<dyn d4_worker::FileLog> = Arc::new(journal.files());
        Delivery {
            journal,
            backlog,
            handlers,
            session,
            fsync,
            hook,
            handler: None,
            failed: false,
            journal_ok: true,
            seq: 0,
            recent: RecentFrames::default(),
            last_at: None,
            files,
            ends: Vec::new(),
            unsettled: Unsettled::default(),
            last_uuid: Uuid::nil(),
        }
    }

    /// The handler refused the data of `uuid`: the error is logged, recorded as the
    /// sensor's last error and reported to the connection task (the session ends).
    fn refuse(&mut self, uuid: Uuid, e: String) {
        self.failed = true;
        let session = self.session;
        tracing::warn!(%session, sensor = %uuid.simple(), error = %e, "worker refused the data");
        if let Some(h) = &self.hook {
            h(uuid, format!("worker: {e}"));
        }
        self.backlog.fail(e);
    }

    /// The sensor is silent: time-based rotation, and after one the same resume point
    /// acknowledged again without the finished file.
    fn tick(&mut self) {
        let (Some(h), false) = (self.handler.as_mut(), self.failed) else {
            return;
        };
        if let Err(e) = h.tick() {
            self.failed = true;
            self.backlog.fail(e);
        } else if h.must_ack() && self.journal_ok {
            let r = h.flush().map_err(io_err).and_then(|()| {
                self.journal
                    .ack(self.last_at.unwrap_or_default(), h.open_file())
            });
            match r {
                Ok(new_segment) => {
                    if new_segment {
                        self.recent.clear();
                    }
                    h.acked();
                }
                Err(e) => {
                    tracing::error!(session = %self.session, error = %e, "journal ack failed");
                    self.journal_ok = false;
                }
            }
        }
    }

    /// Journals a batch, then hands its frames to the handler, settling as it goes.
    fn deliver(&mut self, mut batch: Vec<Frame>) {
        let session = self.session;
        self.ends.clear();
        if self.journal_ok {
            if let Err(e) = self.journal.append_batch(&batch, &mut self.ends) {
                tracing::error!(%session, error = %e, "journal append failed");
                self.journal_ok = false;
            }
        }
        if self.fsync && self.journal_ok {
            if let Err(e) = self.journal.sync() {
                tracing::error!(%session, error = %e, "journal sync failed");
                self.journal_ok = false;
            }
        }
        if self.journal_ok {
            self.journal.report_synced();
        }
        for (i, f) in batch.drain(..).enumerate() {
            let len = f.wire_len();
            if self.unsettled.bytes > 0 && self.unsettled.bytes + len > ACK_DEFER_BYTES {
                self.settle();
            }
            self.last_uuid = f.header.uuid;
            if !self.failed {
                self.handle(&f);
            }
            let end = self.ends.get(i).copied();
            if let Some(end) = end {
                self.recent.push(
                    end.saturating_sub(len as u64),
                    self.seq,
                    f.payload.len() as u64,
                    0,
                );
            }
            self.seq += 1;
            self.unsettled.end = end.or(self.unsettled.end);
            self.unsettled.bytes += len;
            self.unsettled.frames += 1;
            if self.unsettled.bytes >= ACK_DEFER_BYTES
                || self.handler.as_ref().is_none_or(|h| h.must_ack())
            {
                self.settle();
            }
        }
        if self.unsettled.frames > 0 {
            self.settle();
        }
        if !self.journal_ok {
            // the connection task ends the session; this thread keeps draining so that
            // it is never stuck
            self.backlog
                .fail("the session journal failed (disk full?)".into());
        }
    }

    /// Hands one frame to the handler, opening it at the session's first frame.
    fn handle(&mut self, f: &Frame) {
        if self.handler.is_none() {
            let opened = self.handlers.open(
                f.header.uuid,
                f.header.d4_type,
                self.session,
                &[],
                self.files.clone(),
            );
            match opened {
                Ok(h) => self.handler = Some(h),
                Err(e) => self.refuse(f.header.uuid, e),
            }
        }
        if let Some(h) = self.handler.as_mut() {
            if let Err(e) = h.handle(self.seq, f) {
                self.refuse(f.header.uuid, e);
            }
        }
    }

    /// A settle point: the handler's output is flushed (file bytes to the kernel, queue
    /// entries pushed in one batch), then the journal acknowledged right after it.
    fn settle(&mut self) {
        if let (Some(h), false) = (self.handler.as_mut(), self.failed) {
            if let Err(e) = h.flush() {
                let uuid = self.last_uuid;
                self.refuse(uuid, e);
            }
        }
        // A frame the worker refused is acknowledged too: replaying it would fail the
        // same way.
        if let (Some(end), true) = (self.unsettled.end.take(), self.journal_ok) {
            let carry = match (&self.handler, self.failed) {
                (Some(h), false) => h.carry(),
                _ => 0,
            };
            let at = self.recent.resume(end, self.seq, carry);
            let file = self.handler.as_ref().and_then(|h| h.open_file());
            match self.journal.ack(at, file) {
                Ok(new_segment) => {
                    if new_segment {
                        self.recent.clear();
                    }
                    self.last_at = Some(at);
                    if let Some(h) = self.handler.as_mut() {
                        h.acked();
                    }
                }
                Err(e) => {
                    tracing::error!(session = %self.session, error = %e, "journal ack failed");
                    self.journal_ok = false;
                }
            }
        }
        if self.unsettled.frames > 0 {
            self.backlog
                .done(self.unsettled.frames, self.unsettled.bytes as u64);
        }
        self.unsettled = Unsettled::default();
    }

    /// End of the session: closes the handler, then removes the journal (everything in
    /// it was handled) unless the journal failed.
    fn close(mut self) {
        let session = self.session;
        if let Some(h) = self.handler.as_mut() {
            if let Err(e) = h.close() {
                tracing::warn!(%session, error = %e, "closing the worker failed");
            }
        }
        if !self.journal_ok {
            self.journal.tap_closed();
            return;
        }
        if self.handler.as_ref().is_some_and(|h| h.pushed_keyed()) {
            self.handlers.retire(session);
        }
        match self.journal.finish() {
            // Nothing to replay any more: the last files can be gzipped and queued.
            Ok(()) => {
                if let Some(h) = self.handler.as_mut() {
                    h.acked();
                }
            }
            Err(e) => tracing::warn!(%session, error = %e, "removing the journal failed"),
        }
    }
}

fn io_err(e: String) -> std::io::Error {
    std::io::Error::other(e)
}
