//! The suite's test data: certificates made with rcgen (ECDSA P-256: a CA, two leaves it
//! signs that share one key, a self-signed leaf), their hashes computed here from the DER
//! (not by the code under test), and `ja3-jl` records written as JSON text, with Go-style
//! certificate objects holding unquoted big integers (a 617-digit RSA `N`).

use base64::Engine;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PublicKeyData,
};
use sha1::Digest as _;

/// 2024-01-01T00:00:00Z.
pub const T0: i64 = 1_704_067_200;
/// 2034-01-01T00:00:00Z.
pub const T_END: i64 = 2_019_686_400;

/// A 617-digit number (the size of a 2048-bit RSA modulus), for the Go `N` field.
pub fn big_n() -> String {
    let mut s = String::from("2");
    s.push_str(&"7".repeat(616));
    s
}

/// One generated certificate and the hashes the test computes from it.
#[derive(Debug, Clone)]
pub struct TestCert {
    pub der: Vec<u8>,
    pub sha1: String,
    pub sha256: String,
    /// SHA-256 of the key's SubjectPublicKeyInfo as rcgen encodes it.
    pub spki_sha256: String,
    pub cn: String,
}

impl TestCert {
    fn new(der: Vec<u8>, spki: &[u8], cn: &str) -> TestCert {
        TestCert {
            sha1: hex::encode(sha1::Sha1::digest(&der)),
            sha256: hex::encode(sha2::Sha256::digest(&der)),
            spki_sha256: hex::encode(sha2::Sha256::digest(spki)),
            der,
            cn: cn.to_string(),
        }
    }

    pub fn b64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.der)
    }

    pub fn pem(&self) -> String {
        let b = self.b64();
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }
}

/// The suite's certificates.
#[derive(Debug, Clone)]
pub struct Certs {
    /// Self-signed CA, `CN=d4 pssl test CA`.
    pub ca: TestCert,
    /// Leaf signed by the CA, `CN=a.example.test`, SAN `a.example.test`.
    pub a: TestCert,
    /// Leaf signed by the CA with `a`'s key, `CN=a2.example.test`.
    pub a2: TestCert,
    /// Self-signed leaf, `CN=b.example.test`.
    pub b: TestCert,
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "LU");
    dn.push(DnType::OrganizationName, "d4-rs pssl tests");
    dn.push(DnType::CommonName, cn);
    dn
}

fn params(cn: &str, sans: &[&str]) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(sans).unwrap_or_default();
    p.distinguished_name = name(cn);
    p.not_before = date_time_ymd(2024, 1, 1);
    p.not_after = date_time_ymd(2034, 1, 1);
    p
}

/// Makes the certificates (new keys every call).
///
/// # Panics
/// When rcgen fails (a test-only helper).
#[allow(clippy::expect_used)]
pub fn certs() -> Certs {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = params("d4 pssl test CA", &[]);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let ca_spki = ca_key.subject_public_key_info();
    let issuer = Issuer::new(ca, ca_key);
    let a_key = KeyPair::generate().expect("leaf key");
    let a = params("a.example.test", &["a.example.test"])
        .signed_by(&a_key, &issuer)
        .expect("leaf a");
    let a2 = params("a2.example.test", &["a2.example.test"])
        .signed_by(&a_key, &issuer)
        .expect("leaf a2");
    let b_key = KeyPair::generate().expect("leaf key");
    let b = params("b.example.test", &["b.example.test"])
        .self_signed(&b_key)
        .expect("leaf b");
    let a_spki = a_key.subject_public_key_info();
    Certs {
        ca: TestCert::new(ca_cert.der().to_vec(), &ca_spki, "d4 pssl test CA"),
        a: TestCert::new(a.der().to_vec(), &a_spki, "a.example.test"),
        a2: TestCert::new(a2.der().to_vec(), &a_spki, "a2.example.test"),
        b: TestCert::new(
            b.der().to_vec(),
            &b_key.subject_public_key_info(),
            "b.example.test",
        ),
    }
}

/// What a hand-written record holds.
#[derive(Debug, Clone, Default)]
pub struct Rec<'a> {
    pub ts: &'a str,
    pub client: Option<(&'a str, u16)>,
    pub server: Option<(&'a str, u16)>,
    pub ja3: &'a str,
    pub ja3s: &'a str,
    pub ja4: &'a str,
    pub sni: &'a str,
    pub chain: Vec<&'a TestCert>,
}

/// A Go-style certificate object as the sensors write it: `CertHash`, `Raw`, and Go fields
/// the parser must skip, unquoted big integers included.
pub fn go_cert_object(c: &TestCert, cert_hash: &str) -> String {
    format!(
        concat!(
            r#"{{"CertHash":"{hash}","Raw":"{raw}","RawTBSCertificate":"AAEC","Version":3,"#,
            r#""SerialNumber":123456789012345678901234567890123456789,"#,
            r#""Subject":{{"Country":["LU"],"CommonName":"{cn}","Names":[{{"Type":[2,5,4,3],"Value":"{cn}"}}],"ExtraNames":null}},"#,
            r#""NotBefore":"2024-01-01T00:00:00Z","NotAfter":"2034-01-01T00:00:00Z","#,
            r#""PublicKeyAlgorithm":1,"PublicKey":{{"N":{n},"E":65537}},"#,
            r#""Extensions":[{{"Id":[2,5,29,19],"Critical":true,"Value":"MAA="}}],"#,
            r#""IsCA":false,"DNSNames":["{cn}"],"IPAddresses":null,"MaxPathLen":-1,"PolicyIdentifiers":null}}"#
        ),
        hash = cert_hash,
        raw = c.b64(),
        cn = c.cn,
        n = big_n(),
    )
}

fn digest_of(raw: &str) -> String {
    if raw.is_empty() {
        String::new()
    } else {
        hex::encode(md5::Md5::digest(raw.as_bytes()))
    }
}

/// Our sensor's record (the reference's fields, then `JA4`, `JA4_r`, `SNI`, `ALPN`,
/// `Version`, `Transport`, `Complete`); `ja3`/`ja3s` are the raw strings.
pub fn record_line(r: &Rec<'_>) -> String {
    let (cip, cport) = r.client.map_or((String::new(), String::new()), |(i, p)| {
        (i.to_string(), p.to_string())
    });
    let (sip, sport) = r.server.map_or((String::new(), String::new()), |(i, p)| {
        (i.to_string(), p.to_string())
    });
    let certs = if r.chain.is_empty() {
        "null".to_string()
    } else {
        let objs: Vec<String> = r.chain.iter().map(|c| go_cert_object(c, &c.sha1)).collect();
        format!("[{}]", objs.join(","))
    };
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    format!(
        concat!(
            r#"{{"ServerIP":{},"ServerPort":{},"ClientIP":{},"ClientPort":{},"TLSH":"","#,
            r#""Timestamp":{},"JA3":{},"JA3Digest":{},"JA3S":{},"JA3SDigest":{},"#,
            r#""Certificates":{},"JA4":{},"JA4_r":"","SNI":{},"ALPN":["h2","http/1.1"],"#,
            r#""Version":"TLS 1.3","Transport":"tcp","Complete":true}}"#
        ),
        q(&sip),
        q(&sport),
        q(&cip),
        q(&cport),
        q(r.ts),
        q(r.ja3),
        q(&digest_of(r.ja3)),
        q(r.ja3s),
        q(&digest_of(r.ja3s)),
        certs,
        q(r.ja4),
        q(r.sni),
    )
}

/// A record of the reference Go sensor: its field set only (no JA4, SNI, ALPN...), its
/// `CertHash` being the certificate's SHA-256, a nanosecond timestamp.
pub fn reference_line(r: &Rec<'_>) -> String {
    let (cip, cport) = r.client.unwrap_or(("", 0));
    let (sip, sport) = r.server.unwrap_or(("", 0));
    let objs: Vec<String> = r
        .chain
        .iter()
        .map(|c| go_cert_object(c, &c.sha256))
        .collect();
    format!(
        concat!(
            r#"{{"ServerIP":"{}","ServerPort":"{}","ClientIP":"{}","ClientPort":"{}","#,
            r#""TLSH":"T1A0B0","Timestamp":"{}","JA3":"{}","JA3Digest":"{}","#,
            r#""JA3S":"{}","JA3SDigest":"{}","Certificates":[{}]}}"#
        ),
        sip,
        sport,
        cip,
        cport,
        r.ts,
        r.ja3,
        digest_of(r.ja3),
        r.ja3s,
        digest_of(r.ja3s),
        objs.join(","),
    )
}
