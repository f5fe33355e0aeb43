//! The bounded on-disk spool: frames that could not be written to the collector, kept in
//! order in segment files and drained first when the connection is back (also after a
//! restart). Whole encoded frames are stored, so what is replayed is byte-identical.
//!
//! Layout of the spool folder: `NNNNNNNNNNNNNNNN.seg` files (frames appended back to back,
//! oldest segment first) and `cursor` (`<segment id> <offset>`: what was already sent).
//! A torn frame at the end of the last segment (crash while appending) is cut off at open.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use d4_proto::HEADER_LEN;

/// A new segment is started past this size.
const SEGMENT_MAX: u64 = 16 << 20;

#[derive(Debug)]
struct Segment {
    id: u64,
    len: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max: u64,
    segments: VecDeque<Segment>,
    writer: Option<(u64, BufWriter<File>)>,
    /// Offset already sent in the first segment.
    read_pos: u64,
    reader: Option<(u64, File)>,
    /// A segment was created since the last [`Spool::sync`]: the folder is synced too
    /// (else a power loss can lose the new file's name with its synced data).
    new_segment: bool,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.seg"))
}

fn frame_len(header: &[u8]) -> u64 {
    // size: the last 4 bytes of the 62-byte header, little-endian
    let s = &header[HEADER_LEN - 4..HEADER_LEN];
    HEADER_LEN as u64 + u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Length of the longest prefix of `file` (of `len` bytes) made of whole frames.
fn whole_frames_len(file: &mut File, len: u64) -> io::Result<u64> {
    let mut pos = 0u64;
    let mut h = [0u8; HEADER_LEN];
    while pos + HEADER_LEN as u64 <= len {
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut h)?;
        let n = frame_len(&h);
        if pos + n > len {
            break;
        }
        pos += n;
    }
    Ok(pos)
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, bounded to `max` bytes of pending frames.
    pub fn open(dir: &Path, max: u64) -> io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name
                .strip_suffix(".seg")
                .and_then(|s| s.parse::<u64>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let (cur_id, cur_pos) = match std::fs::read_to_string(dir.join("cursor")) {
            Ok(s) => {
                let mut it = s.split_whitespace().map(|v| v.parse::<u64>().ok());
                match (it.next().flatten(), it.next().flatten()) {
                    (Some(a), Some(b)) => (a, b),
                    _ => (0, 0),
                }
            }
            Err(_) => (0, 0),
        };
        let mut segments = VecDeque::new();
        let last = ids.last().copied();
        for id in ids {
            let p = seg_path(dir, id);
            if id < cur_id {
                std::fs::remove_file(&p)?; // fully sent before a crash
                continue;
            }
            let mut len = std::fs::metadata(&p)?.len();
            if Some(id) == last {
                let mut f = OpenOptions::new().read(true).write(true).open(&p)?;
                let whole = whole_frames_len(&mut f, len)?;
                if whole != len {
                    tracing::warn!(segment = %p.display(), cut = len - whole, "spool: removing a torn frame at the end");
                    f.set_len(whole)?;
                    len = whole;
                }
            }
            segments.push_back(Segment { id, len });
        }
        let read_pos = match segments.front() {
            Some(s) if s.id == cur_id => cur_pos.min(s.len),
            _ => 0,
        };
        let sp = Spool {
            dir: dir.to_path_buf(),
            max,
            segments,
            writer: None,
            read_pos,
            reader: None,
            new_segment: false,
        };
        if !sp.is_empty() {
            tracing::info!(dir = %dir.display(), bytes = sp.bytes(), "spool holds frames from a previous run: they go first");
        }
        Ok(sp)
    }

    /// Bytes of frames waiting.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum::<u64>() - self.read_pos
    }

    pub fn is_empty(&self) -> bool {
        self.bytes() == 0
    }

    /// True when no more frames may be added (the source must wait).
    /// Bytes that can still be spooled before the bound.
    pub fn room(&self) -> u64 {
        self.max.saturating_sub(self.bytes())
    }

    pub fn is_full(&self) -> bool {
        self.bytes() >= self.max
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends whole frames (the caller keeps the bound with [`Spool::is_full`] and
    /// [`Spool::room`]; one frame may go past it).
    pub fn push(&mut self, frames: &[u8]) -> io::Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        let need_new = self.segments.back().is_none_or(|s| s.len >= SEGMENT_MAX);
        if need_new {
            self.flush()?;
            let id = self.segments.back().map_or(1, |s| s.id + 1);
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(seg_path(&self.dir, id))?;
            self.writer = Some((id, BufWriter::with_capacity(1 << 20, f)));
            self.segments.push_back(Segment { id, len: 0 });
            self.new_segment = true;
        }
        let last_id = self.segments.back().map_or(0, |s| s.id);
        if self.writer.as_ref().is_none_or(|(id, _)| *id != last_id) {
            let f = OpenOptions::new()
                .append(true)
                .open(seg_path(&self.dir, last_id))?;
            self.writer = Some((last_id, BufWriter::with_capacity(1 << 20, f)));
        }
        if let Some((_, w)) = &mut self.writer {
            w.write_all(frames)?;
        }
        if let Some(s) = self.segments.back_mut() {
            s.len += frames.len() as u64;
        }
        Ok(())
    }

    /// Hands the buffered appends to the OS.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some((_, w)) = &mut self.writer {
            w.flush()?;
        }
        Ok(())
    }

    /// Flushes and syncs to disk (at exit).
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some((_, w)) = &mut self.writer {
            w.flush()?;
            w.get_ref().sync_all()?;
        }
        if self.new_segment {
            File::open(&self.dir)?.sync_all()?;
            self.new_segment = false;
        }
        self.save_cursor()
    }

    /// The oldest whole frames, about `max_bytes` of them (at least one frame), without
    /// removing them: call [`Spool::consume`] once they are written.
    pub fn peek(&mut self, max_bytes: usize) -> io::Result<Vec<u8>> {
        let Some(first) = self.segments.front() else {
            return Ok(Vec::new());
        };
        let (id, len) = (first.id, first.len);
        if self.writer.as_ref().is_some_and(|(wid, _)| *wid == id) {
            self.flush()?;
        }
        if self.reader.as_ref().is_none_or(|(rid, _)| *rid != id) {
            self.reader = Some((id, File::open(seg_path(&self.dir, id))?));
        }
        let Some((_, f)) = &mut self.reader else {
            return Ok(Vec::new());
        };
        let avail = len - self.read_pos;
        if avail == 0 {
            return Ok(Vec::new());
        }
        f.seek(SeekFrom::Start(self.read_pos))?;
        let want = avail.min(max_bytes.max(HEADER_LEN) as u64) as usize;
        let mut buf = vec![0u8; want];
        f.read_exact(&mut buf)?;
        // cut at the last whole frame; read more if the first frame is longer than max_bytes
        let mut pos = 0usize;
        while pos + HEADER_LEN <= buf.len() {
            let n = frame_len(&buf[pos..pos + HEADER_LEN]) as usize;
            if pos + n > buf.len() {
                if pos == 0 {
                    let extra = (n as u64).min(avail) as usize - buf.len();
                    let old = buf.len();
                    buf.resize(old + extra, 0);
                    f.read_exact(&mut buf[old..])?;
                    pos = buf.len();
                }
                break;
            }
            pos += n;
        }
        if pos == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "spool segment ends inside a frame",
            ));
        }
        buf.truncate(pos);
        Ok(buf)
    }

    /// Like [`Spool::peek`], but `skip` bytes past the sent position: whole frames that
    /// were peeked and written but are kept until confirmed (a sender that resends its
    /// unconfirmed frames after a reconnect). Empty when nothing follows them.
    pub fn peek_after(&mut self, skip: u64, max_bytes: usize) -> io::Result<Vec<u8>> {
        self.flush()?;
        let mut pos = self.read_pos + skip;
        let mut found = None;
        for s in &self.segments {
            if pos < s.len {
                found = Some((s.id, s.len));
                break;
            }
            pos -= s.len;
        }
        let Some((id, len)) = found else {
            return Ok(Vec::new());
        };
        let mut f = File::open(seg_path(&self.dir, id))?;
        let avail = len - pos;
        f.seek(SeekFrom::Start(pos))?;
        let want = avail.min(max_bytes.max(HEADER_LEN) as u64) as usize;
        let mut buf = vec![0u8; want];
        f.read_exact(&mut buf)?;
        let mut end = 0usize;
        while end + HEADER_LEN <= buf.len() {
            let n = frame_len(&buf[end..end + HEADER_LEN]) as usize;
            if end + n > buf.len() {
                if end == 0 && n as u64 <= avail {
                    let old = buf.len();
                    buf.resize(n, 0);
                    f.read_exact(&mut buf[old..])?;
                    end = n;
                }
                break;
            }
            end += n;
        }
        if end == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "spool segment ends inside a frame",
            ));
        }
        buf.truncate(end);
        Ok(buf)
    }

    /// Marks `n` bytes (as returned by [`Spool::peek`]) as sent.
    pub fn consume(&mut self, n: usize) -> io::Result<()> {
        self.read_pos += n as u64;
        if let Some(first) = self.segments.front() {
            if self.read_pos >= first.len {
                let id = first.id;
                let is_writer = self.writer.as_ref().is_some_and(|(wid, _)| *wid == id);
                if is_writer {
                    self.writer = None;
                }
                self.reader = None;
                self.segments.pop_front();
                self.read_pos = 0;
                std::fs::remove_file(seg_path(&self.dir, id))?;
            }
        }
        self.save_cursor()
    }

    fn save_cursor(&self) -> io::Result<()> {
        let id = self.segments.front().map_or(0, |s| s.id);
        let tmp = self.dir.join("cursor.tmp");
        std::fs::write(&tmp, format!("{id} {}\n", self.read_pos))?;
        std::fs::rename(&tmp, self.dir.join("cursor"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn frames(n: usize, size: usize) -> Vec<Vec<u8>> {
        let enc = d4_proto::Encoder::new(Uuid::nil(), b"k", 1);
        (0..n)
            .map(|i| {
                enc.encode(i as u64, &vec![(i % 251) as u8; size + i % 7])
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn peek_after_skips_unconfirmed_frames_across_segments() {
        let d = tempfile::tempdir().unwrap();
        let fs = frames(40, 600_000);
        let mut sp = Spool::open(d.path(), 1 << 40).unwrap();
        for f in &fs {
            sp.push(f).unwrap();
        }
        let all: Vec<u8> = fs.concat();
        let mut skip = 0usize;
        let mut got = Vec::new();
        loop {
            let b = sp.peek_after(skip as u64, 1_000_000).unwrap();
            if b.is_empty() {
                break;
            }
            skip += b.len();
            got.extend_from_slice(&b);
        }
        assert!(got == all);
        // consuming part of it moves the base
        let first = sp.peek(1).unwrap();
        sp.consume(first.len()).unwrap();
        let next = sp.peek_after(0, 1).unwrap();
        assert_eq!(next, fs[1]);
    }

    #[test]
    fn fifo_across_reopen_and_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        let fs = frames(50, 1000);
        let mut sp = Spool::open(d.path(), 1 << 30).unwrap();
        for f in &fs[..30] {
            sp.push(f).unwrap();
        }
        let b = sp.peek(3000).unwrap();
        assert_eq!(b, [fs[0].clone(), fs[1].clone()].concat());
        sp.consume(b.len()).unwrap();
        sp.sync().unwrap();
        drop(sp);
        // torn frame at the end
        let seg = seg_path(d.path(), 1);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&fs[30][..100]).unwrap();
        drop(f);
        let mut sp = Spool::open(d.path(), 1 << 30).unwrap();
        for f in &fs[30..] {
            sp.push(f).unwrap();
        }
        let mut out = Vec::new();
        for _ in 0..1000 {
            let b = sp.peek(2500).unwrap();
            if b.is_empty() {
                break;
            }
            out.extend_from_slice(&b);
            sp.consume(b.len()).unwrap();
        }
        assert_eq!(out, fs[2..].concat());
        assert!(sp.is_empty());
    }

    #[test]
    fn bounded_and_big_frames() {
        let d = tempfile::tempdir().unwrap();
        let fs = frames(3, 100_000);
        let mut sp = Spool::open(d.path(), 150_000).unwrap();
        sp.push(&fs[0]).unwrap();
        assert!(!sp.is_full());
        sp.push(&fs[1]).unwrap();
        assert!(sp.is_full());
        let b = sp.peek(10).unwrap();
        assert_eq!(b, fs[0]);
        sp.consume(b.len()).unwrap();
        assert!(!sp.is_full());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Any interleaving of appends, partial drains and reopenings gives back exactly the
        /// appended frames, in order, once.
        #[test]
        fn fifo_under_any_interleaving(
            ops in proptest::collection::vec((0usize..4, 0usize..3000, 1usize..9000), 1..40)
        ) {
            let d = tempfile::tempdir().unwrap();
            let enc = d4_proto::Encoder::new(Uuid::nil(), b"k", 1);
            let mut sp = Spool::open(d.path(), 1 << 30).unwrap();
            let (mut pushed, mut got) = (Vec::new(), Vec::new());
            for (i, (op, size, peek)) in ops.into_iter().enumerate() {
                match op {
                    0 | 1 => {
                        let f = enc.encode(i as u64, &vec![i as u8; size]).unwrap();
                        sp.push(&f).unwrap();
                        sp.flush().unwrap();
                        pushed.extend_from_slice(&f);
                    }
                    2 => {
                        let b = sp.peek(peek).unwrap();
                        got.extend_from_slice(&b);
                        sp.consume(b.len()).unwrap();
                    }
                    _ => {
                        sp.sync().unwrap();
                        sp = Spool::open(d.path(), 1 << 30).unwrap();
                    }
                }
            }
            loop {
                let b = sp.peek(4096).unwrap();
                if b.is_empty() { break; }
                got.extend_from_slice(&b);
                sp.consume(b.len()).unwrap();
            }
            proptest::prop_assert!(sp.is_empty());
            proptest::prop_assert_eq!(got, pushed);
        }
    }
}
