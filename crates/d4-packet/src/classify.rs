//! The backscatter classifier: bytes of one captured frame plus its link type in, a
//! [`Packet`] value out (TCP addressing and flags, ICMP errors with the quoted packet, UDP
//! addressing). Every read is bounds-checked, so a truncated or hostile frame yields
//! [`Packet::Skip`], never a panic or an out-of-bounds read.

use std::net::IpAddr;

use crate::ip::{be16, network, parse_ipv4, parse_ipv6, Ip};
use crate::{LinkType, Skip, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP};

/// A TCP segment's addressing and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
}

/// The packet quoted inside an ICMP error (as much as the error carried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// Ports of TCP, UDP or SCTP when the quote is long enough.
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// TCP flags when the quote holds at least 14 bytes of the TCP header.
    pub tcp_flags: Option<u8>,
}

/// An ICMP (v4 or v6) destination-unreachable or time-exceeded error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// ICMP type (v4: 3 or 11; v6: 1 or 3) and code.
    pub icmp_type: u8,
    pub code: u8,
    pub quoted: Quoted,
}

/// What one frame is, as far as backscatter detection cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    Tcp(Tcp),
    IcmpError(IcmpError),
    /// A UDP datagram (src, sport, dst, dport), kept for the per-flow refinement of ICMP.
    Udp {
        src: IpAddr,
        dst: IpAddr,
        sport: u16,
        dport: u16,
    },
    Skip(Skip),
}

/// Classifies one captured frame. Never panics, never reads out of bounds.
pub fn classify(link: LinkType, frame: &[u8]) -> Packet {
    match network(link, frame) {
        Ok(ip) => {
            let is_v6 = ip.src.is_ipv6();
            transport(ip, is_v6)
        }
        Err(s) => Packet::Skip(s),
    }
}

fn transport(ip: Ip<'_>, is_v6: bool) -> Packet {
    if ip.later_fragment {
        return Packet::Skip(Skip::Fragment);
    }
    let p = ip.payload;
    match ip.proto {
        PROTO_TCP => match (be16(p, 0), be16(p, 2), p.get(13)) {
            (Some(sport), Some(dport), Some(&flags)) => Packet::Tcp(Tcp {
                src: ip.src,
                dst: ip.dst,
                sport,
                dport,
                flags,
            }),
            _ => Packet::Skip(Skip::Truncated),
        },
        PROTO_UDP => match (be16(p, 0), be16(p, 2)) {
            (Some(sport), Some(dport)) => Packet::Udp {
                src: ip.src,
                dst: ip.dst,
                sport,
                dport,
            },
            _ => Packet::Skip(Skip::Truncated),
        },
        PROTO_ICMP if !is_v6 => icmp(ip.src, ip.dst, p, false),
        PROTO_ICMPV6 if is_v6 => icmp(ip.src, ip.dst, p, true),
        _ => Packet::Skip(Skip::Other),
    }
}

fn icmp(src: IpAddr, dst: IpAddr, p: &[u8], is_v6: bool) -> Packet {
    let (Some(&t), Some(&code)) = (p.first(), p.get(1)) else {
        return Packet::Skip(Skip::Truncated);
    };
    let is_error = if is_v6 {
        t == 1 || t == 3
    } else {
        t == 3 || t == 11
    };
    if !is_error {
        return Packet::Skip(Skip::Other);
    }
    let inner = p.get(8..).unwrap_or(&[]);
    let parsed = if is_v6 {
        parse_ipv6(inner)
    } else {
        parse_ipv4(inner)
    };
    let ip = match parsed {
        Ok(ip) => ip,
        Err(s) => return Packet::Skip(s),
    };
    let q = ip.payload;
    let has_ports = matches!(ip.proto, PROTO_TCP | PROTO_UDP | PROTO_SCTP) && !ip.later_fragment;
    let (sport, dport) = if has_ports {
        (be16(q, 0), be16(q, 2))
    } else {
        (None, None)
    };
    let tcp_flags = if ip.proto == PROTO_TCP && !ip.later_fragment {
        q.get(13).copied()
    } else {
        None
    };
    Packet::IcmpError(IcmpError {
        src,
        dst,
        icmp_type: t,
        code,
        quoted: Quoted {
            src: ip.src,
            dst: ip.dst,
            proto: ip.proto,
            sport,
            dport,
            tcp_flags,
        },
    })
}
