//! The journal of a live session: frames appended (one vectored or `O_DIRECT` write per
//! batch), synced, and acknowledged through the shared [`AckLog`]; a new segment starts
//! when everything written is acknowledged and the segment is full.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use d4_proto::Frame;
use uuid::Uuid;

use super::ack::{AckLog, AckPoint, JournalFiles};
use super::direct::DirectAppender;
use super::{ack_path, meta_path, remove_session, seg_path, sync_dir};
use crate::tap::JournalTap;

pub struct Journal {
    pub(super) dir: PathBuf,
    pub(super) session: Uuid,
    pub(super) seg: u64,
    pub(super) file: File,
    pub(super) written: u64,
    pub(super) synced: u64,
    pub(super) acked: u64,
    /// The acknowledgement record, shared with the worker's file log.
    pub(super) acks: Arc<Mutex<AckLog>>,
    pub(super) meta_file: Option<File>,
    pub(super) segment_bytes: u64,
    /// Set when the segments are written with `O_DIRECT` (no page cache: the journal is
    /// read back only by a recovery). Each batch is written from the start of the
    /// segment's last partial block, padded with zeros, which read back as the torn end
    /// of the journal, where recovery stops anyway.
    pub(super) direct: Option<DirectAppender>,
    /// Told about new files, durable ends and the end of the session.
    pub(super) tap: Option<Arc<dyn JournalTap>>,
}

/// Set once a write showed that `O_DIRECT` is accepted at open but not with 4 KiB
/// alignment here: later segments are opened buffered.
static DIRECT_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Opens a new segment for writing, with `O_DIRECT` when `direct` and the filesystem
/// takes it (tmpfs does not: then buffered). Returns the file and whether it is direct.
fn open_segment(path: &Path, direct: bool) -> io::Result<(File, bool)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = OpenOptions::new();
    o.create(true).truncate(true).write(true);
    if direct && !DIRECT_REFUSED.load(std::sync::atomic::Ordering::Relaxed) {
        match o.clone().custom_flags(libc::O_DIRECT).open(path) {
            Ok(f) => return Ok((f, true)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(path = %path.display(), "O_DIRECT not supported here: buffered journal");
            }
            Err(e) => return Err(e),
        }
    }
    Ok((o.open(path)?, false))
}

impl Journal {
    /// Creates the journal of a new session.
    #[cfg(test)]
    pub fn create(dir: &Path, session: Uuid, segment_bytes: u64) -> io::Result<Journal> {
        Journal::create_with(dir, session, segment_bytes, false)
    }

    /// Creates the journal of a new session (`Journal::create` in tests), writing the segments with `O_DIRECT` when `direct` (and the
    /// filesystem supports it).
    pub fn create_with(
        dir: &Path,
        session: Uuid,
        segment_bytes: u64,
        direct: bool,
    ) -> io::Result<Journal> {
        fs::create_dir_all(dir)?;
        let (file, direct) = open_segment(&seg_path(dir, &session, 0), direct)?;
        let ack_file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(ack_path(dir, &session))?;
        let mut log = AckLog::new(ack_file, 0, AckPoint::default(), None);
        log.ack(0, AckPoint::default(), None)?;
        sync_dir(dir)?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            session,
            seg: 0,
            file,
            written: 0,
            synced: 0,
            acked: 0,
            acks: Arc::new(Mutex::new(log)),
            meta_file: None,
            segment_bytes: segment_bytes.max(1),
            direct: direct.then(DirectAppender::new),
            tap: None,
        })
    }

    /// Gives the journal a tap (see [`JournalTap`]): told at once about segment 0.
    pub fn set_tap(&mut self, tap: Option<Arc<dyn JournalTap>>) {
        if let Some(t) = &tap {
            t.segment_created(
                self.session,
                self.seg,
                &seg_path(&self.dir, &self.session, self.seg),
            );
        }
        self.tap = tap;
    }

    /// Tells the tap how far the current segment holds whole frames (after a batch was
    /// written, and synced when the journal syncs).
    pub fn report_synced(&self) {
        if let Some(t) = &self.tap {
            t.synced(self.session, self.seg, self.written);
        }
    }

    /// Tells the tap that the session ended (also when the journal failed: what it holds
    /// stays as it is).
    pub fn tap_closed(&self) {
        if let Some(t) = &self.tap {
            t.closed(self.session);
        }
    }

    /// Opens the `.meta` file at its first type-2 frame (the tap is told).
    fn meta_file(&mut self) -> io::Result<&mut File> {
        if self.meta_file.is_none() {
            let path = meta_path(&self.dir, &self.session);
            let f = OpenOptions::new().create(true).append(true).open(&path)?;
            if let Some(t) = &self.tap {
                t.meta_created(self.session, &path);
            }
            self.meta_file = Some(f);
        }
        match &mut self.meta_file {
            Some(f) => Ok(f),
            None => Err(io::Error::other("meta file not open")),
        }
    }

    /// The direct write of a batch (see [`Journal::direct`]). Where the first write of a
    /// segment is refused for its alignment (`EINVAL`), the journal goes on buffered.
    /// Returns whether the batch was written.
    fn write_direct(
        &mut self,
        heads: &[[u8; d4_proto::HEADER_LEN]],
        frames: &[Frame],
    ) -> io::Result<bool> {
        let Some(d) = self.direct.as_mut() else {
            return Ok(false);
        };
        let bytes: usize = frames.iter().map(Frame::wire_len).sum();
        d.reserve(bytes + super::direct::ALIGN);
        let written = heads
            .iter()
            .zip(frames)
            .try_for_each(|(h, f)| {
                d.push(&self.file, h)?;
                d.push(&self.file, &f.payload)
            })
            .and_then(|()| d.write_padded(&self.file));
        match written {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && self.written == 0 => {
                if !DIRECT_REFUSED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        "O_DIRECT writes are refused here (alignment): the journal is \
                         written through the page cache"
                    );
                }
                self.direct = None;
                self.file = OpenOptions::new().write(true).open(seg_path(
                    &self.dir,
                    &self.session,
                    self.seg,
                ))?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Appends one frame; returns its end position (what to acknowledge once handled).
    #[cfg(test)]
    pub fn append(&mut self, frame: &Frame) -> io::Result<u64> {
        if self.direct.is_some() {
            let mut ends = Vec::with_capacity(1);
            self.append_batch(std::slice::from_ref(frame), &mut ends)?;
            return Ok(self.written);
        }
        let head = frame.header.to_bytes();
        self.file.write_all(&head)?;
        self.file.write_all(&frame.payload)?;
        self.written += frame.wire_len() as u64;
        if frame.header.d4_type == d4_proto::types::META_HEADER {
            let f = self.meta_file()?;
            f.write_all(&head)?;
            f.write_all(&frame.payload)?;
        }
        Ok(self.written)
    }

    /// Appends several frames with one vectored write (the same bytes as calling
    /// `Journal::append` (tests) for each); pushes the end position of every frame to `ends`.
    /// On error, nothing of this batch is to be acknowledged.
    pub fn append_batch(&mut self, frames: &[Frame], ends: &mut Vec<u64>) -> io::Result<()> {
        let heads: Vec<[u8; d4_proto::HEADER_LEN]> =
            frames.iter().map(|f| f.header.to_bytes()).collect();
        if self.write_direct(&heads, frames)? {
            return self.after_batch(&heads, frames, ends);
        }
        let mut slices = Vec::with_capacity(frames.len() * 2);
        for (h, f) in heads.iter().zip(frames) {
            slices.push(io::IoSlice::new(h));
            if !f.payload.is_empty() {
                slices.push(io::IoSlice::new(&f.payload));
            }
        }
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match self.file.write_vectored(rest) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.after_batch(&heads, frames, ends)
    }

    /// Positions and the meta file after a batch was written.
    fn after_batch(
        &mut self,
        heads: &[[u8; d4_proto::HEADER_LEN]],
        frames: &[Frame],
        ends: &mut Vec<u64>,
    ) -> io::Result<()> {
        for (h, f) in heads.iter().zip(frames) {
            self.written += f.wire_len() as u64;
            ends.push(self.written);
            if f.header.d4_type == d4_proto::types::META_HEADER {
                let m = self.meta_file()?;
                m.write_all(h)?;
                m.write_all(&f.payload)?;
            }
        }
        Ok(())
    }

    /// Makes every appended entry durable (fdatasync).
    pub fn sync(&mut self) -> io::Result<()> {
        if self.synced < self.written {
            self.file.sync_data()?;
            if let Some(m) = &self.meta_file {
                m.sync_data()?;
            }
            self.synced = self.written;
        }
        Ok(())
    }

    /// Records that the entries up to `end` were handled by the worker and a replay must
    /// resume at `at` (`end`, the next frame, unless the worker holds a partial line);
    /// `file` is the worker's open file and its length. A new segment starts only when
    /// the resume point is the end of everything written.
    pub fn ack(&mut self, at: AckPoint, file: Option<(&Path, u64)>) -> io::Result<bool> {
        self.acks()?.ack(self.seg, at, file)?;
        self.acked = at.off;
        if self.acked == self.written && self.written >= self.segment_bytes {
            self.next_segment()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn next_segment(&mut self) -> io::Result<()> {
        let next = self.seg + 1;
        let (file, direct) = open_segment(
            &seg_path(&self.dir, &self.session, next),
            self.direct.is_some(),
        )?;
        match (&mut self.direct, direct) {
            (Some(d), true) => d.reset(),
            (d, _) => *d = None,
        }
        sync_dir(&self.dir)?;
        if let Some(t) = &self.tap {
            t.segment_created(
                self.session,
                next,
                &seg_path(&self.dir, &self.session, next),
            );
        }
        self.acks()?.next_segment(next)?;
        let old = seg_path(&self.dir, &self.session, self.seg);
        self.seg = next;
        self.file = file;
        self.written = 0;
        self.synced = 0;
        self.acked = 0;
        fs::remove_file(old)
    }

    fn acks(&self) -> io::Result<std::sync::MutexGuard<'_, AckLog>> {
        self.acks
            .lock()
            .map_err(|_| io::Error::other("journal acknowledgement log poisoned"))
    }

    /// The log a worker tells before it creates a rotating file: the file is named in
    /// the acknowledgement record until the next acknowledgement, and removed by
    /// [`cut_uncommitted`](super::cut_uncommitted) after a crash before it.
    pub fn files(&self) -> JournalFiles {
        JournalFiles(self.acks.clone())
    }

    /// Everything was handled: removes the session's files.
    pub fn finish(self) -> io::Result<()> {
        self.tap_closed();
        remove_session(&self.dir, &self.session)
    }
}
