//! Captures made from transcripts carry exactly the transcript: the payload of each
//! direction, put back in sequence order, equals what that side wrote, whatever the segment
//! sizes, reordering, retransmissions, overlaps, VLAN tag, IP version or missing SYN. The
//! headers are checked independently (checksums, flags, sequence numbers), and the pcap and
//! pcapng files are read back with pcap-parser.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use d4_testkit::tlsgen::{
    handshake, mixed_capture, pcap_file, pcapng_file, tcp_frames, tcp_streams, write_mixed_pcap,
    CaptureSpec, HandshakeSpec, KeyKind, Stack, Transcript, Version, LINKTYPE_ETHERNET,
};
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{Block, PcapCapture, PcapNGCapture};

fn transcripts() -> Vec<Transcript> {
    let mut a = HandshakeSpec::new(Stack::OpenSsl, Version::Tls12, KeyKind::Rsa2048);
    a.chain = true;
    a.sni = Some("capture.example".into());
    let mut b = HandshakeSpec::new(Stack::Rustls, Version::Tls13, KeyKind::EcdsaP256);
    b.grease = true;
    b.alpn = vec![b"h2".to_vec()];
    vec![handshake(&a).unwrap(), handshake(&b).unwrap()]
}

fn addrs(v6: bool) -> (SocketAddr, SocketAddr) {
    if v6 {
        (
            "[2001:db8::1]:51000".parse().unwrap(),
            "[2001:db8::2]:443".parse().unwrap(),
        )
    } else {
        (
            "192.0.2.1:51000".parse().unwrap(),
            "198.51.100.7:443".parse().unwrap(),
        )
    }
}

/// An independent look at one frame: (l3 offset, is_v6, tcp bytes, ip header) with checks.
struct Parsed {
    v6: bool,
    src_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload_len: usize,
    vlan: Option<u16>,
}

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn parse(frame: &[u8]) -> Parsed {
    let mut p = 12;
    let mut vlan = None;
    if frame[12..14] == [0x81, 0x00] {
        vlan = Some(u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff);
        p += 4;
    }
    let et = u16::from_be_bytes([frame[p], frame[p + 1]]);
    let ip = &frame[p + 2..];
    let (v6, tcp, pseudo) = match et {
        0x0800 => {
            assert_eq!(ip[0], 0x45);
            assert_eq!(fold(sum16(&ip[..20])), 0xffff, "IPv4 header checksum");
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            assert_eq!(total, ip.len(), "IPv4 total length");
            assert_eq!(ip[9], 6);
            let tcp = &ip[20..total];
            let pseudo = sum16(&ip[12..20]) + 6 + tcp.len() as u32;
            (false, tcp, pseudo)
        }
        0x86dd => {
            assert_eq!(ip[0] >> 4, 6);
            let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            assert_eq!(len + 40, ip.len(), "IPv6 payload length");
            assert_eq!(ip[6], 6);
            let tcp = &ip[40..];
            let pseudo = sum16(&ip[8..40]) + 6 + tcp.len() as u32;
            (true, tcp, pseudo)
        }
        other => panic!("unexpected ethertype {other:#x}"),
    };
    assert_eq!(fold(pseudo + sum16(tcp)), 0xffff, "TCP checksum");
    assert_eq!(tcp[12] >> 4, 5);
    Parsed {
        v6,
        src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
        seq: u32::from_be_bytes(tcp[4..8].try_into().unwrap()),
        ack: u32::from_be_bytes(tcp[8..12].try_into().unwrap()),
        flags: tcp[13],
        payload_len: tcp.len() - 20,
        vlan,
    }
}

#[test]
fn every_capture_variant_carries_the_transcript() {
    let ts = transcripts();
    let mut n = 0;
    for (ti, t) in ts.iter().enumerate() {
        for v6 in [false, true] {
            for vlan in [None, Some(42)] {
                for max_segment in [1, 7, 100, 1460] {
                    for (reorder, retransmit, mid, fin) in [
                        (false, false, false, true),
                        (true, false, false, true),
                        (false, true, false, false),
                        (true, true, true, true),
                        (true, true, false, false),
                        (false, false, true, false),
                    ] {
                        n += 1;
                        let (client, server) = addrs(v6);
                        let spec = CaptureSpec {
                            ipv6: v6,
                            vlan,
                            client,
                            server,
                            seed: n,
                            max_segment,
                            reorder,
                            retransmit,
                            start_mid_flow: mid,
                            fin,
                            start_ts_us: 1_700_000_000_000_000 + n,
                        };
                        let what = format!("transcript {ti} {spec:?}");
                        let frames = tcp_frames(t, &spec);
                        let (c, s) =
                            tcp_streams(&frames, client).unwrap_or_else(|e| panic!("{what}: {e}"));
                        assert_eq!(c, t.stream(true), "{what}");
                        assert_eq!(s, t.stream(false), "{what}");
                        check_headers(&frames, &spec, &what);
                    }
                }
            }
        }
    }
}

fn check_headers(frames: &[(u64, Vec<u8>)], spec: &CaptureSpec, what: &str) {
    assert_eq!(frames[0].0, spec.start_ts_us, "{what}");
    assert!(
        frames.windows(2).all(|w| w[0].0 < w[1].0),
        "{what}: timestamps"
    );
    let parsed: Vec<Parsed> = frames.iter().map(|(_, f)| parse(f)).collect();
    for p in &parsed {
        assert_eq!(p.v6, spec.ipv6, "{what}");
        assert_eq!(p.vlan, spec.vlan, "{what}");
    }
    let from_client = |p: &Parsed| p.src_port == spec.client.port();
    let syns = parsed.iter().filter(|p| p.flags & 0x02 != 0).count();
    if spec.start_mid_flow {
        assert_eq!(syns, 0, "{what}");
        assert!(
            from_client(&parsed[0]) && parsed[0].payload_len > 0,
            "{what}: first packet"
        );
    } else {
        let (syn, synack, ack) = (&parsed[0], &parsed[1], &parsed[2]);
        assert_eq!(
            (syn.flags, synack.flags, ack.flags),
            (0x02, 0x12, 0x10),
            "{what}"
        );
        assert!(
            from_client(syn) && !from_client(synack) && from_client(ack),
            "{what}"
        );
        assert_eq!(synack.ack, syn.seq.wrapping_add(1), "{what}");
        assert_eq!(
            (ack.seq, ack.ack),
            (syn.seq.wrapping_add(1), synack.seq.wrapping_add(1)),
            "{what}"
        );
        assert_eq!(syns, 2, "{what}");
    }
    let fins: Vec<&Parsed> = parsed.iter().filter(|p| p.flags & 0x01 != 0).collect();
    if spec.fin {
        assert_eq!(fins.len(), 2, "{what}");
        let last = parsed.last().unwrap();
        assert_eq!(last.flags, 0x10, "{what}");
        assert_eq!(last.ack, fins[1].seq.wrapping_add(1), "{what}");
        assert_eq!(fins[1].ack, fins[0].seq.wrapping_add(1), "{what}");
    } else {
        assert!(fins.is_empty(), "{what}");
    }
    // every ACK acknowledges no more than the peer has sent by then (real ack numbers)
    let mut sent_end = [None::<u32>, None::<u32>];
    for p in &parsed {
        let me = usize::from(from_client(p));
        let end = p
            .seq
            .wrapping_add(p.payload_len as u32 + u32::from(p.flags & 0x03 != 0));
        let e = sent_end[me].get_or_insert(end);
        if end.wrapping_sub(*e) < 1 << 31 {
            *e = end;
        }
        if p.flags & 0x10 != 0 && !spec.reorder {
            if let Some(peer) = sent_end[1 - me] {
                assert!(
                    peer.wrapping_sub(p.ack) < 1 << 31,
                    "{what}: ack beyond what was sent"
                );
            }
        }
    }
}

#[test]
fn a_capture_with_no_retransmissions_has_each_byte_once() {
    let t = &transcripts()[0];
    let (client, server) = addrs(false);
    let mut spec = CaptureSpec::new(client, server);
    spec.max_segment = 50;
    let frames = tcp_frames(t, &spec);
    let payload: usize = frames.iter().map(|(_, f)| parse(f).payload_len).sum();
    assert_eq!(payload, t.stream(true).len() + t.stream(false).len());
    // same spec, same frames; another seed, other segments
    assert_eq!(frames, tcp_frames(t, &spec));
    spec.seed = 99;
    assert_ne!(frames, tcp_frames(t, &spec));
}

#[test]
fn pcap_and_pcapng_files_read_back_with_pcap_parser() {
    let t = &transcripts()[1];
    let (client, server) = addrs(true);
    let mut spec = CaptureSpec::new(client, server);
    spec.max_segment = 300;
    spec.start_ts_us = 1_560_333_600_123_456;
    let frames = tcp_frames(t, &spec);

    let file = pcap_file(LINKTYPE_ETHERNET, &frames);
    let cap = PcapCapture::from_file(&file).unwrap();
    assert_eq!(cap.header.network.0, 1);
    assert_eq!(cap.blocks.len(), frames.len());
    assert_eq!(
        (cap.blocks[0].ts_sec, cap.blocks[0].ts_usec),
        (1_560_333_600, 123_456)
    );
    for (b, (ts, f)) in cap.blocks.iter().zip(&frames) {
        assert_eq!(u64::from(b.ts_sec) * 1_000_000 + u64::from(b.ts_usec), *ts);
        assert_eq!(b.data, &f[..]);
    }

    let file = pcapng_file(LINKTYPE_ETHERNET, &frames);
    let cap = PcapNGCapture::from_file(&file).unwrap();
    let blocks = &cap.sections[0].blocks;
    let mut got = Vec::new();
    for b in blocks {
        match b {
            Block::InterfaceDescription(idb) => assert_eq!(idb.linktype.0, 1),
            Block::EnhancedPacket(epb) => {
                let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                got.push((ts, epb.packet_data().to_vec()));
            }
            _ => {}
        }
    }
    assert_eq!(got, frames);
}

#[test]
fn mixed_capture_is_deterministic_and_about_five_percent_tls() {
    let a: Vec<_> = mixed_capture(20_000, 0.05, 7).collect();
    let b: Vec<_> = mixed_capture(20_000, 0.05, 7).collect();
    assert_eq!(a.len(), 20_000);
    assert!(a == b, "same seed, same capture");
    let c: Vec<_> = mixed_capture(2_000, 0.05, 8).collect();
    assert_ne!(a[..2_000], c[..]);
    assert!(a.windows(2).all(|w| w[0].0 < w[1].0), "timestamps increase");
    // TLS packets: TCP port 443 (the only flows on it); every IPv4 header checksum holds
    let mut tls = 0;
    let (mut tcp, mut udp, mut icmp) = (0, 0, 0);
    for (_, f) in &a {
        let et = u16::from_be_bytes([f[12], f[13]]);
        let (proto, l4) = match et {
            0x0800 => {
                assert_eq!(fold(sum16(&f[14..34])), 0xffff, "IPv4 header checksum");
                (f[23], &f[34..])
            }
            0x86dd => (f[20], &f[54..]),
            other => panic!("ethertype {other:#x}"),
        };
        match proto {
            6 => {
                tcp += 1;
                let (sp, dp) = (
                    u16::from_be_bytes([l4[0], l4[1]]),
                    u16::from_be_bytes([l4[2], l4[3]]),
                );
                if sp == 443 || dp == 443 {
                    tls += 1;
                }
            }
            17 => udp += 1,
            1 => icmp += 1,
            p => panic!("protocol {p}"),
        }
    }
    let share = f64::from(tls) / a.len() as f64;
    assert!((0.04..0.06).contains(&share), "TLS share {share}");
    assert!(
        tcp > tls && udp > 0 && icmp > 0,
        "tcp {tcp} udp {udp} icmp {icmp}"
    );
}

#[test]
fn mixed_pcap_holds_whole_tls_sessions() {
    let mut file = Vec::new();
    let sessions = write_mixed_pcap(&mut file, 5_000, 3).unwrap();
    assert!(sessions >= 3, "{sessions} TLS sessions");
    let cap = PcapCapture::from_file(&file).unwrap();
    assert_eq!(cap.blocks.len(), 5_000);
    // each client hello in the capture starts a TLS record (0x16 0x03) right after a TCP header
    let hellos = cap
        .blocks
        .iter()
        .filter(|b| {
            let d = b.data;
            let l4 = match u16::from_be_bytes([d[12], d[13]]) {
                0x0800 => &d[34..],
                _ => &d[54..],
            };
            l4.len() > 25
                && u16::from_be_bytes([l4[2], l4[3]]) == 443
                && l4[20] == 0x16
                && l4[25] == 1
        })
        .count() as u64;
    assert!(
        hellos + 8 >= sessions && hellos <= sessions,
        "{hellos} ClientHellos, {sessions} sessions"
    );
}

#[test]
fn reorder_and_retransmit_really_happen() {
    let t = &transcripts()[0];
    let (client, server) = addrs(false);
    let mut spec = CaptureSpec::new(client, server);
    spec.max_segment = 20;
    let total = t.stream(true).len() + t.stream(false).len();
    let payload = |frames: &[(u64, Vec<u8>)]| -> usize {
        frames.iter().map(|(_, f)| parse(f).payload_len).sum()
    };
    let backwards = |frames: &[(u64, Vec<u8>)]| {
        let mut last = [None::<u32>, None::<u32>];
        let mut n = 0;
        for (_, f) in frames {
            let p = parse(f);
            if p.payload_len == 0 {
                continue;
            }
            let d = usize::from(p.src_port == client.port());
            if let Some(prev) = last[d] {
                if p.seq.wrapping_sub(prev) >= 1 << 31 {
                    n += 1;
                }
            }
            last[d] = Some(p.seq);
        }
        n
    };
    let plain = tcp_frames(t, &spec);
    assert_eq!(backwards(&plain), 0);
    spec.reorder = true;
    let reordered = tcp_frames(t, &spec);
    assert!(backwards(&reordered) > 5, "{}", backwards(&reordered));
    assert_eq!(payload(&reordered), total);
    spec.reorder = false;
    spec.retransmit = true;
    let retransmitted = tcp_frames(t, &spec);
    assert!(payload(&retransmitted) > total + 100);
}

#[test]
fn mixed_capture_tls_sessions_carry_the_mixed_transcripts() {
    let frames: Vec<_> = mixed_capture(30_000, 0.05, 11).collect();
    let known: Vec<(Vec<u8>, Vec<u8>)> = d4_testkit::tlsgen::mixed_transcripts()
        .iter()
        .map(|t| (t.stream(true), t.stream(false)))
        .collect();
    let mut whole = 0;
    for (_, f) in frames.iter().take(20_000) {
        let p = parse_l4_ports(f);
        let Some((client, true)) = p else { continue };
        let (c, s) = tcp_streams(&frames, client).unwrap();
        assert!(
            known.iter().any(|(kc, ks)| *kc == c && *ks == s),
            "TLS session of {client} is not a known transcript"
        );
        whole += 1;
    }
    assert!(whole >= 10, "{whole} TLS sessions checked");
}

/// For a TCP SYN to port 443: `(client address, true)`.
fn parse_l4_ports(f: &[u8]) -> Option<(SocketAddr, bool)> {
    let (ip, l4): (std::net::IpAddr, &[u8]) = match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 if f[23] == 6 => (<[u8; 4]>::try_from(&f[26..30]).unwrap().into(), &f[34..]),
        0x86dd if f[20] == 6 => (<[u8; 16]>::try_from(&f[22..38]).unwrap().into(), &f[54..]),
        _ => return None,
    };
    let syn = l4[13] == 0x02 && u16::from_be_bytes([l4[2], l4[3]]) == 443;
    syn.then(|| {
        (
            SocketAddr::new(ip, u16::from_be_bytes([l4[0], l4[1]])),
            true,
        )
    })
}
