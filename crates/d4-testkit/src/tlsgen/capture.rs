//! A transcript as the Ethernet frames of one TCP connection: three-way handshake (unless
//! the capture starts mid-flow), each write cut into segments of random sizes with real
//! sequence and acknowledgement numbers, a pure ACK from the receiver after each write,
//! optional reordering (adjacent packets only), retransmissions (exact copies a few packets
//! later) and overlapping retransmissions (the same bytes, starting before the segment), and
//! FIN/ACK at the end. IPv4 and IPv6, optional 802.1Q tag. IPv4 header checksums and TCP
//! checksums (with the pseudo-header) are both correct.

use std::net::{IpAddr, SocketAddr};

use super::rng::Rng;
use super::Transcript;

/// How to wrap a transcript into a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSpec {
    /// IPv6 packets (IPv4 addresses are then mapped to `::ffff:a.b.c.d`); an IPv6 address
    /// with `ipv6: false` panics.
    pub ipv6: bool,
    /// An 802.1Q tag with this VLAN id on every frame.
    pub vlan: Option<u16>,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub seed: u64,
    /// Segment payload sizes are uniform in `1..=max_segment`.
    pub max_segment: usize,
    /// Swap some adjacent packets (never a direction's first data segment).
    pub reorder: bool,
    /// Send some segments twice and some overlapping retransmissions.
    pub retransmit: bool,
    /// No SYN/SYN-ACK/ACK: the first packet is the client's first data segment.
    pub start_mid_flow: bool,
    /// Close with FIN/ACK, FIN/ACK, ACK.
    pub fin: bool,
    /// Time of the first packet, µs since the epoch; later packets 5-500 µs apart.
    pub start_ts_us: u64,
}

impl CaptureSpec {
    /// A clean IPv4 capture: handshake, 1460-byte segments, in order, FIN.
    pub fn new(client: SocketAddr, server: SocketAddr) -> Self {
        CaptureSpec {
            ipv6: client.is_ipv6(),
            vlan: None,
            client,
            server,
            seed: 1,
            max_segment: 1460,
            reorder: false,
            retransmit: false,
            start_mid_flow: false,
            fin: true,
            start_ts_us: 1_560_333_600_000_000,
        }
    }
}

pub(crate) const SYN: u8 = 0x02;
pub(crate) const FIN: u8 = 0x01;
pub(crate) const PSH: u8 = 0x08;
pub(crate) const ACK: u8 = 0x10;

pub(crate) const MAC_CLIENT: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub(crate) const MAC_SERVER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// The Internet checksum over `parts` concatenated (each part of even length but the last).
pub(crate) fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [b] = chunks.remainder() {
            sum += u32::from(*b) << 8;
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A computed UDP checksum of 0 is sent as `0xffff` (0 means "none", RFC 768/8200).
fn l4_checksum(proto: u8, c: u16) -> u16 {
    if proto == 17 && c == 0 {
        0xffff
    } else {
        c
    }
}

fn v6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// An Ethernet frame (optionally 802.1Q-tagged) holding one IP packet with the given
/// layer-4 protocol and bytes. The layer-4 checksum at `l4_csum_at` (if any) is filled in.
#[allow(clippy::too_many_arguments)]
pub(crate) fn ip_frame(
    ipv6: bool,
    vlan: Option<u16>,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    mut l4: Vec<u8>,
    l4_csum_at: Option<usize>,
    ip_id: u16,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(l4.len() + 62);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    if let Some(id) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&(id & 0x0fff).to_be_bytes());
    }
    let len = l4.len();
    if ipv6 {
        let (s, d) = (v6(src), v6(dst));
        if let Some(at) = l4_csum_at {
            let pseudo_len = (len as u32).to_be_bytes();
            let c = l4_checksum(
                proto,
                checksum(&[&s, &d, &pseudo_len, &[0, 0, 0, proto], &l4]),
            );
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(len as u16).to_be_bytes());
        f.extend_from_slice(&[proto, 64]);
        f.extend_from_slice(&s);
        f.extend_from_slice(&d);
    } else {
        let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else {
            panic!("an IPv6 address in an IPv4 capture");
        };
        let (s, d) = (s.octets(), d.octets());
        if let Some(at) = l4_csum_at {
            let c = l4_checksum(
                proto,
                checksum(&[&s, &d, &[0, proto], &(len as u16).to_be_bytes(), &l4]),
            );
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&((len + 20) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&ip_id.to_be_bytes());
        h[6] = 0x40; // DF
        h[8] = 64;
        h[9] = proto;
        h[12..16].copy_from_slice(&s);
        h[16..20].copy_from_slice(&d);
        let c = checksum(&[&h]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&h);
    }
    f.extend_from_slice(&l4);
    f
}

/// A TCP header (no options) followed by `payload`; checksum left zero for [`ip_frame`].
pub(crate) fn tcp_segment(
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&(if flags & ACK != 0 { ack } else { 0 }).to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    t
}

/// A UDP header followed by `payload`; checksum left zero for [`ip_frame`].
pub(crate) fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// One packet before it becomes a frame.
#[derive(Debug, Clone)]
struct Pkt {
    from_client: bool,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: Vec<u8>,
    /// May be swapped with a neighbour.
    movable: bool,
}

/// The state of one direction.
struct Dir {
    next_seq: u32,
    history: Vec<u8>,
    ip_id: u16,
}

/// The frames of one TCP connection carrying `t` as `spec` says: `(timestamp µs, frame)`.
pub fn tcp_frames(t: &Transcript, spec: &CaptureSpec) -> Vec<(u64, Vec<u8>)> {
    let mut rng = Rng::new(spec.seed);
    let mut c = Dir {
        next_seq: rng.next_u32(),
        history: Vec::new(),
        ip_id: rng.next_u32() as u16,
    };
    let mut s = Dir {
        next_seq: rng.next_u32(),
        history: Vec::new(),
        ip_id: rng.next_u32() as u16,
    };
    let mut pkts: Vec<Pkt> = Vec::new();
    let plain = |from_client, seq, ack, flags| Pkt {
        from_client,
        seq,
        ack,
        flags,
        payload: Vec::new(),
        movable: false,
    };
    if !spec.start_mid_flow {
        pkts.push(plain(true, c.next_seq, 0, SYN));
        pkts.push(plain(
            false,
            s.next_seq,
            c.next_seq.wrapping_add(1),
            SYN | ACK,
        ));
        c.next_seq = c.next_seq.wrapping_add(1);
        s.next_seq = s.next_seq.wrapping_add(1);
        pkts.push(plain(true, c.next_seq, s.next_seq, ACK));
    }
    let max = spec.max_segment.max(1) as u64;
    let mut delayed: Vec<(usize, Pkt)> = Vec::new();
    for (from_client, bytes) in &t.writes {
        let (me, other) = if *from_client {
            (&mut c, &mut s)
        } else {
            (&mut s, &mut c)
        };
        let mut off = 0;
        while off < bytes.len() {
            let n = (rng.range(1, max) as usize).min(bytes.len() - off);
            let chunk = &bytes[off..off + n];
            let first = me.history.is_empty();
            let seg = Pkt {
                from_client: *from_client,
                seq: me.next_seq,
                ack: other.next_seq,
                flags: PSH | ACK,
                payload: chunk.to_vec(),
                movable: !first,
            };
            let start = me.history.len();
            me.history.extend_from_slice(chunk);
            me.next_seq = me.next_seq.wrapping_add(n as u32);
            off += n;
            pkts.push(seg.clone());
            for (due, _) in delayed.iter_mut() {
                *due = due.saturating_sub(1);
            }
            while let Some(i) = delayed.iter().position(|(due, _)| *due == 0) {
                pkts.push(delayed.remove(i).1);
            }
            if spec.retransmit && !first {
                if rng.chance(0.15) {
                    delayed.push((
                        rng.range(1, 3) as usize,
                        Pkt {
                            movable: true,
                            ..seg
                        },
                    ));
                } else if rng.chance(0.12) {
                    let back = rng.range(1, start.min(64) as u64) as usize;
                    pkts.push(Pkt {
                        from_client: *from_client,
                        seq: me.next_seq.wrapping_sub((n + back) as u32),
                        ack: other.next_seq,
                        flags: PSH | ACK,
                        payload: me.history[start - back..].to_vec(),
                        movable: true,
                    });
                }
            }
        }
        let mut a = plain(!from_client, other.next_seq, me.next_seq, ACK);
        a.movable = !other.history.is_empty();
        pkts.push(a);
    }
    pkts.extend(delayed.into_iter().map(|(_, p)| p));
    if spec.reorder {
        let mut i = 0;
        while i + 1 < pkts.len() {
            if pkts[i].movable && pkts[i + 1].movable && rng.chance(0.3) {
                pkts.swap(i, i + 1);
                i += 2;
            } else {
                i += 1;
            }
        }
    }
    if spec.fin {
        pkts.push(plain(true, c.next_seq, s.next_seq, FIN | ACK));
        c.next_seq = c.next_seq.wrapping_add(1);
        pkts.push(plain(false, s.next_seq, c.next_seq, FIN | ACK));
        s.next_seq = s.next_seq.wrapping_add(1);
        pkts.push(plain(true, c.next_seq, s.next_seq, ACK));
    }
    let mut ts = spec.start_ts_us;
    let mut out = Vec::with_capacity(pkts.len());
    for (i, p) in pkts.into_iter().enumerate() {
        if i > 0 {
            ts += rng.range(5, 500);
        }
        let (src, dst, smac, dmac, dir) = if p.from_client {
            (spec.client, spec.server, MAC_CLIENT, MAC_SERVER, &mut c)
        } else {
            (spec.server, spec.client, MAC_SERVER, MAC_CLIENT, &mut s)
        };
        dir.ip_id = dir.ip_id.wrapping_add(1);
        let tcp = tcp_segment(src.port(), dst.port(), p.seq, p.ack, p.flags, &p.payload);
        let frame = ip_frame(
            spec.ipv6,
            spec.vlan,
            smac,
            dmac,
            src.ip(),
            dst.ip(),
            6,
            tcp,
            Some(16),
            dir.ip_id,
        );
        out.push((ts, frame));
    }
    out
}
