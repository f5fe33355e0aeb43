//! Synthetic traffic for tests and benchmarks: hand-built frames (checksums left at zero,
//! nothing here verifies them), pcap and pcapng files, and a large mixed capture generator.

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::capture::PcapWriter;

/// A 20-byte TCP header (data offset 5, window 1024) with `flags`.
pub fn tcp_header(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&1024u16.to_be_bytes());
    t
}

/// An 8-byte UDP header.
pub fn udp_header(sport: u16, dport: u16) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&8u16.to_be_bytes());
    u
}

/// An IPv4 packet: header (with `options`, padded to 4 bytes) + `payload`.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut opts = options.to_vec();
    while opts.len() % 4 != 0 {
        opts.push(0);
    }
    let ihl = 20 + opts.len();
    let total = (ihl + payload.len()) as u16;
    let mut p = vec![0u8; 20];
    p[0] = 0x40 | (ihl / 4) as u8;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p.extend_from_slice(&opts);
    p.extend_from_slice(payload);
    p
}

/// An IPv6 packet; with `hop_by_hop`, an 8-byte hop-by-hop options header comes first.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, hop_by_hop: bool, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let next = if hop_by_hop {
        body.extend_from_slice(&[proto, 0, 1, 4, 0, 0, 0, 0]); // PadN
        0
    } else {
        proto
    };
    body.extend_from_slice(payload);
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
    p[6] = next;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p.extend_from_slice(&body);
    p
}

/// An ICMP(v4 or v6) error message of `icmp_type`/`code` quoting `quoted` (an IP packet).
pub fn icmp_error(icmp_type: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let mut m = vec![icmp_type, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(quoted);
    m
}

/// An Ethernet II frame carrying `payload` of `ethertype`, behind 802.1Q/802.1ad tags
/// (`tags` = TPIDs, outermost first, e.g. `[0x88a8, 0x8100]` for QinQ).
pub fn ethernet(ethertype: u16, tags: &[u16], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for (i, tpid) in tags.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Ethernet + IPv4 (ethertype by IP version).
pub fn eth_ip(ip: &[u8]) -> Vec<u8> {
    let et = if ip.first().map(|b| b >> 4) == Some(6) {
        0x86DD
    } else {
        0x0800
    };
    ethernet(et, &[], ip)
}

/// A classic pcap file (microseconds) of `(epoch seconds, frame)` records.
pub fn pcap_file(linktype: u32, records: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut w = match PcapWriter::new(Vec::new(), linktype) {
        Ok(w) => w,
        Err(_) => return Vec::new(),
    };
    for (ts, data) in records {
        // Writing to a Vec cannot fail.
        let _ = w.write(*ts, 0, data.len() as u32, data);
    }
    w.into_inner()
}

fn ng_block(out: &mut Vec<u8>, block_type: u32, body: &[u8]) {
    let mut body = body.to_vec();
    while body.len() % 4 != 0 {
        body.push(0);
    }
    let len = (12 + body.len()) as u32;
    out.extend_from_slice(&block_type.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&len.to_le_bytes());
}

/// A little-endian pcapng file: one section, one interface of `linktype` (microsecond
/// resolution), one enhanced packet block per record.
pub fn pcapng_file(linktype: u32, records: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    ng_block(&mut out, 0x0A0D_0D0A, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&(linktype as u16).to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&65535u32.to_le_bytes());
    ng_block(&mut out, 1, &idb);
    for (ts, data) in records {
        let t = ts * 1_000_000 + 250_000;
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&((t >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(t as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(data);
        ng_block(&mut out, 6, &epb);
    }
    out
}

/// A small xorshift generator: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Writes a synthetic darknet-like Ethernet capture of `n` packets, one per 100 µs:
/// ~10 % SYN scans from 50,000 scanners (initiators) with the SYN/ACK answers of their
/// targets, ~70 % backscatter (SYN/ACK, RST, RST/ACK) from 20,000 victims, ~10 % UDP,
/// ~5 % ICMP port-unreachable quoting UDP, the rest ARP. Deterministic for a given `seed`.
pub fn write_bench_pcap<W: Write>(out: W, n: u64, seed: u64) -> io::Result<()> {
    let mut w = PcapWriter::new(out, 1)?;
    let mut rng = Rng(seed | 1);
    let base = 1_700_000_000u64;
    let dark = |r: u64| Ipv4Addr::from(0x0A00_0000 | (r as u32 & 0x00FF_FFFF));
    let mut frame = Vec::with_capacity(128);
    let mut pending_reply: Option<(Ipv4Addr, Ipv4Addr, u16, u16)> = None;
    for i in 0..n {
        let ts = base + i / 10_000;
        let nsec = ((i % 10_000) * 100_000) as u32;
        let r = rng.next();
        frame.clear();
        let ip = if let Some((a, b, ap, bp)) = pending_reply.take() {
            // the answer to the previous SYN: not backscatter
            ipv4(b, a, 6, &[], &tcp_header(bp, ap, 0x12))
        } else {
            match r % 100 {
                0..=9 => {
                    let scanner = Ipv4Addr::from(0xC633_0000 | ((r >> 8) as u32 % 50_000));
                    let target = dark(r >> 24);
                    let sport = 1024 + (r >> 40) as u16 % 60_000;
                    let dport = [22u16, 23, 80, 443, 445, 3389][(r >> 56) as usize % 6];
                    if r & 0x100 != 0 {
                        pending_reply = Some((scanner, target, sport, dport));
                    }
                    ipv4(scanner, target, 6, &[], &tcp_header(sport, dport, 0x02))
                }
                10..=79 => {
                    let victim = Ipv4Addr::from(0x5DB8_0000 | ((r >> 8) as u32 % 20_000));
                    let fl = [0x12u8, 0x04, 0x14, 0x12, 0x52][(r >> 32) as usize % 5];
                    let sport = [80u16, 443, 53, 8080][(r >> 40) as usize % 4];
                    ipv4(
                        victim,
                        dark(r >> 24),
                        6,
                        &[],
                        &tcp_header(sport, (r >> 48) as u16, fl),
                    )
                }
                80..=89 => ipv4(
                    dark(r >> 8),
                    Ipv4Addr::from((r >> 32) as u32),
                    17,
                    &[],
                    &udp_header((r >> 16) as u16, 53),
                ),
                90..=94 => {
                    let quoted = ipv4(
                        dark(r >> 8),
                        Ipv4Addr::from(0x5DB8_0000 | ((r >> 32) as u32 % 20_000)),
                        17,
                        &[],
                        &udp_header((r >> 48) as u16, 53),
                    );
                    ipv4(
                        Ipv4Addr::from(0x5DB8_0000 | ((r >> 32) as u32 % 20_000)),
                        dark(r >> 8),
                        1,
                        &[],
                        &icmp_error(3, 3, &quoted[..28]),
                    )
                }
                _ => {
                    frame.extend_from_slice(&ethernet(0x0806, &[], &[0u8; 28]));
                    w.write(ts, nsec, frame.len() as u32, &frame)?;
                    continue;
                }
            }
        };
        frame.extend_from_slice(&eth_ip(&ip));
        w.write(ts, nsec, frame.len() as u32, &frame)?;
    }
    w.flush()
}

/// A planted backscatter reply (what a victim of a spoofed flood sends to a darknet address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    SynAck,
    Rst,
    RstAck,
    /// ICMP (v4 type 3 code 3, v6 type 1 code 4) port unreachable quoting a UDP datagram
    /// from the darknet address to the victim's port.
    PortUnreach,
}

fn ip_packet(src: std::net::IpAddr, dst: std::net::IpAddr, proto: u8, payload: &[u8]) -> Vec<u8> {
    use std::net::IpAddr;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4(s, d, proto, &[], payload),
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6(s, d, proto, false, payload),
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            ipv6(v6(s), v6(d), proto, false, payload)
        }
    }
}

/// An Ethernet frame of `victim` (its port `port`) replying with `reply` to the spoofed
/// source `darknet` (port `dport`).
pub fn reply_frame(
    victim: std::net::IpAddr,
    port: u16,
    darknet: std::net::IpAddr,
    dport: u16,
    reply: Reply,
) -> Vec<u8> {
    let tcp = |f: u8| ip_packet(victim, darknet, 6, &tcp_header(port, dport, f));
    let ip = match reply {
        Reply::SynAck => tcp(0x12),
        Reply::Rst => tcp(0x04),
        Reply::RstAck => tcp(0x14),
        Reply::PortUnreach => {
            let quoted = ip_packet(darknet, victim, 17, &udp_header(dport, port));
            if victim.is_ipv6() {
                ip_packet(victim, darknet, 58, &icmp_error(1, 4, &quoted))
            } else {
                ip_packet(victim, darknet, 1, &icmp_error(3, 3, &quoted))
            }
        }
    };
    eth_ip(&ip)
}

/// Traffic that is not backscatter, `n` frames from `seed`: SYN scans from scanners in
/// 192.0.2.0/24 to 10.0.0.0/16 (with
/// the scanner's later RST and the scanned host's SYN/ACK answer), UDP, ARP.
pub fn noise_frames(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = rng.next();
        let scanner = Ipv4Addr::from(0xC000_0200 | (r as u32 & 0xFF));
        let target = Ipv4Addr::from(0x0A00_0000 | ((r >> 8) as u32 & 0xFFFF));
        let sport = 1024 + (r >> 24) as u16 % 60_000;
        let dport = [22u16, 23, 80, 443, 445][(r >> 40) as usize % 5];
        match r % 4 {
            0 => {
                out.push(eth_ip(&ipv4(
                    scanner,
                    target,
                    6,
                    &[],
                    &tcp_header(sport, dport, 0x02),
                )));
                out.push(eth_ip(&ipv4(
                    target,
                    scanner,
                    6,
                    &[],
                    &tcp_header(dport, sport, 0x12),
                )));
                out.push(eth_ip(&ipv4(
                    scanner,
                    target,
                    6,
                    &[],
                    &tcp_header(sport, dport, 0x04),
                )));
            }
            1 => out.push(eth_ip(&ipv4(
                scanner,
                target,
                17,
                &[],
                &udp_header(sport, 53),
            ))),
            2 => out.push(ethernet(0x0806, &[], &[0u8; 28])),
            _ => out.push(eth_ip(&ipv4(
                scanner,
                target,
                6,
                &[],
                &tcp_header(sport, dport, 0x02),
            ))),
        }
    }
    out.truncate(n);
    out
}
