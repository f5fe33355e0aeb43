//! Splitting a byte stream into lines, with a bound (sans-IO).

/// How a line given out by [`LineSplitter`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// By a `\n` (not part of the line given out).
    Newline,
    /// The line reached the bound and was cut there; the rest of it follows as the next
    /// line(s).
    Cut,
    /// The stream ended without a final `\n` ([`LineSplitter::finish`]).
    Eof,
}

/// Capacity kept between lines (a bigger buffer is freed once its line is out).
const RETAIN: usize = 64 * 1024;

/// Splits a byte stream arriving in arbitrary chunks into lines.
///
/// A partial line waits in the splitter (at most `max_line` bytes) until its `\n` arrives;
/// a line longer than `max_line` bytes is given out in pieces of `max_line` bytes
/// ([`LineEnd::Cut`]), so memory stays bounded whatever the input. Lines are given out
/// without their `\n`; a `\r` before it is kept (see [`trim_cr`]).
#[derive(Debug, Clone)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max_line: usize,
    cut: u64,
}

impl LineSplitter {
    /// `max_line` is raised to 1 if 0.
    pub fn new(max_line: usize) -> LineSplitter {
        LineSplitter {
            buf: Vec::new(),
            max_line: max_line.max(1),
            cut: 0,
        }
    }

    /// Bytes of the partial line waiting for its end.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// How many times a line was cut at the bound.
    pub fn cut_count(&self) -> u64 {
        self.cut
    }

    /// Feeds a chunk; `f` gets every line completed by it, in order.
    pub fn push(&mut self, mut data: &[u8], mut f: impl FnMut(&[u8], LineEnd)) {
        while !data.is_empty() {
            let room = self.max_line - self.buf.len();
            let window = &data[..data.len().min(room.saturating_add(1))];
            match memchr(window) {
                Some(i) => {
                    if self.buf.is_empty() {
                        f(&data[..i], LineEnd::Newline);
                    } else {
                        self.extend(&data[..i]);
                        f(&self.buf, LineEnd::Newline);
                        self.release();
                    }
                    data = &data[i + 1..];
                }
                None if data.len() <= room => {
                    self.extend(data);
                    return;
                }
                None => {
                    // The line reaches the bound without an end: cut it there.
                    self.cut += 1;
                    if self.buf.is_empty() {
                        f(&data[..room], LineEnd::Cut);
                    } else {
                        self.extend(&data[..room]);
                        f(&self.buf, LineEnd::Cut);
                        self.release();
                    }
                    data = &data[room..];
                }
            }
        }
    }

    /// Gives out the partial line, if any, as the last line of the stream.
    pub fn finish(&mut self, mut f: impl FnMut(&[u8], LineEnd)) {
        if !self.buf.is_empty() {
            f(&self.buf, LineEnd::Eof);
        }
        self.buf = Vec::new();
    }

    /// Appends to the partial line; the buffer never grows past `max_line` (no doubling
    /// beyond the bound).
    fn extend(&mut self, data: &[u8]) {
        let need = self.buf.len() + data.len();
        if need > self.buf.capacity() {
            let want = (self.buf.capacity() * 2)
                .max(need)
                .min(self.max_line.max(need));
            self.buf.reserve_exact(want - self.buf.len());
        }
        self.buf.extend_from_slice(data);
    }

    /// Empties the buffer after a line was given out; a big one is freed, so an idle
    /// stream holds no memory for its past long lines.
    fn release(&mut self) {
        if self.buf.capacity() > RETAIN {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }
}

/// The line without one trailing `\r` (for CRLF input).
pub fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn memchr(hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(max: usize, chunks: &[&[u8]]) -> (Vec<(Vec<u8>, LineEnd)>, LineSplitter) {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |l, e| out.push((l.to_vec(), e)));
        }
        (out, s)
    }

    #[test]
    fn splits_across_chunks_and_keeps_partial_once() {
        let (out, mut s) = run(100, &[b"ab", b"c\nde", b"f\n\ng", b"h"]);
        assert_eq!(
            out,
            vec![
                (b"abc".to_vec(), LineEnd::Newline),
                (b"def".to_vec(), LineEnd::Newline),
                (b"".to_vec(), LineEnd::Newline),
            ]
        );
        assert_eq!(s.pending(), 2);
        let mut last = Vec::new();
        s.finish(|l, e| last.push((l.to_vec(), e)));
        assert_eq!(last, vec![(b"gh".to_vec(), LineEnd::Eof)]);
        s.finish(|_, _| panic!("nothing left"));
    }

    #[test]
    fn buffer_stays_within_the_bound_and_is_freed() {
        let mut s = LineSplitter::new(1000);
        for _ in 0..9 {
            s.push(&[b'a'; 100], |_, _| panic!("no line yet"));
        }
        s.push(&[b'a'; 50], |_, _| panic!("no line yet"));
        assert!(s.buf.capacity() <= 1000, "capacity {}", s.buf.capacity());
        let mut s = LineSplitter::new(1 << 20);
        s.push(&vec![b'a'; 200_000], |_, _| {});
        s.push(b"\n", |l, _| assert_eq!(l.len(), 200_000));
        assert_eq!(s.buf.capacity(), 0);
    }

    #[test]
    fn crlf_is_kept_and_trimmable() {
        let (out, _) = run(100, &[b"a\r", b"\nb\r\n"]);
        assert_eq!(out[0].0, b"a\r");
        assert_eq!(trim_cr(&out[0].0), b"a");
        assert_eq!(trim_cr(&out[1].0), b"b");
    }

    #[test]
    fn overlong_lines_are_cut_and_counted() {
        let (out, s) = run(4, &[b"abcdefghij\nxy", b"zw", b"v\n"]);
        assert_eq!(
            out,
            vec![
                (b"abcd".to_vec(), LineEnd::Cut),
                (b"efgh".to_vec(), LineEnd::Cut),
                (b"ij".to_vec(), LineEnd::Newline),
                (b"xyzw".to_vec(), LineEnd::Cut),
                (b"v".to_vec(), LineEnd::Newline),
            ]
        );
        assert_eq!(s.cut_count(), 3);
        // exactly max bytes then newline: not cut
        let (out, s) = run(4, &[b"abcd\n"]);
        assert_eq!(out, vec![(b"abcd".to_vec(), LineEnd::Newline)]);
        assert_eq!(s.cut_count(), 0);
        // a line of exactly max bytes arriving byte by byte, then its newline: the cut
        // happens only when the bound is passed
        let (out, s) = run(2, &[b"a", b"b", b"\n", b"cd", b"e"]);
        assert_eq!(
            out,
            vec![
                (b"ab".to_vec(), LineEnd::Newline),
                (b"cd".to_vec(), LineEnd::Cut)
            ]
        );
        assert_eq!(s.pending(), 1);
    }

    #[test]
    fn extreme_bounds_do_not_panic() {
        let (out, s) = run(usize::MAX, &[b"ab\ncd"]);
        assert_eq!(out, vec![(b"ab".to_vec(), LineEnd::Newline)]);
        assert_eq!(s.pending(), 2);
        let (out, _) = run(0, &[b"ab\n"]); // 0 is raised to 1
        assert_eq!(
            out,
            vec![
                (b"a".to_vec(), LineEnd::Cut),
                (b"b".to_vec(), LineEnd::Newline)
            ]
        );
    }

    proptest! {
        #[test]
        fn chunking_does_not_matter(data in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'a'), Just(b'\r'), any::<u8>()], 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..10),
            max in 1usize..50) {
            let whole = run(max, &[&data]).0;
            let mut cuts = cuts.into_iter().map(|c| c.min(data.len())).collect::<Vec<_>>();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut prev = 0;
            for c in cuts { chunks.push(&data[prev..c]); prev = c; }
            chunks.push(&data[prev..]);
            let (pieces, mut s) = run(max, &chunks);
            prop_assert!(s.pending() <= max, "bounded memory");
            let mut rest = Vec::new();
            s.finish(|l, _| rest.extend_from_slice(l));
            // Same lines in content; cut pieces never exceed max; bytes are all kept.
            let joined: Vec<u8> = pieces.iter().flat_map(|(l, e)| {
                let mut v = l.clone();
                if *e == LineEnd::Newline { v.push(b'\n'); }
                v
            }).chain(rest).collect();
            prop_assert_eq!(joined, data.clone());
            prop_assert!(pieces.iter().all(|(l, _)| l.len() <= max));
            prop_assert_eq!(pieces, whole);
        }
    }
}
