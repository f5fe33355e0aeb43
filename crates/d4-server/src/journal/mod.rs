//! The durable per-session buffer: every accepted frame is appended to a journal file
//! (raw D4 wire bytes, so the file is self-delimiting and can be read back with the
//! protocol decoder) and synced before the worker sees it; the worker's progress is
//! recorded in a small ack file. After a crash, [`recover`] finds the entries that were
//! journaled but not acknowledged and they are replayed once.
//!
//! Layout under `<data>/journal/`:
//! * `<session>.<seg>.jnl` — segments of frames; a new segment starts when everything
//!   written so far is acknowledged and the segment is larger than `segment_bytes`.
//! * `<session>.ack` — the acknowledgement record, rewritten in place with `pwrite` (one
//!   small write per acknowledgement): segment number and byte offset acknowledged in it,
//!   the sequence number of the frame there (frames are numbered from 0 in a session: the
//!   queue pushes after frame `n` carry the key (session, `n << 16`) and are made at most
//!   once), how many payload bytes of that frame to skip (the replay resumes inside the
//!   frame holding the start of the worker's partial last line, which lived in memory
//!   only), the worker's open file with its length at that point (after a crash, bytes
//!   past it were written for frames that are replayed: [`cut_uncommitted`] removes them
//!   before the file is finished), and the rotating files created since (removed after a
//!   crash). The record format is described in `journal/ack.rs`.
//! * `<session>.meta` — the type-2 frames of a 2/254 session, so that a replay of type-254
//!   entries knows its extended type even when the segment holding them is gone.
//!
//! A torn last entry (the process died while appending) was never synced, so it was never
//! acknowledged to anyone: recovery stops there. The replay also checks every frame's HMAC
//! again (with the sensor's key, or the default key). A frame that fails, or bytes that do
//! not decode, followed only by zeros to the end of the last segment, are a write torn by
//! a power loss: the end, as above. Anywhere else they are damage (a file altered on
//! disk, a key changed while the server was down): the replay stops there and the
//! session's journal is moved to `<data>/journal/unverified/` for the operator.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use d4_proto::{Decoder, Frame};

use crate::direct::DirectAppender;
use uuid::Uuid;

mod ack;

#[cfg(test)]
use ack::ack_record;
use ack::{parse_ack, parse_created, AckLog, AckRecord};
pub use ack::{AckPoint, JournalFiles};

/// Default segment size before a fully acknowledged journal starts a new file.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

pub struct Journal {
    dir: PathBuf,
    session: Uuid,
    seg: u64,
    file: File,
    written: u64,
    synced: u64,
    acked: u64,
    /// The acknowledgement record, shared with the worker's file log.
    acks: Arc<Mutex<AckLog>>,
    meta_file: Option<File>,
    segment_bytes: u64,
    /// Set when the segments are written with `O_DIRECT` (no page cache: the journal is
    /// read back only by a recovery). Each batch is written from the start of the
    /// segment's last partial block, padded with zeros, which read back as the torn end
    /// of the journal, where recovery stops anyway.
    direct: Option<DirectAppender>,
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

fn seg_path(dir: &Path, session: &Uuid, seg: u64) -> PathBuf {
    dir.join(format!("{}.{seg}.jnl", session.simple()))
}
fn ack_path(dir: &Path, session: &Uuid) -> PathBuf {
    dir.join(format!("{}.ack", session.simple()))
}
fn meta_path(dir: &Path, session: &Uuid) -> PathBuf {
    dir.join(format!("{}.meta", session.simple()))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Journal {
    /// Creates the journal of a new session.
    pub fn create(dir: &Path, session: Uuid, segment_bytes: u64) -> io::Result<Journal> {
        Journal::create_with(dir, session, segment_bytes, false)
    }

    /// [`Journal::create`], writing the segments with `O_DIRECT` when `direct` (and the
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
        })
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
        d.reserve(bytes + crate::direct::ALIGN);
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
            let f = match &mut self.meta_file {
                Some(f) => f,
                None => self.meta_file.insert(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(meta_path(&self.dir, &self.session))?,
                ),
            };
            f.write_all(&head)?;
            f.write_all(&frame.payload)?;
        }
        Ok(self.written)
    }

    /// Appends several frames with one vectored write (the same bytes as calling
    /// [`Journal::append`] for each); pushes the end position of every frame to `ends`.
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
                let m = match &mut self.meta_file {
                    Some(m) => m,
                    None => self.meta_file.insert(
                        OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(meta_path(&self.dir, &self.session))?,
                    ),
                };
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
    /// [`cut_uncommitted`] after a crash before it.
    pub fn files(&self) -> JournalFiles {
        JournalFiles(self.acks.clone())
    }

    /// Bytes appended but not yet acknowledged in the current segment.
    pub fn unacked(&self) -> u64 {
        self.written - self.acked
    }

    /// Everything was handled: removes the session's files.
    pub fn finish(self) -> io::Result<()> {
        remove_session(&self.dir, &self.session)
    }
}

fn remove_session(dir: &Path, session: &Uuid) -> io::Result<()> {
    let prefix = format!("{}.", session.simple());
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

/// What the replay callback reports after handling a frame.
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    /// The worker's open file and its length.
    pub file: Option<(PathBuf, u64)>,
    /// The worker's carry (see [`RecentFrames::resume`]).
    pub carry: u64,
}

/// The last frames handled in the current segment, to find where a replay must resume
/// when the worker holds the last `carry` payload bytes in memory only.
#[derive(Debug, Default)]
pub struct RecentFrames {
    /// (offset in the segment, seq, payload bytes given to the worker, bytes skipped
    /// before them), oldest first.
    frames: std::collections::VecDeque<(u64, u64, u64, u64)>,
}

impl RecentFrames {
    /// A frame at `off` in the segment was handled (payload bytes `len` after `skipped`).
    pub fn push(&mut self, off: u64, seq: u64, len: u64, skipped: u64) {
        self.frames.push_back((off, seq, len, skipped));
    }

    /// Everything up to `end` (the next frame `next_seq`) was handled but the last
    /// `carry` payload bytes: the point a replay must resume from. Forgets older frames.
    pub fn resume(&mut self, end: u64, next_seq: u64, carry: u64) -> AckPoint {
        let mut rest = carry;
        let mut keep = 0;
        let mut at = AckPoint {
            off: end,
            seq: next_seq,
            skip: 0,
        };
        for &(off, seq, len, skipped) in self.frames.iter().rev() {
            if rest == 0 {
                break;
            }
            keep += 1;
            if rest <= len {
                at = AckPoint {
                    off,
                    seq,
                    skip: skipped + len - rest,
                };
                rest = 0;
            } else {
                rest -= len;
            }
        }
        if rest > 0 {
            // More carry than the frames kept (cannot happen: the carry is made of the
            // last bytes handled): resume at the oldest frame known.
            if let Some(&(off, seq, _, skipped)) = self.frames.front() {
                at = AckPoint {
                    off,
                    seq,
                    skip: skipped,
                };
            }
            return at;
        }
        let drop = self.frames.len() - keep;
        self.frames.drain(..drop);
        at
    }

    /// A new segment started: offsets of the old one are meaningless.
    pub fn clear(&mut self) {
        self.frames.clear();
    }
}

/// A session journal left by a previous run.
#[derive(Debug, Clone)]
pub struct Leftover {
    pub session: Uuid,
    /// (segment, path, offset to start from), in order.
    pub segments: Vec<(u64, PathBuf, u64)>,
    /// The session's type-2 frames, if it was a 2/254 session.
    pub meta_frames: Vec<Frame>,
    /// Sequence number of the first frame to replay.
    pub first_seq: u64,
    /// Payload bytes of the first frame to replay that were handled already.
    pub skip: u64,
    /// The worker's open file at the last acknowledgement, and its length then.
    pub file: Option<(PathBuf, u64)>,
    /// Rotating files created after the last acknowledgement (they hold only frames
    /// that are replayed: [`cut_uncommitted`] removes them).
    pub created: Vec<PathBuf>,
    dir: PathBuf,
}

impl Leftover {
    /// Calls `f` with its sequence number for every journaled frame not acknowledged, in
    /// order; `f` returns the worker's open file and its length. A torn tail ends the
    /// replay: a partial frame, or a frame that `check` refuses (its HMAC does not verify)
    /// or bytes that do not decode, followed only by zeros in the last segment (a write
    /// cut by a power loss). Such a frame or bytes anywhere else also end it, reported in
    /// [`ReplayEnd::refused`]: a journal altered on disk must not reach the workers. Reads
    /// through a bounded buffer
    /// (frames are at most max payload). Progress is acknowledged in the ack file after
    /// each frame, so a crash during the replay does not replay those frames again.
    pub fn replay(
        &self,
        check: impl FnMut(&Frame) -> bool,
        f: impl FnMut(u64, Frame) -> io::Result<Replayed>,
    ) -> io::Result<ReplayEnd> {
        let files = self.files()?;
        self.replay_with(&files, check, f)
    }

    /// The acknowledgement log of this journal for its replay (see [`Journal::files`]):
    /// give it to the replay's worker, then to [`Leftover::replay_with`].
    pub fn files(&self) -> io::Result<JournalFiles> {
        let ack = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(ack_path(&self.dir, &self.session))?;
        let (seg, off) = self
            .segments
            .first()
            .map(|(s, _, from)| (*s, *from))
            .unwrap_or((0, 0));
        let at = AckPoint {
            off,
            seq: self.first_seq,
            skip: self.skip,
        };
        Ok(JournalFiles(Arc::new(Mutex::new(AckLog::new(
            ack,
            seg,
            at,
            self.file.clone(),
        )))))
    }

    /// [`Leftover::replay`] acknowledging through `files` (the log the worker of the
    /// replay was given).
    pub fn replay_with(
        &self,
        files: &JournalFiles,
        mut check: impl FnMut(&Frame) -> bool,
        mut f: impl FnMut(u64, Frame) -> io::Result<Replayed>,
    ) -> io::Result<ReplayEnd> {
        let mut n = 0;
        let mut skip = self.skip;
        let mut recent = RecentFrames::default();
        for (seg, path, from) in &self.segments {
            let file = File::open(path)?;
            let len = file.metadata()?.len();
            if *from >= len {
                continue;
            }
            recent.clear();
            let mut r = BufReader::with_capacity(256 * 1024, file);
            io::copy(&mut (&mut r).take(*from), &mut io::sink())?;
            let mut dec = Decoder::with_max_payload(u32::MAX);
            let mut buf = vec![0u8; 256 * 1024];
            let mut last_end = *from;
            loop {
                let k = r.read(&mut buf)?;
                if k == 0 {
                    break;
                }
                let mut input = Bytes::copy_from_slice(&buf[..k]);
                while !input.is_empty() {
                    match dec.decode(&mut input) {
                        Ok(Some(mut frame)) => {
                            let seq = self.first_seq + n;
                            let end = from + dec.bytes_consumed();
                            if !check(&frame) {
                                // followed by nothing but zeros in the last segment: a
                                // write torn by a power loss (never synced, never
                                // acknowledged), the end; followed by more: damage
                                let last = self.segments.last().is_some_and(|l| l.0 == *seg);
                                let torn = last && zeros_from(path, end)?;
                                return Ok(ReplayEnd {
                                    frames: n,
                                    refused: (!torn).then_some(seq),
                                });
                            }
                            n += 1;
                            last_end = end;
                            let start = end - frame.wire_len() as u64;
                            let s = std::mem::take(&mut skip).min(frame.payload.len() as u64);
                            if s > 0 {
                                frame.payload = frame.payload.slice(s as usize..);
                            }
                            recent.push(start, seq, frame.payload.len() as u64, s);
                            let r = f(seq, frame)?;
                            let at = recent.resume(end, seq + 1, r.carry);
                            let file = r.file.as_ref().map(|(p, l)| (p.as_path(), *l));
                            files
                                .0
                                .lock()
                                .map_err(|_| io::Error::other("acknowledgement log poisoned"))?
                                .ack(*seg, at, file)?;
                        }
                        Ok(None) => break,
                        Err(_) => {
                            // The end of what was written (zeros: a direct journal's
                            // padding, or blocks never written) is the torn end; other
                            // bytes that do not decode are a damaged journal.
                            let refused =
                                (!zeros_from(path, last_end)?).then_some(self.first_seq + n);
                            return Ok(ReplayEnd { frames: n, refused });
                        }
                    }
                }
            }
        }
        Ok(ReplayEnd::frames(n))
    }

    /// The replay is done: removes the session's files.
    pub fn finish(self) -> io::Result<()> {
        remove_session(&self.dir, &self.session)
    }

    /// Whether the frames of the session's `.meta` file (the type-2 frames of a 2/254
    /// session) all pass `check`.
    pub fn meta_verifies(&self, mut check: impl FnMut(&Frame) -> bool) -> bool {
        self.meta_frames.iter().all(&mut check)
    }

    /// The replay stopped at a frame that did not verify: moves the session's files to
    /// `<journal>/unverified/` (never replayed again, never removed by the server), so
    /// that an operator can look at them. Returns that folder.
    pub fn quarantine(self) -> io::Result<PathBuf> {
        let to = self.dir.join(UNVERIFIED_DIR);
        fs::create_dir_all(&to)?;
        let prefix = format!("{}.", self.session.simple());
        let mut files = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            let name = e.file_name();
            if e.file_type()?.is_file() && name.to_string_lossy().starts_with(&prefix) {
                files.push(name);
            }
        }
        // the ack file last: a quarantine cut short leaves segments that a recovery
        // still reads from the acknowledged point, never from the start
        files.sort_by_key(|n| n.to_string_lossy().ends_with(".ack"));
        for name in files {
            fs::rename(self.dir.join(&name), to.join(&name))?;
        }
        sync_dir(&to)?;
        sync_dir(&self.dir)?;
        Ok(to)
    }
}

/// Where [`Leftover::quarantine`] keeps the journals whose replay stopped at a frame that
/// did not verify (a sub-folder of the journal folder).
pub const UNVERIFIED_DIR: &str = "unverified";

/// How a replay ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayEnd {
    /// Frames handed to the callback.
    pub frames: u64,
    /// Where the replay stopped on damage: the sequence number of the frame that the
    /// check refused or that did not decode.
    pub refused: Option<u64>,
}

impl ReplayEnd {
    fn frames(frames: u64) -> ReplayEnd {
        ReplayEnd {
            frames,
            refused: None,
        }
    }
}

/// Whether every byte of the file from `at` on is zero.
fn zeros_from(path: &Path, at: u64) -> io::Result<bool> {
    let mut r = BufReader::new(File::open(path)?);
    io::copy(&mut (&mut r).take(at), &mut io::sink())?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            return Ok(true);
        }
        if buf[..k].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

fn read_frames(path: &Path) -> io::Result<Vec<Frame>> {
    let raw = fs::read(path)?;
    let mut input = Bytes::from(raw);
    let mut dec = Decoder::with_max_payload(u32::MAX);
    let mut out = Vec::new();
    while let Ok(Some(f)) = dec.decode(&mut input) {
        out.push(f);
    }
    Ok(out)
}

/// Finds the journals of a previous run under `dir`.
pub fn recover(dir: &Path) -> io::Result<Vec<Leftover>> {
    let mut found: std::collections::BTreeMap<Uuid, Vec<(u64, PathBuf)>> = Default::default();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut sessions = std::collections::BTreeSet::new();
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let mut parts = name.split('.');
        let (Some(id), Some(rest)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(session) = Uuid::parse_str(id) else {
            continue;
        };
        sessions.insert(session);
        if let (Ok(seg), Some("jnl")) = (rest.parse::<u64>(), parts.next()) {
            found.entry(session).or_default().push((seg, e.path()));
        }
    }
    let mut out = Vec::new();
    for session in sessions {
        let mut segs = found.remove(&session).unwrap_or_default();
        segs.sort();
        let (rec, created) = match fs::read(ack_path(dir, &session)) {
            Ok(b) => (parse_ack(&b), parse_created(&b)),
            Err(_) => (AckRecord::default(), Vec::new()),
        };
        let (ack_seg, ack_off) = (rec.seg, rec.off);
        let mut segments = Vec::new();
        for (seg, path) in segs {
            if seg < ack_seg {
                continue;
            }
            let from = if seg == ack_seg { ack_off } else { 0 };
            segments.push((seg, path, from));
        }
        let meta_frames = match read_frames(&meta_path(dir, &session)) {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        out.push(Leftover {
            session,
            segments,
            meta_frames,
            first_seq: rec.next_seq,
            skip: rec.skip,
            file: rec.file,
            created,
            dir: dir.to_path_buf(),
        });
    }
    Ok(out)
}

/// Before the files of a crashed run are finished: cuts each session's open file back to
/// its length at the session's last acknowledgement (the bytes past it were written for
/// frames that are not acknowledged, which the replay writes again). Returns the bytes
/// cut.
pub fn cut_uncommitted(dir: &Path) -> io::Result<u64> {
    let mut cut = 0;
    for left in recover(dir)? {
        for path in &left.created {
            match fs::remove_file(path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a file created after the last acknowledgement (its frames are replayed)");
                    if let Some(d) = path.parent() {
                        sync_dir(d)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let Some((path, len)) = &left.file else {
            continue;
        };
        let f = match OpenOptions::new().write(true).open(path) {
            Ok(f) => f,
            // finished (gzipped) already: nothing was written to it after the ack
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let have = f.metadata()?.len();
        if have > *len {
            f.set_len(*len)?;
            f.sync_all()?;
            cut += have - len;
            tracing::info!(path = %path.display(), bytes = have - len, "cut bytes of frames not acknowledged");
        }
    }
    Ok(cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use d4_proto::Encoder;
    use std::os::unix::fs::FileExt;

    fn frame(enc: &Encoder, i: u64) -> Frame {
        let mut b = Bytes::from(enc.encode(i, format!("entry {i}\n").as_bytes()).unwrap());
        Decoder::new().decode(&mut b).unwrap().unwrap()
    }

    #[test]
    fn replays_only_unacked_and_survives_torn_tail() {
        replays_only_unacked_and_survives_torn_tail_with(false);
    }

    #[test]
    fn direct_replays_only_unacked_and_survives_torn_tail() {
        replays_only_unacked_and_survives_torn_tail_with(true);
    }

    fn replays_only_unacked_and_survives_torn_tail_with(direct: bool) {
        let dir = tempfile::tempdir().unwrap();
        let enc = Encoder::new(Uuid::new_v4(), b"k", 3);
        let s = Uuid::new_v4();
        let mut j = Journal::create_with(dir.path(), s, 200, direct).unwrap();
        assert_direct(&j, direct);
        let mut ends = Vec::new();
        for i in 0..10 {
            ends.push(j.append(&frame(&enc, i)).unwrap());
            j.sync().unwrap();
            // acknowledge the first 6, one by one (segments roll over at 200 bytes)
            if i < 6 {
                let at = AckPoint {
                    off: *ends.last().unwrap(),
                    seq: i + 1,
                    skip: 0,
                };
                j.ack(at, None).unwrap();
            }
        }
        // a torn tail: half a frame where the next one would go (over a direct
        // journal's padding)
        let (seg, written) = (j.seg, j.written);
        drop(j);
        let f = OpenOptions::new()
            .write(true)
            .open(seg_path(dir.path(), &s, seg))
            .unwrap();
        f.write_all_at(&frame(&enc, 99).to_bytes()[..70], written)
            .unwrap();
        let left = recover(dir.path()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].first_seq, 6);
        let mut got = Vec::new();
        let key = d4_proto::HmacKey::new(b"k");
        let end = left[0]
            .replay(
                |f| key.verify(f),
                |seq, f| {
                    assert_eq!(seq, f.header.timestamp, "frame numbers follow the stream");
                    got.push(f.header.timestamp);
                    Ok(Replayed::default())
                },
            )
            .unwrap();
        assert_eq!(got, vec![6, 7, 8, 9]);
        assert_eq!(end.refused, None, "a torn tail is the end, not damage");
        // the replay acknowledged its progress: a second recovery has nothing left
        let again = recover(dir.path()).unwrap();
        assert_eq!(again[0].first_seq, 10);
        let mut n = 0;
        again[0]
            .replay(
                |f| key.verify(f),
                |_, _| {
                    n += 1;
                    Ok(Replayed::default())
                },
            )
            .unwrap();
        assert_eq!(n, 0);
        left.into_iter().next().unwrap().finish().unwrap();
        assert!(recover(dir.path()).unwrap().is_empty());
    }

    /// A direct journal is direct where the test's temporary folder supports `O_DIRECT`
    /// (tmpfs does not: the journal is buffered there, which the tests then cover).
    fn assert_direct(j: &Journal, asked: bool) {
        if asked && j.direct.is_none() {
            eprintln!("O_DIRECT is not supported in the temporary folder: buffered journal");
        }
        assert!(asked || j.direct.is_none());
    }

    /// The direct journal holds the same bytes as the buffered one, then zeros up to the
    /// next 4 KiB; appends of single frames, of batches, of frames larger than a block
    /// and of empty payloads; the zeros read back as the torn end of the journal.
    #[test]
    fn direct_journal_holds_the_same_bytes_then_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let enc = Encoder::new(Uuid::new_v4(), b"k", 3);
        let frames: Vec<Frame> = (0..200u64)
            .map(|i| {
                let len = [0, 1, 61, 4034, 4096, 9000, 100][i as usize % 7];
                let mut b = Bytes::from(enc.encode(i, &vec![b'a' + (i % 26) as u8; len]).unwrap());
                Decoder::new().decode(&mut b).unwrap().unwrap()
            })
            .collect();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut buffered = Journal::create_with(dir.path(), a, 1 << 30, false).unwrap();
        let mut direct = Journal::create_with(dir.path(), b, 1 << 30, true).unwrap();
        assert_direct(&direct, true);
        let (mut ends_a, mut ends_b) = (Vec::new(), Vec::new());
        let mut rest = &frames[..];
        let mut n = 1;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(n.min(rest.len()));
            if n % 3 == 0 {
                for f in now {
                    ends_a.push(buffered.append(f).unwrap());
                    ends_b.push(direct.append(f).unwrap());
                }
            } else {
                buffered.append_batch(now, &mut ends_a).unwrap();
                direct.append_batch(now, &mut ends_b).unwrap();
            }
            direct.sync().unwrap();
            rest = later;
            n = n % 11 + 1;
        }
        // one batch larger than the direct buffer's limit: written in pieces
        let big: Vec<Frame> = frames.iter().cycle().take(700).cloned().collect();
        assert!(big.iter().map(Frame::wire_len).sum::<usize>() > crate::direct::MAX_BUF);
        buffered.append_batch(&big, &mut ends_a).unwrap();
        direct.append_batch(&big, &mut ends_b).unwrap();
        buffered.append_batch(&frames[..3], &mut ends_a).unwrap();
        direct.append_batch(&frames[..3], &mut ends_b).unwrap();
        if let Some(d) = &direct.direct {
            assert!(
                d.capacity() <= crate::direct::MAX_BUF,
                "the buffer stays bounded"
            );
        }
        assert_eq!(ends_a, ends_b);
        let want = fs::read(seg_path(dir.path(), &a, 0)).unwrap();
        let got = fs::read(seg_path(dir.path(), &b, 0)).unwrap();
        assert_eq!(want.len() as u64, *ends_a.last().unwrap());
        assert_eq!(&got[..want.len()], &want[..]);
        if direct.direct.is_some() {
            assert_eq!(got.len() % crate::direct::ALIGN, 0);
            assert!(got.len() - want.len() < crate::direct::ALIGN);
        }
        assert!(got[want.len()..].iter().all(|&x| x == 0));
        drop(direct);
        let all: Vec<&Frame> = frames.iter().chain(&big).chain(&frames[..3]).collect();
        let left = recover(dir.path()).unwrap();
        let left = left.iter().find(|l| l.session == b).unwrap();
        let mut seen = Vec::new();
        let end = left
            .replay(
                |_| true,
                |seq, f| {
                    assert_eq!(f.payload, all[seq as usize].payload);
                    seen.push(seq);
                    Ok(Replayed::default())
                },
            )
            .unwrap();
        assert_eq!(seen, (0..all.len() as u64).collect::<Vec<_>>());
        assert_eq!(end.refused, None);
    }

    /// Bytes that do not decode before the end of what was written are damage, not a
    /// torn end: the replay reports the frame where it stopped.
    #[test]
    fn replay_refuses_a_damaged_header() {
        for direct in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let enc = Encoder::new(Uuid::new_v4(), b"k", 3);
            let s = Uuid::new_v4();
            let mut j = Journal::create_with(dir.path(), s, 1 << 20, direct).unwrap();
            let mut ends = vec![0];
            for i in 0..5 {
                ends.push(j.append(&frame(&enc, i)).unwrap());
            }
            j.sync().unwrap();
            drop(j);
            let seg = seg_path(dir.path(), &s, 0);
            let mut raw = fs::read(&seg).unwrap();
            raw[ends[3] as usize] = 9; // frame 3's version byte
            fs::write(&seg, &raw).unwrap();
            let left = recover(dir.path()).unwrap().pop().unwrap();
            let mut got = Vec::new();
            let end = left
                .replay(
                    |_| true,
                    |seq, _| {
                        got.push(seq);
                        Ok(Replayed::default())
                    },
                )
                .unwrap();
            assert_eq!(got, [0, 1, 2], "direct: {direct}");
            assert_eq!(end.refused, Some(3), "direct: {direct}");
        }
    }

    #[test]
    fn batch_append_writes_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut enc = Encoder::new(Uuid::new_v4(), b"k", 2);
        let mut frames = vec![frame(&enc, 1)];
        enc.set_type(254);
        frames.extend((2..300).map(|i| frame(&enc, i)));
        frames.push({
            let mut b = Bytes::from(enc.encode(300, b"").unwrap());
            Decoder::new().decode(&mut b).unwrap().unwrap()
        });
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut one = Journal::create(dir.path(), a, 1 << 20).unwrap();
        let mut ends_one = Vec::new();
        for f in &frames {
            ends_one.push(one.append(f).unwrap());
        }
        let mut batch = Journal::create(dir.path(), b, 1 << 20).unwrap();
        let mut ends = Vec::new();
        batch.append_batch(&frames[..10], &mut ends).unwrap();
        batch.append_batch(&frames[10..], &mut ends).unwrap();
        assert_eq!(ends, ends_one);
        let paths: [fn(&Path, &Uuid, u64) -> PathBuf; 2] = [seg_path, |d, s, _| meta_path(d, s)];
        for p in paths {
            assert_eq!(
                fs::read(p(dir.path(), &a, 0)).unwrap(),
                fs::read(p(dir.path(), &b, 0)).unwrap()
            );
        }
    }

    /// A batch that reached the disk only in part after a power loss reads back with
    /// zeros where its payload should be: the replay checks each frame's HMAC, stops
    /// before the first that fails and keeps the session's journal aside.
    #[test]
    fn replay_stops_at_a_frame_whose_hmac_fails_and_keeps_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let enc = Encoder::new(Uuid::new_v4(), b"k", 3);
        let s = Uuid::new_v4();
        let mut j = Journal::create(dir.path(), s, 1 << 20).unwrap();
        let mut ends = vec![0];
        for i in 0..5 {
            ends.push(j.append(&frame(&enc, i)).unwrap());
        }
        j.sync().unwrap();
        let at = AckPoint {
            off: ends[1],
            seq: 1,
            skip: 0,
        };
        j.ack(at, None).unwrap();
        drop(j);
        // frame 3's payload is zeros on disk
        let seg = seg_path(dir.path(), &s, 0);
        let mut raw = fs::read(&seg).unwrap();
        let payload = ends[3] as usize + d4_proto::HEADER_LEN..ends[4] as usize;
        raw[payload].fill(0);
        fs::write(&seg, &raw).unwrap();

        let key = d4_proto::HmacKey::new(b"k");
        let left = recover(dir.path()).unwrap().pop().unwrap();
        let mut got = Vec::new();
        let end = left
            .replay(
                |f| key.verify(f),
                |seq, _| {
                    got.push(seq);
                    Ok(Replayed::default())
                },
            )
            .unwrap();
        assert_eq!(got, [1, 2], "frames before the bad one are replayed");
        assert_eq!(
            end,
            ReplayEnd {
                frames: 2,
                refused: Some(3)
            }
        );
        let kept = left.quarantine().unwrap();
        assert_eq!(kept, dir.path().join(UNVERIFIED_DIR));
        assert!(kept.join(seg.file_name().unwrap()).is_file());
        assert!(kept.join(format!("{}.ack", s.simple())).is_file());
        assert_eq!(fs::read(kept.join(seg.file_name().unwrap())).unwrap(), raw);
        // never replayed again, and the folder does not confuse the recovery
        assert!(recover(dir.path()).unwrap().is_empty());
        // a frame signed with another key fails the same way
        let other = Encoder::new(Uuid::new_v4(), b"not k", 3);
        assert!(!key.verify(&frame(&other, 0)));
        assert!(key.verify(&frame(&enc, 0)));
    }

    #[test]
    fn meta_frames_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut enc = Encoder::new(Uuid::new_v4(), b"k", 2);
        let s = Uuid::new_v4();
        let mut j = Journal::create(dir.path(), s, 1 << 20).unwrap();
        let e = j.append(&frame(&enc, 1)).unwrap();
        enc.set_type(254);
        j.append(&frame(&enc, 2)).unwrap();
        j.sync().unwrap();
        j.ack(
            AckPoint {
                off: e,
                seq: 1,
                skip: 0,
            },
            None,
        )
        .unwrap();
        drop(j);
        let left = recover(dir.path()).unwrap();
        assert_eq!(left[0].meta_frames.len(), 1);
        assert!(left[0].meta_verifies(|f| d4_proto::HmacKey::new(b"k").verify(f)));
        assert!(!left[0].meta_verifies(|f| d4_proto::HmacKey::new(b"other").verify(f)));
        let mut n = 0;
        left[0]
            .replay(
                |_| true,
                |seq, f| {
                    assert_eq!(seq, 1);
                    assert_eq!(f.header.d4_type, 254);
                    n += 1;
                    Ok(Replayed::default())
                },
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn resume_point_covers_the_carry() {
        let mut r = RecentFrames::default();
        // frames of 10, 10 and 5 payload bytes at offsets 0, 72, 144 (seq 0, 1, 2)
        r.push(0, 0, 10, 0);
        r.push(72, 1, 10, 0);
        r.push(144, 2, 5, 0);
        let at = |off, seq, skip| AckPoint { off, seq, skip };
        assert_eq!(r.resume(211, 3, 0), at(211, 3, 0));
        r.push(0, 0, 10, 0);
        r.push(72, 1, 10, 0);
        r.push(144, 2, 5, 0);
        assert_eq!(r.resume(211, 3, 12), at(72, 1, 3));
        // older frames are forgotten, the ones holding the carry kept
        assert_eq!(r.resume(211, 3, 12), at(72, 1, 3));
        assert_eq!(r.resume(211, 3, 5), at(144, 2, 0));
        assert_eq!(r.resume(211, 3, 3), at(144, 2, 2));
        r.push(211, 3, 4, 0);
        assert_eq!(r.resume(277, 4, 6), at(144, 2, 3));
        // a replayed first frame that was given from byte 4 on
        let mut r = RecentFrames::default();
        r.push(0, 7, 6, 4);
        assert_eq!(r.resume(72, 8, 2), at(0, 7, 8));
    }

    #[test]
    fn ack_record_roundtrip_and_old_format() {
        let mut b = Vec::new();
        let p = Path::new("/data/x/3/2026/11/22/x-2026-11-22-020000.syslog.txt");
        let at = AckPoint {
            off: 77,
            seq: 12,
            skip: 5,
        };
        ack_record(&mut b, 3, &at, Some((p, 4096)), &[]);
        let r = parse_ack(&b);
        assert_eq!(
            r,
            AckRecord {
                seg: 3,
                off: 77,
                next_seq: 12,
                skip: 5,
                file: Some((p.to_path_buf(), 4096))
            }
        );
        // a shorter record written later over a longer one: the path length decides
        let mut c = Vec::new();
        let at = AckPoint {
            off: 90,
            seq: 13,
            skip: 0,
        };
        ack_record(&mut c, 3, &at, None, &[]);
        let mut over = b.clone();
        over[..c.len()].copy_from_slice(&c);
        assert_eq!(parse_ack(&over).file, None);
        assert_eq!(parse_ack(&over).next_seq, 13);
        // the 16-byte record of earlier versions, and garbage
        let mut old = vec![0u8; 16];
        old[..8].copy_from_slice(&2u64.to_le_bytes());
        old[8..].copy_from_slice(&5u64.to_le_bytes());
        let r = parse_ack(&old);
        assert_eq!((r.seg, r.off, r.next_seq, r.file), (2, 5, 0, None));
        let _ = parse_ack(&[1, 2, 3]);
        let mut torn = b.clone();
        torn.truncate(48);
        assert_eq!(parse_ack(&torn).file, None);
    }

    #[test]
    fn cut_uncommitted_cuts_the_recorded_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.txt");
        fs::write(&out, b"acked\nnot acked\n").unwrap();
        let enc = Encoder::new(Uuid::new_v4(), b"k", 3);
        let mut j = Journal::create(&dir.path().join("j"), Uuid::new_v4(), 1 << 20).unwrap();
        let e = j.append(&frame(&enc, 0)).unwrap();
        j.append(&frame(&enc, 1)).unwrap();
        j.sync().unwrap();
        let at = AckPoint {
            off: e,
            seq: 1,
            skip: 0,
        };
        j.ack(at, Some((&out, 6))).unwrap();
        drop(j);
        assert_eq!(cut_uncommitted(&dir.path().join("j")).unwrap(), 10);
        assert_eq!(fs::read(&out).unwrap(), b"acked\n");
        // again: nothing more; a missing file (gzipped since) is fine
        assert_eq!(cut_uncommitted(&dir.path().join("j")).unwrap(), 0);
        fs::remove_file(&out).unwrap();
        assert_eq!(cut_uncommitted(&dir.path().join("j")).unwrap(), 0);
    }
}
