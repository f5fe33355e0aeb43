//! Reading public keys: PEM (several blocks per file) and DER (X.509 certificates,
//! PKCS#10 requests, PKCS#1 RSA public and private keys, PKCS#8, SubjectPublicKeyInfo,
//! SEC 1 EC and OpenSSL DSA private keys), OpenSSH public keys (and the public half of
//! unencrypted `openssh-key-v1` private keys) and hex moduli.
//!
//! Sans-IO: bytes in, [`Parsed`] values out. An input that is a key but cannot be read is
//! [`Parsed::Unparseable`]; a key of a kind badkeys does not check (GOST, SM2, unknown
//! algorithms, encrypted private keys) is [`Parsed::Unsupported`]. Like badkeys (through
//! Python's `cryptography`), RSA keys with n < 3, e < 3 or e ≥ n are unparseable.
//!
//! Every readable key gets `spkisha256`: the SHA-256 of its SubjectPublicKeyInfo as
//! OpenSSL re-encodes it (rsaEncryption with NULL parameters, named curves, uncompressed
//! EC points), which is what badkeys prints.

mod curves;
mod derive;
mod pem;
mod private;
mod spki;
mod ssh;

use rug::Integer;
use sha2::{Digest, Sha256};

pub use spki::parse_spki;

/// A public key's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyData {
    Rsa {
        n: Integer,
        e: Integer,
        /// The private numbers when the input was a private key.
        private: Option<RsaPrivate>,
    },
    Dsa {
        p: Integer,
        q: Integer,
        g: Integer,
        y: Integer,
    },
    /// A Weierstrass curve point. `y` is `None` for a compressed point.
    Ec {
        curve: &'static str,
        x: Integer,
        y: Option<Integer>,
    },
    /// Ed25519, X25519, Ed448 or X448: the raw public key bytes.
    Raw { curve: &'static str, bytes: Vec<u8> },
    Dh {
        p: Integer,
        g: Integer,
        q: Option<Integer>,
        y: Integer,
    },
}

/// An RSA private key's secret numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaPrivate {
    pub d: Integer,
    pub p: Integer,
    pub q: Integer,
}

/// A readable public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub data: KeyData,
    /// SHA-256 of the SubjectPublicKeyInfo DER; `None` for bare hex moduli.
    pub spki_sha256: Option<[u8; 32]>,
}

/// What one key found in the input turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Key(Key),
    Unparseable(String),
    Unsupported(String),
}

impl Key {
    /// A key whose fingerprint is computed from its canonical SPKI encoding.
    pub fn new(data: KeyData) -> Self {
        let spki = spki::encode(&data);
        let spki_sha256 = spki.map(|s| Sha256::digest(&s).into());
        Key { data, spki_sha256 }
    }

    /// The SubjectPublicKeyInfo DER as OpenSSL writes it (what `spki_sha256` hashes);
    /// `None` for a compressed EC point.
    pub fn spki_der(&self) -> Option<Vec<u8>> {
        spki::encode(&self.data)
    }

    /// badkeys' key type name: `rsa`, `dsa`, `ec` (Weierstrass and Edwards/Montgomery
    /// curves alike) or `dh`.
    pub fn type_name(&self) -> &'static str {
        match self.data {
            KeyData::Rsa { .. } => "rsa",
            KeyData::Dsa { .. } => "dsa",
            KeyData::Ec { .. } | KeyData::Raw { .. } => "ec",
            KeyData::Dh { .. } => "dh",
        }
    }

    /// The size badkeys prints (RSA: bits of n; DSA: bits of p); none for other kinds.
    pub fn bits(&self) -> Option<u32> {
        match &self.data {
            KeyData::Rsa { n, .. } => Some(n.significant_bits()),
            KeyData::Dsa { p, .. } => Some(p.significant_bits()),
            _ => None,
        }
    }

    /// The curve name badkeys prints (`p256`, `secp256k1`, `ed25519`...).
    pub fn curve(&self) -> Option<&'static str> {
        match &self.data {
            KeyData::Ec { curve, .. } | KeyData::Raw { curve, .. } => Some(curve),
            _ => None,
        }
    }

    /// The number the blocklist hashes, big-endian without leading zero bytes: RSA n,
    /// EC x, DSA and DH y, the raw bytes of Edwards/Montgomery keys.
    pub fn blocklist_value(&self) -> Vec<u8> {
        let v = match &self.data {
            KeyData::Rsa { n, .. } => return n.to_digits(rug::integer::Order::Msf),
            KeyData::Ec { x, .. } => x,
            KeyData::Dsa { y, .. } | KeyData::Dh { y, .. } => y,
            KeyData::Raw { bytes, .. } => {
                let skip = bytes.iter().take_while(|&&b| b == 0).count();
                return bytes[skip..].to_vec();
            }
        };
        v.to_digits(rug::integer::Order::Msf)
    }
}

/// An RSA public key after the checks Python's `cryptography` makes when loading one.
pub(crate) fn rsa_key(n: Integer, e: Integer, private: Option<RsaPrivate>) -> Parsed {
    if n < 3 {
        return Parsed::Unparseable("n must be >= 3.".into());
    }
    if e < 3 || e >= n {
        return Parsed::Unparseable("e must be >= 3 and < n.".into());
    }
    Parsed::Key(Key::new(KeyData::Rsa { n, e, private }))
}

/// Every key in an input: each PEM block, else the whole input as DER, else each OpenSSH
/// public key line. Empty when nothing looks like a key (badkeys' `notfound`).
pub fn parse_keys(input: &[u8]) -> Vec<Parsed> {
    let blocks = pem::blocks(input);
    if !blocks.is_empty() {
        return blocks.into_iter().filter_map(pem::parse_block).collect();
    }
    if looks_like_der(input) {
        return vec![parse_der(input)];
    }
    ssh::lines(input).map(ssh::parse_line).collect()
}

/// One complete DER SEQUENCE (and nothing after it): a hex line starting with `0` is
/// not one.
fn looks_like_der(input: &[u8]) -> bool {
    let mut r = crate::der::Reader::new(input);
    r.peek_tag() == Some(crate::der::SEQUENCE) && r.any().is_some() && r.is_empty()
}

/// One DER structure of any supported kind (certificate, request, SPKI, PKCS#1, PKCS#8,
/// SEC 1 or OpenSSL DSA private key), told apart by its shape.
pub fn parse_der(der: &[u8]) -> Parsed {
    if let Some(p) = spki::try_certificate(der) {
        return p;
    }
    if let Some(p) = spki::try_csr(der) {
        return p;
    }
    if let Some(p) = spki::try_spki(der) {
        return p;
    }
    if let Some(p) = private::try_private(der) {
        return p;
    }
    if let Some(p) = spki::try_rsa_public(der) {
        return p;
    }
    Parsed::Unparseable("Error decoding DER/ASN.1 key structure".into())
}

/// An X.509 certificate's key (DER); anything else is unparseable.
pub fn parse_certificate(der: &[u8]) -> Parsed {
    spki::try_certificate(der)
        .unwrap_or_else(|| Parsed::Unparseable("Error decoding DER/ASN.1 certificate".into()))
}

/// One line of badkeys' `--crt-lines` input: a base64 DER certificate, then optionally a
/// description after the first `,`, `;` or space. Returns the key and the description.
pub fn parse_crt_line(line: &str) -> (Parsed, Option<&str>) {
    use base64::Engine;
    let line = line.trim();
    let (b64, desc) = match line.split_once([',', ';', ' ']) {
        Some((b, d)) => (b, Some(d)),
        None => (line, None),
    };
    let parsed = match base64::engine::general_purpose::STANDARD.decode(b64) {
        Ok(der) => parse_certificate(&der),
        Err(_) => Parsed::Unparseable("Invalid base64 certificate".into()),
    };
    (parsed, desc)
}

/// One hex modulus line as badkeys' `-m` reads it (`Modulus=` prefix allowed, `0x`
/// allowed, surrounding blanks ignored). `None` for a line that is not a positive hex
/// number.
pub fn parse_hex_modulus(line: &str) -> Option<Integer> {
    let mut s = line.trim();
    if let Some(rest) = s.strip_prefix("Modulus=") {
        s = rest.trim();
    }
    if let Some(rest) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        s = rest;
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let n = Integer::from_str_radix(s, 16).ok()?;
    (n > 0).then_some(n)
}

/// An RSA public key from its modulus and exponent in decimal (as a store keeps them),
/// with the same checks as [`parse_keys`]: `None` when n is not a decimal number,
/// otherwise [`Parsed::Key`] or [`Parsed::Unparseable`].
pub fn rsa_from_decimal(n: &str, e: u64) -> Option<Parsed> {
    let n = n.trim();
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = Integer::from_str_radix(n, 10).ok()?;
    Some(rsa_key(n, Integer::from(e), None))
}

/// Every RSA modulus in an input, for the batch GCD: PEM/DER keys and certificates, OpenSSH
/// keys, or, when none of those is found, hex moduli one per line (lines that are not hex
/// are skipped). Returns the moduli and the number of keys or lines that could not be read.
pub fn rsa_moduli(input: &[u8]) -> (Vec<Integer>, usize) {
    let keys = parse_keys(input);
    let mut moduli = Vec::new();
    let mut bad = 0;
    if keys.is_empty() {
        for line in input.split(|&b| b == b'\n') {
            let text = String::from_utf8_lossy(line);
            if text.trim().is_empty() {
                continue;
            }
            match parse_hex_modulus(&text) {
                Some(n) => moduli.push(n),
                None => bad += 1,
            }
        }
        return (moduli, bad);
    }
    for k in keys {
        match k {
            Parsed::Key(Key {
                data: KeyData::Rsa { n, .. },
                ..
            }) => moduli.push(n),
            Parsed::Key(_) => {}
            Parsed::Unparseable(_) | Parsed::Unsupported(_) => bad += 1,
        }
    }
    (moduli, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_modulus_lines() {
        assert_eq!(parse_hex_modulus("Modulus=FF\n"), Some(Integer::from(255)));
        assert_eq!(parse_hex_modulus(" 0x10 "), Some(Integer::from(16)));
        assert_eq!(parse_hex_modulus("0"), None);
        assert_eq!(parse_hex_modulus("xyz"), None);
        assert_eq!(parse_hex_modulus(""), None);
    }

    #[test]
    fn rsa_from_decimal_strings() {
        // 3233 = 61 * 53
        match rsa_from_decimal(" 3233 ", 17) {
            Some(Parsed::Key(k)) => {
                assert_eq!(k.bits(), Some(12));
                assert!(k.spki_sha256.is_some());
                match k.data {
                    KeyData::Rsa { n, e, private } => {
                        assert_eq!((n, e), (Integer::from(3233), Integer::from(17)));
                        assert!(private.is_none());
                    }
                    other => panic!("not RSA: {other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            rsa_from_decimal("3233", 1),
            Some(Parsed::Unparseable(_))
        ));
        assert_eq!(rsa_from_decimal("0x10", 3), None);
        assert_eq!(rsa_from_decimal("", 3), None);
    }

    #[test]
    fn crt_line_description() {
        let (p, d) = parse_crt_line("!!notbase64 host.example:443\n");
        assert!(matches!(p, Parsed::Unparseable(_)));
        assert_eq!(d, Some("host.example:443"));
        let (_, d) = parse_crt_line("AAAA");
        assert_eq!(d, None);
    }

    #[test]
    fn moduli_from_hex_lines() {
        let (m, bad) = rsa_moduli(b"0f\n\nzz\n1909\n");
        assert_eq!(m, vec![Integer::from(15), Integer::from(0x1909)]);
        assert_eq!(bad, 1);
    }

    #[test]
    fn rsa_loading_rules() {
        assert!(matches!(
            rsa_key(Integer::from(2), Integer::from(3), None),
            Parsed::Unparseable(_)
        ));
        assert!(matches!(
            rsa_key(Integer::from(35), Integer::from(35), None),
            Parsed::Unparseable(_)
        ));
        assert!(matches!(
            rsa_key(Integer::from(35), Integer::from(1), None),
            Parsed::Unparseable(_)
        ));
        assert!(matches!(
            rsa_key(Integer::from(35), Integer::from(5), None),
            Parsed::Key(_)
        ));
    }
}
