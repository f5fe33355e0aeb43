//! Capture files in and out: a streaming pcap / pcapng reader (plain or gzip, detected by
//! magic bytes, not by name) built on `pcap-parser`, and a minimal pcap writer.

use std::io::{self, BufRead, BufReader, Read, Write};

use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{Block, PcapBlockOwned, PcapError};

/// Buffer of the streaming reader; grows (up to [`MAX_RECORD`]) for larger records.
const READ_BUFFER: usize = 256 << 10;
/// Largest record accepted: a bigger one ends the file with an error.
pub const MAX_RECORD: usize = 16 << 20;

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct CaptureRecord<'a> {
    /// Capture time: seconds since the epoch and nanoseconds.
    pub ts_sec: u64,
    pub ts_nsec: u32,
    /// pcap link-type number of the interface that captured it.
    pub linktype: u32,
    /// Length on the wire (the captured bytes may be fewer).
    pub origlen: u32,
    pub data: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("not a pcap or pcapng file (unknown magic bytes)")]
    NotPcap,
    #[error("read error: {0}")]
    Io(#[from] io::Error),
    #[error("malformed capture after {records} records: {detail}")]
    Malformed { records: u64, detail: String },
    #[error("record larger than {MAX_RECORD} bytes after {records} records")]
    RecordTooLarge { records: u64 },
    #[error("packet from an unknown pcapng interface {0}")]
    UnknownInterface(u32),
}

/// What a read pass saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadSummary {
    pub records: u64,
    /// The file ended in the middle of a record (a capture cut short): the records before it
    /// were processed.
    pub truncated_tail: bool,
}

#[derive(Clone, Copy)]
struct Iface {
    linktype: u32,
    resolution: u64,
    offset: i64,
}

/// Opens `input` as a capture: gzip is detected by its magic bytes and decompressed on
/// the fly.
pub fn maybe_gunzip<'a, R: Read + Send + 'a>(input: R) -> io::Result<Box<dyn Read + Send + 'a>> {
    let mut br = BufReader::with_capacity(1 << 16, input);
    let head = br.fill_buf()?;
    if head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(br),
        )))
    } else {
        Ok(Box::new(br))
    }
}

/// Reads every record of a pcap or pcapng stream (plain or gzip) and hands it to `f`.
/// An error from `f` stops the pass and is returned as `CaptureError::Io`.
pub fn for_each_record<R, F>(input: R, mut f: F) -> Result<ReadSummary, CaptureError>
where
    R: Read + Send,
    F: FnMut(&CaptureRecord<'_>) -> io::Result<()>,
{
    let input = maybe_gunzip(input)?;
    let mut reader = match pcap_parser::create_reader(READ_BUFFER, input) {
        Ok(r) => r,
        Err(PcapError::Eof) => return Ok(ReadSummary::default()),
        Err(PcapError::ReadError) => {
            return Err(CaptureError::Io(io::Error::other(
                "cannot read the capture",
            )))
        }
        Err(_) => return Err(CaptureError::NotPcap),
    };
    let mut sum = ReadSummary::default();
    let mut legacy_link = 1u32;
    let mut legacy_nanos = false;
    let mut ifaces: Vec<Iface> = Vec::new();
    let mut capacity = READ_BUFFER;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                let res = match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy_link = h.network.0 as u32;
                        legacy_nanos = h.is_nanosecond_precision();
                        Ok(())
                    }
                    PcapBlockOwned::Legacy(b) => {
                        sum.records += 1;
                        let len = (b.caplen as usize).min(b.data.len());
                        let nsec = if legacy_nanos {
                            b.ts_usec
                        } else {
                            b.ts_usec.saturating_mul(1000)
                        };
                        f(&CaptureRecord {
                            ts_sec: u64::from(b.ts_sec),
                            ts_nsec: nsec,
                            linktype: legacy_link,
                            origlen: b.origlen,
                            data: &b.data[..len],
                        })
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        ifaces.clear();
                        Ok(())
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        ifaces.push(Iface {
                            linktype: idb.linktype.0 as u32,
                            resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                            offset: idb.ts_offset(),
                        });
                        Ok(())
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        sum.records += 1;
                        let Some(iface) = ifaces.get(epb.if_id as usize).copied() else {
                            return Err(CaptureError::UnknownInterface(epb.if_id));
                        };
                        let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let secs = raw / iface.resolution;
                        let frac = raw % iface.resolution;
                        let nsec = (u128::from(frac) * 1_000_000_000 / u128::from(iface.resolution))
                            as u32;
                        let secs = if iface.offset >= 0 {
                            secs.saturating_add(iface.offset as u64)
                        } else {
                            secs.saturating_sub(iface.offset.unsigned_abs())
                        };
                        f(&CaptureRecord {
                            ts_sec: secs,
                            ts_nsec: nsec,
                            linktype: iface.linktype,
                            origlen: epb.origlen,
                            data: epb.packet_data(),
                        })
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        sum.records += 1;
                        // No timestamp in a simple packet block: epoch 0; interface 0.
                        match ifaces.first() {
                            Some(iface) => f(&CaptureRecord {
                                ts_sec: 0,
                                ts_nsec: 0,
                                linktype: iface.linktype,
                                origlen: spb.origlen,
                                data: spb.packet_data(),
                            }),
                            None => return Err(CaptureError::UnknownInterface(0)),
                        }
                    }
                    PcapBlockOwned::NG(_) => Ok(()),
                };
                res?;
                // No shift here: `refill` moves the unread tail only when more data is needed.
                reader.consume_noshift(offset);
            }
            Err(PcapError::Eof) => return Ok(sum),
            Err(PcapError::Incomplete(_)) => {
                if reader.refill().is_err() {
                    return Err(CaptureError::Io(io::Error::other(
                        "cannot read the capture",
                    )));
                }
            }
            Err(PcapError::UnexpectedEof) => {
                sum.truncated_tail = true;
                return Ok(sum);
            }
            Err(PcapError::BufferTooSmall) => {
                if capacity >= MAX_RECORD {
                    return Err(CaptureError::RecordTooLarge {
                        records: sum.records,
                    });
                }
                capacity = (capacity * 4).min(MAX_RECORD);
                reader.grow(capacity);
                if reader.refill().is_err() {
                    return Err(CaptureError::Io(io::Error::other(
                        "cannot read the capture",
                    )));
                }
            }
            Err(PcapError::ReadError) => {
                return Err(CaptureError::Io(io::Error::other(
                    "cannot read the capture",
                )))
            }
            Err(e) => {
                return Err(CaptureError::Malformed {
                    records: sum.records,
                    detail: format!("{e:?}").chars().take(120).collect(),
                })
            }
        }
    }
}

/// A classic pcap writer (microsecond timestamps, little-endian).
pub struct PcapWriter<W: Write> {
    out: W,
    linktype: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header; every record must then be of `linktype`.
    pub fn new(mut out: W, linktype: u32) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&262_144u32.to_le_bytes());
        h.extend_from_slice(&linktype.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, linktype })
    }

    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// Writes one record (the timestamp is truncated to microseconds and to 32-bit seconds).
    pub fn write(
        &mut self,
        ts_sec: u64,
        ts_nsec: u32,
        origlen: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let caplen = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&(ts_sec as u32).to_le_bytes());
        h[4..8].copy_from_slice(&(ts_nsec / 1000).to_le_bytes());
        h[8..12].copy_from_slice(&caplen.to_le_bytes());
        h[12..16].copy_from_slice(&origlen.max(caplen).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&data[..caplen as usize])
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
