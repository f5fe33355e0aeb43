//! Certificate facts for the TLS record and the passive-SSL store, read with x509-parser:
//! hashes of the DER, subject and issuer as Go's `pkix.Name.String()` prints them, serial,
//! validity, subject alternative names, public key (type, size, RSA modulus/exponent, EC
//! curve/point), CA flag and self-signature. Never panics on any input (fuzzed:
//! `fuzz/fuzz_targets/x509_cert.rs`).

mod key;
mod name;
pub(crate) mod num;
mod openssl;

use std::net::IpAddr;

use sha1::{Digest, Sha1};
use sha2::Sha256;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

pub use key::{Curve, EcKey, KeyInfo, KeyKind, RsaKey, CURVES};
pub use name::{go_quote, GoName, NameAttr};
pub use num::{be_to_decimal, der_int_decimal, der_int_hex, rfc3339_utc};
pub use openssl::{openssl_view, OpensslView};

pub(crate) use key::key_info;

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The bytes are not a DER X.509 certificate.
    #[error("not an X.509 certificate: {0}")]
    Der(String),
    /// A certificate followed by more bytes (Go's parser refuses these too).
    #[error("{0} bytes after the certificate")]
    Trailing(usize),
}

/// What we learn from one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// SHA-1 of the DER, lowercase hex.
    pub sha1: String,
    /// SHA-256 of the DER, lowercase hex.
    pub sha256: String,
    /// Subject as Go's `pkix.Name.String()`.
    pub subject: String,
    /// Issuer as Go's `pkix.Name.String()`.
    pub issuer: String,
    /// Subject attributes in certificate order.
    pub subject_name: GoName,
    /// Issuer attributes in certificate order.
    pub issuer_name: GoName,
    /// Serial number, signed decimal.
    pub serial: String,
    /// Serial number, lowercase hex of its value without leading zeros (`-` if negative).
    pub serial_hex: String,
    /// Start of validity, RFC 3339 UTC.
    pub not_before: String,
    /// End of validity, RFC 3339 UTC.
    pub not_after: String,
    /// Start of validity, Unix seconds.
    pub not_before_unix: i64,
    /// End of validity, Unix seconds.
    pub not_after_unix: i64,
    /// SAN dNSName entries.
    pub dns_names: Vec<String>,
    /// SAN iPAddress entries (4 or 16 bytes; others are skipped).
    pub ip_addresses: Vec<IpAddr>,
    /// SAN rfc822Name entries.
    pub emails: Vec<String>,
    /// SAN uniformResourceIdentifier entries.
    pub uris: Vec<String>,
    /// The public key.
    pub key: KeyInfo,
    /// basicConstraints cA.
    pub is_ca: bool,
    /// Subject and issuer are the same bytes (what the analyzer calls self-signed).
    pub self_issued: bool,
    /// For a self-issued certificate, whether its signature verifies with its own key
    /// (x509-parser's `verify_signature` with ring: RSA PKCS#1 v1.5, RSA-PSS, ECDSA P-256/
    /// P-384, Ed25519); `None` when not self-issued. An algorithm ring does not offer counts
    /// as not verified.
    pub self_signature_valid: Option<bool>,
    /// SHA-256 of the SubjectPublicKeyInfo DER, lowercase hex (the analyzer's key hash).
    pub spki_sha256: String,
}

impl CertInfo {
    /// Self-signed: self-issued and the signature verifies with its own key.
    pub fn self_signed(&self) -> bool {
        self.self_issued && self.self_signature_valid == Some(true)
    }
}

/// Parse one DER certificate, refusing trailing bytes.
pub(crate) fn parse_x509(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| CertError::Der(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::Trailing(rest.len()));
    }
    Ok(cert)
}

/// SHA-1 of bytes, lowercase hex.
pub fn sha1_hex(b: &[u8]) -> String {
    hex::encode(Sha1::digest(b))
}

/// SHA-256 of bytes, lowercase hex.
pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// SAN entries of a certificate: DNS names, IPs, emails, URIs.
pub(crate) type Sans = (Vec<String>, Vec<IpAddr>, Vec<String>, Vec<String>);

/// The subject alternative names (empty when absent or unreadable).
pub(crate) fn sans(cert: &X509Certificate<'_>) -> Sans {
    let mut out: Sans = Default::default();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for gn in &san.value.general_names {
            match gn {
                GeneralName::DNSName(s) => out.0.push((*s).to_owned()),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        out.1.push(IpAddr::from(a));
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        out.1.push(IpAddr::from(a));
                    }
                }
                GeneralName::RFC822Name(s) => out.2.push((*s).to_owned()),
                GeneralName::URI(s) => out.3.push((*s).to_owned()),
                _ => {}
            }
        }
    }
    out
}

/// Read the facts of one DER certificate.
pub fn parse(der: &[u8]) -> Result<CertInfo, CertError> {
    let cert = parse_x509(der)?;
    let subject_name = GoName::from_x509(cert.subject());
    let issuer_name = GoName::from_x509(cert.issuer());
    let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();
    let self_signature_valid = self_issued.then(|| cert.verify_signature(None).is_ok());
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let (dns_names, ip_addresses, emails, uris) = sans(&cert);
    let validity = cert.validity();
    let not_before_unix = validity.not_before.timestamp();
    let not_after_unix = validity.not_after.timestamp();
    Ok(CertInfo {
        sha1: sha1_hex(der),
        sha256: sha256_hex(der),
        subject: subject_name.go_string(),
        issuer: issuer_name.go_string(),
        subject_name,
        issuer_name,
        serial: der_int_decimal(cert.raw_serial()),
        serial_hex: der_int_hex(cert.raw_serial()),
        not_before: rfc3339_utc(not_before_unix),
        not_after: rfc3339_utc(not_after_unix),
        not_before_unix,
        not_after_unix,
        dns_names,
        ip_addresses,
        emails,
        uris,
        key: key_info(cert.public_key()),
        is_ca,
        self_issued,
        self_signature_valid,
        spki_sha256: sha256_hex(cert.public_key().raw),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(&[]).is_err());
        assert!(parse(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        assert!(parse(&[0xff; 64]).is_err());
    }
}
