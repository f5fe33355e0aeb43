//! Subject public keys: algorithm, size, RSA modulus and exponent, EC curve and point, and
//! the NIST curve parameters Go's `elliptic.CurveParams` carries (for the Go JSON).

use x509_parser::prelude::SubjectPublicKeyInfo;
use x509_parser::public_key::PublicKey;

use super::num::be_to_decimal;

/// Key algorithm, numbered as Go's `x509.PublicKeyAlgorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Go `RSA` = 1.
    Rsa,
    /// Go `DSA` = 2.
    Dsa,
    /// Go `ECDSA` = 3.
    Ecdsa,
    /// Go `Ed25519` = 4.
    Ed25519,
    /// Anything else (Go `UnknownPublicKeyAlgorithm` = 0).
    Other,
}

impl KeyKind {
    /// Go's integer value.
    pub fn go_value(self) -> u8 {
        match self {
            KeyKind::Rsa => 1,
            KeyKind::Dsa => 2,
            KeyKind::Ecdsa => 3,
            KeyKind::Ed25519 => 4,
            KeyKind::Other => 0,
        }
    }

    /// Short name (`RSA`, `DSA`, `ECDSA`, `Ed25519`, `other`).
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA",
            KeyKind::Dsa => "DSA",
            KeyKind::Ecdsa => "ECDSA",
            KeyKind::Ed25519 => "Ed25519",
            KeyKind::Other => "other",
        }
    }
}

/// An RSA public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaKey {
    /// Modulus, big-endian, without leading zero bytes.
    pub modulus: Vec<u8>,
    /// Modulus as decimal text.
    pub modulus_decimal: String,
    /// Exponent, big-endian, without leading zero bytes.
    pub exponent: Vec<u8>,
    /// Exponent as decimal text.
    pub exponent_decimal: String,
}

/// An elliptic-curve public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcKey {
    /// Go's curve name (`P-224`, `P-256`, `P-384`, `P-521`) or the dotted OID of another
    /// named curve; empty when the parameters are not a named curve.
    pub curve: String,
    /// X coordinate, big-endian (empty for a compressed or malformed point).
    pub x: Vec<u8>,
    /// Y coordinate, big-endian (empty for a compressed or malformed point).
    pub y: Vec<u8>,
    /// X as decimal text (`""` when absent).
    pub x_decimal: String,
    /// Y as decimal text (`""` when absent).
    pub y_decimal: String,
}

/// Facts about a subject public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The algorithm.
    pub kind: KeyKind,
    /// Size in bits: RSA modulus bits, curve size, 256 for Ed25519, DSA Y bits, else 0.
    pub bits: u32,
    /// RSA details.
    pub rsa: Option<RsaKey>,
    /// EC details.
    pub ec: Option<EcKey>,
    /// Ed25519 public key bytes.
    pub ed25519: Option<Vec<u8>>,
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_DSA: &str = "1.2.840.10040.4.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";

fn strip(b: &[u8]) -> Vec<u8> {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b[start..].to_vec()
}

fn bit_len(b: &[u8]) -> u32 {
    let b = &b[b.iter().position(|&x| x != 0).unwrap_or(b.len())..];
    match b.first() {
        None => 0,
        Some(f) => u32::try_from(b.len() - 1)
            .unwrap_or(u32::MAX)
            .saturating_mul(8)
            .saturating_add(8 - f.leading_zeros()),
    }
}

/// Analyse a SubjectPublicKeyInfo.
pub fn key_info(spki: &SubjectPublicKeyInfo<'_>) -> KeyInfo {
    let alg = spki.algorithm.algorithm.to_id_string();
    let mut info = KeyInfo {
        kind: KeyKind::Other,
        bits: 0,
        rsa: None,
        ec: None,
        ed25519: None,
    };
    match alg.as_str() {
        OID_RSA => {
            info.kind = KeyKind::Rsa;
            if let Ok(PublicKey::RSA(k)) = spki.parsed() {
                let modulus = strip(k.modulus);
                let exponent = strip(k.exponent);
                info.bits = bit_len(&modulus);
                info.rsa = Some(RsaKey {
                    modulus_decimal: be_to_decimal(&modulus),
                    exponent_decimal: be_to_decimal(&exponent),
                    modulus,
                    exponent,
                });
            }
        }
        OID_DSA => {
            info.kind = KeyKind::Dsa;
            if let Ok(PublicKey::DSA(y)) = spki.parsed() {
                info.bits = bit_len(y);
            }
        }
        OID_EC => {
            info.kind = KeyKind::Ecdsa;
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            let curve = Curve::from_oid(&curve_oid);
            let point = spki.subject_public_key.data.as_ref();
            let (x, y) = match (point.split_first(), curve) {
                (Some((4, rest)), Some(c)) if rest.len() == 2 * c.byte_len() => {
                    let (x, y) = rest.split_at(c.byte_len());
                    (strip(x), strip(y))
                }
                (Some((4, rest)), None) if rest.len() % 2 == 0 && !rest.is_empty() => {
                    let (x, y) = rest.split_at(rest.len() / 2);
                    (strip(x), strip(y))
                }
                _ => (Vec::new(), Vec::new()),
            };
            info.bits = match curve {
                Some(c) => c.bit_size,
                None => match point.split_first() {
                    Some((4, rest)) => (rest.len() * 4) as u32,
                    Some((2..=3, rest)) => (rest.len() * 8) as u32,
                    _ => 0,
                },
            };
            let have = !x.is_empty() || !y.is_empty() || point.first() == Some(&4);
            info.ec = Some(EcKey {
                curve: curve.map(|c| c.name.to_owned()).unwrap_or(curve_oid),
                x_decimal: if have {
                    be_to_decimal(&x)
                } else {
                    String::new()
                },
                y_decimal: if have {
                    be_to_decimal(&y)
                } else {
                    String::new()
                },
                x,
                y,
            });
        }
        OID_ED25519 => {
            info.kind = KeyKind::Ed25519;
            let k = spki.subject_public_key.data.as_ref();
            info.bits = u32::try_from(k.len().saturating_mul(8)).unwrap_or(u32::MAX);
            info.ed25519 = Some(k.to_vec());
        }
        _ => {}
    }
    info
}

/// A NIST curve as Go's `elliptic.CurveParams` describes it (hex of P, N, B, Gx, Gy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Curve {
    /// Go's name (`P-256`).
    pub name: &'static str,
    /// Dotted OID of the named curve.
    pub oid: &'static str,
    /// Field size in bits.
    pub bit_size: u32,
    /// Prime of the field (hex).
    pub p: &'static str,
    /// Order of the base point (hex).
    pub n: &'static str,
    /// Constant b of y² = x³ - 3x + b (hex).
    pub b: &'static str,
    /// Base point X (hex).
    pub gx: &'static str,
    /// Base point Y (hex).
    pub gy: &'static str,
}

impl Curve {
    /// Bytes of one coordinate.
    pub fn byte_len(&self) -> usize {
        (self.bit_size as usize).div_ceil(8)
    }

    /// The curve of a named-curve OID, if Go knows it.
    pub fn from_oid(oid: &str) -> Option<Curve> {
        CURVES.iter().copied().find(|c| c.oid == oid)
    }
}

/// The curves Go's x509 accepts (SEC 2 / FIPS 186 domain parameters).
pub const CURVES: [Curve; 4] = [
    Curve {
        name: "P-224",
        oid: "1.3.132.0.33",
        bit_size: 224,
        p: "ffffffffffffffffffffffffffffffff000000000000000000000001",
        n: "ffffffffffffffffffffffffffff16a2e0b8f03e13dd29455c5c2a3d",
        b: "b4050a850c04b3abf54132565044b0b7d7bfd8ba270b39432355ffb4",
        gx: "b70e0cbd6bb4bf7f321390b94a03c1d356c21122343280d6115c1d21",
        gy: "bd376388b5f723fb4c22dfe6cd4375a05a07476444d5819985007e34",
    },
    Curve {
        name: "P-256",
        oid: "1.2.840.10045.3.1.7",
        bit_size: 256,
        p: "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
        n: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
        b: "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
        gx: "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
        gy: "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
    },
    Curve {
        name: "P-384",
        oid: "1.3.132.0.34",
        bit_size: 384,
        p: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
        n: "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
        b: "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
        gx: "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7",
        gy: "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
    },
    Curve {
        name: "P-521",
        oid: "1.3.132.0.35",
        bit_size: 521,
        p: "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        n: "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
        b: "0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00",
        gx: "00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66",
        gy: "011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650",
    },
];
