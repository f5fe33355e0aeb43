//! A large capture of mixed traffic for benchmarks (`d4 bench tls`): plain TCP flows with
//! payload (HTTP-like), UDP DNS queries and answers, ICMP echo, and a share of TLS
//! connections (a few real transcripts made once per process, certificates included,
//! replayed with varied addresses and ports, IPv4 and IPv6). Several flows are interleaved.
//! Packets come out one at a time, so millions cost little memory.
//!
//! Deterministic for a seed within a process. Between processes the traffic's structure stays
//! (each flow draws from its own generator seeded by the main one, so flow kinds, addresses,
//! payloads and timestamps do not depend on the handshakes' bytes), but the replayed TLS
//! transcripts are new real handshakes with fresh keys and randoms, so their bytes (and,
//! where a signature's length changes, a segment boundary) differ.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;

use super::capture::{checksum, ip_frame, tcp_frames, udp, CaptureSpec, MAC_CLIENT, MAC_SERVER};
use super::pcap::{pcap_header, pcap_record, LINKTYPE_ETHERNET};
use super::rng::Rng;
use super::{handshake, HandshakeSpec, KeyKind, Stack, Transcript, Version};

/// Link type of the mixed capture's frames (Ethernet).
pub const MIXED_LINKTYPE: u32 = LINKTYPE_ETHERNET;

/// Flows interleaved at any time.
const ACTIVE: usize = 8;

/// The TLS transcripts the mixed capture replays (its TLS sessions on port 443 carry these
/// bytes), made once per process.
pub fn mixed_transcripts() -> &'static [Transcript] {
    static T: OnceLock<Vec<Transcript>> = OnceLock::new();
    T.get_or_init(|| {
        let spec = |stack, version, key, chain, sni: &str, alpn: &[&[u8]], grease| HandshakeSpec {
            stack,
            version,
            key,
            chain,
            sni: Some(sni.to_string()),
            alpn: alpn.iter().map(|a| a.to_vec()).collect(),
            grease,
        };
        let specs = [
            spec(
                Stack::OpenSsl,
                Version::Tls12,
                KeyKind::Rsa2048,
                true,
                "www.example.com",
                &[b"h2", b"http/1.1"],
                true,
            ),
            spec(
                Stack::Rustls,
                Version::Tls12,
                KeyKind::EcdsaP256,
                true,
                "api.example.net",
                &[b"h2"],
                false,
            ),
            spec(
                Stack::Rustls,
                Version::Tls13,
                KeyKind::EcdsaP256,
                false,
                "mail.example.org",
                &[],
                true,
            ),
            spec(
                Stack::OpenSsl,
                Version::Tls10,
                KeyKind::Rsa2048,
                false,
                "legacy.example.com",
                &[],
                false,
            ),
        ];
        specs
            .iter()
            .map(|s| match handshake(s) {
                Ok(t) => t,
                Err(e) => panic!("mixed capture: handshake {s:?} failed: {e}"),
            })
            .collect()
    })
}

fn client_ip(rng: &mut Rng, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            1,
            0,
            0,
            0,
            rng.next_u32() as u16,
            rng.next_u32() as u16,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (rng.next_u32() & 0x00ff_ffff)))
    }
}

fn server_ip(rng: &mut Rng, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            2,
            0,
            0,
            0,
            0,
            rng.range(1, 500) as u16,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::from(0xac10_0000 | (rng.range(1, 4000) as u32)))
    }
}

fn tcp_flow(rng: &mut Rng, t: &Transcript, port: u16) -> Vec<Vec<u8>> {
    let v6 = rng.chance(0.2);
    let client = SocketAddr::new(client_ip(rng, v6), rng.range(1024, 65535) as u16);
    let server = SocketAddr::new(server_ip(rng, v6), port);
    let mut spec = CaptureSpec::new(client, server);
    spec.seed = rng.next_u64();
    spec.max_segment = *rng.pick(&[1460, 1460, 536]);
    tcp_frames(t, &spec).into_iter().map(|(_, f)| f).collect()
}

fn http_flow(rng: &mut Rng) -> Vec<Vec<u8>> {
    let req = format!(
        "GET /item/{} HTTP/1.1\r\nHost: shop.example\r\n\r\n",
        rng.next_u32()
    );
    let body_len = rng.range(100, 4000) as usize;
    let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {body_len}\r\n\r\n").into_bytes();
    resp.extend((0..body_len).map(|i| b'a' + (i % 26) as u8));
    let t = Transcript {
        writes: vec![(true, req.into_bytes()), (false, resp)],
        cert_chain_der: Vec::new(),
        client_hello_record: Vec::new(),
    };
    tcp_flow(rng, &t, 80)
}

fn dns_flow(rng: &mut Rng) -> Vec<Vec<u8>> {
    let v6 = rng.chance(0.2);
    let (c, s) = (client_ip(rng, v6), server_ip(rng, v6));
    let (id, port) = (rng.next_u32() as u16, rng.range(1024, 65535) as u16);
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    let host = format!("host{}", rng.range(1, 99999));
    for label in [host.as_str(), "example", "com"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut a = q.clone();
    a[2..4].copy_from_slice(&[0x81, 0x80]);
    a[7] = 1;
    a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2]);
    a.push(rng.range(1, 254) as u8);
    vec![
        ip_frame(
            v6,
            None,
            MAC_CLIENT,
            MAC_SERVER,
            c,
            s,
            17,
            udp(port, 53, &q),
            Some(6),
            id,
        ),
        ip_frame(
            v6,
            None,
            MAC_SERVER,
            MAC_CLIENT,
            s,
            c,
            17,
            udp(53, port, &a),
            Some(6),
            id,
        ),
    ]
}

fn icmp_flow(rng: &mut Rng) -> Vec<Vec<u8>> {
    let (c, s) = (client_ip(rng, false), server_ip(rng, false));
    let id = rng.next_u32() as u16;
    let echo = |kind: u8| {
        let mut m = vec![kind, 0, 0, 0];
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&[0x42; 32]);
        let sum = checksum(&[&m]);
        m[2..4].copy_from_slice(&sum.to_be_bytes());
        m
    };
    vec![
        ip_frame(
            false,
            None,
            MAC_CLIENT,
            MAC_SERVER,
            c,
            s,
            1,
            echo(8),
            None,
            id,
        ),
        ip_frame(
            false,
            None,
            MAC_SERVER,
            MAC_CLIENT,
            s,
            c,
            1,
            echo(0),
            None,
            id,
        ),
    ]
}

/// The iterator [`mixed_capture`] returns.
pub struct MixedCapture {
    rng: Rng,
    left: u64,
    ts: u64,
    tls_share: f64,
    queued_all: u64,
    queued_tls: u64,
    tls_sessions: u64,
    active: Vec<VecDeque<Vec<u8>>>,
}

impl MixedCapture {
    /// TLS connections started so far.
    pub fn tls_sessions(&self) -> u64 {
        self.tls_sessions
    }

    fn start_flow(&mut self) {
        let tls = (self.queued_tls as f64) < self.tls_share * (self.queued_all as f64 + 1.0);
        let choice = self.rng.next_u64();
        let rng = &mut Rng::new(self.rng.next_u64());
        let frames = if tls {
            self.tls_sessions += 1;
            let all = mixed_transcripts();
            tcp_flow(rng, &all[(choice % all.len() as u64) as usize], 443)
        } else {
            match choice % 100 {
                0..=49 => http_flow(rng),
                50..=84 => dns_flow(rng),
                _ => icmp_flow(rng),
            }
        };
        self.queued_all += frames.len() as u64;
        if tls {
            self.queued_tls += frames.len() as u64;
        }
        self.active.push(frames.into());
    }
}

impl Iterator for MixedCapture {
    type Item = (u64, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        loop {
            while self.active.len() < ACTIVE {
                self.start_flow();
            }
            let i = (self.rng.next_u64() % self.active.len() as u64) as usize;
            let frame = self.active[i].pop_front();
            if self.active[i].is_empty() {
                self.active.swap_remove(i);
            }
            if let Some(f) = frame {
                self.left -= 1;
                self.ts += self.rng.range(1, 20);
                return Some((self.ts, f));
            }
        }
    }
}

/// `n_packets` Ethernet frames of mixed traffic, about `tls_share` of them (by packet count)
/// in TLS connections. The same seed gives the same frames.
pub fn mixed_capture(n_packets: u64, tls_share: f64, seed: u64) -> MixedCapture {
    mixed_transcripts();
    MixedCapture {
        rng: Rng::new(seed),
        left: n_packets,
        ts: 1_560_333_600_000_000,
        tls_share,
        queued_all: 0,
        queued_tls: 0,
        tls_sessions: 0,
        active: Vec::new(),
    }
}

/// Writes [`mixed_capture`]`(n_packets, 0.05, seed)` as a classic pcap file; returns the
/// number of TLS connections started in it (the last few may be cut short).
pub fn write_mixed_pcap<W: Write>(mut w: W, n_packets: u64, seed: u64) -> io::Result<u64> {
    w.write_all(&pcap_header(MIXED_LINKTYPE))?;
    let mut it = mixed_capture(n_packets, 0.05, seed);
    let mut buf = Vec::with_capacity(1 << 16);
    for (ts, f) in it.by_ref() {
        pcap_record(&mut buf, ts, &f);
        if buf.len() >= 1 << 16 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)?;
    Ok(it.tls_sessions())
}
