//! Tracking a libpcap 2.4 stream across arbitrary chunks (sans-IO).
//!
//! The tracker checks the 24-byte global header and then follows the record boundaries
//! (16-byte record header with `incl_len`, then `incl_len` bytes), so that the worker can
//! rotate files only between records and start each new file with the global header.

use thiserror::Error;

pub const GLOBAL_HEADER_LEN: usize = 24;
pub const RECORD_HEADER_LEN: usize = 16;

/// Why a type-1 stream is not acceptable pcap.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PcapError {
    #[error("not a pcap stream (magic {0:#010x})")]
    BadMagic(u32),
    #[error("unsupported pcap version {0}.{1} (2.4 expected)")]
    BadVersion(u16, u16),
    #[error("pcap record of {len} bytes is over the limit of {max}")]
    RecordTooLarge { len: u32, max: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Global,
    RecordHeader,
    Body(u32),
    Failed(PcapError),
}

/// Follows a pcap byte stream.
#[derive(Debug, Clone)]
pub struct PcapTracker {
    state: State,
    head: [u8; GLOBAL_HEADER_LEN],
    head_len: usize,
    rec: [u8; RECORD_HEADER_LEN],
    rec_len: usize,
    big_endian: bool,
    max_record: u32,
    records: u64,
}

/// What [`PcapTracker::advance`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Bytes of the input consumed.
    pub consumed: usize,
    /// The global header just became complete and valid (it is [`PcapTracker::global_header`];
    /// its bytes are part of `consumed` and must be written before the rest).
    pub header_done: bool,
}

impl PcapTracker {
    pub fn new(max_record: u32) -> PcapTracker {
        PcapTracker {
            state: State::Global,
            head: [0; GLOBAL_HEADER_LEN],
            head_len: 0,
            rec: [0; RECORD_HEADER_LEN],
            rec_len: 0,
            big_endian: false,
            max_record,
            records: 0,
        }
    }

    /// The validated global header (once complete).
    pub fn global_header(&self) -> Option<&[u8; GLOBAL_HEADER_LEN]> {
        matches!(self.state, State::RecordHeader | State::Body(_)).then_some(&self.head)
    }

    /// Between two records (and after the global header): a file may end here.
    pub fn at_boundary(&self) -> bool {
        self.state == State::RecordHeader && self.rec_len == 0
    }

    /// Whether the global header is still (partly) expected.
    pub fn in_global_header(&self) -> bool {
        self.state == State::Global
    }

    /// Complete records seen.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Consumes bytes of `data` up to the next record boundary at most (or the end of the
    /// global header). Call again with the rest while `consumed < data.len()`.
    pub fn advance(&mut self, data: &[u8]) -> Result<Step, PcapError> {
        let mut step = Step {
            consumed: 0,
            header_done: false,
        };
        match self.state.clone() {
            State::Failed(e) => Err(e),
            State::Global => {
                let n = (GLOBAL_HEADER_LEN - self.head_len).min(data.len());
                self.head[self.head_len..self.head_len + n].copy_from_slice(&data[..n]);
                self.head_len += n;
                step.consumed = n;
                // The magic can be judged as soon as 4 bytes are there.
                if self.head_len >= 4 {
                    let magic = u32::from_le_bytes([
                        self.head[0],
                        self.head[1],
                        self.head[2],
                        self.head[3],
                    ]);
                    match magic {
                        0xa1b2_c3d4 | 0xa1b2_3c4d => self.big_endian = false,
                        0xd4c3_b2a1 | 0x4d3c_b2a1 => self.big_endian = true,
                        other => {
                            let e = PcapError::BadMagic(other);
                            self.state = State::Failed(e.clone());
                            return Err(e);
                        }
                    }
                }
                if self.head_len == GLOBAL_HEADER_LEN {
                    let major = self.u16_at(4);
                    let minor = self.u16_at(6);
                    if (major, minor) != (2, 4) {
                        let e = PcapError::BadVersion(major, minor);
                        self.state = State::Failed(e.clone());
                        return Err(e);
                    }
                    self.state = State::RecordHeader;
                    step.header_done = true;
                }
                Ok(step)
            }
            State::RecordHeader => {
                let n = (RECORD_HEADER_LEN - self.rec_len).min(data.len());
                self.rec[self.rec_len..self.rec_len + n].copy_from_slice(&data[..n]);
                self.rec_len += n;
                step.consumed = n;
                if self.rec_len == RECORD_HEADER_LEN {
                    let rec = self.rec;
                    let b = [rec[8], rec[9], rec[10], rec[11]];
                    let incl = if self.big_endian {
                        u32::from_be_bytes(b)
                    } else {
                        u32::from_le_bytes(b)
                    };
                    if incl > self.max_record {
                        let e = PcapError::RecordTooLarge {
                            len: incl,
                            max: self.max_record,
                        };
                        self.state = State::Failed(e.clone());
                        return Err(e);
                    }
                    self.rec_len = 0;
                    if incl == 0 {
                        self.records += 1;
                        self.state = State::RecordHeader;
                    } else {
                        self.state = State::Body(incl);
                    }
                }
                Ok(step)
            }
            State::Body(left) => {
                let n = (left as usize).min(data.len());
                step.consumed = n;
                let left = left - n as u32;
                if left == 0 {
                    self.records += 1;
                    self.state = State::RecordHeader;
                } else {
                    self.state = State::Body(left);
                }
                Ok(step)
            }
        }
    }

    fn u16_at(&self, at: usize) -> u16 {
        let b = [self.head[at], self.head[at + 1]];
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }
}

/// A pcap global header (little-endian, microseconds, Ethernet) for tests and tools.
pub fn global_header_le(snaplen: u32) -> [u8; GLOBAL_HEADER_LEN] {
    let mut h = [0u8; GLOBAL_HEADER_LEN];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h
}

/// One little-endian pcap record (header + data) for tests and tools.
pub fn record_le(ts: u32, data: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(RECORD_HEADER_LEN + data.len());
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    r.extend_from_slice(&ts.to_le_bytes());
    r.extend_from_slice(&0u32.to_le_bytes());
    r.extend_from_slice(&len.to_le_bytes());
    r.extend_from_slice(&len.to_le_bytes());
    r.extend_from_slice(data);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds chunks; returns the offsets (in the whole stream) of record boundaries.
    fn boundaries(t: &mut PcapTracker, chunks: &[&[u8]]) -> Result<Vec<usize>, PcapError> {
        let mut out = Vec::new();
        let mut off = 0;
        for c in chunks {
            let mut d = *c;
            while !d.is_empty() {
                let s = t.advance(d)?;
                off += s.consumed;
                d = &d[s.consumed..];
                if t.at_boundary() {
                    out.push(off);
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn all_magics_and_version() {
        for (magic, be) in [
            (0xa1b2_c3d4u32, false),
            (0xa1b2_3c4d, false),
            (0xd4c3_b2a1, true),
            (0x4d3c_b2a1, true),
        ] {
            let mut h = [0u8; 24];
            h[0..4].copy_from_slice(&magic.to_le_bytes());
            let (maj, min) = if be {
                (2u16.to_be_bytes(), 4u16.to_be_bytes())
            } else {
                (2u16.to_le_bytes(), 4u16.to_le_bytes())
            };
            h[4..6].copy_from_slice(&maj);
            h[6..8].copy_from_slice(&min);
            let mut t = PcapTracker::new(100);
            let s = t.advance(&h).unwrap();
            assert!(s.header_done && t.at_boundary());
            // a 3-byte record in the stream's byte order
            let mut rec = vec![0u8; 16];
            let len = if be {
                3u32.to_be_bytes()
            } else {
                3u32.to_le_bytes()
            };
            rec[8..12].copy_from_slice(&len);
            rec.extend_from_slice(b"abc");
            assert_eq!(boundaries(&mut t, &[&rec]).unwrap(), vec![19]);
            assert_eq!(t.records(), 1);
        }
    }

    #[test]
    fn refuses_non_pcap_early_and_bad_version() {
        let mut t = PcapTracker::new(100);
        assert_eq!(t.advance(b"hel").unwrap().consumed, 3);
        assert_eq!(
            t.advance(b"lo world").unwrap_err(),
            PcapError::BadMagic(u32::from_le_bytes(*b"hell"))
        );
        assert!(t.advance(b"x").is_err(), "stays failed");
        let mut h = global_header_le(65535);
        h[6] = 3;
        let mut t = PcapTracker::new(100);
        assert_eq!(t.advance(&h).unwrap_err(), PcapError::BadVersion(2, 3));
    }

    #[test]
    fn bounds_incl_len() {
        let mut t = PcapTracker::new(10);
        t.advance(&global_header_le(65535)).unwrap();
        let rec = record_le(1, &[0u8; 11]);
        assert_eq!(
            boundaries(&mut t, &[&rec]).unwrap_err(),
            PcapError::RecordTooLarge { len: 11, max: 10 }
        );
    }

    proptest! {
        #[test]
        fn boundaries_do_not_depend_on_chunking(
            sizes in proptest::collection::vec(0usize..300, 0..12),
            cuts in proptest::collection::vec(0usize..4000, 0..16),
        ) {
            let mut stream = global_header_le(65535).to_vec();
            let mut expect = vec![24];
            for (i, n) in sizes.iter().enumerate() {
                stream.extend(record_le(i as u32, &vec![i as u8; *n]));
                expect.push(stream.len());
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut prev = 0;
            for c in cuts { chunks.push(&stream[prev..c]); prev = c; }
            chunks.push(&stream[prev..]);
            let mut t = PcapTracker::new(1000);
            let mut got = boundaries(&mut t, &chunks).unwrap();
            got.dedup();
            prop_assert_eq!(got, expect);
            prop_assert_eq!(t.records(), sizes.len() as u64);
        }

        #[test]
        fn never_panics_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut t = PcapTracker::new(64);
            let mut d = &data[..];
            while !d.is_empty() {
                match t.advance(d) {
                    Ok(s) => { prop_assert!(s.consumed > 0); d = &d[s.consumed..]; }
                    Err(_) => break,
                }
            }
        }
    }
}
