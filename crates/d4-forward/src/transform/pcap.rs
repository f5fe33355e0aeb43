//! A type-1 pcap stream cut anywhere: the 24-byte global header (either byte order,
//! microsecond or nanosecond magic, version 2.4), then records (16-byte header, then
//! `incl_len` bytes). Records leave in one format whatever came in: little-endian,
//! microseconds ([`output_header`]), each packet rewritten by the [`Rewriter`] when the rule
//! has pcap settings (a packet it refuses is dropped and counted), unchanged otherwise.
//!
//! A stream that is not pcap (magic, version) or announces a record over
//! [`MAX_RECORD`] bytes cannot be followed further: the error is final and nothing more of
//! the stream leaves.

use super::packet::Rewriter;
use super::{Position, Pushed, TransformError};

pub const GLOBAL_HEADER_LEN: usize = 24;
pub const RECORD_HEADER_LEN: usize = 16;
/// The largest record followed (bytes of packet data).
pub const MAX_RECORD: u32 = 1 << 20;

/// The global header of the output: little-endian, microseconds, version 2.4.
pub fn output_header(snaplen: u32, link: u32) -> [u8; GLOBAL_HEADER_LEN] {
    let mut h = [0u8; GLOBAL_HEADER_LEN];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&link.to_le_bytes());
    h
}

#[derive(Debug, Clone, Copy)]
struct Format {
    big_endian: bool,
    nanos: bool,
    snaplen: u32,
    link: u32,
}

impl Format {
    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let x = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(x)
        } else {
            u32::from_le_bytes(x)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Global,
    RecordHeader,
    Body,
    Failed(String),
}

#[derive(Clone)]
pub struct PcapStream {
    state: State,
    /// The global header (raw, as it came) or the record header being read.
    head: [u8; GLOBAL_HEADER_LEN],
    head_len: usize,
    rec: [u8; RECORD_HEADER_LEN],
    rec_len: usize,
    format: Option<Format>,
    body: Vec<u8>,
    want: usize,
    /// Where the partial record (or the global header) began.
    start: Option<Position>,
    rewriter: Option<Rewriter>,
}

impl PcapStream {
    /// `rewriter`: `None` leaves packets as they are.
    pub fn new(rewriter: Option<Rewriter>) -> PcapStream {
        PcapStream {
            state: State::Global,
            head: [0; GLOBAL_HEADER_LEN],
            head_len: 0,
            rec: [0; RECORD_HEADER_LEN],
            rec_len: 0,
            format: None,
            body: Vec::new(),
            want: 0,
            start: None,
            rewriter,
        }
    }

    fn fail(&mut self, why: String) -> TransformError {
        self.state = State::Failed(why.clone());
        self.start = None;
        self.body = Vec::new();
        TransformError::Corrupt(why)
    }

    /// The input's global header, once read (to resume a stream mid-way, see
    /// [`PcapStream::resume`]).
    pub fn input_header(&self) -> Option<[u8; GLOBAL_HEADER_LEN]> {
        self.format.map(|_| self.head)
    }

    /// The output's global header, once the input's was read.
    pub fn output_header(&self) -> Option<[u8; GLOBAL_HEADER_LEN]> {
        self.format.map(|f| output_header(f.snaplen, f.link))
    }

    /// Takes a global header read before (a stream resumed mid-way): records follow.
    pub fn resume(&mut self, header: &[u8; GLOBAL_HEADER_LEN]) -> Result<(), TransformError> {
        *self = PcapStream::new(self.rewriter.take());
        let mut sink = Vec::new();
        let mut pushed = Pushed::default();
        self.push(0, 0, header, &mut sink, &mut pushed)?;
        self.start = None;
        Ok(())
    }

    pub fn held(&self) -> Option<Position> {
        self.start
    }

    /// Bytes of frame `seq` from byte `offset` on.
    pub fn push(
        &mut self,
        seq: u64,
        offset: usize,
        mut data: &[u8],
        out: &mut Vec<u8>,
        pushed: &mut Pushed,
    ) -> Result<(), TransformError> {
        let mut pos = offset;
        while !data.is_empty() {
            if let State::Failed(why) = &self.state {
                return Err(TransformError::Corrupt(why.clone()));
            }
            if self.start.is_none() && self.state != State::Body {
                self.start = Some(Position { seq, offset: pos });
            }
            let used = match self.state {
                State::Failed(_) => data.len(),
                State::Global => self.global(data)?,
                State::RecordHeader => self.record_header(data, out, pushed)?,
                State::Body => {
                    let n = (self.want - self.body.len()).min(data.len());
                    self.body.extend_from_slice(&data[..n]);
                    if self.body.len() == self.want {
                        self.record(out, pushed);
                    }
                    n
                }
            };
            data = &data[used..];
            pos += used;
        }
        Ok(())
    }

    fn global(&mut self, data: &[u8]) -> Result<usize, TransformError> {
        let n = (GLOBAL_HEADER_LEN - self.head_len).min(data.len());
        self.head[self.head_len..self.head_len + n].copy_from_slice(&data[..n]);
        self.head_len += n;
        if self.head_len >= 4 {
            let magic =
                u32::from_le_bytes([self.head[0], self.head[1], self.head[2], self.head[3]]);
            let (big_endian, nanos) = match magic {
                0xa1b2_c3d4 => (false, false),
                0xa1b2_3c4d => (false, true),
                0xd4c3_b2a1 => (true, false),
                0x4d3c_b2a1 => (true, true),
                other => return Err(self.fail(format!("not a pcap stream (magic {other:#010x})"))),
            };
            if self.head_len == GLOBAL_HEADER_LEN {
                let mut f = Format {
                    big_endian,
                    nanos,
                    snaplen: 0,
                    link: 0,
                };
                let version = f.u32_at(&self.head, 4);
                let (major, minor) = if big_endian {
                    ((version >> 16) as u16, version as u16)
                } else {
                    (version as u16, (version >> 16) as u16)
                };
                if (major, minor) != (2, 4) {
                    return Err(self.fail(format!("pcap version {major}.{minor} (2.4 expected)")));
                }
                f.snaplen = f.u32_at(&self.head, 16);
                f.link = f.u32_at(&self.head, 20);
                self.format = Some(f);
                self.state = State::RecordHeader;
                self.start = None;
            }
        }
        Ok(n)
    }

    fn record_header(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        pushed: &mut Pushed,
    ) -> Result<usize, TransformError> {
        let n = (RECORD_HEADER_LEN - self.rec_len).min(data.len());
        self.rec[self.rec_len..self.rec_len + n].copy_from_slice(&data[..n]);
        self.rec_len += n;
        if self.rec_len == RECORD_HEADER_LEN {
            let Some(f) = self.format else {
                return Err(self.fail("pcap record before the global header".into()));
            };
            let incl = f.u32_at(&self.rec, 8);
            if incl > MAX_RECORD {
                return Err(self.fail(format!(
                    "pcap record of {incl} bytes (over the limit of {MAX_RECORD})"
                )));
            }
            self.rec_len = 0;
            self.want = incl as usize;
            self.body.clear();
            self.state = State::Body;
            if incl == 0 {
                self.record(out, pushed);
            }
        }
        Ok(n)
    }

    /// A whole record is in `rec` and `body`.
    fn record(&mut self, out: &mut Vec<u8>, pushed: &mut Pushed) {
        self.state = State::RecordHeader;
        self.start = None;
        let Some(f) = self.format else {
            return;
        };
        let ts_sec = f.u32_at(&self.rec, 0);
        let mut ts_frac = f.u32_at(&self.rec, 4);
        if f.nanos {
            ts_frac /= 1000;
        }
        let orig_len = f.u32_at(&self.rec, 12);
        let mut len = self.body.len();
        if let Some(r) = self.rewriter.as_mut() {
            match r.packet(f.link, &mut self.body) {
                Some(cut) => len = cut.min(len),
                None => {
                    pushed.dropped += 1;
                    return;
                }
            }
        }
        out.extend_from_slice(&ts_sec.to_le_bytes());
        out.extend_from_slice(&ts_frac.to_le_bytes());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&orig_len.to_le_bytes());
        out.extend_from_slice(&self.body[..len]);
        pushed.units += 1;
    }

    /// End of the stream: a partial record is dropped (1 if there was one).
    pub fn finish(&mut self) -> u64 {
        let partial =
            matches!(self.state, State::RecordHeader | State::Body) && self.start.is_some();
        self.start = None;
        self.rec_len = 0;
        self.body.clear();
        if self.state == State::Body {
            self.state = State::RecordHeader;
        }
        u64::from(partial)
    }
}

#[cfg(test)]
#[path = "pcap_tests.rs"]
pub(crate) mod tests;
