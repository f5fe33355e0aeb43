use bytes::Bytes;

use crate::header::{Header, HEADER_LEN};

/// One decoded D4 frame: its header and its payload.
///
/// The payload is a [`Bytes`]: when a whole frame arrives in one chunk the decoder hands
/// out a slice of that chunk without copying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    pub payload: Bytes,
}

impl Frame {
    pub fn new(header: Header, payload: Bytes) -> Frame {
        Frame { header, payload }
    }

    /// Length of the frame on the wire (header + payload).
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// The frame as it travels on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len());
        out.extend_from_slice(&self.header.to_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}
