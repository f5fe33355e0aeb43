//! QUIC version 1 Initial packets (RFC 9000, RFC 9001): enough of QUIC to read the TLS
//! ClientHello (and the ServerHello) a connection starts with, and nothing more.
//!
//! Sans-IO: datagrams in, values out. Only Initial packets of version 1 (`0x00000001`) are ever
//! decrypted; every other packet is skipped (Handshake, 0-RTT) or ends the datagram (short
//! header, Retry, other versions, version negotiation).
//!
//! - [`packet`]: the cheap "is this an Initial?" test ([`packet::starts_with_initial_v1`]),
//!   long-header parsing and the walk over the packets coalesced in one UDP datagram.
//! - [`keys`]: initial secrets from the client's original Destination Connection ID, header
//!   protection (AES-128-ECB) and payload protection (AES-128-GCM): [`keys::open_initial`].
//! - [`frames`](mod@frames): the frames an Initial may carry (PADDING, PING, ACK, CRYPTO,
//!   CONNECTION_CLOSE 0x1c); any other frame is a protocol error.
//! - [`stream`]: [`CryptoStream`], the bounded reassembly of CRYPTO frames (out of order,
//!   duplicated, overlapping: the first copy of a byte wins) and the first handshake message.
//! - [`tracker`]: [`QuicInitials`], per-connection state keyed by the caller (bounded), that
//!   yields the ClientHello (and the ServerHello) once complete, with counters.
//! - [`build`]: [`build_initial`], an encrypting builder for tests and capture generators.

pub mod build;
pub mod frames;
pub mod keys;
pub mod packet;
pub mod stream;
pub mod tracker;

pub use build::{build_initial, InitialBuilder};
pub use frames::{frames, Frame};
pub use keys::{open_initial, InitialKeys, InitialSecrets};
pub use packet::{coalesced, starts_with_initial_v1, LongHeader, PacketType};
pub use stream::CryptoStream;
pub use tracker::{Direction, QuicCounters, QuicHello, QuicInitials, QuicLimits};

/// QUIC version 1 (RFC 9000), the only version decrypted here.
pub const QUIC_V1: u32 = 0x0000_0001;

/// The longest connection ID QUIC version 1 allows (RFC 9000 §17.2).
pub const MAX_CID_LEN: usize = 20;

/// Why an Initial packet, a frame or a CRYPTO stream was refused. Every error is final for the
/// packet (or datagram) that caused it; the caller counts it and goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuicError {
    /// The datagram ends inside a packet header or a frame.
    #[error("truncated QUIC packet or frame")]
    Truncated,
    /// A connection ID longer than 20 bytes in a version 1 long header.
    #[error("connection ID longer than 20 bytes")]
    ConnectionIdTooLong,
    /// The Length field points past the end of the datagram.
    #[error("packet length beyond the datagram")]
    BadLength,
    /// Too few bytes after the packet number offset to take the header-protection sample.
    #[error("packet too short for the header protection sample")]
    TooShortForSample,
    /// The AEAD tag did not verify: wrong keys, or a corrupted or forged packet.
    #[error("Initial packet failed authentication")]
    AuthFailed,
    /// The reserved header bits were not zero after header protection removal.
    #[error("reserved header bits set")]
    ReservedBits,
    /// A decrypted Initial with no frame at all.
    #[error("Initial packet without frames")]
    EmptyPayload,
    /// A frame type not allowed in Initial packets (the value is the frame type byte).
    #[error("frame type {0:#x} not allowed in an Initial packet")]
    UnexpectedFrame(u8),
    /// A CRYPTO frame reaching past 2^62 or past the stream's byte limit.
    #[error("CRYPTO data beyond the stream limit")]
    CryptoLimit,
    /// A CRYPTO stream with too many holes to track.
    #[error("CRYPTO stream too fragmented")]
    CryptoFragmented,
    /// A server Initial on a connection whose client Initial (hence keys) was never seen.
    #[error("server Initial without the client's original DCID")]
    NoKeys,
    /// A new connection while the tracker already holds its maximum.
    #[error("too many QUIC connections tracked")]
    TooManyConnections,
    /// The key schedule failed (cannot happen with the fixed QUIC v1 sizes).
    #[error("key derivation failed")]
    KeyDerivation,
}

/// Reads a QUIC variable-length integer (RFC 9000 §16) at `*pos`, advancing `*pos`.
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, QuicError> {
    let first = *buf.get(*pos).ok_or(QuicError::Truncated)?;
    let len = 1usize << (first >> 6);
    let bytes = buf
        .get(*pos..pos.saturating_add(len))
        .ok_or(QuicError::Truncated)?;
    let mut value = u64::from(first & 0x3f);
    for b in &bytes[1..] {
        value = (value << 8) | u64::from(*b);
    }
    *pos += len;
    Ok(value)
}

/// Appends `value` as a QUIC variable-length integer in its shortest form. Values of 2^62 and
/// above do not exist in QUIC; they are clamped to 2^62 - 1.
pub fn write_varint(out: &mut Vec<u8>, value: u64) {
    let v = value.min((1 << 62) - 1);
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes());
    } else {
        out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes());
    }
}

/// Bytes [`write_varint`] uses for `value`.
pub fn varint_len(value: u64) -> usize {
    if value < 1 << 6 {
        1
    } else if value < 1 << 14 {
        2
    } else if value < 1 << 30 {
        4
    } else {
        8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_from_rfc9000_appendix_a1() {
        // RFC 9000 §A.1 examples.
        for (hex_in, want) in [
            ("c2197c5eff14e88c", 151_288_809_941_952_652u64),
            ("9d7f3e7d", 494_878_333),
            ("7bbd", 15_293),
            ("25", 37),
            ("4025", 37),
        ] {
            let bytes = hex::decode(hex_in).unwrap_or_default();
            let mut pos = 0;
            assert_eq!(read_varint(&bytes, &mut pos), Ok(want));
            assert_eq!(pos, bytes.len());
        }
        let mut out = Vec::new();
        write_varint(&mut out, 15_293);
        assert_eq!(out, [0x7b, 0xbd]);
        let mut pos = 0;
        assert_eq!(read_varint(&[0x7b], &mut pos), Err(QuicError::Truncated));
    }
}
