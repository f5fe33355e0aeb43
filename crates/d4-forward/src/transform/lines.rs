//! Cutting a line-based stream (types 3, 4, 6, 8 and line-based extended types) into whole
//! lines across payloads cut anywhere.
//!
//! A line ends with `\n` (not part of the line handed out). The bytes after the last `\n`
//! of a payload are carried to the next one, together with where they began (so a reader
//! resuming after a crash restarts at that line). A line longer than the bound is dropped
//! whole, once, whatever the cuts: a stream that never ends its lines cannot grow the
//! carry without bound.

use memchr::memchr;

use super::Position;

/// The longest line kept (bytes, without the `\n`): the D4 frame size limit.
pub const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct LineSplitter {
    carry: Vec<u8>,
    /// Where the carried partial line began (`None`: nothing carried).
    start: Option<Position>,
    /// In the middle of an over-long line (already counted): skip to its end.
    skipping: bool,
    max: usize,
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            carry: Vec::new(),
            start: None,
            skipping: false,
            max,
        }
    }

    /// Cuts `data` (the bytes of frame `seq` from byte `offset` on) into lines, handing
    /// each whole line and where it began to `line`. Returns the over-long lines dropped.
    pub fn push(
        &mut self,
        seq: u64,
        offset: usize,
        data: &[u8],
        mut line: impl FnMut(&[u8], Position),
    ) -> u64 {
        let mut dropped = 0;
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            let Some(nl) = memchr(b'\n', rest) else {
                if !self.skipping {
                    if self.start.is_none() {
                        self.start = Some(Position {
                            seq,
                            offset: offset + pos,
                        });
                    }
                    if self.carry.len() + rest.len() > self.max {
                        dropped += 1;
                        self.skipping = true;
                        self.carry.clear();
                        self.start = None;
                    } else {
                        self.carry.extend_from_slice(rest);
                    }
                }
                break;
            };
            let part = &rest[..nl];
            if self.skipping {
                self.skipping = false;
            } else if let Some(at) = self.start.take() {
                if self.carry.len() + part.len() > self.max {
                    dropped += 1;
                } else {
                    self.carry.extend_from_slice(part);
                    line(&self.carry, at);
                }
                self.carry.clear();
            } else if part.len() > self.max {
                dropped += 1;
            } else {
                line(
                    part,
                    Position {
                        seq,
                        offset: offset + pos,
                    },
                );
            }
            pos += nl + 1;
        }
        dropped
    }

    /// Where the carried partial line began.
    pub fn held(&self) -> Option<Position> {
        self.start
    }

    /// End of the stream: the partial last line is dropped; returns 1 if there was one.
    pub fn finish(&mut self) -> u64 {
        let had = self.start.is_some();
        self.carry.clear();
        self.start = None;
        self.skipping = false;
        u64::from(had)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(s: &mut LineSplitter, chunks: &[&[u8]]) -> (Vec<(Vec<u8>, Position)>, u64) {
        let mut lines = Vec::new();
        let mut dropped = 0;
        for (seq, c) in chunks.iter().enumerate() {
            dropped += s.push(seq as u64, 0, c, |l, at| lines.push((l.to_vec(), at)));
        }
        (lines, dropped)
    }

    #[test]
    fn carries_partial_lines_and_their_start() {
        let mut s = LineSplitter::new(100);
        let (lines, dropped) = run(&mut s, &[b"ab\ncd", b"e\nf", b"g"]);
        assert_eq!(dropped, 0);
        assert_eq!(
            lines,
            vec![
                (b"ab".to_vec(), Position { seq: 0, offset: 0 }),
                (b"cde".to_vec(), Position { seq: 0, offset: 3 }),
            ]
        );
        assert_eq!(s.held(), Some(Position { seq: 1, offset: 2 }));
        assert_eq!(s.finish(), 1);
        assert_eq!(s.held(), None);
    }

    #[test]
    fn over_long_lines_are_dropped_once() {
        let mut s = LineSplitter::new(4);
        let (lines, dropped) = run(&mut s, &[b"abc", b"def", b"ghi\nok\n"]);
        assert_eq!(dropped, 1);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].0, b"ok");
        let mut s = LineSplitter::new(4);
        let (lines, dropped) = run(&mut s, &[b"abcdefghi\nok\n"]);
        assert_eq!((lines.len(), dropped), (1, 1));
    }

    proptest! {
        #[test]
        fn cuts_do_not_change_lines(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), any::<u8>()], 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..8),
            max in 1usize..40,
        ) {
            let mut whole = LineSplitter::new(max);
            let (want, want_dropped) = run(&mut whole, &[&data]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                chunks.push(&data[last..c]);
                last = c;
            }
            let mut cut = LineSplitter::new(max);
            let (got, got_dropped) = run(&mut cut, &chunks);
            let got: Vec<Vec<u8>> = got.into_iter().map(|(l, _)| l).collect();
            let want: Vec<Vec<u8>> = want.into_iter().map(|(l, _)| l).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(got_dropped, want_dropped);
            prop_assert_eq!(cut.finish(), whole.finish());
        }
    }
}
