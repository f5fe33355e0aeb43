//! Building protected QUIC v1 Initial packets. **Test and generator support**: the sensor
//! never sends anything; this exists so tests, fuzz targets and the benchmark's capture
//! generator can make real, decryptable Initial packets (RFC 9001 Appendix A is reproduced
//! byte for byte in the tests).

use super::keys::{InitialKeys, TAG_LEN};
use super::{varint_len, write_varint};

/// The largest UDP payload (65 535 - 8): the cap of [`InitialBuilder::pad_to`].
pub const MAX_DATAGRAM: usize = 65_527;

/// Every field of an Initial packet to build; [`build_initial`] covers the common case.
#[derive(Debug, Clone, Copy)]
pub struct InitialBuilder<'a> {
    /// The client's original Destination Connection ID: the key material of both directions.
    pub original_dcid: &'a [u8],
    /// Destination Connection ID in the header.
    pub dcid: &'a [u8],
    /// Source Connection ID in the header.
    pub scid: &'a [u8],
    /// Token (clients after a Retry or NEW_TOKEN; empty otherwise).
    pub token: &'a [u8],
    /// Server Initial (`server in` keys) or client Initial (`client in` keys).
    pub is_server: bool,
    /// Packet number (encoded on `pn_len` bytes).
    pub packet_number: u32,
    /// Packet number length on the wire, 1 to 4 (clamped).
    pub pn_len: usize,
    /// Raw plaintext frames placed before the CRYPTO frames (an ACK, a PING...).
    pub prefix_frames: &'a [u8],
    /// CRYPTO frames: `(offset, data)`, in this order.
    pub crypto: &'a [(u64, &'a [u8])],
    /// PADDING frames are added until the packet is at least this long (1200 for a client's
    /// first datagram); capped at [`MAX_DATAGRAM`].
    pub pad_to: usize,
}

impl InitialBuilder<'_> {
    /// The protected packet (header protection applied). Empty only if key derivation failed,
    /// which cannot happen for QUIC v1's fixed sizes.
    pub fn build(&self) -> Vec<u8> {
        let Ok(keys) = InitialKeys::for_side(self.original_dcid, self.is_server) else {
            return Vec::new();
        };
        let pn_len = self.pn_len.clamp(1, 4);
        let mut plain = self.prefix_frames.to_vec();
        for (offset, data) in self.crypto {
            plain.push(0x06);
            write_varint(&mut plain, *offset);
            write_varint(&mut plain, data.len() as u64);
            plain.extend_from_slice(data);
        }
        // The header-protection sample needs 4 bytes after the packet number's start plus 16.
        if pn_len + plain.len() < 4 {
            plain.resize(4 - pn_len, 0);
        }

        let pad_to = self.pad_to.min(MAX_DATAGRAM);
        let mut out = Vec::with_capacity(pad_to.max(64) + plain.len());
        out.push(0xc0 | (pn_len as u8 - 1));
        out.extend_from_slice(&super::QUIC_V1.to_be_bytes());
        push_cid(&mut out, self.dcid);
        push_cid(&mut out, self.scid);
        write_varint(&mut out, self.token.len() as u64);
        out.extend_from_slice(self.token);

        let mut length = pn_len + plain.len() + TAG_LEN;
        let length_field = |l: usize| if l < 1 << 14 { 2 } else { 4 };
        let total = out.len() + length_field(length) + length;
        if total < pad_to {
            length += pad_to - total;
        }
        let padding = length - (pn_len + plain.len() + TAG_LEN);
        if length_field(length) == 2 {
            out.extend_from_slice(&(0x4000 | length as u16).to_be_bytes());
        } else if varint_len(length as u64) <= 4 {
            out.extend_from_slice(&(0x8000_0000 | length as u32).to_be_bytes());
        } else {
            return Vec::new();
        }
        let pn_offset = out.len();
        out.extend_from_slice(&self.packet_number.to_be_bytes()[4 - pn_len..]);
        let header_len = out.len();
        out.extend_from_slice(&plain);
        out.resize(out.len() + padding, 0);

        let (aad, payload) = out.split_at_mut(header_len);
        let Ok(tag) = keys.seal_payload(u64::from(self.packet_number), aad, payload) else {
            return Vec::new();
        };
        out.extend_from_slice(&tag);

        let mut sample = [0u8; 16];
        sample.copy_from_slice(&out[pn_offset + 4..pn_offset + 20]);
        let mask = keys.header_mask(&sample);
        out[0] ^= mask[0] & 0x0f;
        for (b, m) in out[pn_offset..header_len].iter_mut().zip(&mask[1..]) {
            *b ^= m;
        }
        out
    }
}

fn push_cid(out: &mut Vec<u8>, cid: &[u8]) {
    let cid = &cid[..cid.len().min(super::MAX_CID_LEN)];
    out.push(cid.len() as u8);
    out.extend_from_slice(cid);
}

/// Builds one protected QUIC v1 Initial packet (**test and generator support**).
///
/// The keys come from `dcid` for both sides: a client Initial is keyed by its own DCID, as
/// every first client Initial is; a server Initial built here carries the client's original
/// DCID as its DCID too (for a server Initial with another DCID, use [`InitialBuilder`] with
/// `original_dcid`). `crypto` lists CRYPTO frames `(offset, bytes)`; PADDING makes the packet
/// at least `pad_to` bytes long. The packet number is written on 4 bytes.
pub fn build_initial(
    dcid: &[u8],
    scid: &[u8],
    pn: u32,
    crypto: &[(u64, &[u8])],
    pad_to: usize,
    is_server: bool,
) -> Vec<u8> {
    InitialBuilder {
        original_dcid: dcid,
        dcid,
        scid,
        token: &[],
        is_server,
        packet_number: pn,
        pn_len: 4,
        prefix_frames: &[],
        crypto,
        pad_to,
    }
    .build()
}
