//! Certificates as the reference record carries them: the JSON Go's
//! `json.Marshal(x509.Certificate)` produces (Go 1.12 field set, which analyzer-d4-passivessl
//! decodes back into an `x509.Certificate`), preceded by `CertHash` (SHA-1 of the DER) and our
//! `CertSHA256`.
//!
//! Big integers (`SerialNumber`, RSA `N`, EC `X`/`Y` and curve parameters) are unquoted JSON
//! numbers of any size, as Go's `*big.Int` marshals them: the object is built as text and
//! returned as a [`RawValue`], so no float conversion touches them.
//!
//! Ed25519 keys are written as Go 1.13 and later do (`PublicKeyAlgorithm` 4, the key as base64);
//! Go 1.12 did not know them.
//!
//! Known approximations of Go's output (none of them in a field the analyzer reads):
//! `PublicKey` is `null` for DSA and for EC keys on curves Go does not know (Go refuses such
//! certificates); RSA-PSS signature algorithms are told apart by the first hash OID in the
//! parameters; `URIs` use a simplified `url.Parse` (see [`enc::url`]); `UnhandledCritical
//! Extensions` uses Go 1.12's list of handled extensions.

mod enc;
mod ext;

use serde_json::value::RawValue;

use crate::cert::{
    be_to_decimal, der_int_decimal, key_info, parse_x509, rfc3339_utc, sans, sha1_hex, sha256_hex,
    CertError, Curve, GoName, KeyInfo, KeyKind,
};

/// Go's `x509.SignatureAlgorithm` value of a signature AlgorithmIdentifier.
pub fn signature_algorithm(oid: &str, params: &[u8]) -> u8 {
    match oid {
        "1.2.840.113549.1.1.2" => 1,                      // MD2WithRSA
        "1.2.840.113549.1.1.4" => 2,                      // MD5WithRSA
        "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" => 3,    // SHA1WithRSA
        "1.2.840.113549.1.1.11" => 4,                     // SHA256WithRSA
        "1.2.840.113549.1.1.12" => 5,                     // SHA384WithRSA
        "1.2.840.113549.1.1.13" => 6,                     // SHA512WithRSA
        "1.2.840.10040.4.3" => 7,                         // DSAWithSHA1
        "2.16.840.1.101.3.4.3.2" => 8,                    // DSAWithSHA256
        "1.2.840.10045.4.1" => 9,                         // ECDSAWithSHA1
        "1.2.840.10045.4.3.2" => 10,                      // ECDSAWithSHA256
        "1.2.840.10045.4.3.3" => 11,                      // ECDSAWithSHA384
        "1.2.840.10045.4.3.4" => 12,                      // ECDSAWithSHA512
        "1.2.840.113549.1.1.10" => pss_algorithm(params), // SHA{256,384,512}WithRSAPSS
        "1.3.101.112" => 16,                              // PureEd25519
        _ => 0,
    }
}

/// RSASSA-PSS: 13/14/15 for SHA-256/384/512 (the first hash OID in the parameters).
fn pss_algorithm(params: &[u8]) -> u8 {
    // DER of the OIDs 2.16.840.1.101.3.4.2.{1,2,3} without the last arc.
    const PREFIX: [u8; 10] = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
    params
        .windows(PREFIX.len() + 1)
        .find(|w| w[..PREFIX.len()] == PREFIX)
        .map_or(0, |w| match w[PREFIX.len()] {
            1 => 13,
            2 => 14,
            3 => 15,
            _ => 0,
        })
}

fn name_json(n: &GoName) -> String {
    let names: Vec<String> = n
        .names
        .iter()
        .map(|a| {
            enc::object(&[
                ("Type", enc::oid(&a.oid)),
                (
                    "Value",
                    a.value
                        .as_deref()
                        .map_or_else(|| "null".to_owned(), enc::string),
                ),
            ])
        })
        .collect();
    let names = if names.is_empty() {
        "null".to_owned()
    } else {
        format!("[{}]", names.join(","))
    };
    enc::object(&[
        ("Country", enc::strings(&n.values("2.5.4.6"))),
        ("Organization", enc::strings(&n.values("2.5.4.10"))),
        ("OrganizationalUnit", enc::strings(&n.values("2.5.4.11"))),
        ("Locality", enc::strings(&n.values("2.5.4.7"))),
        ("Province", enc::strings(&n.values("2.5.4.8"))),
        ("StreetAddress", enc::strings(&n.values("2.5.4.9"))),
        ("PostalCode", enc::strings(&n.values("2.5.4.17"))),
        ("SerialNumber", enc::string(n.last("2.5.4.5"))),
        ("CommonName", enc::string(n.last("2.5.4.3"))),
        ("Names", names),
        ("ExtraNames", "null".to_owned()),
    ])
}

fn hex_decimal(h: &str) -> String {
    be_to_decimal(&hex::decode(h).unwrap_or_default())
}

/// Go's `elliptic.CurveParams` of a curve.
pub fn curve_json(c: &Curve) -> String {
    enc::object(&[
        ("P", hex_decimal(c.p)),
        ("N", hex_decimal(c.n)),
        ("B", hex_decimal(c.b)),
        ("Gx", hex_decimal(c.gx)),
        ("Gy", hex_decimal(c.gy)),
        ("BitSize", c.bit_size.to_string()),
        ("Name", enc::string(c.name)),
    ])
}

fn public_key_json(k: &KeyInfo) -> String {
    match k.kind {
        KeyKind::Rsa => match &k.rsa {
            Some(r) => enc::object(&[
                ("N", r.modulus_decimal.clone()),
                ("E", r.exponent_decimal.clone()),
            ]),
            None => "null".to_owned(),
        },
        KeyKind::Ecdsa => match &k.ec {
            Some(e) if !e.x_decimal.is_empty() => match Curve::from_oid_or_name(&e.curve) {
                Some(c) => enc::object(&[
                    ("Curve", curve_json(&c)),
                    ("X", e.x_decimal.clone()),
                    ("Y", e.y_decimal.clone()),
                ]),
                None => "null".to_owned(),
            },
            _ => "null".to_owned(),
        },
        KeyKind::Ed25519 => enc::bytes(k.ed25519.as_deref()),
        KeyKind::Dsa | KeyKind::Other => "null".to_owned(),
    }
}

impl Curve {
    fn from_oid_or_name(s: &str) -> Option<Curve> {
        crate::cert::CURVES
            .iter()
            .copied()
            .find(|c| c.name == s || c.oid == s)
    }
}

/// The certificate as Go's `json.Marshal` of the reference's `certMapElm` (plus
/// `CertSHA256`): `{"CertHash": ..., "CertSHA256": ..., "Raw": ..., ...}`.
pub fn certificate_json(der: &[u8]) -> Result<Box<RawValue>, CertError> {
    let cert = parse_x509(der)?;
    let tbs = &cert.tbs_certificate;
    let key = key_info(cert.public_key());
    let (dns, ips, emails, uris) = sans(&cert);
    let x = ext::read(&cert, &dns, &ips, &emails, &uris);
    let sig_params = cert
        .signature_algorithm
        .parameters
        .as_ref()
        .map_or(&[][..], |p| p.data);
    let version = u64::from(tbs.version.0) + 1;
    let fields: Vec<(&str, String)> = vec![
        ("CertHash", enc::string(&sha1_hex(der))),
        ("CertSHA256", enc::string(&sha256_hex(der))),
        ("Raw", enc::bytes(Some(der))),
        ("RawTBSCertificate", enc::bytes(Some(tbs.as_ref()))),
        (
            "RawSubjectPublicKeyInfo",
            enc::bytes(Some(cert.public_key().raw)),
        ),
        ("RawSubject", enc::bytes(Some(cert.subject().as_raw()))),
        ("RawIssuer", enc::bytes(Some(cert.issuer().as_raw()))),
        ("Signature", enc::bytes(Some(&cert.signature_value.data))),
        (
            "SignatureAlgorithm",
            signature_algorithm(
                &cert.signature_algorithm.algorithm.to_id_string(),
                sig_params,
            )
            .to_string(),
        ),
        ("PublicKeyAlgorithm", key.kind.go_value().to_string()),
        ("PublicKey", public_key_json(&key)),
        ("Version", version.to_string()),
        ("SerialNumber", der_int_decimal(cert.raw_serial())),
        ("Issuer", name_json(&GoName::from_x509(cert.issuer()))),
        ("Subject", name_json(&GoName::from_x509(cert.subject()))),
        (
            "NotBefore",
            enc::string(&rfc3339_utc(cert.validity().not_before.timestamp())),
        ),
        (
            "NotAfter",
            enc::string(&rfc3339_utc(cert.validity().not_after.timestamp())),
        ),
        ("KeyUsage", x.key_usage.to_string()),
        ("Extensions", x.extensions),
        ("ExtraExtensions", "null".to_owned()),
        (
            "UnhandledCriticalExtensions",
            enc::oids(&x.unhandled_critical),
        ),
        ("ExtKeyUsage", x.ext_key_usage),
        ("UnknownExtKeyUsage", enc::oids(&x.unknown_ext_key_usage)),
        (
            "BasicConstraintsValid",
            x.basic_constraints_valid.to_string(),
        ),
        ("IsCA", x.is_ca.to_string()),
        ("MaxPathLen", x.max_path_len.to_string()),
        ("MaxPathLenZero", x.max_path_len_zero.to_string()),
        ("SubjectKeyId", enc::bytes(x.subject_key_id.as_deref())),
        ("AuthorityKeyId", enc::bytes(x.authority_key_id.as_deref())),
        ("OCSPServer", enc::strings(&x.ocsp_server)),
        (
            "IssuingCertificateURL",
            enc::strings(&x.issuing_certificate_url),
        ),
        ("DNSNames", enc::strings(&dns)),
        ("EmailAddresses", enc::strings(&emails)),
        ("IPAddresses", enc::ips(&ips)),
        ("URIs", enc::urls(&uris)),
        (
            "PermittedDNSDomainsCritical",
            x.name_constraints_critical.to_string(),
        ),
        ("PermittedDNSDomains", enc::strings(&x.nc.permitted_dns)),
        ("ExcludedDNSDomains", enc::strings(&x.nc.excluded_dns)),
        ("PermittedIPRanges", x.nc.permitted_ip_json()),
        ("ExcludedIPRanges", x.nc.excluded_ip_json()),
        (
            "PermittedEmailAddresses",
            enc::strings(&x.nc.permitted_email),
        ),
        ("ExcludedEmailAddresses", enc::strings(&x.nc.excluded_email)),
        ("PermittedURIDomains", enc::strings(&x.nc.permitted_uri)),
        ("ExcludedURIDomains", enc::strings(&x.nc.excluded_uri)),
        (
            "CRLDistributionPoints",
            enc::strings(&x.crl_distribution_points),
        ),
        ("PolicyIdentifiers", enc::oids(&x.policy_identifiers)),
    ];
    let text = enc::object(&fields);
    RawValue::from_string(text).map_err(|e| CertError::Der(format!("JSON encoding: {e}")))
}
