//! Tracking a pcapng stream across arbitrary chunks (sans-IO).
//!
//! Blocks are followed (type, total length, body) so that files rotate only between
//! blocks, and the section preamble (Section Header Block + Interface Description Blocks)
//! is kept so that every rotated file can start with it and be a valid pcapng file.

use thiserror::Error;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Type, total length, and the SHB's byte-order magic (every block has ≥ 12 bytes).
pub const HEAD: usize = 12;

/// Why a type-5 stream is not acceptable pcapng.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PcapngError {
    #[error("not a pcapng stream (first block type {0:#010x})")]
    NotPcapng(u32),
    #[error("pcapng section header with a bad byte-order magic")]
    BadByteOrder,
    #[error("pcapng block length {0} is invalid")]
    BadLength(u32),
    #[error("pcapng block of {len} bytes is over the limit of {max}")]
    BlockTooLarge { len: u32, max: u32 },
    #[error("pcapng section preamble is over the limit of {0} bytes")]
    PreambleTooLarge(usize),
}

/// What [`PcapngTracker::advance`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NgStep {
    /// Bytes of the input consumed.
    pub consumed: usize,
    /// Bytes to write now: the tracker holds the first 12 bytes of each block until they
    /// are complete, then gives them out here; body bytes are `input[..consumed]`.
    pub head: Option<[u8; HEAD]>,
    /// `head` starts a new section (a Section Header Block).
    pub new_section: bool,
    /// The consumed bytes are block body bytes (to write as they are); otherwise they
    /// were taken into the block head (given out in `head` once complete).
    pub body: bool,
}

/// Follows a pcapng byte stream.
#[derive(Debug, Clone)]
pub struct PcapngTracker {
    head: [u8; HEAD],
    head_len: usize,
    /// Bytes left in the current block after its first 12 bytes.
    left: u32,
    in_block: bool,
    keep: bool,
    big_endian: bool,
    started: bool,
    failed: Option<PcapngError>,
    preamble: Vec<u8>,
    max_block: u32,
    max_preamble: usize,
    blocks: u64,
}

impl PcapngTracker {
    pub fn new(max_block: u32, max_preamble: usize) -> PcapngTracker {
        PcapngTracker {
            head: [0; HEAD],
            head_len: 0,
            left: 0,
            in_block: false,
            keep: false,
            big_endian: false,
            started: false,
            failed: None,
            preamble: Vec::new(),
            max_block,
            max_preamble,
            blocks: 0,
        }
    }

    /// Between two blocks: a file may end here.
    pub fn at_boundary(&self) -> bool {
        !self.in_block && self.head_len == 0 && self.failed.is_none()
    }

    /// The current section's SHB and IDBs (to start a rotated file with).
    pub fn preamble(&self) -> &[u8] {
        &self.preamble
    }

    /// Whether the current (or just started) block is kept in the preamble (SHB, IDB).
    pub fn keeping(&self) -> bool {
        self.keep
    }

    /// Complete blocks seen.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = [
            self.head[at],
            self.head[at + 1],
            self.head[at + 2],
            self.head[at + 3],
        ];
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn fail(&mut self, e: PcapngError) -> PcapngError {
        self.failed = Some(e.clone());
        e
    }

    fn keep_bytes(&mut self, b: &[u8]) -> Result<(), PcapngError> {
        if self.keep {
            if self.preamble.len() + b.len() > self.max_preamble {
                return Err(self.fail(PcapngError::PreambleTooLarge(self.max_preamble)));
            }
            self.preamble.extend_from_slice(b);
        }
        Ok(())
    }

    /// Consumes bytes of `data` up to the end of the current block at most. Body bytes
    /// (`step.head == None`) are `data[..step.consumed]`; block heads come in `step.head`.
    pub fn advance(&mut self, data: &[u8]) -> Result<NgStep, PcapngError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.in_block {
            let n = (self.left as usize).min(data.len());
            self.keep_bytes(&data[..n])?;
            self.left -= n as u32;
            if self.left == 0 {
                self.in_block = false;
                self.blocks += 1;
            }
            return Ok(NgStep {
                consumed: n,
                head: None,
                new_section: false,
                body: true,
            });
        }
        let n = (HEAD - self.head_len).min(data.len());
        self.head[self.head_len..self.head_len + n].copy_from_slice(&data[..n]);
        self.head_len += n;
        let mut step = NgStep {
            consumed: n,
            head: None,
            new_section: false,
            body: false,
        };
        if self.head_len < HEAD {
            return Ok(step);
        }
        self.head_len = 0;
        let raw_type = u32::from_le_bytes([self.head[0], self.head[1], self.head[2], self.head[3]]);
        if raw_type == SHB {
            let m = [self.head[8], self.head[9], self.head[10], self.head[11]];
            if u32::from_le_bytes(m) == BYTE_ORDER_MAGIC {
                self.big_endian = false;
            } else if u32::from_be_bytes(m) == BYTE_ORDER_MAGIC {
                self.big_endian = true;
            } else {
                return Err(self.fail(PcapngError::BadByteOrder));
            }
            self.started = true;
            self.preamble.clear();
            step.new_section = true;
        } else if !self.started {
            return Err(self.fail(PcapngError::NotPcapng(raw_type)));
        }
        let block_type = self.u32_at(0);
        let len = self.u32_at(4);
        if len < HEAD as u32 || len % 4 != 0 {
            return Err(self.fail(PcapngError::BadLength(len)));
        }
        if len > self.max_block {
            return Err(self.fail(PcapngError::BlockTooLarge {
                len,
                max: self.max_block,
            }));
        }
        self.keep = block_type == SHB || block_type == IDB;
        let head = self.head;
        self.keep_bytes(&head)?;
        self.left = len - HEAD as u32;
        if self.left == 0 {
            self.blocks += 1;
        } else {
            self.in_block = true;
        }
        step.head = Some(head);
        Ok(step)
    }
}

/// A little-endian pcapng block of `block_type` with `body` (padded to 4 bytes).
pub fn block_le(block_type: u32, body: &[u8]) -> Vec<u8> {
    let pad = (4 - body.len() % 4) % 4;
    let len = u32::try_from(12 + body.len() + pad).unwrap_or(u32::MAX);
    let mut b = Vec::with_capacity(len as usize);
    b.extend_from_slice(&block_type.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(body);
    b.extend(std::iter::repeat_n(0u8, pad));
    b.extend_from_slice(&len.to_le_bytes());
    b
}

/// A minimal little-endian Section Header Block.
pub fn shb_le() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes());
    block_le(SHB, &body)
}

/// A minimal little-endian Interface Description Block (Ethernet).
pub fn idb_le() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&65535u32.to_le_bytes());
    block_le(IDB, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed(t: &mut PcapngTracker, chunks: &[&[u8]]) -> Result<Vec<usize>, PcapngError> {
        let mut out = Vec::new();
        let mut off = 0;
        for c in chunks {
            let mut d = *c;
            while !d.is_empty() {
                let n = t.advance(d)?.consumed;
                off += n;
                d = &d[n..];
                if t.at_boundary() {
                    out.push(off);
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn refuses_non_pcapng() {
        let mut t = PcapngTracker::new(1000, 1000);
        let e = feed(&mut t, &[b"\xd4\xc3\xb2\xa1 a classic pcap"]).unwrap_err();
        assert!(matches!(e, PcapngError::NotPcapng(_)));
        let mut bad = shb_le();
        bad[4] = 13;
        let mut t = PcapngTracker::new(1000, 1000);
        assert_eq!(
            feed(&mut t, &[&bad]).unwrap_err(),
            PcapngError::BadLength(13)
        );
    }

    proptest! {
        #[test]
        fn boundaries_and_preamble_do_not_depend_on_chunking(
            sizes in proptest::collection::vec(0usize..200, 0..10),
            cuts in proptest::collection::vec(0usize..3000, 0..12),
        ) {
            let mut stream = shb_le();
            stream.extend(idb_le());
            let preamble = stream.clone();
            let mut expect = vec![shb_le().len(), stream.len()];
            for n in &sizes {
                stream.extend(block_le(6, &vec![7u8; *n]));
                expect.push(stream.len());
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut prev = 0;
            for c in cuts { chunks.push(&stream[prev..c]); prev = c; }
            chunks.push(&stream[prev..]);
            let mut t = PcapngTracker::new(10_000, 10_000);
            let got = feed(&mut t, &chunks).unwrap();
            prop_assert_eq!(got, expect);
            prop_assert_eq!(t.preamble(), &preamble[..]);
        }

        #[test]
        fn never_panics_on_garbage(mut data in proptest::collection::vec(any::<u8>(), 0..400)) {
            // half of the cases start with a valid section header
            if data.first().is_some_and(|b| b & 1 == 0) {
                let shb = shb_le();
                let n = shb.len().min(data.len());
                data[..n].copy_from_slice(&shb[..n]);
            }
            let mut t = PcapngTracker::new(256, 256);
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
