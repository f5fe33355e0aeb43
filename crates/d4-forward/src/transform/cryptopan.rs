//! Crypto-PAn: prefix-preserving pseudonymisation of IPv4 and IPv6 addresses (Xu, Fan,
//! Ammar, Moon, "Prefix-Preserving IP Address Anonymization", 2002), and the keyed
//! pseudonyms of other values.
//!
//! The rule's 32-byte privacy key is split as in the reference implementation: the first
//! 16 bytes are the AES-128 key, the last 16 bytes encrypted with it are the pad. Bit `i`
//! of the output (from the most significant) is bit `i` of the input XOR the first bit of
//! `AES(first i input bits ‖ the pad's remaining bits)`. Two addresses that share their
//! first `n` bits therefore map to two addresses that share exactly their first `n` bits.
//! IPv6 is the same construction over 128 bits. The blocks of one address do not depend on
//! each other, so they are encrypted together (pipelined AES).
//!
//! Other strings become the hex of HMAC-SHA256(key, value) cut to 16 bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::TransformError;

/// Size of the rule's privacy key.
pub const KEY_LEN: usize = 32;

/// Reads a privacy key: 64 hex digits.
pub fn parse_key(hex_key: &str) -> Result<[u8; KEY_LEN], TransformError> {
    let bytes = hex::decode(hex_key.trim()).map_err(|_| {
        TransformError::Settings("the privacy key is not hex (64 hex digits expected)".into())
    })?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        TransformError::Settings(format!(
            "the privacy key has {} bytes (32 expected, as 64 hex digits)",
            bytes.len()
        ))
    })
}

/// The Crypto-PAn permutation of one key.
#[derive(Clone)]
pub struct CryptoPan {
    cipher: Aes128,
    pad: u128,
}

impl CryptoPan {
    pub fn new(key: &[u8; KEY_LEN]) -> CryptoPan {
        let cipher = Aes128::new(GenericArray::from_slice(&key[..16]));
        let mut pad = GenericArray::clone_from_slice(&key[16..]);
        cipher.encrypt_block(&mut pad);
        let mut p = [0u8; 16];
        p.copy_from_slice(&pad);
        CryptoPan {
            cipher,
            pad: u128::from_be_bytes(p),
        }
    }

    /// The first `bits` bits of `orig` (left-aligned in 128 bits) pseudonymised.
    fn permute(&self, orig: u128, bits: u32) -> u128 {
        let mut blocks = [aes::Block::default(); 128];
        let blocks = &mut blocks[..bits as usize];
        for (pos, block) in blocks.iter_mut().enumerate() {
            let mask = if pos == 0 { 0 } else { !0u128 << (128 - pos) };
            let input = (orig & mask) | (self.pad & !mask);
            block.copy_from_slice(&input.to_be_bytes());
        }
        self.cipher.encrypt_blocks(blocks);
        let mut flip = 0u128;
        for (pos, block) in blocks.iter().enumerate() {
            flip |= u128::from(block[0] >> 7) << (127 - pos);
        }
        orig ^ flip
    }

    pub fn v4(&self, a: Ipv4Addr) -> Ipv4Addr {
        let orig = u128::from(u32::from(a)) << 96;
        Ipv4Addr::from((self.permute(orig, 32) >> 96) as u32)
    }

    pub fn v6(&self, a: Ipv6Addr) -> Ipv6Addr {
        Ipv6Addr::from(self.permute(u128::from(a), 128))
    }

    pub fn ip(&self, a: IpAddr) -> IpAddr {
        match a {
            IpAddr::V4(a) => IpAddr::V4(self.v4(a)),
            IpAddr::V6(a) => IpAddr::V6(self.v6(a)),
        }
    }
}

/// Entries of the direct-mapped cache of recent addresses (per family).
const CACHE_SLOTS: usize = 4096;

/// Crypto-PAn with a small cache of recent addresses (traffic repeats addresses a lot), and
/// the keyed hash of other values.
#[derive(Clone)]
pub struct Pseudonymiser {
    pan: CryptoPan,
    key: [u8; KEY_LEN],
    v4: Vec<Option<(u32, u32)>>,
    v6: Vec<Option<(u128, u128)>>,
}

/// Never shows the key.
impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(..)")
    }
}

impl Pseudonymiser {
    pub fn new(key: &[u8; KEY_LEN]) -> Pseudonymiser {
        Pseudonymiser {
            pan: CryptoPan::new(key),
            key: *key,
            v4: vec![None; CACHE_SLOTS],
            v6: vec![None; CACHE_SLOTS],
        }
    }

    pub fn v4(&mut self, a: Ipv4Addr) -> Ipv4Addr {
        let a = u32::from(a);
        let slot = (a.wrapping_mul(0x9e37_79b1) >> 20) as usize % CACHE_SLOTS;
        if let Some((k, v)) = self.v4[slot] {
            if k == a {
                return Ipv4Addr::from(v);
            }
        }
        let v = u32::from(self.pan.v4(Ipv4Addr::from(a)));
        self.v4[slot] = Some((a, v));
        Ipv4Addr::from(v)
    }

    pub fn v6(&mut self, a: Ipv6Addr) -> Ipv6Addr {
        let a = u128::from(a);
        let h = (a as u64) ^ ((a >> 64) as u64);
        let slot = (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52) as usize % CACHE_SLOTS;
        if let Some((k, v)) = self.v6[slot] {
            if k == a {
                return Ipv6Addr::from(v);
            }
        }
        let v = u128::from(self.pan.v6(Ipv6Addr::from(a)));
        self.v6[slot] = Some((a, v));
        Ipv6Addr::from(v)
    }

    pub fn ip(&mut self, a: IpAddr) -> IpAddr {
        match a {
            IpAddr::V4(a) => IpAddr::V4(self.v4(a)),
            IpAddr::V6(a) => IpAddr::V6(self.v6(a)),
        }
    }

    /// Hex of HMAC-SHA256(key, value) cut to 16 bytes (32 hex digits).
    pub fn token(&self, value: &[u8]) -> String {
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) else {
            // HMAC takes keys of any length: not reached.
            return String::new();
        };
        mac.update(value);
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// A string value: an IP address stays an address of its family, anything else
    /// becomes a token.
    pub fn text(&mut self, value: &str) -> String {
        match value.parse::<IpAddr>() {
            Ok(a) => self.ip(a).to_string(),
            Err(_) => self.token(value.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The key of the sample of the Crypto-PAn reference distribution.
    const SAMPLE_KEY: [u8; 32] = [
        21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131,
        121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
    ];

    /// Pairs of the reference sample trace (raw -> sanitised).
    const SAMPLE_V4: &[(&str, &str)] = &[
        ("128.11.68.132", "135.242.180.132"),
        ("129.118.74.4", "134.136.186.123"),
        ("130.132.252.244", "133.68.164.234"),
        ("141.223.7.43", "141.167.8.160"),
        ("141.233.145.108", "141.129.237.235"),
        ("152.163.225.39", "151.140.114.167"),
        ("156.29.3.236", "147.225.12.42"),
        ("165.247.96.84", "162.9.99.234"),
        ("166.107.77.190", "160.132.178.185"),
        ("192.102.249.13", "252.138.62.131"),
        ("192.215.32.125", "252.43.47.189"),
        ("193.150.244.223", "253.169.52.216"),
        ("198.51.77.238", "249.18.186.254"),
        ("207.33.151.131", "241.1.233.131"),
        ("216.35.217.178", "235.195.157.81"),
        ("24.0.250.221", "100.15.198.226"),
        ("4.3.88.225", "124.60.155.63"),
        ("64.14.118.196", "0.255.183.58"),
        ("10.185.25.118", "117.161.29.118"),
    ];

    /// IPv6 with the same key, as published with the Go implementation (the same
    /// construction over 128 bits).
    const SAMPLE_V6: &[(&str, &str)] = &[
        ("::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed"),
        ("::2", "78ff:f001:9fc0:20df:8380:b1f1:704:ef"),
        ("::ffff", "78ff:f001:9fc0:20df:8380:b1f1:704:f838"),
        ("2001:db8::1", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e"),
        ("2001:db8::2", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1c"),
    ];

    #[test]
    fn reference_sample_ipv4() {
        let mut p = Pseudonymiser::new(&SAMPLE_KEY);
        for (raw, want) in SAMPLE_V4 {
            let raw: Ipv4Addr = raw.parse().unwrap();
            let want: Ipv4Addr = want.parse().unwrap();
            assert_eq!(p.v4(raw), want, "{raw}");
            // cached answer
            assert_eq!(p.v4(raw), want, "{raw} (cached)");
        }
    }

    #[test]
    fn reference_sample_ipv6() {
        let mut p = Pseudonymiser::new(&SAMPLE_KEY);
        for (raw, want) in SAMPLE_V6 {
            let raw: Ipv6Addr = raw.parse().unwrap();
            let want: Ipv6Addr = want.parse().unwrap();
            assert_eq!(p.v6(raw), want, "{raw}");
            assert_eq!(p.v6(raw), want, "{raw} (cached)");
        }
    }

    #[test]
    fn key_parsing() {
        let hex_key = hex::encode(SAMPLE_KEY);
        assert_eq!(parse_key(&hex_key).unwrap(), SAMPLE_KEY);
        assert!(matches!(parse_key("zz"), Err(TransformError::Settings(_))));
        assert!(matches!(
            parse_key("00ff"),
            Err(TransformError::Settings(_))
        ));
        assert!(matches!(parse_key(""), Err(TransformError::Settings(_))));
    }

    #[test]
    fn tokens_are_keyed_and_stable() {
        let a = Pseudonymiser::new(&SAMPLE_KEY);
        let b = Pseudonymiser::new(&[7u8; 32]);
        assert_eq!(a.token(b"alice"), a.token(b"alice"));
        assert_ne!(a.token(b"alice"), a.token(b"bob"));
        assert_ne!(a.token(b"alice"), b.token(b"alice"));
        assert_eq!(a.token(b"alice").len(), 32);
        let mut a = a;
        assert_eq!(a.text("128.11.68.132"), "135.242.180.132");
        assert_eq!(a.text("alice").len(), 32);
    }

    fn shared_prefix(a: u128, b: u128) -> u32 {
        (a ^ b).leading_zeros()
    }

    proptest! {
        #[test]
        fn prefix_preserving_v4(a in any::<u32>(), b in any::<u32>(), key in any::<[u8; 32]>()) {
            let p = CryptoPan::new(&key);
            let (x, y) = (u32::from(p.v4(a.into())), u32::from(p.v4(b.into())));
            prop_assert_eq!((a ^ b).leading_zeros(), (x ^ y).leading_zeros());
        }

        #[test]
        fn prefix_preserving_v6(a in any::<u128>(), keep in 0u32..128, b in any::<u128>(), key in any::<[u8; 32]>()) {
            // b shares `keep` leading bits with a at least
            let mask = if keep == 0 { 0 } else { !0u128 << (128 - keep) };
            let b = (a & mask) | (b & !mask);
            let p = CryptoPan::new(&key);
            let (x, y) = (u128::from(p.v6(a.into())), u128::from(p.v6(b.into())));
            prop_assert_eq!(shared_prefix(a, b), shared_prefix(x, y));
        }

        #[test]
        fn cache_agrees(addrs in proptest::collection::vec(any::<u32>(), 1..50)) {
            let mut c = Pseudonymiser::new(&SAMPLE_KEY);
            let p = CryptoPan::new(&SAMPLE_KEY);
            for a in addrs.iter().chain(addrs.iter()) {
                prop_assert_eq!(c.v4((*a).into()), p.v4((*a).into()));
            }
        }
    }
}
