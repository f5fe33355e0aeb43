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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Global,
    RecordHeader,
    Body(u32),
    Failed,
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
        (self.state != State::Global && self.state != State::Failed).then_some(&self.head)
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
        match self.state {
            State::Failed => Err(PcapError::BadMagic(0)),
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
                            self.state = State::Failed;
                            return Err(PcapError::BadMagic(other));
                        }
                    }
                }
                if self.head_len == GLOBAL_HEADER_LEN {
                    let major = self.u16_at(4);
                    let minor = self.u16_at(6);
                    if (major, minor) != (2, 4) {
                        self.state = State::Failed;
                        return Err(PcapError::BadVersion(major, minor));
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
                        self.state = State::Failed;
                        return Err(PcapError::RecordTooLarge {
                            len: incl,
                            max: self.max_record,
                        });
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
