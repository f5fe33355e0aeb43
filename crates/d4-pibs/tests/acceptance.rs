#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 8 acceptance cases, at the library level: small captures built in code go through
//! the real reader, classifier and detector.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use d4_pibs::packet::{classify, LinkType, Packet, Skip, PROTO_TCP, PROTO_UDP};
use d4_pibs::synth::*;
use d4_pibs::{
    for_each_record, Analyzer, Backscatter, DetectConfig, Detector, Kind, Summary, SummaryConfig,
};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1); // a local host that initiates
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80); // a server it talks to
const V: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7); // a DDoS victim
const D: Ipv4Addr = Ipv4Addr::new(10, 9, 9, 9); // a darknet address
const R: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1); // a router

const SYN: u8 = 0x02;
const SYNACK: u8 = 0x12;
const RST: u8 = 0x04;
const RSTACK: u8 = 0x14;
const ACK: u8 = 0x10;

fn tcp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    eth_ip(&ipv4(
        src,
        dst,
        PROTO_TCP,
        &[],
        &tcp_header(sport, dport, flags),
    ))
}

/// Runs a capture (any format) through the analyzer: (epoch, backscatter) per hit.
fn run(capture: &[u8]) -> Vec<(u64, Backscatter)> {
    run_with(capture, DetectConfig::default())
}

fn run_with(capture: &[u8], cfg: DetectConfig) -> Vec<(u64, Backscatter)> {
    let mut an = Analyzer::new(cfg);
    let mut hits = Vec::new();
    for_each_record(capture, |rec| {
        if let Some(b) = an.process(rec) {
            hits.push((rec.ts_sec, b));
        }
        Ok(())
    })
    .unwrap();
    hits
}

fn csv(hits: &[(u64, Backscatter)]) -> Vec<String> {
    let mut out = Vec::new();
    for (ts, b) in hits {
        d4_pibs::write_csv(&mut out, *ts, b).unwrap();
    }
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn syn_then_synack_is_not_backscatter() {
    let cap = pcap_file(
        1,
        &[
            (100, tcp4(A, B, 40000, 80, SYN)),
            (100, tcp4(B, A, 80, 40000, SYNACK)),
            (101, tcp4(A, B, 40000, 80, ACK)),
            (101, tcp4(B, A, 80, 40000, ACK | 0x08)),
            (102, tcp4(B, A, 80, 40000, RSTACK)),
        ],
    );
    assert!(run(&cap).is_empty(), "{:?}", run(&cap));
}

#[test]
fn synack_from_never_seen_host_is_backscatter() {
    let cap = pcap_file(1, &[(1_600_000_000, tcp4(V, D, 443, 5555, SYNACK))]);
    let hits = run(&cap);
    assert_eq!(csv(&hits), vec!["1600000000,198.51.100.7,18,443"]);
    assert_eq!(hits[0].1.victim, IpAddr::V4(V));
}

#[test]
fn synack_to_another_flow_of_an_unrelated_host_is_backscatter() {
    // A's SYN to B does not make V's SYN/ACK a reply.
    let cap = pcap_file(
        1,
        &[
            (1, tcp4(A, B, 40000, 80, SYN)),
            (2, tcp4(V, A, 80, 40000, SYNACK)),
            (3, tcp4(B, A, 80, 40001, SYNACK)),
        ],
    );
    assert_eq!(
        csv(&run(&cap)),
        vec!["2,198.51.100.7,18,80", "3,192.0.2.80,18,80"]
    );
}

#[test]
fn rst_and_rst_ack_are_backscatter() {
    let cap = pcap_file(
        1,
        &[
            (5, tcp4(V, D, 80, 1234, RST)),
            (6, tcp4(V, D, 80, 1235, RSTACK)),
        ],
    );
    assert_eq!(
        csv(&run(&cap)),
        vec!["5,198.51.100.7,4,80", "6,198.51.100.7,20,80"]
    );
}

#[test]
fn ecn_setup_syn_is_an_initiator_and_ece_synack_is_backscatter() {
    let cap = pcap_file(
        1,
        &[
            // SYN|ECE|CWR (RFC 3168 ECN setup): an initiator, not backscatter.
            (1, tcp4(A, B, 40000, 80, 0xC2)),
            (1, tcp4(B, A, 80, 40000, 0x52)),
            // SYN|ACK|ECE from a never-seen host: backscatter, flags 82.
            (2, tcp4(V, D, 80, 999, 0x52)),
            // A, an initiator, sends a non-SYN elsewhere: not backscatter (reference rule).
            (3, tcp4(A, D, 40002, 22, RST)),
        ],
    );
    assert_eq!(csv(&run(&cap)), vec!["2,198.51.100.7,82,80"]);
}

#[test]
fn ipv6_with_extension_header() {
    let v6: Ipv6Addr = "2001:db8::7".parse().unwrap();
    let d6: Ipv6Addr = "2001:db8:dead::1".parse().unwrap();
    let a6: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    let cap = pcap_file(
        1,
        &[
            (
                7,
                eth_ip(&ipv6(
                    v6,
                    d6,
                    PROTO_TCP,
                    true,
                    &tcp_header(443, 5000, SYNACK),
                )),
            ),
            (
                8,
                eth_ip(&ipv6(a6, v6, PROTO_TCP, false, &tcp_header(6000, 443, SYN))),
            ),
            (
                9,
                eth_ip(&ipv6(
                    v6,
                    a6,
                    PROTO_TCP,
                    true,
                    &tcp_header(443, 6000, SYNACK),
                )),
            ),
        ],
    );
    assert_eq!(csv(&run(&cap)), vec!["7,2001:db8::7,18,443"]);
}

#[test]
fn vlan_and_qinq() {
    let ip = ipv4(V, D, PROTO_TCP, &[], &tcp_header(80, 1000, SYNACK));
    let cap = pcap_file(
        1,
        &[
            (1, ethernet(0x0800, &[0x8100], &ip)),
            (2, ethernet(0x0800, &[0x88A8, 0x8100], &ip)),
        ],
    );
    assert_eq!(
        csv(&run(&cap)),
        vec!["1,198.51.100.7,18,80", "2,198.51.100.7,18,80"]
    );
}

#[test]
fn ip_options_use_ihl() {
    // 8 bytes of options (record route-ish bytes): a fixed 20-byte header would read the
    // options as the TCP ports.
    let opts = [0x07, 0x07, 0x04, 0, 0, 0, 0, 0x01];
    let frame = eth_ip(&ipv4(V, D, PROTO_TCP, &opts, &tcp_header(8443, 1000, RST)));
    let cap = pcap_file(1, &[(3, frame)]);
    assert_eq!(csv(&run(&cap)), vec!["3,198.51.100.7,4,8443"]);
    // maximum IHL (15 words = 40 bytes of options)
    let frame = eth_ip(&ipv4(V, D, PROTO_TCP, &[1; 40], &tcp_header(25, 1000, RST)));
    assert_eq!(
        csv(&run(&pcap_file(1, &[(4, frame)]))),
        vec!["4,198.51.100.7,4,25"]
    );
}

#[test]
fn icmp_quoting_tcp() {
    // A flood spoofed from D hits V; a router answers D with host-unreachable quoting the
    // spoofed SYN (D -> V:80). Backscatter; the victim is V, port 80.
    let quoted = ipv4(D, V, PROTO_TCP, &[], &tcp_header(3333, 80, SYN));
    let unreach = eth_ip(&ipv4(R, D, 1, &[], &icmp_error(3, 1, &quoted[..28])));
    // Time exceeded quoting a whole TCP header.
    let ttl = eth_ip(&ipv4(R, D, 1, &[], &icmp_error(11, 0, &quoted)));
    // An error about a connection A really tried: not backscatter.
    let real = ipv4(A, B, PROTO_TCP, &[], &tcp_header(41000, 443, SYN));
    let real_err = eth_ip(&ipv4(B, A, 1, &[], &icmp_error(3, 3, &real)));
    // Echo reply: not an error, ignored.
    let echo = eth_ip(&ipv4(V, D, 1, &[], &[0, 0, 0, 0, 0, 0, 0, 0]));
    let cap = pcap_file(
        1,
        &[
            (1, unreach),
            (2, ttl),
            (3, eth_ip(&real)),
            (4, real_err),
            (5, echo),
        ],
    );
    let hits = run(&cap);
    assert_eq!(hits.len(), 2, "{hits:?}");
    for (_, b) in &hits {
        assert_eq!(b.victim, IpAddr::V4(V));
        assert_eq!(b.port, 80);
        assert_eq!(b.src, IpAddr::V4(R));
        assert!(matches!(b.kind, Kind::Icmp { .. }));
    }
    // ICMP has no line in the reference CSV.
    assert!(csv(&hits).is_empty());
}

#[test]
fn icmpv6_and_udp_quotes() {
    let v6: Ipv6Addr = "2001:db8::7".parse().unwrap();
    let d6: Ipv6Addr = "2001:db8:dead::1".parse().unwrap();
    let quoted = ipv6(d6, v6, PROTO_UDP, false, &udp_header(5353, 53));
    let err = eth_ip(&ipv6(v6, d6, 58, false, &icmp_error(1, 4, &quoted)));
    // A UDP datagram really sent, then its port-unreachable: not backscatter.
    let sent = ipv4(A, B, PROTO_UDP, &[], &udp_header(5000, 53));
    let sent_err = eth_ip(&ipv4(B, A, 1, &[], &icmp_error(3, 3, &sent)));
    let cap = pcap_file(1, &[(1, err), (2, eth_ip(&sent)), (3, sent_err)]);
    let hits = run(&cap);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].1.victim, IpAddr::V6(v6));
    assert_eq!(hits[0].1.port, 53);
}

#[test]
fn truncated_frames_are_skipped_not_read_past() {
    let full = tcp4(V, D, 80, 1000, SYNACK);
    for cut in 0..full.len() {
        let p = classify(LinkType::Ethernet, &full[..cut]);
        // 14 (ethernet) + 20 (ip) + 14 bytes of tcp are needed for the flags.
        if cut < 48 {
            assert!(matches!(p, Packet::Skip(_)), "cut {cut}: {p:?}");
        } else {
            assert!(matches!(p, Packet::Tcp(_)), "cut {cut}: {p:?}");
        }
    }
    // A capture with records cut at every length: only the complete ones count.
    let records: Vec<(u64, Vec<u8>)> = (0..=full.len())
        .map(|cut| (cut as u64, full[..cut].to_vec()))
        .collect();
    let hits = run(&pcap_file(1, &records));
    assert_eq!(hits.len(), full.len() + 1 - 48);
    // An IPv4 total length larger than the capture: the captured bytes bound the parse.
    let mut lying = full.clone();
    lying[16] = 0xFF;
    lying[17] = 0xFF;
    assert!(matches!(
        classify(LinkType::Ethernet, &lying),
        Packet::Tcp(_)
    ));
    // A file cut in the middle of a record: the records before are analysed.
    let cap = pcap_file(1, &[(1, full.clone()), (2, full.clone())]);
    let cut = &cap[..cap.len() - 10];
    let mut n = 0;
    let sum = for_each_record(cut, |_| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert!(sum.truncated_tail);
    assert_eq!(n, 1);
}

#[test]
fn fragments_are_handled() {
    let mut ip = ipv4(V, D, PROTO_TCP, &[], &tcp_header(80, 1000, SYNACK));
    // first fragment (MF set, offset 0): has the TCP header, classified
    ip[6] = 0x20;
    assert!(matches!(classify(LinkType::Raw, &ip), Packet::Tcp(_)));
    // later fragment: no transport header
    ip[6] = 0x20;
    ip[7] = 0x10;
    assert_eq!(classify(LinkType::Raw, &ip), Packet::Skip(Skip::Fragment));
    // IPv6 later fragment
    let v6: Ipv6Addr = "2001:db8::7".parse().unwrap();
    let mut body = vec![PROTO_TCP, 0, 0x00, 0x11, 0, 0, 0, 1];
    body.extend_from_slice(&tcp_header(80, 1000, SYNACK));
    let p = ipv6(v6, v6, 44, false, &body);
    assert_eq!(classify(LinkType::Raw, &p), Packet::Skip(Skip::Fragment));
    body[3] = 0x01; // offset 0, M set: first fragment
    let p = ipv6(v6, v6, 44, false, &body);
    assert!(matches!(classify(LinkType::Raw, &p), Packet::Tcp(_)));
}

#[test]
fn link_types() {
    let ip = ipv4(V, D, PROTO_TCP, &[], &tcp_header(80, 1000, SYNACK));
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip);
    let mut sll2 = vec![
        0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
    ];
    sll2.extend_from_slice(&ip);
    let mut null_le = 2u32.to_le_bytes().to_vec();
    null_le.extend_from_slice(&ip);
    let mut null_be = 2u32.to_be_bytes().to_vec();
    null_be.extend_from_slice(&ip);
    let mut lo = 2u32.to_be_bytes().to_vec();
    lo.extend_from_slice(&ip);
    for (lt, frame) in [
        (101, ip.clone()),
        (228, ip.clone()),
        (113, sll),
        (276, sll2),
        (0, null_le),
        (0, null_be),
        (108, lo),
    ] {
        let hits = run(&pcap_file(lt, &[(9, frame)]));
        assert_eq!(csv(&hits), vec!["9,198.51.100.7,18,80"], "linktype {lt}");
    }
    assert_eq!(
        classify(LinkType::from_pcap(147), &ip),
        Packet::Skip(Skip::Link)
    );
}

fn mixed() -> Vec<(u64, Vec<u8>)> {
    vec![
        (10, tcp4(A, B, 40000, 80, SYN)),
        (10, tcp4(B, A, 80, 40000, SYNACK)),
        (11, tcp4(V, D, 80, 1, SYNACK)),
        (12, tcp4(V, D, 80, 2, RST)),
    ]
}

#[test]
fn pcapng_and_gzip_give_the_same_result() {
    let expected = vec!["11,198.51.100.7,18,80", "12,198.51.100.7,4,80"];
    let pcap = pcap_file(1, &mixed());
    let ng = pcapng_file(1, &mixed());
    assert_eq!(csv(&run(&pcap)), expected);
    assert_eq!(csv(&run(&ng)), expected);
    for plain in [&pcap, &ng] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(plain).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(csv(&run(&gz)), expected);
    }
}

#[test]
fn not_a_capture_is_an_error() {
    let r = for_each_record(&b"this is not a pcap file at all, sorry"[..], |_| Ok(()));
    assert!(r.is_err());
    // empty input: nothing, no error
    assert_eq!(for_each_record(&b""[..], |_| Ok(())).unwrap().records, 0);
}

#[test]
fn state_is_bounded_and_expires() {
    let cfg = DetectConfig {
        window_secs: 60,
        max_initiators: 100,
        max_flows: 100,
    };
    let mut det = Detector::new(cfg);
    for i in 0..100_000u32 {
        let src = Ipv4Addr::from(0x0A00_0000 + i);
        let p = classify(
            LinkType::Raw,
            &ipv4(src, B, PROTO_TCP, &[], &tcp_header(1000, 80, SYN)),
        );
        assert!(det.observe(5, &p).is_none());
        let (ini, flows) = det.state_len();
        assert!(ini <= 100 && flows <= 100, "{ini} {flows}");
    }
    assert!(det.stats().initiators_evicted > 0);
    // A recent initiator is still known; after the window it is forgotten.
    let last = Ipv4Addr::from(0x0A00_0000 + 99_999);
    let rst = classify(
        LinkType::Raw,
        &ipv4(last, D, PROTO_TCP, &[], &tcp_header(1000, 80, RST)),
    );
    assert!(det.observe(6, &rst).is_none());
    assert!(det.observe(5 + 61, &rst).is_some());
    // Expired SYN: the late SYN/ACK is no longer a reply.
    let mut det = Detector::new(cfg);
    let syn = classify(
        LinkType::Raw,
        &ipv4(A, B, PROTO_TCP, &[], &tcp_header(1000, 80, SYN)),
    );
    let synack = classify(
        LinkType::Raw,
        &ipv4(B, A, PROTO_TCP, &[], &tcp_header(80, 1000, SYNACK)),
    );
    det.observe(0, &syn);
    assert!(det.observe(59, &synack).is_none());
    assert!(det.observe(200, &synack).is_some());
}

#[test]
fn summary_buckets_and_threshold() {
    let mut s = Summary::new(SummaryConfig {
        bucket_secs: 300,
        threshold: 2,
        max_victims: 1,
    });
    let b = |victim: Ipv4Addr, port, flags| Backscatter {
        victim: IpAddr::V4(victim),
        port,
        src: IpAddr::V4(victim),
        dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        proto: 6,
        kind: Kind::Tcp { flags },
    };
    s.add(1000, &b(V, 80, SYNACK));
    s.add(1100, &b(V, 80, RST));
    s.add(1200, &b(V, 443, SYNACK));
    s.add(1300, &b(V, 80, SYNACK)); // same bucket as 1200: [1200,1500)
    s.add(1300, &b(B, 80, SYNACK)); // over max_victims: dropped, counted
    let r = s.report();
    assert_eq!(r.len(), 1);
    let v = &r[0];
    assert_eq!(v.victim, "198.51.100.7");
    assert_eq!((v.first_seen, v.last_seen, v.packets), (1000, 1300, 4));
    assert_eq!(v.ports[0].port, 80);
    assert_eq!(v.ports[0].packets, 3);
    assert_eq!(v.tcp_flags.get("SYN,ACK"), Some(&3));
    assert_eq!(v.tcp_flags.get("RST"), Some(&1));
    // buckets: [900,1200) has 2, [1200,1500) has 2: both at the threshold
    assert_eq!(v.buckets.len(), 2);
    assert_eq!(s.dropped_victims(), 1);
}
