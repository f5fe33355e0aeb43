//! The durable per-session buffer: every accepted frame is appended to a journal file
//! (raw D4 wire bytes, so the file is self-delimiting and can be read back with the
//! protocol decoder) and synced before the worker sees it; the worker's progress is
//! recorded in a small ack file. After a crash, [`recover`] finds the entries that were
//! journaled but not acknowledged and they are replayed once.
//!
//! Layout under `<data>/journal/`:
//! * `<session>.<seg>.jnl` — segments of frames; a new segment starts when everything
//!   written so far is acknowledged and the segment is larger than `segment_bytes`.
//! * `<session>.ack` — 16 bytes: segment number and byte offset acknowledged in it
//!   (written in place with `pwrite`, one small write per acknowledgement).
//! * `<session>.meta` — the type-2 frames of a 2/254 session, so that a replay of type-254
//!   entries knows its extended type even when the segment holding them is gone.
//!
//! A torn last entry (the process died while appending) was never synced, so it was never
//! acknowledged to anyone: recovery stops there.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use d4_proto::{Decoder, Frame};
use uuid::Uuid;

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
    ack_file: File,
    meta_file: Option<File>,
    segment_bytes: u64,
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
        fs::create_dir_all(dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(seg_path(dir, &session, 0))?;
        let ack_file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(ack_path(dir, &session))?;
        ack_file.write_all_at(&[0u8; 16], 0)?;
        sync_dir(dir)?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            session,
            seg: 0,
            file,
            written: 0,
            synced: 0,
            acked: 0,
            ack_file,
            meta_file: None,
            segment_bytes: segment_bytes.max(1),
        })
    }

    /// Appends one frame; returns its end position (what to acknowledge once handled).
    pub fn append(&mut self, frame: &Frame) -> io::Result<u64> {
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

    /// Records that the entries up to `end` were handled by the worker.
    pub fn ack(&mut self, end: u64) -> io::Result<()> {
        let mut rec = [0u8; 16];
        rec[..8].copy_from_slice(&self.seg.to_le_bytes());
        rec[8..].copy_from_slice(&end.to_le_bytes());
        self.ack_file.write_all_at(&rec, 0)?;
        self.acked = end;
        if self.acked == self.written && self.written >= self.segment_bytes {
            self.next_segment()?;
        }
        Ok(())
    }

    fn next_segment(&mut self) -> io::Result<()> {
        let next = self.seg + 1;
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(seg_path(&self.dir, &self.session, next))?;
        sync_dir(&self.dir)?;
        let mut rec = [0u8; 16];
        rec[..8].copy_from_slice(&next.to_le_bytes());
        self.ack_file.write_all_at(&rec, 0)?;
        self.ack_file.sync_data()?;
        let old = seg_path(&self.dir, &self.session, self.seg);
        self.seg = next;
        self.file = file;
        self.written = 0;
        self.synced = 0;
        self.acked = 0;
        fs::remove_file(old)
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

/// A session journal left by a previous run.
#[derive(Debug, Clone)]
pub struct Leftover {
    pub session: Uuid,
    /// (segment, path, offset to start from), in order.
    pub segments: Vec<(u64, PathBuf, u64)>,
    /// The session's type-2 frames, if it was a 2/254 session.
    pub meta_frames: Vec<Frame>,
    dir: PathBuf,
}

impl Leftover {
    /// Calls `f` for every journaled frame not acknowledged, in order. A torn tail ends
    /// the replay. Reads through a bounded buffer (frames are at most max payload).
    /// Progress is acknowledged in the ack file after each frame, so a crash during the
    /// replay does not replay those frames again.
    pub fn replay(&self, mut f: impl FnMut(Frame) -> io::Result<()>) -> io::Result<u64> {
        let mut n = 0;
        let ack = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(ack_path(&self.dir, &self.session))?;
        for (seg, path, from) in &self.segments {
            let file = File::open(path)?;
            let len = file.metadata()?.len();
            if *from >= len {
                continue;
            }
            let mut r = BufReader::with_capacity(256 * 1024, file);
            io::copy(&mut (&mut r).take(*from), &mut io::sink())?;
            let mut dec = Decoder::with_max_payload(u32::MAX);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let k = r.read(&mut buf)?;
                if k == 0 {
                    break;
                }
                let mut input = Bytes::copy_from_slice(&buf[..k]);
                while !input.is_empty() {
                    match dec.decode(&mut input) {
                        Ok(Some(frame)) => {
                            n += 1;
                            f(frame)?;
                            let mut rec = [0u8; 16];
                            rec[..8].copy_from_slice(&seg.to_le_bytes());
                            rec[8..].copy_from_slice(&(from + dec.bytes_consumed()).to_le_bytes());
                            ack.write_all_at(&rec, 0)?;
                        }
                        Ok(None) => break,
                        Err(_) => return Ok(n),
                    }
                }
            }
        }
        Ok(n)
    }

    /// The replay is done: removes the session's files.
    pub fn finish(self) -> io::Result<()> {
        remove_session(&self.dir, &self.session)
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
        let (ack_seg, ack_off) = match fs::read(ack_path(dir, &session)) {
            Ok(b) if b.len() >= 16 => {
                let mut s = [0u8; 8];
                let mut o = [0u8; 8];
                s.copy_from_slice(&b[..8]);
                o.copy_from_slice(&b[8..16]);
                (u64::from_le_bytes(s), u64::from_le_bytes(o))
            }
            _ => (0, 0),
        };
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
            dir: dir.to_path_buf(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use d4_proto::Encoder;

    fn frame(enc: &Encoder, i: u64) -> Frame {
        let mut b = Bytes::from(enc.encode(i, format!("entry {i}\n").as_bytes()).unwrap());
        Decoder::new().decode(&mut b).unwrap().unwrap()
    }

    #[test]
    fn replays_only_unacked_and_survives_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let enc = Encoder::new(Uuid::new_v4(), b"k", 3);
        let s = Uuid::new_v4();
        let mut j = Journal::create(dir.path(), s, 200).unwrap();
        let mut ends = Vec::new();
        for i in 0..10 {
            ends.push(j.append(&frame(&enc, i)).unwrap());
            j.sync().unwrap();
            // acknowledge the first 6, one by one (segments roll over at 200 bytes)
            if i < 6 {
                j.ack(*ends.last().unwrap()).unwrap();
            }
        }
        // a torn tail: half a frame
        let seg = j.seg;
        drop(j);
        let mut f = OpenOptions::new()
            .append(true)
            .open(seg_path(dir.path(), &s, seg))
            .unwrap();
        f.write_all(&frame(&enc, 99).to_bytes()[..70]).unwrap();
        let left = recover(dir.path()).unwrap();
        assert_eq!(left.len(), 1);
        let mut got = Vec::new();
        left[0]
            .replay(|f| {
                got.push(f.header.timestamp);
                Ok(())
            })
            .unwrap();
        assert_eq!(got, vec![6, 7, 8, 9]);
        // the replay acknowledged its progress: a second recovery has nothing left
        let again = recover(dir.path()).unwrap();
        let mut n = 0;
        again[0]
            .replay(|_| {
                n += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(n, 0);
        left.into_iter().next().unwrap().finish().unwrap();
        assert!(recover(dir.path()).unwrap().is_empty());
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
        j.ack(e).unwrap();
        drop(j);
        let left = recover(dir.path()).unwrap();
        assert_eq!(left[0].meta_frames.len(), 1);
        let mut n = 0;
        left[0]
            .replay(|f| {
                assert_eq!(f.header.d4_type, 254);
                n += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(n, 1);
    }
}
