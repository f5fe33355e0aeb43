//! Rewriting one captured packet in place: addresses inside the configured prefixes become
//! their Crypto-PAn pseudonyms, checksums follow, and the payload may be cut after the
//! transport header.
//!
//! Link types: Ethernet (1, with any number of 802.1Q/802.1ad tags up to 8), raw IP (101,
//! 228 IPv4, 229 IPv6), Linux cooked capture (113 SLL, 276 SLL2). Inside: IPv4 (and ARP's
//! IPv4 addresses), IPv6 with its extension headers, IP-in-IP tunnels, TCP, UDP, ICMP and
//! ICMPv6 (the packet quoted in an error message is rewritten too, as are the addresses of
//! ICMP redirects and of IPv6 neighbour discovery). Checksums (IPv4 header, TCP, UDP,
//! ICMP, ICMPv6, and those of a quoted packet) are updated incrementally (RFC 1624) from
//! the words that changed, so they stay exactly as right, or as wrong, as they were, even
//! when the capture holds only part of the segment. The capture length changes when the
//! payload is cut; the wire length stays.
//!
//! A packet this module cannot follow (another link type or protocol, a header cut short,
//! an IPv6 routing header, whose addresses would also need rewriting) is refused: the
//! caller drops it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::cryptopan::Pseudonymiser;

/// How deep packets nest (tunnels, quoted packets in ICMP errors).
const MAX_DEPTH: u8 = 3;

/// One's-complement sum of the changes to a checksummed region (RFC 1624, eqn. 3).
#[derive(Debug, Clone, Copy, Default)]
struct Delta(u64);

impl Delta {
    /// Adds the change from `old` to `new` (same length, starting at an even offset of the
    /// checksummed region).
    fn add(&mut self, old: &[u8], new: &[u8]) {
        for (o, n) in old.chunks(2).zip(new.chunks(2)) {
            let o = u16::from_be_bytes([o[0], o.get(1).copied().unwrap_or(0)]);
            let n = u16::from_be_bytes([n[0], n.get(1).copied().unwrap_or(0)]);
            if o != n {
                self.0 += u64::from(!o) + u64::from(n);
            }
        }
    }

    fn is_zero(&self) -> bool {
        self.0 == 0
    }

    /// Updates the checksum at `at` (if captured). `udp`: 0 means "no checksum" and stays,
    /// and a result of 0 is sent as 0xffff.
    fn apply(&self, pkt: &mut [u8], at: usize, udp: bool) {
        if self.is_zero() || at + 2 > pkt.len() {
            return;
        }
        let old = u16::from_be_bytes([pkt[at], pkt[at + 1]]);
        if udp && old == 0 {
            return;
        }
        let mut s = u64::from(!old) + self.0;
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        let mut new = !(s as u16);
        if udp && new == 0 {
            new = 0xffff;
        }
        pkt[at..at + 2].copy_from_slice(&new.to_be_bytes());
    }
}

/// The packet rewriter of one stream.
#[derive(Clone)]
pub struct Rewriter {
    prefixes: Vec<IpNet>,
    pseudo: Option<Pseudonymiser>,
    truncate: bool,
}

impl Rewriter {
    /// `pseudo` is required when `prefixes` is not empty.
    pub fn new(prefixes: Vec<IpNet>, pseudo: Option<Pseudonymiser>, truncate: bool) -> Rewriter {
        Rewriter {
            prefixes,
            pseudo,
            truncate,
        }
    }

    /// Rewrites a packet of this link type; its new capture length, or `None` to drop it.
    pub fn packet(&mut self, link: u32, pkt: &mut [u8]) -> Option<usize> {
        match link & 0xffff {
            1 => {
                let mut off = 12;
                let mut tags = 0;
                loop {
                    let et = be16(pkt, off)?;
                    match et {
                        0x8100 | 0x88a8 | 0x9100 if tags < 8 => {
                            tags += 1;
                            off += 4;
                        }
                        _ => return self.ethertype(et, pkt, off + 2),
                    }
                }
            }
            101 => match pkt.first()? >> 4 {
                4 => self.ipv4(pkt, 0, 0, self.truncate),
                6 => self.ipv6(pkt, 0, 0, self.truncate),
                _ => None,
            },
            228 => self.ipv4(pkt, 0, 0, self.truncate),
            229 => self.ipv6(pkt, 0, 0, self.truncate),
            113 => {
                let et = be16(pkt, 14)?;
                self.ethertype(et, pkt, 16)
            }
            276 => {
                let et = be16(pkt, 0)?;
                if pkt.len() < 20 {
                    return None;
                }
                self.ethertype(et, pkt, 20)
            }
            _ => None,
        }
    }

    fn ethertype(&mut self, et: u16, pkt: &mut [u8], off: usize) -> Option<usize> {
        match et {
            0x0800 => self.ipv4(pkt, off, 0, self.truncate),
            0x86dd => self.ipv6(pkt, off, 0, self.truncate),
            0x0806 => self.arp(pkt, off),
            _ => None,
        }
    }

    fn arp(&mut self, pkt: &mut [u8], off: usize) -> Option<usize> {
        let h = pkt.get(off..off + 28)?;
        // Ethernet hardware, IPv4 protocol addresses
        if h[..6] != [0, 1, 8, 0, 6, 4] {
            return None;
        }
        let mut d = Delta::default();
        self.swap_v4(pkt, off + 14, &mut d);
        self.swap_v4(pkt, off + 24, &mut d);
        Some(pkt.len())
    }

    fn in_prefixes(&self, a: IpAddr) -> bool {
        self.prefixes.iter().any(|p| p.contains(&a))
    }

    /// Replaces the IPv4 address at `at` if it is inside a prefix; its change goes to `d`.
    fn swap_v4(&mut self, pkt: &mut [u8], at: usize, d: &mut Delta) {
        let Some(b) = pkt.get_mut(at..at + 4) else {
            return;
        };
        let old = [b[0], b[1], b[2], b[3]];
        let a = Ipv4Addr::from(old);
        if !self.in_prefixes(IpAddr::V4(a)) {
            return;
        }
        if let Some(p) = self.pseudo.as_mut() {
            b.copy_from_slice(&p.v4(a).octets());
            d.add(&old, b);
        }
    }

    fn swap_v6(&mut self, pkt: &mut [u8], at: usize, d: &mut Delta) {
        let Some(b) = pkt.get_mut(at..at + 16) else {
            return;
        };
        let mut old = [0u8; 16];
        old.copy_from_slice(b);
        let a = Ipv6Addr::from(old);
        if !self.in_prefixes(IpAddr::V6(a)) {
            return;
        }
        if let Some(p) = self.pseudo.as_mut() {
            b.copy_from_slice(&p.v6(a).octets());
            d.add(&old, b);
        }
    }

    /// The IPv4 packet at `off`; returns where to cut (the end when not truncating).
    fn ipv4(&mut self, pkt: &mut [u8], off: usize, depth: u8, truncate: bool) -> Option<usize> {
        let h = pkt.get(off..off + 20)?;
        let ihl = usize::from(h[0] & 0x0f) * 4;
        if h[0] >> 4 != 4 || ihl < 20 || pkt.len() < off + ihl || depth > MAX_DEPTH {
            return None;
        }
        let frag = be16(pkt, off + 6)? & 0x1fff;
        let proto = pkt[off + 9];
        let mut pseudo = Delta::default();
        self.swap_v4(pkt, off + 12, &mut pseudo);
        self.swap_v4(pkt, off + 16, &mut pseudo);
        pseudo.apply(pkt, off + 10, false);
        let t = off + ihl;
        let end = pkt.len();
        if frag != 0 {
            // not the first fragment: all payload
            return Some(if truncate { t } else { end });
        }
        self.transport(proto, pkt, t, pseudo, depth, truncate)
    }

    /// The IPv6 packet at `off`.
    fn ipv6(&mut self, pkt: &mut [u8], off: usize, depth: u8, truncate: bool) -> Option<usize> {
        let h = pkt.get(off..off + 40)?;
        if h[0] >> 4 != 6 || depth > MAX_DEPTH {
            return None;
        }
        let mut nh = h[6];
        let mut pseudo = Delta::default();
        self.swap_v6(pkt, off + 8, &mut pseudo);
        self.swap_v6(pkt, off + 24, &mut pseudo);
        let mut p = off + 40;
        let end = pkt.len();
        for _ in 0..8 {
            match nh {
                // hop-by-hop, destination options
                0 | 60 => {
                    let e = pkt.get(p..p + 2)?;
                    nh = e[0];
                    p += (usize::from(e[1]) + 1) * 8;
                }
                43 if !self.prefixes.is_empty() => return None,
                43 => {
                    let e = pkt.get(p..p + 2)?;
                    nh = e[0];
                    p += (usize::from(e[1]) + 1) * 8;
                }
                44 => {
                    let e = pkt.get(p..p + 8)?;
                    nh = e[0];
                    let frag = u16::from_be_bytes([e[2], e[3]]) >> 3;
                    p += 8;
                    if frag != 0 {
                        return Some(if truncate { p.min(end) } else { end });
                    }
                }
                // authentication header
                51 => {
                    let e = pkt.get(p..p + 2)?;
                    nh = e[0];
                    p += (usize::from(e[1]) + 2) * 4;
                }
                _ => {
                    if p > end {
                        return None;
                    }
                    return self.transport(nh, pkt, p, pseudo, depth, truncate);
                }
            }
        }
        None
    }

    /// The transport header at `t` (protocol `proto`); `pseudo` is the change of the
    /// addresses of the pseudo-header.
    fn transport(
        &mut self,
        proto: u8,
        pkt: &mut [u8],
        t: usize,
        pseudo: Delta,
        depth: u8,
        truncate: bool,
    ) -> Option<usize> {
        let end = pkt.len();
        let cut = |hlen: usize| if truncate { (t + hlen).min(end) } else { end };
        match proto {
            6 => {
                let doff = pkt.get(t + 12).map_or(20, |b| usize::from(b >> 4) * 4);
                pseudo.apply(pkt, t + 16, false);
                Some(cut(doff.max(20)))
            }
            17 => {
                pseudo.apply(pkt, t + 6, true);
                Some(cut(8))
            }
            1 => {
                let kind = *pkt.get(t)?;
                let mut d = Delta::default();
                if kind == 5 {
                    self.swap_v4(pkt, t + 4, &mut d);
                }
                if matches!(kind, 3 | 4 | 5 | 11 | 12) && t + 8 < end {
                    let before = pkt[t + 8..].to_vec();
                    self.ipv4(pkt, t + 8, depth + 1, false)?;
                    d.add(&before, &pkt[t + 8..]);
                }
                d.apply(pkt, t + 2, false);
                Some(cut(8))
            }
            58 => {
                let kind = *pkt.get(t)?;
                let mut d = pseudo;
                match kind {
                    1..=4 if t + 8 < end => {
                        let before = pkt[t + 8..].to_vec();
                        self.ipv6(pkt, t + 8, depth + 1, false)?;
                        d.add(&before, &pkt[t + 8..]);
                    }
                    // neighbour solicitation / advertisement: target
                    135 | 136 => self.swap_v6(pkt, t + 8, &mut d),
                    // redirect: target and destination
                    137 => {
                        self.swap_v6(pkt, t + 8, &mut d);
                        self.swap_v6(pkt, t + 24, &mut d);
                    }
                    _ => {}
                }
                d.apply(pkt, t + 2, false);
                Some(cut(8))
            }
            4 => self.ipv4(pkt, t, depth + 1, truncate),
            41 => self.ipv6(pkt, t, depth + 1, truncate),
            _ => Some(cut(0)),
        }
    }
}

fn be16(pkt: &[u8], at: usize) -> Option<u16> {
    let b = pkt.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

#[cfg(test)]
#[path = "packet_tests.rs"]
pub(crate) mod tests;
