//! Framing: payload bytes → signed D4 frames, with the current time as timestamp.

use d4_proto::{types, EncodeError, Encoder};
use uuid::Uuid;

/// Frames reads for one sensor. Data frames are of the configured type, or 254 when the
/// configured type is 2/254 (the meta header itself goes out as type 2, see
/// [`Framer::meta_frames`]).
#[derive(Debug, Clone)]
pub struct Framer {
    enc: Encoder,
    meta_enc: Encoder,
    snaplen: usize,
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Framer {
    pub fn new(uuid: Uuid, key: &[u8], d4_type: u8, version: u8, snaplen: usize) -> Framer {
        let data_type = if d4_type == types::META_HEADER {
            types::EXTENDED
        } else {
            d4_type
        };
        Framer {
            enc: Encoder::new(uuid, key, data_type).with_version(version),
            meta_enc: Encoder::new(uuid, key, types::META_HEADER).with_version(version),
            snaplen,
        }
    }

    pub fn snaplen(&self) -> usize {
        self.snaplen
    }

    /// One frame for one read.
    pub fn frame(&self, payload: &[u8]) -> Result<Vec<u8>, EncodeError> {
        self.enc.encode(now_secs(), payload)
    }

    /// One frame into a reused buffer (the hot path of stdin → stdout).
    pub fn frame_into(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.enc.encode_into(now_secs(), payload, out)
    }

    /// The meta header as type-2 frames of at most snaplen bytes each.
    pub fn meta_frames(&self, meta: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(meta.len() + 62);
        let ts = now_secs();
        for piece in meta.chunks(self.snaplen) {
            self.meta_enc.encode_into(ts, piece, &mut out)?;
        }
        Ok(out)
    }
}
