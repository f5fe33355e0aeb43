//! Capture files from frames (classic pcap and pcapng, microsecond timestamps) and a small
//! independent reader of generated TCP frames ([`tcp_streams`]) that proves a capture still
//! carries its transcript.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Link type of Ethernet frames.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// The classic pcap global header (little endian, µs, snaplen 65535).
pub(crate) fn pcap_header(linktype: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());
    out
}

/// Appends one classic pcap record.
pub(crate) fn pcap_record(out: &mut Vec<u8>, ts_us: u64, frame: &[u8]) {
    out.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    out.extend_from_slice(frame);
}

/// A classic pcap file (little endian, µs timestamps) of `frames`.
pub fn pcap_file(linktype: u32, frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = pcap_header(linktype);
    for (ts, f) in frames {
        pcap_record(&mut out, *ts, f);
    }
    out
}

fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let pad = (4 - body.len() % 4) % 4;
    let total = (12 + body.len() + pad) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&[0; 3][..pad]);
    out.extend_from_slice(&total.to_le_bytes());
}

/// A pcapng file (little endian): one section, one interface (µs resolution, the default),
/// one Enhanced Packet Block per frame.
pub fn pcapng_file(linktype: u32, frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut idb = (linktype as u16).to_le_bytes().to_vec();
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&65535u32.to_le_bytes());
    block(&mut out, 1, &idb);
    for (ts, f) in frames {
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(*ts as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(f);
        epb.resize(epb.len() + (4 - f.len() % 4) % 4, 0);
        block(&mut out, 6, &epb);
    }
    out
}

/// One TCP segment read back from a frame.
struct Seg {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    syn: bool,
    payload: Vec<u8>,
}

fn parse_tcp(frame: &[u8]) -> Option<Seg> {
    let mut p = 12;
    let mut ethertype = u16::from_be_bytes([*frame.get(p)?, *frame.get(p + 1)?]);
    p += 2;
    if ethertype == 0x8100 {
        ethertype = u16::from_be_bytes([*frame.get(p + 2)?, *frame.get(p + 3)?]);
        p += 4;
    }
    let ip = frame.get(p..)?;
    let v6 = |b: &[u8]| -> Option<IpAddr> {
        let a = Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?);
        Some(a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4))
    };
    let v4 = |b: &[u8]| -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?)))
    };
    let (src, dst, l4) = match ethertype {
        0x0800 if ip.first()? >> 4 == 4 && *ip.get(9)? == 6 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            (
                v4(ip.get(12..16)?)?,
                v4(ip.get(16..20)?)?,
                ip.get(ihl..total)?,
            )
        }
        0x86dd if *ip.get(6)? == 6 => {
            let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            (
                v6(ip.get(8..24)?)?,
                v6(ip.get(24..40)?)?,
                ip.get(40..40 + len)?,
            )
        }
        _ => return None,
    };
    let sport = u16::from_be_bytes([*l4.first()?, *l4.get(1)?]);
    let dport = u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]);
    let seq = u32::from_be_bytes(l4.get(4..8)?.try_into().ok()?);
    let off = usize::from(l4.get(12)? >> 4) * 4;
    Some(Seg {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        seq,
        syn: l4.get(13)? & 0x02 != 0,
        payload: l4.get(off..)?.to_vec(),
    })
}

/// Reads generated TCP frames back: the payload bytes each direction carried, in sequence
/// order, as `(from client, from server)`. The client is the endpoint at `client`
/// (IPv4-mapped IPv6 addresses compare as IPv4); segments to or from it are kept, the other
/// frames (other connections, UDP, ICMP...) are skipped. The stream of a direction starts after its
/// SYN, or at the first segment seen when there is none. `Err` on a gap or on overlapping
/// bytes that differ.
pub fn tcp_streams(
    frames: &[(u64, Vec<u8>)],
    client: SocketAddr,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let client = match client.ip() {
        IpAddr::V6(a) => SocketAddr::new(
            a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
            client.port(),
        ),
        IpAddr::V4(_) => client,
    };
    let mut base: HashMap<bool, u32> = HashMap::new();
    let mut segs: HashMap<bool, Vec<(u32, Vec<u8>)>> = HashMap::new();
    for (_, f) in frames {
        let Some(s) = parse_tcp(f) else { continue };
        let dir = s.src == client;
        if !dir && s.dst != client {
            continue;
        }
        if s.syn {
            base.insert(dir, s.seq.wrapping_add(1));
            continue;
        }
        if s.payload.is_empty() {
            continue;
        }
        let b = *base.entry(dir).or_insert(s.seq);
        segs.entry(dir)
            .or_default()
            .push((s.seq.wrapping_sub(b), s.payload));
    }
    let mut join = |dir: bool| -> Result<Vec<u8>, String> {
        let mut list = segs.remove(&dir).unwrap_or_default();
        list.sort_by_key(|(off, _)| *off);
        let mut out: Vec<u8> = Vec::new();
        for (off, data) in list {
            let off = off as usize;
            if off > out.len() {
                return Err(format!(
                    "gap at offset {} (next segment at {off})",
                    out.len()
                ));
            }
            let overlap = (out.len() - off).min(data.len());
            if out[off..off + overlap] != data[..overlap] {
                return Err(format!("overlapping bytes differ at offset {off}"));
            }
            out.extend_from_slice(&data[overlap..]);
        }
        Ok(out)
    };
    Ok((join(true)?, join(false)?))
}
