//! SubjectPublicKeyInfo: reading it (alone, or inside an X.509 certificate or a PKCS#10
//! request) into [`KeyData`], and re-encoding a key the way OpenSSL does for the
//! `spkisha256` fingerprint. Also the bare PKCS#1 `RSAPublicKey`.

use rug::Integer;
use sha2::{Digest, Sha256};

use super::{rsa_key, Key, KeyData, Parsed};
use crate::der::{self, Reader, Tlv};

pub(super) const RSA: &str = "1.2.840.113549.1.1.1";
const RSA_PSS: &str = "1.2.840.113549.1.1.10";
pub(super) const EC: &str = "1.2.840.10045.2.1";
pub(super) const DSA: &str = "1.2.840.10040.4.1";
pub(super) const DH: &str = "1.2.840.113549.1.3.1";
pub(super) const DHX: &str = "1.2.840.10046.2.1";
const PRIME_FIELD: &str = "1.2.840.10045.1.1";

/// Edwards and Montgomery curves: OID, badkeys' name, key length.
pub(super) const RAW_CURVES: &[(&str, &str, usize)] = &[
    ("1.3.101.110", "x25519", 32),
    ("1.3.101.111", "x448", 56),
    ("1.3.101.112", "ed25519", 32),
    ("1.3.101.113", "ed448", 57),
];

/// Named Weierstrass curves `cryptography` loads: OID, badkeys' name, field size in bytes.
const CURVES: &[(&str, &str, usize)] = &[
    ("1.2.840.10045.3.1.1", "p192", 24),
    ("1.3.132.0.33", "p224", 28),
    ("1.2.840.10045.3.1.7", "p256", 32),
    ("1.3.132.0.34", "p384", 48),
    ("1.3.132.0.35", "p521", 66),
    ("1.3.132.0.10", "secp256k1", 32),
    ("1.3.36.3.3.2.8.1.1.7", "brainpoolP256r1", 32),
    ("1.3.36.3.3.2.8.1.1.11", "brainpoolP384r1", 48),
    ("1.3.36.3.3.2.8.1.1.13", "brainpoolP512r1", 64),
];

/// The field prime of the curves recognised in explicit parameters (OpenSSL maps explicit
/// parameters of a named curve back to its name).
fn explicit_curve(p: &Integer) -> Option<&'static str> {
    let two = |e: u32| Integer::from(1) << e;
    let known: [(&str, Integer); 6] = [
        ("p192", two(192) - two(64) - 1u32),
        ("p224", two(224) - two(96) + 1u32),
        ("p256", two(256) - two(224) + two(192) + two(96) - 1u32),
        ("p384", two(384) - two(128) - two(96) + two(32) - 1u32),
        ("p521", two(521) - 1u32),
        ("secp256k1", two(256) - two(32) - 977u32),
    ];
    known.into_iter().find(|(_, q)| q == p).map(|(n, _)| n)
}

fn curve_by_name(name: &str) -> Option<(&'static str, &'static str, usize)> {
    CURVES.iter().copied().find(|c| c.1 == name)
}

fn bad() -> Parsed {
    Parsed::Unparseable("Error decoding DER/ASN.1 key structure".into())
}

/// Whether an element has the shape of a SubjectPublicKeyInfo.
fn is_spki(t: &Tlv<'_>) -> bool {
    if t.tag != der::SEQUENCE {
        return false;
    }
    let mut r = Reader::new(t.content);
    let alg_ok = r
        .sequence()
        .is_some_and(|mut a| a.peek_tag() == Some(der::OID) && a.oid().is_some());
    alg_ok && r.expect(der::BIT_STRING).is_some() && r.is_empty()
}

/// An X.509 certificate's key; `None` when the input is not shaped like a certificate.
pub(super) fn try_certificate(input: &[u8]) -> Option<Parsed> {
    let mut outer = Reader::new(input).sequence()?;
    let mut tbs = outer.sequence()?;
    outer.sequence()?; // signature algorithm
    outer.expect(der::BIT_STRING)?;
    // The version is not checked: badkeys' fallback parser reads invalid versions too.
    tbs.optional(0xa0);
    tbs.expect(der::INTEGER)?; // serial
    for _ in 0..4 {
        tbs.sequence()?; // signature, issuer, validity, subject
    }
    let spki = tbs.any()?;
    is_spki(&spki).then(|| parse_spki(spki.raw))
}

/// A PKCS#10 request's key; `None` when the input is not shaped like a request.
pub(super) fn try_csr(input: &[u8]) -> Option<Parsed> {
    let mut outer = Reader::new(input).sequence()?;
    let mut info = outer.sequence()?;
    outer.sequence()?;
    outer.expect(der::BIT_STRING)?;
    info.expect(der::INTEGER)?;
    info.sequence()?; // subject
    let spki = info.any()?;
    is_spki(&spki).then(|| parse_spki(spki.raw))
}

/// A bare SubjectPublicKeyInfo; `None` when the input is not shaped like one.
pub(super) fn try_spki(input: &[u8]) -> Option<Parsed> {
    let t = Reader::new(input).any()?;
    is_spki(&t).then(|| parse_spki(t.raw))
}

/// A PKCS#1 `RSAPublicKey` (SEQUENCE of n and e); `None` when not shaped like one.
pub(super) fn try_rsa_public(input: &[u8]) -> Option<Parsed> {
    let mut r = Reader::new(input);
    let mut s = r.sequence()?;
    let n = s.integer()?;
    let e = s.integer()?;
    s.is_empty().then(|| rsa_key(n, e, None))
}

/// The key in a SubjectPublicKeyInfo DER.
pub fn parse_spki(input: &[u8]) -> Parsed {
    parse_spki_inner(input).unwrap_or_else(bad)
}

fn parse_spki_inner(input: &[u8]) -> Option<Parsed> {
    let mut s = Reader::new(input).sequence()?;
    let mut alg = s.sequence()?;
    let oid = der::oid_to_string(alg.oid()?);
    let params = if alg.is_empty() { None } else { alg.any() };
    let bits = s.bit_string()?;
    let parsed = match oid.as_str() {
        RSA | RSA_PSS => return try_rsa_public(bits).or_else(|| Some(bad())),
        EC => ec_key(params, bits, input),
        DSA => {
            let mut p = Reader::new(params?.content);
            let (pp, q, g) = (p.integer()?, p.integer()?, p.integer()?);
            let y = Reader::new(bits).integer()?;
            dsa_key(pp, q, g, y)
        }
        DH | DHX => {
            let mut p = Reader::new(params?.content);
            let (pp, g) = (p.integer()?, p.integer()?);
            let q = if oid == DHX {
                // X9.42 order: p, g, q
                Some(p.integer()?)
            } else {
                None
            };
            let y = Reader::new(bits).integer()?;
            dh_key(pp, g, q, y)
        }
        _ => match RAW_CURVES.iter().find(|c| c.0 == oid) {
            Some(&(_, curve, len)) if bits.len() == len => Parsed::Key(Key::new(KeyData::Raw {
                curve,
                bytes: bits.to_vec(),
            })),
            Some(_) => bad(),
            None => Parsed::Unsupported(format!("Unknown key type: {oid}")),
        },
    };
    Some(parsed)
}

/// A DSA public key; numbers that are not positive are unparseable.
pub(super) fn dsa_key(p: Integer, q: Integer, g: Integer, y: Integer) -> Parsed {
    if p <= 0 || q <= 0 || g <= 0 || y <= 0 {
        return Parsed::Unparseable("Invalid DSA key".into());
    }
    Parsed::Key(Key::new(KeyData::Dsa { p, q, g, y }))
}

/// A DH public key after OpenSSL's range check (1 < y < p - 1).
///
/// OpenSSL recognises the named safe-prime groups (RFC 2409, 3526, 7919) in PKCS#3
/// parameters and then knows q = (p - 1) / 2, so `cryptography` writes such a key back as
/// X9.42 with q (that is the `spkisha256` badkeys prints). Those groups are told here by
/// their shape: g = 2 and 64 one bits at both ends of p.
pub(super) fn dh_key(p: Integer, g: Integer, q: Option<Integer>, y: Integer) -> Parsed {
    if p < 5
        || g <= 0
        || q.as_ref().is_some_and(|q| *q <= 0)
        || y <= 1
        || y >= Integer::from(&p - 1u32)
    {
        return Parsed::Unparseable("Invalid key".into());
    }
    let ones = Integer::from(u64::MAX);
    let bits = p.significant_bits();
    let named_group = bits > 128
        && g == 2
        && Integer::from(&p >> (bits - 64)) == ones
        && Integer::from(p.keep_bits_ref(64)) == ones;
    let q = match q {
        None if named_group => Some(Integer::from(&p - 1u32) >> 1u32),
        q => q,
    };
    Parsed::Key(Key::new(KeyData::Dh { p, g, q, y }))
}

/// The EC curve named (or described) by the algorithm parameters.
pub(super) fn ec_curve(params: Option<Tlv<'_>>) -> Result<(&'static str, usize), Box<Parsed>> {
    let params = params.ok_or_else(|| Box::new(bad()))?;
    let r = match params.tag {
        der::OID => {
            let oid = der::oid_to_string(params.content);
            CURVES
                .iter()
                .find(|c| c.0 == oid)
                .map(|c| (c.1, c.2))
                .ok_or_else(|| Parsed::Unsupported(format!("Curve {oid} is not supported")))
        }
        der::SEQUENCE => {
            let mut r = Reader::new(params.content);
            let p = (|| {
                r.integer()?; // version
                let mut field = r.sequence()?;
                (der::oid_to_string(field.oid()?) == PRIME_FIELD).then_some(())?;
                field.integer()
            })();
            p.as_ref()
                .and_then(explicit_curve)
                .and_then(curve_by_name)
                .map(|c| (c.1, c.2))
                .ok_or_else(|| {
                    Parsed::Unparseable("explicit EC parameters of an unknown curve".into())
                })
        }
        _ => Err(bad()),
    };
    r.map_err(Box::new)
}

/// An EC point (SEC 1 encoding) on a curve as a key: checked to be on the curve,
/// decompressed when compressed. `spki` is the input SPKI, hashed as given for a
/// compressed point this crate cannot decompress (P-224 and unlisted curves).
pub(super) fn ec_point(
    curve: &'static str,
    len: usize,
    point: &[u8],
    spki: Option<&[u8]>,
) -> Parsed {
    let invalid = || Parsed::Unparseable("Invalid EC key".into());
    match point.first() {
        Some(4) if point.len() == 1 + 2 * len => {
            let x = Integer::from_digits(&point[1..=len], rug::integer::Order::Msf);
            let y = Integer::from_digits(&point[1 + len..], rug::integer::Order::Msf);
            if !super::curves::on_curve(curve, &x, &y) {
                return invalid();
            }
            Parsed::Key(Key::new(KeyData::Ec {
                curve,
                x,
                y: Some(y),
            }))
        }
        Some(&prefix @ (2 | 3)) if point.len() == 1 + len => {
            let x = Integer::from_digits(&point[1..], rug::integer::Order::Msf);
            match super::curves::decompress(curve, &x, prefix == 3) {
                Some(y) => Parsed::Key(Key::new(KeyData::Ec {
                    curve,
                    x,
                    y: Some(y),
                })),
                None if curve == "p224" => Parsed::Key(Key {
                    data: KeyData::Ec { curve, x, y: None },
                    spki_sha256: spki.map(|s| Sha256::digest(s).into()),
                }),
                None => invalid(),
            }
        }
        _ => invalid(),
    }
}

fn ec_key(params: Option<Tlv<'_>>, point: &[u8], spki: &[u8]) -> Parsed {
    match ec_curve(params) {
        Ok((curve, len)) => ec_point(curve, len, point, Some(spki)),
        Err(p) => *p,
    }
}

fn alg(oid: &str, params: Option<Vec<u8>>) -> Vec<u8> {
    let mut content = der::tlv(der::OID, &der::oid_from_str(oid));
    if let Some(p) = params {
        content.extend_from_slice(&p);
    }
    der::tlv(der::SEQUENCE, &content)
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    der::tlv(der::SEQUENCE, &parts.concat())
}

fn padded(v: &Integer, len: usize) -> Option<Vec<u8>> {
    let d = v.to_digits::<u8>(rug::integer::Order::Msf);
    if d.len() > len {
        return None;
    }
    let mut out = vec![0; len - d.len()];
    out.extend_from_slice(&d);
    Some(out)
}

/// The SubjectPublicKeyInfo DER OpenSSL writes for a key; `None` for a compressed EC point.
pub(super) fn encode(data: &KeyData) -> Option<Vec<u8>> {
    let (alg, key) = match data {
        KeyData::Rsa { n, e, .. } => (
            alg(RSA, Some(der::tlv(der::NULL, &[]))),
            seq(&[der::integer(n), der::integer(e)]),
        ),
        KeyData::Dsa { p, q, g, y } => (
            alg(
                DSA,
                Some(seq(&[der::integer(p), der::integer(q), der::integer(g)])),
            ),
            der::integer(y),
        ),
        KeyData::Ec { curve, x, y } => {
            let (oid, _, len) = curve_by_name(curve)?;
            let mut point = vec![4];
            point.extend(padded(x, len)?);
            point.extend(padded(y.as_ref()?, len)?);
            (
                alg(EC, Some(der::tlv(der::OID, &der::oid_from_str(oid)))),
                point,
            )
        }
        KeyData::Raw { curve, bytes } => {
            let oid = RAW_CURVES.iter().find(|c| c.1 == *curve)?.0;
            (alg(oid, None), bytes.clone())
        }
        KeyData::Dh { p, g, q, y } => match q {
            None => (
                alg(DH, Some(seq(&[der::integer(p), der::integer(g)]))),
                der::integer(y),
            ),
            Some(q) => (
                alg(
                    DHX,
                    Some(seq(&[der::integer(p), der::integer(g), der::integer(q)])),
                ),
                der::integer(y),
            ),
        },
    };
    Some(seq(&[alg, der::bit_string(&key)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_spki_round_trip() {
        let data = KeyData::Rsa {
            n: Integer::from(3233),
            e: Integer::from(17),
            private: None,
        };
        let enc = encode(&data).unwrap();
        match parse_spki(&enc) {
            Parsed::Key(k) => assert_eq!(k.data, data),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn p256_prime_from_its_formula() {
        // FIPS 186-4 D.1.2.3 gives p256 in hex
        let p = Integer::from_str_radix(
            "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
            16,
        )
        .unwrap();
        assert_eq!(explicit_curve(&p), Some("p256"));
    }

    #[test]
    fn unknown_algorithm_is_unsupported() {
        let enc = seq(&[alg("1.2.3.4", None), der::bit_string(&[1, 2])]);
        assert_eq!(
            parse_spki(&enc),
            Parsed::Unsupported("Unknown key type: 1.2.3.4".into())
        );
    }
}
