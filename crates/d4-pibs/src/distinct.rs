//! Distinct-count of darknet addresses per bucket: the exact set of 32-bit address
//! fingerprints up to [`EXACT_MAX`] addresses, then a HyperLogLog sketch of 256 one-byte
//! registers (standard error about 1.04/16 = 6.5 %). Both merge, so a bucket built over
//! several commits (or sensors) counts an address once. Fingerprints come from a fixed
//! hash of the 16-byte address, so stored sketches stay comparable across runs.

use std::net::IpAddr;

/// Most addresses kept exactly.
pub const EXACT_MAX: usize = 64;
/// HyperLogLog registers (2^8).
pub const REGISTERS: usize = 256;

/// A distinct counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distinct {
    /// Sorted, deduplicated fingerprints.
    Exact(Vec<u32>),
    Sketch(Box<[u8; REGISTERS]>),
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct::Exact(Vec::new())
    }
}

/// The stable 32-bit fingerprint of an address (IPv4 as IPv4-mapped IPv6).
#[inline]
pub fn fingerprint(ip: IpAddr) -> u32 {
    let v = match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)) | (0xFFFF << 32),
        IpAddr::V6(a) => u128::from(a),
    };
    let mut h = (v as u64) ^ 0x9E37_79B9_7F4A_7C15;
    h = mix(h) ^ ((v >> 64) as u64);
    (mix(h) >> 32) as u32
}

/// splitmix64's finaliser.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn register(h: u32) -> (usize, u8) {
    let idx = (h >> 24) as usize;
    let w = h << 8;
    // 24 bits left: rank 1..=25
    let rank = (w.leading_zeros().min(24) + 1) as u8;
    (idx, rank)
}

impl Distinct {
    /// Adds a fingerprint.
    #[inline]
    pub fn insert(&mut self, h: u32) {
        match self {
            Distinct::Exact(v) => {
                if let Err(at) = v.binary_search(&h) {
                    if v.len() < EXACT_MAX {
                        v.insert(at, h);
                    } else {
                        let mut s = self.to_sketch();
                        s.sketch_insert(h);
                        *self = s;
                    }
                }
            }
            Distinct::Sketch(r) => {
                let (i, rank) = register(h);
                if r[i] < rank {
                    r[i] = rank;
                }
            }
        }
    }

    fn sketch_insert(&mut self, h: u32) {
        if let Distinct::Sketch(r) = self {
            let (i, rank) = register(h);
            if r[i] < rank {
                r[i] = rank;
            }
        }
    }

    fn to_sketch(&self) -> Distinct {
        match self {
            Distinct::Exact(v) => {
                let mut s = Distinct::Sketch(Box::new([0u8; REGISTERS]));
                for &h in v {
                    s.sketch_insert(h);
                }
                s
            }
            Distinct::Sketch(_) => self.clone(),
        }
    }

    /// Adds every address of `other`.
    pub fn merge(&mut self, other: &Distinct) {
        match other {
            Distinct::Exact(v) => {
                for &h in v {
                    self.insert(h);
                }
            }
            Distinct::Sketch(o) => {
                if let Distinct::Exact(_) = self {
                    *self = self.to_sketch();
                }
                if let Distinct::Sketch(r) = self {
                    for (a, b) in r.iter_mut().zip(o.iter()) {
                        if *a < *b {
                            *a = *b;
                        }
                    }
                }
            }
        }
    }

    /// The count: exact, or the HyperLogLog estimate (linear counting when small).
    pub fn count(&self) -> u64 {
        match self {
            Distinct::Exact(v) => v.len() as u64,
            Distinct::Sketch(r) => {
                let m = REGISTERS as f64;
                let mut sum = 0.0;
                let mut zeros = 0usize;
                for &x in r.iter() {
                    sum += 1.0 / f64::from(1u32 << x.min(31));
                    if x == 0 {
                        zeros += 1;
                    }
                }
                let alpha = 0.7213 / (1.0 + 1.079 / m);
                let e = alpha * m * m / sum;
                let e = if e <= 2.5 * m && zeros > 0 {
                    m * (m / zeros as f64).ln()
                } else {
                    e
                };
                e.round() as u64
            }
        }
    }

    /// Encoded: tag 0, u16 le count, fingerprints (u32 le); or tag 1 and the registers.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Distinct::Exact(v) => {
                out.push(0);
                out.extend_from_slice(&(v.len() as u16).to_le_bytes());
                for h in v {
                    out.extend_from_slice(&h.to_le_bytes());
                }
            }
            Distinct::Sketch(r) => {
                out.push(1);
                out.extend_from_slice(&r[..]);
            }
        }
    }

    /// Decodes from the front of `b`; returns the value and the bytes read.
    pub fn decode(b: &[u8]) -> Option<(Distinct, usize)> {
        match *b.first()? {
            0 => {
                let n = usize::from(u16::from_le_bytes([*b.get(1)?, *b.get(2)?]));
                let body = b.get(3..3 + 4 * n)?;
                let mut v: Vec<u32> = body
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                v.sort_unstable();
                v.dedup();
                Some((Distinct::Exact(v), 3 + 4 * n))
            }
            1 => {
                let body = b.get(1..1 + REGISTERS)?;
                let mut r = Box::new([0u8; REGISTERS]);
                r.copy_from_slice(body);
                Some((Distinct::Sketch(r), 1 + REGISTERS))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addrs(n: u32, base: u32) -> impl Iterator<Item = u32> {
        (0..n).map(move |i| fingerprint(IpAddr::V4(Ipv4Addr::from(base + i))))
    }

    #[test]
    fn exact_then_estimate() {
        let mut d = Distinct::default();
        for h in addrs(40, 0x0A00_0000) {
            d.insert(h);
            d.insert(h);
        }
        assert_eq!(d.count(), 40);
        for n in [1000u32, 20_000] {
            let mut d = Distinct::default();
            for h in addrs(n, 0x0A00_0000) {
                d.insert(h);
            }
            let c = d.count() as f64;
            assert!((c - f64::from(n)).abs() / f64::from(n) < 0.2, "{n}: {c}");
        }
    }

    #[test]
    fn merge_counts_overlap_once() {
        let mut a = Distinct::default();
        let mut b = Distinct::default();
        for h in addrs(30, 100) {
            a.insert(h);
        }
        for h in addrs(30, 115) {
            b.insert(h);
        }
        a.merge(&b);
        assert_eq!(a.count(), 45);
        let mut out = Vec::new();
        a.encode(&mut out);
        assert_eq!(Distinct::decode(&out), Some((a.clone(), out.len())));
    }
}
