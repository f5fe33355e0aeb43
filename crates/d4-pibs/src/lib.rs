//! `d4-pibs`: passive identification of backscatter (the replies that victims of
//! spoofed-source DDoS floods send to addresses that never talked to them) in pcap and
//! pcapng captures, as CIRCL's analyzer-d4-pibs does, with its defects fixed: every common
//! link type, IPv4 options and IPv6 extension headers, bounded state that never aborts,
//! ICMP backscatter and per-victim aggregation.
//!
//! Layers, from the bytes up: [`packet`] (the sans-IO classifier of the `d4-packet` crate:
//! frame bytes + link type → [`Packet`]), [`detect`] (the stateful rules → [`Backscatter`]),
//! [`summary`] (per-victim report), [`capture`] (pcap/pcapng/gzip reading and pcap writing
//! over `Read`/`Write`), [`aggregate`] (per victim and 5-minute bucket, in memory),
//! [`store`] (the backscatter store: the `PibsStore` trait and its embedded redb backend,
//! buckets and attacks) and [`ingest`] (captures into the store, each file once); on top,
//! [`pfx2as`] (prefix-to-AS table, sans-IO) and [`server`] (the `d4 pibs serve` HTTP API
//! over the store, on `d4-http`). This crate must never depend on the collector server, the
//! collector's store (`d4-store`) or another analyzer (the passive DNS pivot reaches it
//! through [`server::Names`], adapted in the binary): the `d4` binary feeds it files (from
//! the command line or from an analyzer queue) and serves its store.

pub mod aggregate;
pub mod capture;
pub mod detect;
pub mod distinct;
pub mod ingest;
pub mod pfx2as;
pub mod server;
pub mod store;
pub mod summary;
pub mod synth;

/// The classifier, now in `d4-packet`: `d4_pibs::packet::...` paths keep working.
pub use d4_packet as packet;

use std::io::{self, Write};
use std::net::IpAddr;

pub use capture::{for_each_record, CaptureError, CaptureRecord, PcapWriter, ReadSummary};
pub use detect::{Backscatter, DetectConfig, DetectStats, Detector, Kind};
pub use packet::{classify, LinkType, Packet, Skip};
pub use summary::{Summary, SummaryConfig, VictimReport};

/// The reference's comment line printed before the `-b` CSV.
pub const CSV_HEADER: &str = "#timestamp, source IP, TCP flags, source port";

/// Writes the reference's CSV line `epoch,src_ip,tcp_flags,src_port` for a TCP backscatter
/// packet (epoch in whole seconds, flags as the decimal value of TCP header byte 13).
/// ICMP backscatter has no line: the reference's format has no place for it.
pub fn write_csv<W: Write>(out: &mut W, ts_sec: u64, b: &Backscatter) -> io::Result<bool> {
    match b.kind {
        Kind::Tcp { flags } => {
            // Hand-formatted: `write!` with `IpAddr`'s Display costs more than the detection.
            let mut line = [0u8; 96];
            let mut n = push_u64(&mut line, 0, ts_sec);
            line[n] = b',';
            n += 1;
            match b.src {
                IpAddr::V4(a) => {
                    for (i, o) in a.octets().iter().enumerate() {
                        if i > 0 {
                            line[n] = b'.';
                            n += 1;
                        }
                        n = push_u64(&mut line, n, u64::from(*o));
                    }
                }
                IpAddr::V6(a) => {
                    let s = a.to_string();
                    line[n..n + s.len()].copy_from_slice(s.as_bytes());
                    n += s.len();
                }
            }
            line[n] = b',';
            n = push_u64(&mut line, n + 1, u64::from(flags));
            line[n] = b',';
            n = push_u64(&mut line, n + 1, u64::from(b.port));
            line[n] = b'\n';
            out.write_all(&line[..n + 1])?;
            Ok(true)
        }
        Kind::Icmp { .. } => Ok(false),
    }
}

/// Writes the decimal digits of `v` at `buf[at..]`, returns the new end.
#[inline]
fn push_u64(buf: &mut [u8], at: usize, mut v: u64) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let digits = &tmp[i..];
    buf[at..at + digits.len()].copy_from_slice(digits);
    at + digits.len()
}

/// Classifier + detector for a stream of records, with per-link-type caching.
pub struct Analyzer {
    detector: Detector,
    last_link: (u32, LinkType),
    /// Frames per skip reason, and frames seen.
    pub frames: u64,
    pub skipped: hashbrown::HashMap<Skip, u64>,
}

impl Analyzer {
    pub fn new(cfg: DetectConfig) -> Analyzer {
        Analyzer {
            detector: Detector::new(cfg),
            last_link: (1, LinkType::Ethernet),
            frames: 0,
            skipped: hashbrown::HashMap::new(),
        }
    }

    /// Classifies and judges one record.
    #[inline]
    pub fn process(&mut self, rec: &CaptureRecord<'_>) -> Option<Backscatter> {
        self.frames += 1;
        if rec.linktype != self.last_link.0 {
            self.last_link = (rec.linktype, LinkType::from_pcap(rec.linktype));
        }
        let pkt = classify(self.last_link.1, rec.data);
        if let Packet::Skip(s) = pkt {
            *self.skipped.entry(s).or_default() += 1;
        }
        self.detector.observe(rec.ts_sec, &pkt)
    }

    pub fn stats(&self) -> DetectStats {
        self.detector.stats()
    }

    pub fn state_len(&self) -> (usize, usize) {
        self.detector.state_len()
    }
}
