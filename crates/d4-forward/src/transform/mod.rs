//! Privacy transforms of a forwarded stream (SKELETON: the contract only; the real
//! implementation replaces this file).
//!
//! One [`StreamTransform`] per input stream (one D4 session of one sensor: a type, and for
//! type 254 its extended type). It cuts the stream into whole units (lines; pcap records
//! after the global header), transforms each unit as the rule's [`Privacy`] says, and
//! appends whole transformed units to the caller's buffer, so that the output of several
//! input streams can be merged into one outbound stream.

use d4_store::Privacy;

/// Errors of a transform's settings (a rule that cannot be applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    #[error("invalid privacy settings: {0}")]
    Settings(String),
    #[error("D4 type {0} cannot be forwarded (a binary stream that cannot be merged)")]
    Unsupported(u8),
}

/// What one push produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Whole units appended to `out`.
    pub units: u64,
    /// Units removed or not understood (counted, not sent).
    pub dropped: u64,
}

/// The transform of one input stream.
pub struct StreamTransform {
    _d4_type: u8,
}

impl StreamTransform {
    /// The transform of a stream of this D4 type (and extended type for 254) under these
    /// settings. Types that cannot be merged (5 pcapng, 7 YAF) are refused.
    pub fn new(
        _privacy: &Privacy,
        d4_type: u8,
        _ext: Option<&str>,
    ) -> Result<StreamTransform, TransformError> {
        Ok(StreamTransform { _d4_type: d4_type })
    }

    /// One payload of the input stream (the D4 frame numbered `seq` in its session), in
    /// stream order. Appends whole transformed units to `out`; partial units are held
    /// until the rest arrives.
    pub fn push(
        &mut self,
        _seq: u64,
        payload: &[u8],
        _now: u64,
        out: &mut Vec<u8>,
    ) -> Result<Pushed, TransformError> {
        out.extend_from_slice(payload);
        Ok(Pushed::default())
    }

    /// Time passes: aggregation windows that closed are appended to `out`.
    pub fn tick(&mut self, _now: u64, _out: &mut Vec<u8>) -> Pushed {
        Pushed::default()
    }

    /// End of the input stream: everything held is appended (a partial last unit is
    /// dropped and counted).
    pub fn finish(&mut self, _out: &mut Vec<u8>) -> Pushed {
        Pushed::default()
    }

    /// The smallest `seq` whose input is not wholly in the output yet (a partial unit, an
    /// open aggregation window): a reader resuming after a crash restarts there.
    pub fn held_from(&self) -> Option<u64> {
        None
    }

    /// Type 1: the 24-byte pcap global header every outbound connection starts with, once
    /// the input's header was seen (little-endian, microseconds, the input's link type).
    /// Records appended to `out` are in that format.
    pub fn pcap_header(&self) -> Option<[u8; 24]> {
        None
    }
}
