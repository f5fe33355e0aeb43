//! A minimal DER reader and writer for the key structures this crate reads (X.509
//! certificates and requests, SubjectPublicKeyInfo, PKCS#1, PKCS#8, SEC 1). Definite
//! lengths only, one-byte tags; every read is bounds-checked and returns `None` on
//! malformed input. The writer re-encodes public keys the way OpenSSL serialises them, for
//! the `spkisha256` fingerprint.

use rug::integer::Order;
use rug::Integer;

pub const SEQUENCE: u8 = 0x30;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;

/// One DER element: its tag, its content and the whole encoding (tag, length, content).
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

/// Reads consecutive elements from a byte slice.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The tag of the next element, without reading it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element, any tag.
    pub fn any(&mut self) -> Option<Tlv<'a>> {
        let (&tag, after) = self.rest.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // multi-byte tags: none in the structures read here
        }
        let (&first, mut after) = after.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || after.len() < n {
                return None; // indefinite or absurd lengths
            }
            let mut len = 0usize;
            for &b in &after[..n] {
                len = (len << 8) | usize::from(b);
            }
            after = &after[n..];
            len
        };
        if after.len() < len {
            return None;
        }
        let header = self.rest.len() - after.len();
        let raw = &self.rest[..header + len];
        let content = &after[..len];
        self.rest = &after[len..];
        Some(Tlv { tag, content, raw })
    }

    /// The next element, which must carry `tag`.
    pub fn expect(&mut self, tag: u8) -> Option<Tlv<'a>> {
        let t = self.any()?;
        (t.tag == tag).then_some(t)
    }

    /// The next element's content if it carries `tag`; nothing is consumed otherwise.
    pub fn optional(&mut self, tag: u8) -> Option<Tlv<'a>> {
        if self.peek_tag() == Some(tag) {
            self.any()
        } else {
            None
        }
    }

    /// A SEQUENCE, as a reader over its content.
    pub fn sequence(&mut self) -> Option<Reader<'a>> {
        self.expect(SEQUENCE).map(|t| Reader::new(t.content))
    }

    /// An INTEGER as a signed big integer.
    pub fn integer(&mut self) -> Option<Integer> {
        let t = self.expect(INTEGER)?;
        int_from_be_signed(t.content)
    }

    /// A BIT STRING with no unused bits, as bytes.
    pub fn bit_string(&mut self) -> Option<&'a [u8]> {
        let t = self.expect(BIT_STRING)?;
        let (&unused, bits) = t.content.split_first()?;
        (unused == 0).then_some(bits)
    }

    /// An OBJECT IDENTIFIER's encoded content.
    pub fn oid(&mut self) -> Option<&'a [u8]> {
        self.expect(OID).map(|t| t.content)
    }
}

/// A two's-complement big-endian integer (an empty content is not a valid INTEGER).
pub fn int_from_be_signed(bytes: &[u8]) -> Option<Integer> {
    let first = *bytes.first()?;
    let mut v = Integer::from_digits(bytes, Order::Msf);
    if first & 0x80 != 0 {
        v -= Integer::from(1) << (8 * bytes.len() as u32);
    }
    Some(v)
}

/// The dotted form of an OID's encoded content (`1.2.840.113549.1.1.1`).
pub fn oid_to_string(content: &[u8]) -> String {
    let mut parts: Vec<u128> = Vec::new();
    let mut cur: u128 = 0;
    for &b in content {
        cur = (cur << 7) | u128::from(b & 0x7f);
        if b & 0x80 == 0 {
            if parts.is_empty() {
                let (a, b) = match cur {
                    0..=39 => (0, cur),
                    40..=79 => (1, cur - 40),
                    _ => (2, cur - 80),
                };
                parts.push(a);
                parts.push(b);
            } else {
                parts.push(cur);
            }
            cur = 0;
        }
        if cur > u128::MAX >> 8 {
            return "invalid".to_string();
        }
    }
    let v: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
    v.join(".")
}

/// The encoded content of a dotted OID (only used for the constant OIDs of this crate).
pub fn oid_from_str(dotted: &str) -> Vec<u8> {
    let nums: Vec<u64> = dotted.split('.').filter_map(|s| s.parse().ok()).collect();
    let mut out = Vec::new();
    if nums.len() < 2 {
        return out;
    }
    let mut arcs = vec![nums[0] * 40 + nums[1]];
    arcs.extend_from_slice(&nums[2..]);
    for arc in arcs {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut a = arc >> 7;
        while a > 0 {
            groups.push(((a & 0x7f) as u8) | 0x80);
            a >>= 7;
        }
        groups.reverse();
        out.extend_from_slice(&groups);
    }
    out
}

/// Appends one element with a definite DER length.
pub fn write(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// One element as a new vector.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    write(&mut out, tag, content);
    out
}

/// A non-negative INTEGER in minimal DER form.
pub fn integer(v: &Integer) -> Vec<u8> {
    let mut content = v.to_digits::<u8>(Order::Msf);
    if content.first().is_none_or(|b| b & 0x80 != 0) {
        content.insert(0, 0);
    }
    tlv(INTEGER, &content)
}

/// A BIT STRING with no unused bits.
pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    content.push(0);
    content.extend_from_slice(bytes);
    tlv(BIT_STRING, &content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_round_trip() {
        // rsaEncryption, encoded by hand from X.690's rules
        let enc = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
        assert_eq!(oid_to_string(&enc), "1.2.840.113549.1.1.1");
        assert_eq!(oid_from_str("1.2.840.113549.1.1.1"), enc);
    }

    #[test]
    fn integers() {
        assert_eq!(integer(&Integer::from(0)), [2, 1, 0]);
        assert_eq!(integer(&Integer::from(128)), [2, 2, 0, 128]);
        assert_eq!(int_from_be_signed(&[0xff]), Some(Integer::from(-1)));
        let mut r = Reader::new(&[0x30, 0x03, 0x02, 0x01, 0x05, 0xff]);
        let mut s = r.sequence().unwrap();
        assert_eq!(s.integer(), Some(Integer::from(5)));
        assert!(s.is_empty());
        assert_eq!(r.any().map(|t| t.tag), None); // truncated
    }

    #[test]
    fn long_lengths() {
        let content = vec![7u8; 300];
        let enc = tlv(OCTET_STRING, &content);
        assert_eq!(&enc[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let t = Reader::new(&enc).any().unwrap();
        assert_eq!(t.content.len(), 300);
    }
}
