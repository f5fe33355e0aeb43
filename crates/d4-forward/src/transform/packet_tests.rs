//! Tests of the packet rewriter: packets built here with right checksums must leave with
//! right checksums, the addresses inside the prefixes replaced by their Crypto-PAn
//! pseudonyms and nothing else changed.

use super::*;
use crate::transform::cryptopan::CryptoPan;

pub(crate) const KEY: [u8; 32] = [
    21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131, 121,
    121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
];

fn sum(data: &[u8]) -> u32 {
    let mut s = 0u32;
    for c in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Checksum over a pseudo-header sum and data (0 when `data` holds a right checksum).
fn csum(pseudo: u32, data: &[u8]) -> u16 {
    fold(pseudo + sum(data))
}

fn pseudo4(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u32 {
    sum(&src) + sum(&dst) + u32::from(proto) + len as u32
}

fn pseudo6(src: [u8; 16], dst: [u8; 16], proto: u8, len: usize) -> u32 {
    sum(&src) + sum(&dst) + u32::from(proto) + len as u32
}

pub(crate) fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = csum(0, &h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

fn ipv6(src: [u8; 16], dst: [u8; 16], nh: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    h.extend_from_slice(&[nh, 64]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(l4);
    h
}

/// A TCP segment (20-byte header) with its checksum for this pseudo-header sum.
pub(crate) fn tcp(pseudo: impl Fn(usize) -> u32, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![
        0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ];
    s.extend_from_slice(payload);
    let c = csum(pseudo(s.len()), &s);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

fn udp(pseudo: impl Fn(usize) -> u32, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![0x30, 0x39, 0, 53, 0, 0, 0, 0];
    s[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    s.extend_from_slice(payload);
    let c = csum(pseudo(s.len()), &s);
    s[6..8].copy_from_slice(&c.to_be_bytes());
    s
}

pub(crate) fn ether(et: u16, vlan: bool, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
    }
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

fn rewriter(prefixes: &[&str], truncate: bool) -> Rewriter {
    Rewriter::new(
        prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        Some(Pseudonymiser::new(&KEY)),
        truncate,
    )
}

fn v4(s: &str) -> [u8; 4] {
    s.parse::<Ipv4Addr>().unwrap().octets()
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

fn pan4(s: &str) -> [u8; 4] {
    CryptoPan::new(&KEY).v4(s.parse().unwrap()).octets()
}

fn pan6(s: &str) -> [u8; 16] {
    CryptoPan::new(&KEY).v6(s.parse().unwrap()).octets()
}

#[test]
fn ethernet_vlan_ipv4_tcp() {
    let (src, dst) = (v4("10.1.2.3"), v4("192.0.2.9"));
    let seg = tcp(|l| pseudo4(src, dst, 6, l), b"GET / HTTP/1.1\r\n");
    let mut pkt = ether(0x0800, true, &ipv4(src, dst, 6, &seg));
    let orig = pkt.clone();
    let mut r = rewriter(&["10.0.0.0/8"], false);
    assert_eq!(r.packet(1, &mut pkt), Some(pkt.len()));
    let ip = &pkt[18..];
    assert_eq!(ip[12..16], pan4("10.1.2.3"));
    assert_eq!(ip[16..20], dst);
    assert_eq!(csum(0, &ip[..20]), 0, "IPv4 header checksum");
    assert_eq!(
        csum(pseudo4(pan4("10.1.2.3"), dst, 6, seg.len()), &ip[20..]),
        0
    );
    assert_eq!(pkt[..18], orig[..18]);
    assert_eq!(pkt[18 + 40..], orig[18 + 40..], "payload unchanged");

    // truncation: cut after the TCP header, same addresses
    let mut cut = orig.clone();
    let mut r = rewriter(&["10.0.0.0/8"], true);
    assert_eq!(r.packet(1, &mut cut), Some(18 + 40));
    assert_eq!(cut[..58], pkt[..58]);
    // nothing inside the prefixes: unchanged
    let mut same = orig.clone();
    assert_eq!(
        rewriter(&["172.16.0.0/12"], false).packet(1, &mut same),
        Some(orig.len())
    );
    assert_eq!(same, orig);
}

#[test]
fn raw_ipv6_udp_and_icmpv6() {
    let (src, dst) = (v6("2001:db8::1"), v6("2001:db8:1::53"));
    let dgram = udp(|l| pseudo6(src, dst, 17, l), b"dns query");
    let mut pkt = ipv6(src, dst, 17, &dgram);
    let mut r = rewriter(&["2001:db8::/32"], false);
    assert_eq!(r.packet(229, &mut pkt), Some(pkt.len()));
    let (s2, d2) = (pan6("2001:db8::1"), pan6("2001:db8:1::53"));
    assert_eq!(pkt[8..24], s2);
    assert_eq!(pkt[24..40], d2);
    assert_eq!(csum(pseudo6(s2, d2, 17, dgram.len()), &pkt[40..]), 0);
    // the same through LINKTYPE_RAW (101)
    let mut again = ipv6(src, dst, 17, &dgram);
    r.packet(101, &mut again);
    assert_eq!(again, pkt);

    // ICMPv6 neighbour solicitation: the target is rewritten too, checksum follows
    let target = v6("2001:db8::99");
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&target);
    let c = csum(pseudo6(src, dst, 58, icmp.len()), &icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut pkt = ipv6(src, dst, 58, &icmp);
    assert_eq!(r.packet(229, &mut pkt), Some(pkt.len()));
    assert_eq!(pkt[48..64], pan6("2001:db8::99"));
    assert_eq!(csum(pseudo6(s2, d2, 58, icmp.len()), &pkt[40..]), 0);
}

#[test]
fn udp_without_checksum_keeps_none() {
    let (src, dst) = (v4("10.0.0.1"), v4("10.0.0.2"));
    let mut dgram = udp(|l| pseudo4(src, dst, 17, l), b"x");
    dgram[6..8].copy_from_slice(&[0, 0]);
    let mut pkt = ipv4(src, dst, 17, &dgram);
    rewriter(&["10.0.0.0/8"], false)
        .packet(228, &mut pkt)
        .unwrap();
    assert_eq!(pkt[26..28], [0, 0]);
    assert_eq!(csum(0, &pkt[..20]), 0);
}

#[test]
fn icmp_error_quoting_a_packet() {
    // 10.0.0.5 sent UDP to 198.51.100.7; a router 192.0.2.1 answers port unreachable
    let (h, far, router) = (v4("10.0.0.5"), v4("198.51.100.7"), v4("192.0.2.1"));
    let inner = ipv4(h, far, 17, &udp(|l| pseudo4(h, far, 17, l), b"abcdefgh"));
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&inner[..28]);
    let c = csum(0, &icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut pkt = ether(0x0800, false, &ipv4(router, h, 1, &icmp));
    let mut r = rewriter(&["10.0.0.0/8"], false);
    assert_eq!(r.packet(1, &mut pkt), Some(pkt.len()));
    let ip = &pkt[14..];
    assert_eq!(ip[16..20], pan4("10.0.0.5"));
    assert_eq!(csum(0, &ip[..20]), 0);
    let icmp = &ip[20..];
    assert_eq!(csum(0, icmp), 0, "ICMP checksum");
    let quoted = &icmp[8..];
    assert_eq!(quoted[12..16], pan4("10.0.0.5"));
    assert_eq!(csum(0, &quoted[..20]), 0, "quoted header checksum");
}

#[test]
fn sll_and_arp() {
    let (src, dst) = (v4("10.9.8.7"), v4("8.8.8.8"));
    let seg = tcp(|l| pseudo4(src, dst, 6, l), b"");
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ipv4(src, dst, 6, &seg));
    rewriter(&["10.0.0.0/8"], false)
        .packet(113, &mut sll)
        .unwrap();
    assert_eq!(sll[16 + 12..16 + 16], pan4("10.9.8.7"));
    assert_eq!(csum(pseudo4(pan4("10.9.8.7"), dst, 6, 20), &sll[36..]), 0);

    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1];
    arp.extend_from_slice(&v4("10.0.0.1"));
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&v4("10.0.0.2"));
    let mut f = ether(0x0806, false, &arp);
    rewriter(&["10.0.0.0/8"], true).packet(1, &mut f).unwrap();
    assert_eq!(f[14 + 14..14 + 18], pan4("10.0.0.1"));
    assert_eq!(f[14 + 24..14 + 28], pan4("10.0.0.2"));
}

#[test]
fn what_cannot_be_followed_is_refused() {
    let mut r = rewriter(&["10.0.0.0/8"], false);
    // unknown ethertype, unknown link type, short packets
    assert_eq!(r.packet(1, &mut ether(0x88cc, false, &[0; 40])), None);
    assert_eq!(r.packet(147, &mut [0x45; 40]), None);
    assert_eq!(r.packet(1, &mut [0; 13]), None);
    assert_eq!(r.packet(228, &mut [0x45; 10]), None);
    assert_eq!(r.packet(228, &mut [0x65; 40]), None);
    // IPv6 routing header (its addresses are not followed)
    let mut pkt = ipv6(
        v6("2001:db8::1"),
        v6("2001:db8::2"),
        43,
        &[17, 0, 0, 0, 0, 0, 0, 0],
    );
    assert_eq!(r.packet(229, &mut pkt), None);
}

#[test]
fn ipv4_in_ipv6_tunnel_and_fragments() {
    let (src, dst) = (v4("10.1.1.1"), v4("10.2.2.2"));
    let inner = ipv4(
        src,
        dst,
        17,
        &udp(|l| pseudo4(src, dst, 17, l), b"tunnelled"),
    );
    let mut pkt = ipv6(v6("2001:db8::1"), v6("2001:db8::2"), 4, &inner);
    let mut r = rewriter(&["10.0.0.0/8"], true);
    assert_eq!(r.packet(229, &mut pkt), Some(40 + 28));
    assert_eq!(pkt[40 + 12..40 + 16], pan4("10.1.1.1"));
    assert_eq!(csum(0, &pkt[40..60]), 0);
    // a non-first IPv4 fragment is all payload: cut after the IP header
    let mut frag = ipv4(src, dst, 17, b"0123456789");
    frag[6..8].copy_from_slice(&[0, 10]);
    let c = {
        frag[10..12].copy_from_slice(&[0, 0]);
        csum(0, &frag[..20])
    };
    frag[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(r.packet(228, &mut frag), Some(20));
    assert_eq!(csum(0, &frag[..20]), 0);
}
