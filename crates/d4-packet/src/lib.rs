//! `d4-packet`: the sans-IO packet layer shared by the capture analyzers. Today it is the
//! link-layer and IPv4/IPv6 TCP/UDP/ICMP classifier ([`classify`]) that `d4-pibs` uses;
//! next it will hold bounded TCP reassembly for IPv4 and IPv6, shared by `d4-pibs` and
//! `d4-tls`. It must never do I/O (bytes in, values out: no files, sockets, clocks or
//! threads) and never depend on another d4 crate (at most `d4-proto`, ideally none), so
//! every analyzer can use it and it can be fuzzed on its own.
//!
//! The classifier: bytes of one captured frame plus its link type in, a [`Packet`] value
//! out. Every read is bounds-checked (`get`), so a truncated or hostile frame yields
//! [`Packet::Skip`], never a panic or an out-of-bounds read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// TCP flag bits (the 8 bits of byte 13 of the TCP header, as the reference prints them).
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    /// `SYN,ACK`-style names of the bits set in `f` (empty string for no flag).
    pub fn names(f: u8) -> String {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        let mut out = String::new();
        for (i, n) in NAMES.iter().enumerate() {
            if f & (1 << i) != 0 {
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(n);
            }
        }
        if out.is_empty() {
            out.push_str("NONE");
        }
        out
    }
}

/// IP protocol numbers we look at.
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_SCTP: u8 = 132;
pub const PROTO_ICMPV6: u8 = 58;

/// The link layer of a capture, from the pcap/pcapng link-type number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// 1: Ethernet II, with any number (up to 8) of 802.1Q / 802.1ad (QinQ) tags.
    Ethernet,
    /// 101 (and the DLT values 12/14 some systems write): raw IPv4 or IPv6.
    Raw,
    /// 228: raw IPv4 only.
    Ipv4,
    /// 229: raw IPv6 only.
    Ipv6,
    /// 113: Linux cooked capture v1 (16-byte header).
    LinuxSll,
    /// 276: Linux cooked capture v2 (20-byte header).
    LinuxSll2,
    /// 0: BSD loopback, 4-byte address family in the writer's byte order.
    Null,
    /// 108: OpenBSD loopback, 4-byte address family in network byte order.
    Loop,
    /// Anything else: every frame is skipped.
    Unsupported(u32),
}

impl LinkType {
    pub fn from_pcap(n: u32) -> LinkType {
        match n {
            1 => LinkType::Ethernet,
            101 | 12 | 14 => LinkType::Raw,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            other => LinkType::Unsupported(other),
        }
    }
}

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

/// Why a frame was not classified as TCP or an ICMP error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The link type is not supported.
    Link,
    /// Not IPv4/IPv6 (ARP, LLDP...).
    NotIp,
    /// The frame ends before the headers we need (snaplen or a broken capture).
    Truncated,
    /// A header is inconsistent (bad version, IHL < 5, too many extension headers...).
    Malformed,
    /// A non-first IP fragment: no transport header to look at.
    Fragment,
    /// UDP: not backscatter, but its flow is remembered (an ICMP error quoting it is a reply).
    Udp,
    /// Another protocol or ICMP message type.
    Other,
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

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline]
fn v4(b: &[u8], at: usize) -> Option<IpAddr> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(IpAddr::V4(Ipv4Addr::from(s)))
}

#[inline]
fn v6(b: &[u8], at: usize) -> Option<IpAddr> {
    let s: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(IpAddr::V6(Ipv6Addr::from(s)))
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
const MAX_VLAN_TAGS: usize = 8;
const MAX_V6_EXT: usize = 10;

/// Classifies one captured frame. Never panics, never reads out of bounds.
pub fn classify(link: LinkType, frame: &[u8]) -> Packet {
    let (ethertype, l3) = match link {
        LinkType::Ethernet => {
            let Some(mut et) = be16(frame, 12) else {
                return Packet::Skip(Skip::Truncated);
            };
            let mut off = 14;
            let mut tags = 0;
            while matches!(et, 0x8100 | 0x88A8 | 0x9100) {
                tags += 1;
                if tags > MAX_VLAN_TAGS {
                    return Packet::Skip(Skip::Malformed);
                }
                let Some(inner) = be16(frame, off + 2) else {
                    return Packet::Skip(Skip::Truncated);
                };
                et = inner;
                off += 4;
            }
            (Some(et), frame.get(off..).unwrap_or(&[]))
        }
        LinkType::Raw => (None, frame),
        LinkType::Ipv4 => (Some(ETH_IPV4), frame),
        LinkType::Ipv6 => (Some(ETH_IPV6), frame),
        LinkType::LinuxSll => match be16(frame, 14) {
            Some(p) => (Some(p), frame.get(16..).unwrap_or(&[])),
            None => return Packet::Skip(Skip::Truncated),
        },
        LinkType::LinuxSll2 => match (be16(frame, 0), frame.get(20..)) {
            (Some(p), Some(rest)) => (Some(p), rest),
            _ => return Packet::Skip(Skip::Truncated),
        },
        LinkType::Null | LinkType::Loop => {
            let Some(h) = frame.get(0..4) else {
                return Packet::Skip(Skip::Truncated);
            };
            let h = [h[0], h[1], h[2], h[3]];
            // NULL is in the writer's byte order: a family is small, so whichever order
            // gives a value below 2^16 is the right one.
            let fam = if link == LinkType::Loop {
                u32::from_be_bytes(h)
            } else {
                let le = u32::from_le_bytes(h);
                if le > 0xFFFF {
                    u32::from_be_bytes(h)
                } else {
                    le
                }
            };
            let et = match fam {
                2 => ETH_IPV4,
                10 | 24 | 28 | 30 => ETH_IPV6,
                _ => return Packet::Skip(Skip::NotIp),
            };
            (Some(et), &frame[4..])
        }
        LinkType::Unsupported(_) => return Packet::Skip(Skip::Link),
    };
    match ethertype {
        Some(ETH_IPV4) => ipv4(l3),
        Some(ETH_IPV6) => ipv6(l3),
        Some(_) => Packet::Skip(Skip::NotIp),
        None => match l3.first().map(|b| b >> 4) {
            Some(4) => ipv4(l3),
            Some(6) => ipv6(l3),
            Some(_) => Packet::Skip(Skip::Malformed),
            None => Packet::Skip(Skip::Truncated),
        },
    }
}

/// An IP header's essentials: addresses, protocol, the transport bytes, whether it is a
/// non-first fragment.
struct Ip<'a> {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    payload: &'a [u8],
    later_fragment: bool,
}

fn parse_ipv4(b: &[u8]) -> Result<Ip<'_>, Skip> {
    let first = *b.first().ok_or(Skip::Truncated)?;
    if first >> 4 != 4 {
        return Err(Skip::Malformed);
    }
    let ihl = usize::from(first & 0x0F) * 4;
    if ihl < 20 {
        return Err(Skip::Malformed);
    }
    if b.len() < ihl {
        return Err(Skip::Truncated);
    }
    let total = usize::from(be16(b, 2).ok_or(Skip::Truncated)?);
    // A total length of 0 happens with TSO captures: then trust the captured bytes.
    let end = if total == 0 {
        b.len()
    } else if total < ihl {
        return Err(Skip::Malformed);
    } else {
        total.min(b.len())
    };
    let frag = be16(b, 6).ok_or(Skip::Truncated)?;
    Ok(Ip {
        src: v4(b, 12).ok_or(Skip::Truncated)?,
        dst: v4(b, 16).ok_or(Skip::Truncated)?,
        proto: b[9],
        payload: b.get(ihl..end).unwrap_or(&[]),
        later_fragment: frag & 0x1FFF != 0,
    })
}

fn parse_ipv6(b: &[u8]) -> Result<Ip<'_>, Skip> {
    let first = *b.first().ok_or(Skip::Truncated)?;
    if first >> 4 != 6 {
        return Err(Skip::Malformed);
    }
    if b.len() < 40 {
        return Err(Skip::Truncated);
    }
    let plen = usize::from(be16(b, 4).ok_or(Skip::Truncated)?);
    // Payload length 0 = jumbogram or TSO capture: trust the captured bytes.
    let end = if plen == 0 {
        b.len()
    } else {
        (40 + plen).min(b.len())
    };
    let src = v6(b, 8).ok_or(Skip::Truncated)?;
    let dst = v6(b, 24).ok_or(Skip::Truncated)?;
    let mut next = b[6];
    let mut off = 40;
    let mut later_fragment = false;
    for _ in 0..MAX_V6_EXT {
        match next {
            // hop-by-hop, routing, destination options, mobility, HIP, shim6
            0 | 43 | 60 | 135 | 139 | 140 => {
                let nh = *b.get(off).ok_or(Skip::Truncated)?;
                let len = usize::from(*b.get(off + 1).ok_or(Skip::Truncated)?) * 8 + 8;
                next = nh;
                off += len;
            }
            44 => {
                let nh = *b.get(off).ok_or(Skip::Truncated)?;
                let fo = be16(b, off + 2).ok_or(Skip::Truncated)?;
                later_fragment = fo & 0xFFF8 != 0;
                next = nh;
                off += 8;
            }
            51 => {
                let nh = *b.get(off).ok_or(Skip::Truncated)?;
                let len = (usize::from(*b.get(off + 1).ok_or(Skip::Truncated)?) + 2) * 4;
                next = nh;
                off += len;
            }
            _ => {
                if off > end {
                    return Err(Skip::Truncated);
                }
                return Ok(Ip {
                    src,
                    dst,
                    proto: next,
                    payload: b.get(off..end).unwrap_or(&[]),
                    later_fragment,
                });
            }
        }
    }
    Err(Skip::Malformed)
}

fn ipv4(b: &[u8]) -> Packet {
    match parse_ipv4(b) {
        Ok(ip) => transport(ip, false),
        Err(s) => Packet::Skip(s),
    }
}

fn ipv6(b: &[u8]) -> Packet {
    match parse_ipv6(b) {
        Ok(ip) => transport(ip, true),
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
