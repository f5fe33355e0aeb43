//! Appending to a file opened with `O_DIRECT`: offsets, lengths and memory must be
//! aligned, so bytes are gathered in an aligned buffer and written in aligned pieces. A
//! write that ends inside a block is padded with zeros; that block is kept and written
//! again, with more bytes in it, by the next write.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Alignment of `O_DIRECT` writes (offset, length and memory address).
pub const ALIGN: usize = 4096;
/// The largest buffer an appender keeps: more bytes are written in pieces of this size.
pub const MAX_BUF: usize = 1 << 20;

/// The aligned buffer of one file (allocated at the first [`DirectAppender::reserve`]).
#[derive(Debug, Default)]
pub struct DirectAppender {
    buf: Vec<u8>,
    /// Start of the aligned region in `buf`, and its size (a multiple of [`ALIGN`]).
    start: usize,
    cap: usize,
    /// Bytes in the region, and the file offset of its first byte (aligned).
    len: usize,
    base: u64,
}

impl DirectAppender {
    /// An appender at the start of an empty file; no memory yet.
    pub fn new() -> DirectAppender {
        DirectAppender::default()
    }

    /// Bytes appended so far (the file's length once the padding is cut).
    pub fn end(&self) -> u64 {
        self.base + self.len as u64
    }

    /// The region's size.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes that can be pushed before the region is full and written.
    pub fn room(&self) -> usize {
        self.cap - self.len
    }

    /// Makes the region at least `n` bytes (between [`ALIGN`] and [`MAX_BUF`]), keeping
    /// its bytes.
    pub fn reserve(&mut self, n: usize) {
        let n = n.clamp(ALIGN, MAX_BUF);
        if self.cap >= n {
            return;
        }
        let cap = n.next_power_of_two();
        let mut buf = vec![0u8; cap + ALIGN];
        let start = (ALIGN - buf.as_ptr() as usize % ALIGN) % ALIGN;
        buf[start..start + self.len].copy_from_slice(&self.buf[self.start..self.start + self.len]);
        self.buf = buf;
        self.start = start;
        self.cap = cap;
    }

    /// Appends `data`, writing the region to `file` each time it is full. On error the
    /// appender must not be used again.
    pub fn push(&mut self, file: &File, mut data: &[u8]) -> io::Result<()> {
        if self.cap == 0 {
            self.reserve(data.len());
        }
        while !data.is_empty() {
            let k = self.room().min(data.len());
            let at = self.start + self.len;
            self.buf[at..at + k].copy_from_slice(&data[..k]);
            self.len += k;
            data = &data[k..];
            if self.len == self.cap {
                file.write_all_at(&self.buf[self.start..self.start + self.cap], self.base)?;
                self.base += self.cap as u64;
                self.len = 0;
            }
        }
        Ok(())
    }

    /// Writes what is buffered, padded with zeros to [`ALIGN`], and keeps the last
    /// partial block for the next write. On error the appender must not be used again.
    pub fn write_padded(&mut self, file: &File) -> io::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let padded = self.len.div_ceil(ALIGN) * ALIGN;
        self.buf[self.start + self.len..self.start + padded].fill(0);
        file.write_all_at(&self.buf[self.start..self.start + padded], self.base)?;
        let tail = self.len % ALIGN;
        let from = self.start + self.len - tail;
        self.buf.copy_within(from..from + tail, self.start);
        self.base += (self.len - tail) as u64;
        self.len = tail;
        Ok(())
    }

    /// Starts over at the beginning of another empty file (the buffer is kept).
    pub fn reset(&mut self) {
        self.len = 0;
        self.base = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces of every size, across full regions and padded writes: the file holds the
    /// bytes pushed, then zeros to the alignment.
    #[test]
    fn appends_what_was_pushed_then_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let mut a = DirectAppender::new();
        let mut want = Vec::new();
        for i in 0..400usize {
            let piece = vec![(i % 251) as u8 + 1; [0, 1, 100, 4095, 4096, 70_000][i % 6]];
            a.push(&file, &piece).unwrap();
            want.extend_from_slice(&piece);
            if i % 7 == 0 {
                a.write_padded(&file).unwrap();
            }
            if i == 200 {
                a.reserve(MAX_BUF * 4);
                assert_eq!(a.capacity(), MAX_BUF);
            }
            assert_eq!(a.end(), want.len() as u64);
        }
        a.write_padded(&file).unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), want.len().div_ceil(ALIGN) * ALIGN);
        assert_eq!(&got[..want.len()], &want[..]);
        assert!(got[want.len()..].iter().all(|&b| b == 0));
    }
}
