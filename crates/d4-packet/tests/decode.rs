#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `decode` on hand-built frames: VLAN/QinQ, Ethernet padding, TCP options, IPv6
//! extension headers, SLL2 and UDP, fragments and malformed TCP headers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use d4_packet::{classify, decode, Datagram, LinkType, Packet, Segment, Skip, Transport};

const SRC4: [u8; 4] = [192, 0, 2, 1];
const DST4: [u8; 4] = [198, 51, 100, 2];

/// IPv4 header (no options) with the given total length, flags/fragment field, protocol.
fn ipv4(total: u16, frag: u16, proto: u8) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&SRC4);
    h.extend_from_slice(&DST4);
    h
}

/// TCP header: ports 443 -> 50000, seq 0x01020304, ack 0xa0b0c0d0, flags PSH|ACK,
/// window 0x1234, then `opts` (a multiple of 4 bytes).
fn tcp(opts: &[u8]) -> Vec<u8> {
    let mut t = vec![0x01, 0xbb, 0xc3, 0x50, 1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0];
    t.push((((20 + opts.len()) / 4) << 4) as u8);
    t.push(0x18);
    t.extend_from_slice(&[0x12, 0x34, 0, 0, 0, 0]);
    t.extend_from_slice(opts);
    t
}

fn want_seg(src: IpAddr, dst: IpAddr, payload: &[u8]) -> Transport<'_> {
    Transport::Tcp(Segment {
        src,
        dst,
        sport: 443,
        dport: 50000,
        seq: 0x0102_0304,
        ack: 0xa0b0_c0d0,
        flags: 0x18,
        window: 0x1234,
        payload,
    })
}

#[test]
fn qinq_ethernet_ipv4_tcp_with_options_and_padding() {
    let opts = [2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 1, 1, 0]; // MSS, NOPs, SACK-permitted, EOL
    let mut t = tcp(&opts);
    t.extend_from_slice(b"hello");
    let mut f = vec![0u8; 12]; // MACs
    f.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00]);
    f.extend_from_slice(&ipv4(20 + 32 + 5, 0x4000, 6)); // DF set: not a fragment
    f.extend_from_slice(&t);
    f.extend_from_slice(&[0, 0, 0]); // Ethernet padding
    let v4 = |o: [u8; 4]| IpAddr::V4(Ipv4Addr::from(o));
    assert_eq!(
        decode(LinkType::Ethernet, &f),
        want_seg(v4(SRC4), v4(DST4), b"hello")
    );
}

#[test]
fn ipv6_with_extension_headers() {
    let mut t = tcp(&[]);
    t.extend_from_slice(b"\x16\x03\x01");
    let mut ext = vec![60, 0, 0, 0, 0, 0, 0, 0]; // hop-by-hop (8 bytes) -> dest options
    ext.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // dest options (8 bytes) -> TCP
    let mut f = vec![0x60, 0, 0, 0];
    f.extend_from_slice(&((ext.len() + t.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 64]); // next header: hop-by-hop
    let s = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let d = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    f.extend_from_slice(&s.octets());
    f.extend_from_slice(&d.octets());
    f.extend_from_slice(&ext);
    f.extend_from_slice(&t);
    assert_eq!(
        decode(LinkType::Raw, &f),
        want_seg(IpAddr::V6(s), IpAddr::V6(d), b"\x16\x03\x01")
    );
    // Cut inside the extension headers: truncated.
    assert_eq!(
        decode(LinkType::Raw, &f[..44]),
        Transport::Skip(Skip::Truncated)
    );
}

#[test]
fn sll2_ipv4_udp_trimmed_to_its_length() {
    let mut f = vec![0x08, 0x00];
    f.extend_from_slice(&[0u8; 18]);
    f.extend_from_slice(&ipv4(20 + 8 + 6, 0, 17));
    // UDP length 12: 4 bytes of payload, though the IP payload holds 6
    f.extend_from_slice(&[
        0x04, 0xd2, 0x01, 0xbb, 0, 12, 0, 0, b'q', b'u', b'i', b'c', 9, 9,
    ]);
    assert_eq!(
        decode(LinkType::LinuxSll2, &f),
        Transport::Udp(Datagram {
            src: IpAddr::V4(Ipv4Addr::from(SRC4)),
            dst: IpAddr::V4(Ipv4Addr::from(DST4)),
            sport: 1234,
            dport: 443,
            payload: b"quic",
        })
    );
}

#[test]
fn fragments_are_skipped_but_classify_is_unchanged() {
    let mut first = ipv4(20 + 20 + 4, 0x2000, 6); // MF, offset 0
    first.extend_from_slice(&tcp(&[]));
    first.extend_from_slice(b"abcd");
    assert_eq!(
        decode(LinkType::Raw, &first),
        Transport::Skip(Skip::Fragmented)
    );
    assert!(matches!(classify(LinkType::Raw, &first), Packet::Tcp(_)));
    let mut later = ipv4(20 + 8, 0x0003, 6); // offset 24 bytes
    later.extend_from_slice(&[0; 8]);
    assert_eq!(
        decode(LinkType::Raw, &later),
        Transport::Skip(Skip::Fragment)
    );
    // IPv6 fragment header with M set, offset 0
    let mut f = vec![0x60, 0, 0, 0, 0, 36, 44, 64];
    f.extend_from_slice(&[0u8; 32]);
    f.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 7]);
    f.extend_from_slice(&tcp(&[]));
    f.extend_from_slice(b"abcdefgh");
    assert_eq!(
        decode(LinkType::Ipv6, &f),
        Transport::Skip(Skip::Fragmented)
    );
}

#[test]
fn bad_tcp_headers_and_other_protocols() {
    let mut short_off = ipv4(40, 0, 6);
    let mut t = tcp(&[]);
    t[12] = 4 << 4; // data offset 16 bytes < 20
    short_off.extend_from_slice(&t);
    assert_eq!(
        decode(LinkType::Ipv4, &short_off),
        Transport::Skip(Skip::Malformed)
    );
    let mut long_off = ipv4(40, 0, 6);
    let mut t = tcp(&[]);
    t[12] = 6 << 4; // 24 bytes, only 20 there
    long_off.extend_from_slice(&t);
    assert_eq!(
        decode(LinkType::Ipv4, &long_off),
        Transport::Skip(Skip::Truncated)
    );
    let mut cut = ipv4(40, 0, 6);
    cut.extend_from_slice(&tcp(&[])[..15]);
    assert_eq!(
        decode(LinkType::Ipv4, &cut),
        Transport::Skip(Skip::Truncated)
    );
    let mut icmp = ipv4(28, 0, 1);
    icmp.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(decode(LinkType::Ipv4, &icmp), Transport::Skip(Skip::Other));
    assert_eq!(
        decode(LinkType::Unsupported(147), &icmp),
        Transport::Skip(Skip::Link)
    );
}
