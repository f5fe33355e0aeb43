//! Certificates made in the test with rcgen (RSA 2048 from OpenSSL, ECDSA P-256 and P-384),
//! a CA and a leaf, SANs, serials above 2^64 and names that need escaping. Expected values
//! come from the test's own inputs, from the `openssl` CLI on the DER, or from the OpenSSL
//! library (hashes, modulus, curve parameters): never from the code under test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use base64::Engine as _;
use d4_tls::cert::{self, KeyKind};
use d4_tls::gojson::certificate_json;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::EcGroup;
use openssl::hash::{hash, MessageDigest};
use openssl::nid::Nid;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    SerialNumber, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
    PKCS_RSA_SHA256,
};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Serial of the CA: 0x0123456789abcdef0123 (> 2^64).
const CA_SERIAL: [u8; 10] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23];
/// Serial of the leaf: 0x7f followed by 15 bytes of 0xee (> 2^64, 16 bytes).
fn leaf_serial() -> Vec<u8> {
    let mut s = vec![0x7f];
    s.extend_from_slice(&[0xee; 15]);
    s
}

/// A CN that needs every kind of Go/RFC 2253 escaping we can also check with OpenSSL.
const TRICKY_CN: &str = "#lead, a+b \"q\" <x>; y\\z trail ";
const TRICKY_CN_ESCAPED: &str = "\\#lead\\, a\\+b \\\"q\\\" \\<x\\>\\; y\\\\z trail\\ ";

struct Made {
    der: Vec<u8>,
    key: KeyPair,
    params: CertificateParams,
}

fn key_for(alg: &'static SignatureAlgorithm) -> KeyPair {
    if alg == &PKCS_RSA_SHA256 {
        // ring cannot generate RSA keys: OpenSSL does, rcgen signs with it.
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let pkey = openssl::pkey::PKey::from_rsa(rsa).unwrap();
        let pem = String::from_utf8(pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
        KeyPair::from_pem_and_sign_algo(&pem, alg).unwrap()
    } else {
        KeyPair::generate_for(alg).unwrap()
    }
}

fn make_ca(alg: &'static SignatureAlgorithm) -> Made {
    let key = key_for(alg);
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CountryName, "LU");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "CIRCL");
    params
        .distinguished_name
        .push(DnType::CommonName, "Test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    params.serial_number = Some(SerialNumber::from(CA_SERIAL.to_vec()));
    params.not_before = date_time_ymd(2020, 1, 2);
    params.not_after = date_time_ymd(2051, 6, 30);
    let der = params.self_signed(&key).unwrap().der().to_vec();
    Made { der, key, params }
}

fn make_leaf(alg: &'static SignatureAlgorithm, ca: &Made) -> Made {
    let key = key_for(alg);
    let mut params = CertificateParams::new(vec![
        "example.com".to_owned(),
        "www.example.com".to_owned(),
        "10.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CountryName, "LU");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Org; x");
    params
        .distinguished_name
        .push(DnType::CommonName, TRICKY_CN);
    params.serial_number = Some(SerialNumber::from(leaf_serial()));
    params.not_before = date_time_ymd(2024, 2, 29);
    params.not_after = date_time_ymd(2030, 12, 31);
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let der = params.signed_by(&key, &issuer).unwrap().der().to_vec();
    Made { der, key, params }
}

/// `openssl x509 -inform der -noout <args>` on the DER; its stdout.
fn openssl_x509(der: &[u8], args: &[&str]) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-inform", "der", "-noout"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the openssl CLI is needed for this test (apt-get install openssl)");
    child.stdin.take().unwrap().write_all(der).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl x509 failed");
    String::from_utf8(out.stdout).unwrap()
}

fn openssl_field(der: &[u8], args: &[&str], prefix: &str) -> String {
    let out = openssl_x509(der, args);
    out.lines()
        .find_map(|l| l.split_once(prefix).map(|(_, v)| v))
        .unwrap_or_else(|| panic!("no {prefix} in {out}"))
        .trim()
        .to_owned()
}

fn dec_of_hex(h: &str) -> String {
    BigNum::from_hex_str(h)
        .unwrap()
        .to_dec_str()
        .unwrap()
        .to_string()
}

fn dec_of_bytes(b: &[u8]) -> String {
    BigNum::from_slice(b)
        .unwrap()
        .to_dec_str()
        .unwrap()
        .to_string()
}

fn hex_of(md: MessageDigest, b: &[u8]) -> String {
    hex::encode(hash(md, b).unwrap())
}

fn spki_sha256(der: &[u8]) -> String {
    let x = openssl::x509::X509::from_der(der).unwrap();
    let spki = x.public_key().unwrap().public_key_to_der().unwrap();
    hex_of(MessageDigest::sha256(), &spki)
}

/// Checks shared by every certificate: hashes, names, serial and SPKI against OpenSSL.
fn check_common(der: &[u8], info: &cert::CertInfo) {
    assert_eq!(info.sha1, hex_of(MessageDigest::sha1(), der));
    assert_eq!(info.sha256, hex_of(MessageDigest::sha256(), der));
    let ossl_sha1 = openssl_field(der, &["-fingerprint", "-sha1"], "Fingerprint=");
    assert_eq!(info.sha1, ossl_sha1.replace(':', "").to_ascii_lowercase());
    // Names created in Go's field order (C, O, CN), so OpenSSL's RFC 2253 (reversed
    // certificate order, same escaping set for ASCII) prints what Go prints.
    let subj = openssl_field(der, &["-subject", "-nameopt", "RFC2253"], "subject=");
    assert_eq!(info.subject, subj);
    let iss = openssl_field(der, &["-issuer", "-nameopt", "RFC2253"], "issuer=");
    assert_eq!(info.issuer, iss);
    let serial = openssl_field(der, &["-serial"], "serial=");
    assert_eq!(
        info.serial_hex,
        serial.trim_start_matches('0').to_ascii_lowercase()
    );
    assert_eq!(info.serial, dec_of_hex(&serial));
    assert_eq!(info.spki_sha256, spki_sha256(der));
}

#[test]
fn rsa_chain_facts() {
    let ca = make_ca(&PKCS_RSA_SHA256);
    let leaf = make_leaf(&PKCS_RSA_SHA256, &ca);

    let ca_info = cert::parse(&ca.der).unwrap();
    check_common(&ca.der, &ca_info);
    assert_eq!(ca_info.subject, "CN=Test CA,O=CIRCL,C=LU");
    assert_eq!(ca_info.issuer, ca_info.subject);
    assert_eq!(ca_info.serial_hex, "123456789abcdef0123");
    assert_eq!(ca_info.serial, "5373003642731685151011"); // 0x0123456789abcdef0123 (Python int)
    assert!(ca_info.is_ca);
    assert!(ca_info.self_issued);
    assert_eq!(ca_info.self_signature_valid, Some(true));
    assert!(ca_info.self_signed());
    assert_eq!(ca_info.not_before, "2020-01-02T00:00:00Z");
    assert_eq!(ca_info.not_after, "2051-06-30T00:00:00Z"); // GeneralizedTime
    assert_eq!(ca_info.key.kind, KeyKind::Rsa);
    assert_eq!(ca_info.key.bits, 2048);

    let info = cert::parse(&leaf.der).unwrap();
    check_common(&leaf.der, &info);
    assert_eq!(
        info.subject,
        format!("CN={TRICKY_CN_ESCAPED},O=Org\\; x,C=LU")
    );
    assert_eq!(info.issuer, "CN=Test CA,O=CIRCL,C=LU");
    assert!(!info.is_ca);
    assert!(!info.self_issued);
    assert_eq!(info.self_signature_valid, None);
    assert_eq!(info.not_before, "2024-02-29T00:00:00Z");
    assert_eq!(info.not_after, "2030-12-31T00:00:00Z");
    assert_eq!(info.dns_names, ["example.com", "www.example.com"]);
    let ips: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    assert_eq!(info.ip_addresses, ips);
    assert_eq!(info.serial, dec_of_bytes(&leaf_serial()));

    // RSA modulus and exponent: OpenSSL CLI and OpenSSL library.
    let rsa = info.key.rsa.as_ref().unwrap();
    let modulus_hex = openssl_field(&leaf.der, &["-modulus"], "Modulus=");
    assert_eq!(hex::encode_upper(&rsa.modulus), modulus_hex);
    let pk = openssl::pkey::PKey::private_key_from_pem(leaf.key.serialize_pem().as_bytes())
        .unwrap()
        .rsa()
        .unwrap();
    assert_eq!(
        rsa.modulus_decimal,
        pk.n().to_dec_str().unwrap().to_string()
    );
    assert_eq!(rsa.exponent_decimal, "65537");
    assert_eq!(info.key.bits, 2048);
}

fn check_ec(alg: &'static SignatureAlgorithm, bits: u32, curve: &str) {
    let ca = make_ca(alg);
    let leaf = make_leaf(alg, &ca);
    for m in [&ca, &leaf] {
        let info = cert::parse(&m.der).unwrap();
        check_common(&m.der, &info);
        assert_eq!(info.key.kind, KeyKind::Ecdsa);
        assert_eq!(info.key.bits, bits);
        let ec = info.key.ec.as_ref().unwrap();
        assert_eq!(ec.curve, curve);
        // rcgen's public key: 0x04 || X || Y
        let raw = m.key.public_key_raw();
        let n = (raw.len() - 1) / 2;
        assert_eq!(ec.x_decimal, dec_of_bytes(&raw[1..=n]));
        assert_eq!(ec.y_decimal, dec_of_bytes(&raw[1 + n..]));
    }
    let ca_info = cert::parse(&ca.der).unwrap();
    assert_eq!(ca_info.self_signature_valid, Some(true));
}

#[test]
fn ecdsa_p256_and_p384_facts() {
    check_ec(&PKCS_ECDSA_P256_SHA256, 256, "P-256");
    check_ec(&PKCS_ECDSA_P384_SHA384, 384, "P-384");
}

#[test]
fn tampered_self_signed_does_not_verify() {
    let ca = make_ca(&PKCS_ECDSA_P256_SHA256);
    let mut der = ca.der.clone();
    let last = der.len() - 1;
    der[last] ^= 0x01; // inside the signature
    let info = cert::parse(&der).unwrap();
    assert!(info.self_issued);
    assert_eq!(info.self_signature_valid, Some(false));
    assert!(!info.self_signed());
}

#[test]
fn garbage_and_truncations_are_errors() {
    let ca = make_ca(&PKCS_ECDSA_P256_SHA256);
    for cut in [0, 1, 10, ca.der.len() / 2, ca.der.len() - 1] {
        assert!(cert::parse(&ca.der[..cut]).is_err(), "cut {cut}");
        assert!(certificate_json(&ca.der[..cut]).is_err(), "cut {cut}");
    }
    let mut trailing = ca.der.clone();
    trailing.push(0);
    assert!(matches!(
        cert::parse(&trailing),
        Err(cert::CertError::Trailing(1))
    ));
}

// ---- Go JSON -------------------------------------------------------------------------

/// Keys of a JSON object in document order.
struct Keys(Vec<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    m.next_value::<IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// Go 1.12 `x509.Certificate` fields in struct order, after the reference's `CertHash` and
/// our `CertSHA256`.
const GO_FIELDS: [&str; 47] = [
    "CertHash",
    "CertSHA256",
    "Raw",
    "RawTBSCertificate",
    "RawSubjectPublicKeyInfo",
    "RawSubject",
    "RawIssuer",
    "Signature",
    "SignatureAlgorithm",
    "PublicKeyAlgorithm",
    "PublicKey",
    "Version",
    "SerialNumber",
    "Issuer",
    "Subject",
    "NotBefore",
    "NotAfter",
    "KeyUsage",
    "Extensions",
    "ExtraExtensions",
    "UnhandledCriticalExtensions",
    "ExtKeyUsage",
    "UnknownExtKeyUsage",
    "BasicConstraintsValid",
    "IsCA",
    "MaxPathLen",
    "MaxPathLenZero",
    "SubjectKeyId",
    "AuthorityKeyId",
    "OCSPServer",
    "IssuingCertificateURL",
    "DNSNames",
    "EmailAddresses",
    "IPAddresses",
    "URIs",
    "PermittedDNSDomainsCritical",
    "PermittedDNSDomains",
    "ExcludedDNSDomains",
    "PermittedIPRanges",
    "ExcludedIPRanges",
    "PermittedEmailAddresses",
    "ExcludedEmailAddresses",
    "PermittedURIDomains",
    "ExcludedURIDomains",
    "CRLDistributionPoints",
    "PolicyIdentifiers",
    // keep the count honest
    "",
];

type Raw = HashMap<String, Box<RawValue>>;

fn raw_map(s: &str) -> Raw {
    serde_json::from_str(s).unwrap()
}

fn b64(v: &RawValue) -> Vec<u8> {
    let s: String = serde_json::from_str(v.get()).unwrap();
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn go_json_rsa_chain() {
    let ca = make_ca(&PKCS_RSA_SHA256);
    let leaf = make_leaf(&PKCS_RSA_SHA256, &ca);

    let json = certificate_json(&leaf.der).unwrap();
    let keys: Keys = serde_json::from_str(json.get()).unwrap();
    assert_eq!(keys.0, GO_FIELDS[..GO_FIELDS.len() - 1]);
    let m = raw_map(json.get());
    assert_eq!(b64(&m["Raw"]), leaf.der);
    assert_eq!(
        m["CertHash"].get(),
        format!("\"{}\"", hex_of(MessageDigest::sha1(), &leaf.der))
    );
    let x = openssl::x509::X509::from_der(&leaf.der).unwrap();
    assert_eq!(
        b64(&m["RawSubjectPublicKeyInfo"]),
        x.public_key().unwrap().public_key_to_der().unwrap()
    );
    assert_eq!(b64(&m["Signature"]), x.signature().as_slice());
    assert_eq!(m["IsCA"].get(), "false");
    assert_eq!(m["Version"].get(), "3");
    assert_eq!(m["SignatureAlgorithm"].get(), "4"); // SHA256WithRSA
    assert_eq!(m["PublicKeyAlgorithm"].get(), "1"); // RSA
                                                    // Serial > 2^64 as an unquoted number, the value OpenSSL reads.
    let serial = openssl_field(&leaf.der, &["-serial"], "serial=");
    assert_eq!(m["SerialNumber"].get(), dec_of_hex(&serial));
    // PublicKey {"N": <number>, "E": 65537}; N as OpenSSL computes it.
    let pk = raw_map(m["PublicKey"].get());
    let key = openssl::pkey::PKey::private_key_from_pem(leaf.key.serialize_pem().as_bytes())
        .unwrap()
        .rsa()
        .unwrap();
    assert_eq!(pk["N"].get(), key.n().to_dec_str().unwrap().to_string());
    assert_eq!(pk["E"].get(), "65537");
    assert_eq!(m["DNSNames"].get(), r#"["example.com","www.example.com"]"#);
    assert_eq!(m["IPAddresses"].get(), r#"["10.0.0.1","::1"]"#);
    assert_eq!(m["NotBefore"].get(), "\"2024-02-29T00:00:00Z\"");
    assert_eq!(m["NotAfter"].get(), "\"2030-12-31T00:00:00Z\"");
    assert_eq!(m["ExtraExtensions"].get(), "null");
    assert_eq!(m["EmailAddresses"].get(), "null");

    // Subject as a pkix.Name object, from the test's own inputs.
    let subject: serde_json::Value = serde_json::from_str(m["Subject"].get()).unwrap();
    assert_eq!(subject["CommonName"], TRICKY_CN);
    assert_eq!(subject["Country"], serde_json::json!(["LU"]));
    assert_eq!(subject["Organization"], serde_json::json!(["Org; x"]));
    assert_eq!(subject["Locality"], serde_json::Value::Null);
    assert_eq!(subject["ExtraNames"], serde_json::Value::Null);
    assert_eq!(
        subject["Names"],
        serde_json::json!([
            {"Type": [2, 5, 4, 6], "Value": "LU"},
            {"Type": [2, 5, 4, 10], "Value": "Org; x"},
            {"Type": [2, 5, 4, 3], "Value": TRICKY_CN},
        ])
    );
    let name_keys: Keys = serde_json::from_str(m["Subject"].get()).unwrap();
    assert_eq!(
        name_keys.0,
        [
            "Country",
            "Organization",
            "OrganizationalUnit",
            "Locality",
            "Province",
            "StreetAddress",
            "PostalCode",
            "SerialNumber",
            "CommonName",
            "Names",
            "ExtraNames"
        ]
    );
    // Go escapes <, > and & in JSON strings.
    assert!(m["Subject"].get().contains("\\u003cx\\u003e"));

    let ca_json = certificate_json(&ca.der).unwrap();
    let c = raw_map(ca_json.get());
    assert_eq!(c["IsCA"].get(), "true");
    assert_eq!(c["BasicConstraintsValid"].get(), "true");
    assert_eq!(c["MaxPathLen"].get(), "1");
    assert_eq!(c["MaxPathLenZero"].get(), "false");
    assert_eq!(b64(&c["RawSubject"]), b64(&c["RawIssuer"]));
    let issuer: serde_json::Value = serde_json::from_str(m["Issuer"].get()).unwrap();
    assert_eq!(issuer["CommonName"], "Test CA");
    assert_eq!(b64(&m["RawIssuer"]), b64(&c["RawSubject"]));
}

/// `elliptic.CurveParams` of a curve, computed by OpenSSL: P, N, B, Gx, Gy in decimal.
fn openssl_curve(nid: Nid) -> [String; 5] {
    let g = EcGroup::from_curve_name(nid).unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let (mut p, mut a, mut b) = (
        BigNum::new().unwrap(),
        BigNum::new().unwrap(),
        BigNum::new().unwrap(),
    );
    g.components_gfp(&mut p, &mut a, &mut b, &mut ctx).unwrap();
    let mut n = BigNum::new().unwrap();
    g.order(&mut n, &mut ctx).unwrap();
    let (mut gx, mut gy) = (BigNum::new().unwrap(), BigNum::new().unwrap());
    #[allow(deprecated)] // the named curves all have a generator
    g.generator()
        .affine_coordinates(&g, &mut gx, &mut gy, &mut ctx)
        .unwrap();
    [p, n, b, gx, gy].map(|v| v.to_dec_str().unwrap().to_string())
}

#[test]
fn go_json_curve_params_match_openssl() {
    for (curve, nid) in [
        (&cert::CURVES[0], Nid::SECP224R1),
        (&cert::CURVES[1], Nid::X9_62_PRIME256V1),
        (&cert::CURVES[2], Nid::SECP384R1),
        (&cert::CURVES[3], Nid::SECP521R1),
    ] {
        let json = d4_tls::gojson::curve_json(curve);
        let m = raw_map(&json);
        let [p, n, b, gx, gy] = openssl_curve(nid);
        assert_eq!(m["P"].get(), p, "{}", curve.name);
        assert_eq!(m["N"].get(), n, "{}", curve.name);
        assert_eq!(m["B"].get(), b, "{}", curve.name);
        assert_eq!(m["Gx"].get(), gx, "{}", curve.name);
        assert_eq!(m["Gy"].get(), gy, "{}", curve.name);
        assert_eq!(m["BitSize"].get(), curve.bit_size.to_string());
        let keys: Keys = serde_json::from_str(&json).unwrap();
        assert_eq!(keys.0, ["P", "N", "B", "Gx", "Gy", "BitSize", "Name"]);
    }
}

#[test]
fn go_json_ecdsa() {
    for (alg, sig, name, bits) in [
        (&PKCS_ECDSA_P256_SHA256, "10", "P-256", "256"), // ECDSAWithSHA256
        (&PKCS_ECDSA_P384_SHA384, "11", "P-384", "384"), // ECDSAWithSHA384
    ] {
        let ca = make_ca(alg);
        let leaf = make_leaf(alg, &ca);
        let json = certificate_json(&leaf.der).unwrap();
        let m = raw_map(json.get());
        assert_eq!(m["SignatureAlgorithm"].get(), sig);
        assert_eq!(m["PublicKeyAlgorithm"].get(), "3");
        let pk = raw_map(m["PublicKey"].get());
        let keys: Keys = serde_json::from_str(m["PublicKey"].get()).unwrap();
        assert_eq!(keys.0, ["Curve", "X", "Y"]);
        let raw = leaf.key.public_key_raw();
        let n = (raw.len() - 1) / 2;
        assert_eq!(pk["X"].get(), dec_of_bytes(&raw[1..=n]));
        assert_eq!(pk["Y"].get(), dec_of_bytes(&raw[1 + n..]));
        let curve = raw_map(pk["Curve"].get());
        assert_eq!(curve["Name"].get(), format!("\"{name}\""));
        assert_eq!(curve["BitSize"].get(), bits);
    }
}
