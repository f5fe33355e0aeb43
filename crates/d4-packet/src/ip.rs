//! Link-layer and IPv4/IPv6 header parsing shared by [`crate::classify`] and
//! [`crate::decode`]: from one captured frame to the IP addresses, the transport protocol
//! and the transport bytes (trimmed to the IP payload's end, so Ethernet padding is never
//! part of them). Every read is bounds-checked; a bad frame is a [`Skip`] reason.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{LinkType, Skip};

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
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

/// An IP header's essentials: addresses, protocol, the transport bytes, whether it is a
/// non-first fragment or the first fragment of a fragmented datagram.
pub(crate) struct Ip<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub payload: &'a [u8],
    pub later_fragment: bool,
    /// More fragments follow (IPv4 MF bit, IPv6 fragment header M flag).
    pub more_fragments: bool,
}

/// The IP packet inside one captured frame of link type `link`.
pub(crate) fn network(link: LinkType, frame: &[u8]) -> Result<Ip<'_>, Skip> {
    let (ethertype, l3) = match link {
        LinkType::Ethernet => {
            let Some(mut et) = be16(frame, 12) else {
                return Err(Skip::Truncated);
            };
            let mut off = 14;
            let mut tags = 0;
            while matches!(et, 0x8100 | 0x88A8 | 0x9100) {
                tags += 1;
                if tags > MAX_VLAN_TAGS {
                    return Err(Skip::Malformed);
                }
                let Some(inner) = be16(frame, off + 2) else {
                    return Err(Skip::Truncated);
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
            None => return Err(Skip::Truncated),
        },
        LinkType::LinuxSll2 => match (be16(frame, 0), frame.get(20..)) {
            (Some(p), Some(rest)) => (Some(p), rest),
            _ => return Err(Skip::Truncated),
        },
        LinkType::Null | LinkType::Loop => {
            let Some(h) = frame.get(0..4) else {
                return Err(Skip::Truncated);
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
                _ => return Err(Skip::NotIp),
            };
            (Some(et), frame.get(4..).unwrap_or(&[]))
        }
        LinkType::Unsupported(_) => return Err(Skip::Link),
    };
    match ethertype {
        Some(ETH_IPV4) => parse_ipv4(l3),
        Some(ETH_IPV6) => parse_ipv6(l3),
        Some(_) => Err(Skip::NotIp),
        None => match l3.first().map(|b| b >> 4) {
            Some(4) => parse_ipv4(l3),
            Some(6) => parse_ipv6(l3),
            Some(_) => Err(Skip::Malformed),
            None => Err(Skip::Truncated),
        },
    }
}

pub(crate) fn parse_ipv4(b: &[u8]) -> Result<Ip<'_>, Skip> {
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
        more_fragments: frag & 0x2000 != 0,
    })
}

pub(crate) fn parse_ipv6(b: &[u8]) -> Result<Ip<'_>, Skip> {
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
    let mut more_fragments = false;
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
                more_fragments = fo & 1 != 0;
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
                    more_fragments,
                });
            }
        }
    }
    Err(Skip::Malformed)
}
