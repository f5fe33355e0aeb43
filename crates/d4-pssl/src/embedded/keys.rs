//! Byte keys and small values of the embedded store's tables (the layout is described in
//! the [`super`] module doc): addresses as 16 bytes (IPv4 mapped), digests as raw bytes,
//! text as a big-endian `u16` length and the bytes (so a prefix of one value never matches
//! another), times in an order-preserving 8-byte form, and the link aggregate.

use std::net::{IpAddr, Ipv6Addr};

/// Kinds of value in the `session_ix`, `fp_ips` and `distinct` keys.
pub(super) const K_JA3: u8 = 1;
pub(super) const K_JA3S: u8 = 2;
pub(super) const K_JA4: u8 = 3;
pub(super) const K_SNI: u8 = 4;
pub(super) const K_IP: u8 = 5;

/// An address as 16 bytes (IPv4 as `::ffff:a.b.c.d`), so both families order numerically
/// and a network is one key range.
pub(super) fn ip16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address of 16 key bytes (IPv4-mapped ones as IPv4).
pub(super) fn ip_of(b: &[u8]) -> Option<IpAddr> {
    let a: [u8; 16] = b.try_into().ok()?;
    let v6 = Ipv6Addr::from(a);
    Some(match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    })
}

/// `kind, len(u16 be), bytes`: a value any index is keyed by (texts longer than 65535 bytes
/// are cut there).
pub(super) fn value_key(kind: u8, value: &[u8], out: &mut Vec<u8>) {
    let v = &value[..value.len().min(u16::MAX as usize)];
    out.push(kind);
    out.extend_from_slice(&(v.len() as u16).to_be_bytes());
    out.extend_from_slice(v);
}

/// A time as 8 bytes that sort like the signed value.
pub(super) fn ts_key(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

/// First seen, last seen (Unix seconds) and count of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Agg {
    pub(super) first: i64,
    pub(super) last: i64,
    pub(super) count: u64,
}

impl Agg {
    pub(super) fn one(ts: i64) -> Agg {
        Agg {
            first: ts,
            last: ts,
            count: 1,
        }
    }

    pub(super) fn add(self, ts: i64) -> Agg {
        Agg {
            first: self.first.min(ts),
            last: self.last.max(ts),
            count: self.count.saturating_add(1),
        }
    }

    pub(super) fn encode(&self) -> [u8; 24] {
        let mut v = [0u8; 24];
        v[..8].copy_from_slice(&self.first.to_le_bytes());
        v[8..16].copy_from_slice(&self.last.to_le_bytes());
        v[16..].copy_from_slice(&self.count.to_le_bytes());
        v
    }

    pub(super) fn decode(v: &[u8]) -> Option<Agg> {
        let n = |i: usize| -> Option<[u8; 8]> { v.get(i..i + 8)?.try_into().ok() };
        Some(Agg {
            first: i64::from_le_bytes(n(0)?),
            last: i64::from_le_bytes(n(8)?),
            count: u64::from_le_bytes(n(16)?),
        })
    }
}

/// Per-certificate session statistics: the link aggregate and a bit per chain position
/// (bit 63: position 63 or later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CertStat {
    pub(super) agg: Agg,
    pub(super) positions: u64,
}

impl CertStat {
    pub(super) fn encode(&self) -> [u8; 32] {
        let mut v = [0u8; 32];
        v[..24].copy_from_slice(&self.agg.encode());
        v[24..].copy_from_slice(&self.positions.to_le_bytes());
        v
    }

    pub(super) fn decode(v: &[u8]) -> Option<CertStat> {
        Some(CertStat {
            agg: Agg::decode(v)?,
            positions: u64::from_le_bytes(v.get(24..32)?.try_into().ok()?),
        })
    }

    pub(super) fn position_bit(pos: usize) -> u64 {
        1u64 << pos.min(63)
    }

    pub(super) fn position_list(&self) -> Vec<u32> {
        (0..64).filter(|i| self.positions & (1 << i) != 0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_sort_like_numbers() {
        let mut v = [-5i64, 3, 0, i64::MIN, i64::MAX, -1, 1_700_000_000];
        let mut keys: Vec<[u8; 8]> = v.iter().map(|t| ts_key(*t)).collect();
        v.sort();
        keys.sort();
        assert_eq!(keys, v.iter().map(|t| ts_key(*t)).collect::<Vec<_>>());
    }

    #[test]
    fn addresses_round_trip() {
        for ip in ["10.1.2.3", "2001:db8::1", "::1", "0.0.0.0"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_of(&ip16(ip)), Some(ip));
        }
    }
}
