//! The transport view of a captured frame for stream analyzers (TLS, QUIC): a TCP
//! [`Segment`] with its sequence numbers and payload, or a UDP [`Datagram`], both borrowing
//! the frame (no copy). The link and IP parsing is the classifier's (VLAN/QinQ, SLL, SLL2,
//! NULL/LOOP, raw, IPv6 extension headers); `payload` ends where the IP payload ends, so
//! Ethernet padding is never part of it. A frame cut by the capture's snaplen keeps the
//! bytes that were captured (the reassembler then sees the rest as a hole).
//!
//! IP fragments are not reassembled: a non-first fragment is [`Skip::Fragment`], the first
//! fragment of a fragmented datagram is [`Skip::Fragmented`]. Never panics.

use std::net::IpAddr;

use crate::ip::{be16, be32, network};
use crate::{LinkType, Skip, PROTO_TCP, PROTO_UDP};

/// One TCP segment: addressing, sequence numbers, flags ([`crate::flags`]), window and the
/// payload after the TCP header and options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub payload: &'a [u8],
}

/// One UDP datagram: addressing and the payload after the 8-byte UDP header (trimmed to
/// the UDP length when that is shorter than the captured bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
}

/// What one frame carries, as far as a stream analyzer cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    Tcp(Segment<'a>),
    Udp(Datagram<'a>),
    /// Not TCP or UDP (ICMP, other protocols: [`Skip::Other`]), or not decodable.
    Skip(Skip),
}

/// Decodes one captured frame of link type `link`. Never panics, never reads out of bounds.
pub fn decode(link: LinkType, frame: &[u8]) -> Transport<'_> {
    let ip = match network(link, frame) {
        Ok(ip) => ip,
        Err(s) => return Transport::Skip(s),
    };
    if ip.later_fragment {
        return Transport::Skip(Skip::Fragment);
    }
    let p = ip.payload;
    match ip.proto {
        PROTO_TCP | PROTO_UDP if ip.more_fragments => Transport::Skip(Skip::Fragmented),
        PROTO_TCP => {
            let (Some(sport), Some(dport), Some(seq), Some(ack), Some(&off), Some(&flags)) = (
                be16(p, 0),
                be16(p, 2),
                be32(p, 4),
                be32(p, 8),
                p.get(12),
                p.get(13),
            ) else {
                return Transport::Skip(Skip::Truncated);
            };
            let Some(window) = be16(p, 14) else {
                return Transport::Skip(Skip::Truncated);
            };
            let doff = usize::from(off >> 4) * 4;
            if doff < 20 {
                return Transport::Skip(Skip::Malformed);
            }
            let Some(payload) = p.get(doff..) else {
                return Transport::Skip(Skip::Truncated);
            };
            Transport::Tcp(Segment {
                src: ip.src,
                dst: ip.dst,
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                payload,
            })
        }
        PROTO_UDP => {
            let (Some(sport), Some(dport), Some(len)) = (be16(p, 0), be16(p, 2), be16(p, 4)) else {
                return Transport::Skip(Skip::Truncated);
            };
            if p.len() < 8 {
                return Transport::Skip(Skip::Truncated);
            }
            let len = usize::from(len);
            // UDP length 0 (IPv6 jumbograms) or shorter than the header: trust the IP length.
            let end = if len < 8 { p.len() } else { len.min(p.len()) };
            Transport::Udp(Datagram {
                src: ip.src,
                dst: ip.dst,
                sport,
                dport,
                payload: p.get(8..end).unwrap_or(&[]),
            })
        }
        _ => Transport::Skip(Skip::Other),
    }
}
