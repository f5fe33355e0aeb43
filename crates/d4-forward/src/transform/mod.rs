//! Privacy transforms of a forwarded stream: pure functions over bytes (sans-IO, the clock
//! passed in), applied before anything leaves the server.
//!
//! One [`StreamTransform`] per input stream (one D4 session of one sensor: a type, and for
//! type 254 its extended type). It cuts the stream into whole units (lines; pcap records
//! after the global header), transforms each unit as the rule's [`Privacy`] says, and
//! appends whole transformed units to the caller's buffer, so that the output of several
//! input streams can be merged into one outbound stream. Any cutting of the input into
//! payloads gives the same output.
//!
//! | D4 type | unit | settings |
//! |---|---|---|
//! | 1 | pcap record (output: little-endian, µs) | [`d4_store::PcapPrivacy`] ([`packet`]) |
//! | 8 | passivedns line | [`d4_store::PdnsPrivacy`] ([`pdns`]) |
//! | 6, 254 `ja3-jl` / `filewatcherjson` | JSON line | [`d4_store::JsonPrivacy`] ([`json`]) |
//! | 3, 4, other 254 | line | [`d4_store::LogPrivacy`] ([`log`]) |
//! | 5, 7 | refused ([`TransformError::Unsupported`]): binary streams that cannot be merged | |
//!
//! Without settings for its kind a stream is still cut into whole units (identity).
//! Whatever a transform cannot understand while it has settings to apply (a line that
//! does not parse, a packet it cannot follow) is dropped and counted, never sent as it is.
//!
//! Resuming after a crash: [`StreamTransform::held_at`] is the first input byte whose
//! transformed output has not been produced yet (a partial unit, an open aggregation
//! window). A new transform fed from there ([`StreamTransform::push_at`] with that offset
//! for the first frame, after [`StreamTransform::resume_pcap`] with the saved
//! [`StreamTransform::pcap_input_header`] for type 1) produces the rest.

pub mod cryptopan;
pub mod json;
pub mod lines;
pub mod log;
pub mod packet;
pub mod pcap;
pub mod pdns;

use d4_store::Privacy;

use self::cryptopan::{parse_key, Pseudonymiser};
use self::json::JsonTransform;
use self::lines::{LineSplitter, MAX_LINE};
use self::log::LogTransform;
use self::packet::Rewriter;
use self::pcap::PcapStream;
use self::pdns::PdnsTransform;

/// Errors of a transform's settings (a rule that cannot be applied), or of an input stream
/// that cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    #[error("invalid privacy settings: {0}")]
    Settings(String),
    #[error("D4 type {0} cannot be forwarded (a binary stream that cannot be merged)")]
    Unsupported(u8),
    /// The input is not what its type says (a pcap stream with a bad header or an
    /// over-long record). Final: nothing more of this stream is sent.
    #[error("input stream cannot be followed: {0}")]
    Corrupt(String),
}

/// What one push produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Whole units appended to `out`.
    pub units: u64,
    /// Units removed or not understood (counted, not sent).
    pub dropped: u64,
}

impl Pushed {
    fn add(&mut self, other: Pushed) {
        self.units += other.units;
        self.dropped += other.dropped;
    }
}

/// A byte of the input: byte `offset` of the payload of the frame numbered `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub seq: u64,
    pub offset: usize,
}

/// What a line-based stream does with each line.
#[derive(Clone)]
enum LineUnit {
    Identity,
    Pdns(Box<PdnsTransform>),
    Json(Box<JsonTransform>),
    Log(LogTransform),
}

#[derive(Clone)]
enum Kind {
    Lines { split: LineSplitter, unit: LineUnit },
    Pcap(Box<PcapStream>),
}

/// The transform of one input stream.
#[derive(Clone)]
pub struct StreamTransform {
    kind: Kind,
    /// What a push that failed had done before its failure (records sent, dropped): the
    /// failed push returns only its error, so these are counted by [`StreamTransform::finish`]
    /// (the totals then do not depend on how the input was cut into frames).
    carried: Pushed,
}

fn pseudonymiser(privacy: &Privacy, what: &str) -> Result<Pseudonymiser, TransformError> {
    if privacy.key.trim().is_empty() {
        return Err(TransformError::Settings(format!(
            "{what} needs the rule's privacy key"
        )));
    }
    Ok(Pseudonymiser::new(&parse_key(&privacy.key)?))
}

impl StreamTransform {
    /// The transform of a stream of this D4 type (and extended type for 254) under these
    /// settings. Types that cannot be merged (5 pcapng, 7 YAF), the meta header (2) and
    /// types that are not D4 data types are refused.
    pub fn new(
        privacy: &Privacy,
        d4_type: u8,
        ext: Option<&str>,
    ) -> Result<StreamTransform, TransformError> {
        let kind = match d4_type {
            1 => {
                let rewriter = match &privacy.pcap {
                    Some(p) if !p.prefixes.is_empty() || p.truncate_payload => {
                        let pseudo = if p.prefixes.is_empty() {
                            None
                        } else {
                            Some(pseudonymiser(privacy, "pcap prefix pseudonymisation")?)
                        };
                        Some(Rewriter::new(
                            p.prefixes.clone(),
                            pseudo,
                            p.truncate_payload,
                        ))
                    }
                    _ => None,
                };
                Kind::Pcap(Box::new(PcapStream::new(rewriter)))
            }
            8 => {
                let unit = match &privacy.pdns {
                    Some(p) => {
                        let pseudo = if p.client_ip == d4_store::AddressAction::Pseudonymise {
                            Some(pseudonymiser(privacy, "client IP pseudonymisation")?)
                        } else {
                            None
                        };
                        LineUnit::Pdns(Box::new(PdnsTransform::new(p.clone(), pseudo)))
                    }
                    None => LineUnit::Identity,
                };
                lines(unit)
            }
            6 => lines(json_unit(privacy)?),
            254 if matches!(ext, Some("ja3-jl" | "filewatcherjson")) => lines(json_unit(privacy)?),
            3 | 4 | 254 => lines(log_unit(privacy)?),
            other => return Err(TransformError::Unsupported(other)),
        };
        Ok(StreamTransform {
            kind,
            carried: Pushed::default(),
        })
    }

    /// One payload of the input stream (the D4 frame numbered `seq` in its session), in
    /// stream order. Appends whole transformed units to `out`; partial units are held
    /// until the rest arrives.
    pub fn push(
        &mut self,
        seq: u64,
        payload: &[u8],
        now: u64,
        out: &mut Vec<u8>,
    ) -> Result<Pushed, TransformError> {
        self.push_at(seq, 0, payload, now, out)
    }

    /// Like [`StreamTransform::push`] for the payload of frame `seq` from byte `offset` on
    /// (`data` is `payload[offset..]`): to resume at [`StreamTransform::held_at`].
    pub fn push_at(
        &mut self,
        seq: u64,
        offset: usize,
        data: &[u8],
        now: u64,
        out: &mut Vec<u8>,
    ) -> Result<Pushed, TransformError> {
        let mut pushed = Pushed::default();
        match &mut self.kind {
            Kind::Pcap(p) => {
                if let Err(e) = p.push(seq, offset, data, out, &mut pushed) {
                    self.carried.add(pushed);
                    return Err(e);
                }
            }
            Kind::Lines { split, unit } => {
                let dropped = split.push(seq, offset, data, |line, at| match unit {
                    LineUnit::Identity => {
                        out.extend_from_slice(line);
                        out.push(b'\n');
                        pushed.units += 1;
                    }
                    LineUnit::Pdns(p) => p.line(line, at, now, out, &mut pushed),
                    LineUnit::Json(j) => j.line(line, out, &mut pushed),
                    LineUnit::Log(l) => l.line(line, out, &mut pushed),
                });
                pushed.dropped += dropped;
            }
        }
        Ok(pushed)
    }

    /// Time passes: aggregation windows that closed are appended to `out`.
    pub fn tick(&mut self, now: u64, out: &mut Vec<u8>) -> Pushed {
        match &mut self.kind {
            Kind::Lines {
                unit: LineUnit::Pdns(p),
                ..
            } => p.tick(now, out),
            _ => Pushed::default(),
        }
    }

    /// End of the input stream: everything held is appended (a partial last unit is
    /// dropped and counted).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Pushed {
        let mut pushed = std::mem::take(&mut self.carried);
        match &mut self.kind {
            Kind::Pcap(p) => pushed.dropped += p.finish(),
            Kind::Lines { split, unit } => {
                pushed.dropped += split.finish();
                if let LineUnit::Pdns(p) = unit {
                    pushed.add(p.finish(out));
                }
            }
        }
        pushed
    }

    /// The smallest `seq` whose input is not wholly in the output yet (a partial unit, an
    /// open aggregation window): a reader resuming after a crash restarts there.
    pub fn held_from(&self) -> Option<u64> {
        self.held_at().map(|p| p.seq)
    }

    /// The first input byte whose output is not produced yet (see the module doc).
    pub fn held_at(&self) -> Option<Position> {
        match &self.kind {
            Kind::Pcap(p) => p.held(),
            Kind::Lines { split, unit } => {
                let window = match unit {
                    LineUnit::Pdns(p) => p.held(),
                    _ => None,
                };
                match (split.held(), window) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        }
    }

    /// Type 1: the 24-byte pcap global header every outbound connection starts with, once
    /// the input's header was seen (little-endian, microseconds, the input's link type).
    /// Records appended to `out` are in that format.
    pub fn pcap_header(&self) -> Option<[u8; 24]> {
        match &self.kind {
            Kind::Pcap(p) => p.output_header(),
            Kind::Lines { .. } => None,
        }
    }

    /// Type 1: the input's own global header, once seen: keep it to resume the stream
    /// mid-way with [`StreamTransform::resume_pcap`].
    pub fn pcap_input_header(&self) -> Option<[u8; 24]> {
        match &self.kind {
            Kind::Pcap(p) => p.input_header(),
            Kind::Lines { .. } => None,
        }
    }

    /// Type 1: a new transform resuming a stream mid-way takes the input's global header
    /// saved from [`StreamTransform::pcap_input_header`]; records follow. Other types:
    /// nothing to do.
    pub fn resume_pcap(&mut self, header: &[u8; 24]) -> Result<(), TransformError> {
        match &mut self.kind {
            Kind::Pcap(p) => p.resume(header),
            Kind::Lines { .. } => Ok(()),
        }
    }
}

fn lines(unit: LineUnit) -> Kind {
    Kind::Lines {
        split: LineSplitter::new(MAX_LINE),
        unit,
    }
}

fn json_unit(privacy: &Privacy) -> Result<LineUnit, TransformError> {
    let Some(j) = &privacy.json else {
        return Ok(LineUnit::Identity);
    };
    if j.drop.is_empty() && j.pseudonymise.is_empty() {
        return Ok(LineUnit::Identity);
    }
    let pseudo = if j.pseudonymise.is_empty() {
        None
    } else {
        Some(pseudonymiser(privacy, "JSON field pseudonymisation")?)
    };
    Ok(LineUnit::Json(Box::new(JsonTransform::new(
        j.drop.clone(),
        j.pseudonymise.clone(),
        pseudo,
    ))))
}

fn log_unit(privacy: &Privacy) -> Result<LineUnit, TransformError> {
    match &privacy.log {
        Some(l) if !l.redact.is_empty() => {
            Ok(LineUnit::Log(LogTransform::new(&l.redact, &l.replacement)?))
        }
        _ => Ok(LineUnit::Identity),
    }
}

#[cfg(test)]
mod tests;
