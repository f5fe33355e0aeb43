//! `d4-pibs`: passive identification of backscatter (the replies that victims of
//! spoofed-source DDoS floods send to addresses that never talked to them) in pcap and
//! pcapng captures, as CIRCL's analyzer-d4-pibs does, with its defects fixed: every common
//! link type, IPv4 options and IPv6 extension headers, bounded state that never aborts,
//! ICMP backscatter and per-victim aggregation.
//!
//! Layers, from the bytes up: [`packet`] (sans-IO classifier: frame bytes + link type →
//! [`Packet`]), [`detect`] (the stateful rules → [`Backscatter`]), [`summary`] (per-victim
//! report), [`capture`] (pcap/pcapng/gzip reading and pcap writing over `Read`/`Write`).
//! This crate must never depend on the server, the store or any network code: the `d4`
//! binary feeds it files (from the command line or from an analyzer queue).

pub mod capture;
pub mod detect;
pub mod packet;
pub mod summary;
pub mod synth;

use std::io::{self, Write};

pub use capture::{for_each_record, CaptureError, PcapWriter, ReadSummary, Record};
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
            writeln!(out, "{},{},{},{}", ts_sec, b.src, flags, b.port)?;
            Ok(true)
        }
        Kind::Icmp { .. } => Ok(false),
    }
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
    pub fn process(&mut self, rec: &Record<'_>) -> Option<Backscatter> {
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
