//! Replay of a journal left by a previous run ([`Leftover`]): the frames after the last
//! acknowledgement, each checked before it reaches a worker, the resume point inside a
//! frame when the worker held a partial line ([`RecentFrames`]), and the quarantine of a
//! journal whose replay stopped at damage.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use d4_proto::{Decoder, Frame};
use uuid::Uuid;

use super::ack::{AckLog, AckPoint, JournalFiles};
use super::{ack_path, remove_session, sync_dir, UNVERIFIED_DIR};

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
    pub(super) dir: PathBuf,
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
    #[cfg(test)]
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

    /// `Leftover::replay` (a test helper) acknowledging through `files` (the log the worker of the
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
