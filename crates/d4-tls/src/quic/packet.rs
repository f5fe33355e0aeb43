//! QUIC long headers and the packets coalesced in one UDP datagram (RFC 9000 §12.2, §17.2).
//!
//! [`starts_with_initial_v1`] is the test run on every UDP datagram of a capture: one mask on
//! the first byte and a 4-byte version comparison. Only datagrams that pass it are parsed
//! further with [`coalesced`].

use super::{read_varint, QuicError, MAX_CID_LEN, QUIC_V1};

/// The long-header packet types of QUIC version 1 (RFC 9000 §17.2, Table 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// Initial (type 0): the only type decrypted here.
    Initial,
    /// 0-RTT (type 1): skipped.
    ZeroRtt,
    /// Handshake (type 2): skipped.
    Handshake,
}

/// A version 1 long-header packet, its header fields borrowed from the datagram.
/// Header protection is still on: `first_byte`'s low bits and the packet number are masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongHeader<'a> {
    /// The packet type.
    pub packet_type: PacketType,
    /// Destination Connection ID (at most 20 bytes).
    pub dcid: &'a [u8],
    /// Source Connection ID (at most 20 bytes).
    pub scid: &'a [u8],
    /// The Initial's token (empty for other types).
    pub token: &'a [u8],
    /// Offset of the (protected) packet number in [`LongHeader::packet`].
    pub pn_offset: usize,
    /// The whole packet: header, packet number and protected payload (Length field included).
    pub packet: &'a [u8],
}

/// The cheap test for "does this UDP payload start with a QUIC v1 Initial packet": the long
/// header form bit, the Initial type bits and the version. The fixed bit is not checked
/// (RFC 9287 lets a client clear it). A few comparisons; no parsing.
#[inline]
pub fn starts_with_initial_v1(datagram: &[u8]) -> bool {
    match datagram {
        [first, v0, v1, v2, v3, ..] => {
            first & 0xb0 == 0x80 && u32::from_be_bytes([*v0, *v1, *v2, *v3]) == QUIC_V1
        }
        _ => false,
    }
}

/// Parses the version 1 long-header packet at the start of `buf`.
///
/// `Ok(None)` means "no packet to read here": a short header (or padding after the last
/// packet), another version (including version negotiation, version 0), or a Retry packet
/// (which has no Length field and is never decrypted).
pub fn parse_long_header(buf: &[u8]) -> Result<Option<LongHeader<'_>>, QuicError> {
    let Some((&first, rest)) = buf.split_first() else {
        return Ok(None);
    };
    if first & 0x80 == 0 {
        return Ok(None);
    }
    let version = match rest {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => return Err(QuicError::Truncated),
    };
    if version != QUIC_V1 {
        return Ok(None);
    }
    let packet_type = match (first >> 4) & 0x03 {
        0 => PacketType::Initial,
        1 => PacketType::ZeroRtt,
        2 => PacketType::Handshake,
        _ => return Ok(None),
    };
    let mut pos = 5;
    let dcid = read_cid(buf, &mut pos)?;
    let scid = read_cid(buf, &mut pos)?;
    let token = if packet_type == PacketType::Initial {
        let len = read_varint(buf, &mut pos)?;
        take(buf, &mut pos, len)?
    } else {
        &[]
    };
    let length = read_varint(buf, &mut pos)?;
    let end = usize::try_from(length)
        .ok()
        .and_then(|l| pos.checked_add(l))
        .filter(|&end| end <= buf.len())
        .ok_or(QuicError::BadLength)?;
    Ok(Some(LongHeader {
        packet_type,
        dcid,
        scid,
        token,
        pn_offset: pos,
        packet: &buf[..end],
    }))
}

fn read_cid<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], QuicError> {
    let len = *buf.get(*pos).ok_or(QuicError::Truncated)?;
    *pos += 1;
    if usize::from(len) > MAX_CID_LEN {
        return Err(QuicError::ConnectionIdTooLong);
    }
    take(buf, pos, u64::from(len))
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, len: u64) -> Result<&'a [u8], QuicError> {
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| pos.checked_add(l))
        .ok_or(QuicError::Truncated)?;
    let bytes = buf.get(*pos..end).ok_or(QuicError::Truncated)?;
    *pos = end;
    Ok(bytes)
}

/// The version 1 long-header packets coalesced in `datagram`, in order. The walk ends at the
/// first short header, non-v1 packet, Retry, or after the first error (yielded once).
pub fn coalesced(datagram: &[u8]) -> Coalesced<'_> {
    Coalesced {
        rest: datagram,
        done: false,
    }
}

/// Iterator returned by [`coalesced`].
#[derive(Debug, Clone)]
pub struct Coalesced<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> Iterator for Coalesced<'a> {
    type Item = Result<LongHeader<'a>, QuicError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match parse_long_header(self.rest) {
            Ok(Some(header)) => {
                self.rest = &self.rest[header.packet.len()..];
                Some(Ok(header))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheap_test_rejects_short_headers_and_other_versions() {
        assert!(starts_with_initial_v1(&[0xc0, 0, 0, 0, 1]));
        assert!(starts_with_initial_v1(&[0x83, 0, 0, 0, 1, 0]));
        assert!(!starts_with_initial_v1(&[0xe0, 0, 0, 0, 1])); // Handshake
        assert!(!starts_with_initial_v1(&[0x40, 0, 0, 0, 1])); // short header
        assert!(!starts_with_initial_v1(&[0xc0, 0, 0, 0, 0])); // version negotiation
        assert!(!starts_with_initial_v1(&[0xc0, 0x6b, 0x33, 0x43, 0xcf])); // QUIC v2
        assert!(!starts_with_initial_v1(&[0xc0, 0, 0, 0]));
        assert!(!starts_with_initial_v1(&[]));
    }

    #[test]
    fn header_fields_and_errors() {
        // Initial, DCID 01 02, SCID empty, token 1 byte, Length 2, then 2 bytes.
        let pkt = [0xc0, 0, 0, 0, 1, 2, 1, 2, 0, 1, 0xaa, 2, 9, 9, 0xff];
        let h = parse_long_header(&pkt).ok().flatten();
        let h = h.as_ref();
        assert_eq!(h.map(|h| h.dcid), Some(&[1u8, 2][..]));
        assert_eq!(h.map(|h| h.token), Some(&[0xaau8][..]));
        assert_eq!(h.map(|h| h.pn_offset), Some(12));
        assert_eq!(h.map(|h| h.packet.len()), Some(14));
        let mut bad = pkt;
        bad[11] = 4;
        assert_eq!(parse_long_header(&bad), Err(QuicError::BadLength));
        bad[5] = 21;
        assert_eq!(parse_long_header(&bad), Err(QuicError::ConnectionIdTooLong));
        assert_eq!(parse_long_header(&pkt[..8]), Err(QuicError::Truncated));
        assert_eq!(parse_long_header(&[0xf0, 0, 0, 0, 1, 0, 0]), Ok(None)); // Retry
                                                                            // Two packets then padding.
        let mut dgram = pkt[..14].to_vec();
        dgram.extend_from_slice(&pkt[..14]);
        dgram.extend_from_slice(&[0; 5]);
        assert_eq!(coalesced(&dgram).count(), 2);
    }
}
