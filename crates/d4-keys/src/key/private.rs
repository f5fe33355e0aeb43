//! Private keys, read only for their public half: PKCS#8 (RSA, EC, DSA, DH, and
//! Edwards/Montgomery keys carrying their public key), PKCS#1 `RSAPrivateKey`, SEC 1
//! `ECPrivateKey` and OpenSSL's DSA private key. RSA keeps d, p and q.

use rug::Integer;

use super::spki::{dh_key, dsa_key, ec_curve, ec_point, DH, DHX, DSA, EC, RAW_CURVES, RSA};
use super::{derive, rsa_key, Key, KeyData, Parsed, RsaPrivate};
use crate::der::{self, Reader, Tlv};

fn bad() -> Parsed {
    Parsed::Unparseable("Error decoding DER/ASN.1 key structure".into())
}

/// A private key of any supported kind; `None` when not shaped like one.
pub(super) fn try_private(input: &[u8]) -> Option<Parsed> {
    let mut s = Reader::new(input).sequence()?;
    s.integer()?; // version
    match s.peek_tag()? {
        der::SEQUENCE => Some(pkcs8(s).unwrap_or_else(bad)),
        der::INTEGER => {
            let ints: Vec<Integer> = std::iter::from_fn(|| s.integer()).collect();
            if !s.is_empty() {
                return None;
            }
            match ints.len() {
                // PKCS#1: n e d p q dp dq qinv
                8 => {
                    let mut it = ints.into_iter();
                    let (n, e, d, p, q) =
                        (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
                    Some(rsa_key(n, e, Some(RsaPrivate { d, p, q })))
                }
                // OpenSSL DSA: p q g y x
                5 => {
                    let mut it = ints.into_iter();
                    let (p, q, g, y) = (it.next()?, it.next()?, it.next()?, it.next()?);
                    Some(dsa_key(p, q, g, y))
                }
                _ => None,
            }
        }
        der::OCTET_STRING => Some(sec1(s, None).unwrap_or_else(bad)),
        _ => None,
    }
}

/// The rest of a SEC 1 `ECPrivateKey` after its version: the curve from `[0]` (or from
/// the PKCS#8 algorithm), the public point from `[1]`.
fn sec1(mut s: Reader<'_>, outer_params: Option<Tlv<'_>>) -> Option<Parsed> {
    s.expect(der::OCTET_STRING)?;
    let params = match s.optional(0xa0) {
        Some(t) => Reader::new(t.content).any(),
        None => outer_params,
    };
    let (curve, len) = match ec_curve(params) {
        Ok(c) => c,
        Err(p) => return Some(*p),
    };
    let Some(public) = s.optional(0xa1) else {
        return Some(Parsed::Unsupported(
            "EC private key without its public key".into(),
        ));
    };
    let point = Reader::new(public.content).bit_string()?;
    Some(ec_point(curve, len, point, None))
}

/// g^x mod p for DSA and DH private keys, with the range checks OpenSSL makes.
fn public_from_private(p: &Integer, g: &Integer, x: &Integer) -> Option<Integer> {
    if *p < 5 || *x <= 0 || *g <= 1 || g >= p {
        return None;
    }
    g.clone().pow_mod(x, p).ok()
}

fn pkcs8(mut s: Reader<'_>) -> Option<Parsed> {
    let mut alg = s.sequence()?;
    let oid = der::oid_to_string(alg.oid()?);
    let params = if alg.is_empty() { None } else { alg.any() };
    let inner = s.expect(der::OCTET_STRING)?.content;
    s.optional(0xa0); // attributes
    let public = s.optional(0xa1).or_else(|| s.optional(0x81));
    let parsed = match oid.as_str() {
        RSA | "1.2.840.113549.1.1.10" => try_private(inner)?,
        EC => {
            let mut r = Reader::new(inner).sequence()?;
            r.integer()?;
            sec1(r, params)?
        }
        DSA => {
            let mut pr = Reader::new(params?.content);
            let (p, q, g) = (pr.integer()?, pr.integer()?, pr.integer()?);
            let x = Reader::new(inner).integer()?;
            match public_from_private(&p, &g, &x) {
                Some(y) => dsa_key(p, q, g, y),
                None => Parsed::Unparseable("Invalid key".into()),
            }
        }
        DH | DHX => {
            let mut pr = Reader::new(params?.content);
            let (p, g) = (pr.integer()?, pr.integer()?);
            let q = if oid == DHX { pr.integer() } else { None };
            let x = Reader::new(inner).integer()?;
            match public_from_private(&p, &g, &x) {
                Some(y) => dh_key(p, g, q, y),
                None => Parsed::Unparseable("Invalid key".into()),
            }
        }
        _ => match RAW_CURVES.iter().find(|c| c.0 == oid) {
            Some(&(_, curve, len)) => {
                // PKCS#8 v2 (RFC 8410) may carry the public key; else it is derived
                let carried = public.and_then(|t| t.content.split_first().map(|(_, b)| b.to_vec()));
                let derived = || {
                    let private = Reader::new(inner).expect(der::OCTET_STRING)?.content;
                    match curve {
                        "x25519" => derive::x25519(private),
                        "x448" => derive::x448(private),
                        "ed25519" => derive::ed25519(private),
                        _ => None,
                    }
                };
                match carried.or_else(derived) {
                    Some(b) if b.len() == len => {
                        Parsed::Key(Key::new(KeyData::Raw { curve, bytes: b }))
                    }
                    _ => Parsed::Unsupported(format!("{curve} private key without its public key")),
                }
            }
            None => Parsed::Unsupported(format!("Unknown key type: {oid}")),
        },
    };
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs1_private_keeps_the_secrets() {
        // n = 61 * 53 = 3233, e = 17, d = 2753 (the textbook example)
        let ints = [0u32, 3233, 17, 2753, 61, 53, 53, 49, 38];
        let content: Vec<u8> = ints
            .iter()
            .flat_map(|&i| der::integer(&Integer::from(i)))
            .collect();
        let enc = der::tlv(der::SEQUENCE, &content);
        match try_private(&enc) {
            Some(Parsed::Key(Key {
                data:
                    KeyData::Rsa {
                        n,
                        private: Some(p),
                        ..
                    },
                ..
            })) => {
                assert_eq!(n, 3233);
                assert_eq!(
                    (p.d, p.p, p.q),
                    (Integer::from(2753), Integer::from(61), Integer::from(53))
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dsa_public_from_private() {
        // 2^5 mod 23 = 9
        let y = public_from_private(&Integer::from(23), &Integer::from(2), &Integer::from(5));
        assert_eq!(y, Some(Integer::from(9)));
        assert_eq!(
            public_from_private(&Integer::from(0), &Integer::from(0), &Integer::from(0)),
            None
        );
    }
}
