//! Bench data for `benches/pssl.rs`, made fast and deterministically: a few thousand leaf
//! certificates signed for real with rcgen (one per key, ECDSA P-256, all signed by one CA),
//! then as many certificates as wanted by patching a copy of those templates: certificate
//! `i` uses template `i % keys` with the 10 digits of its name (`h9999999999.bench.test`,
//! in the subject CN and the SAN) and the low 7 bytes of its 8-byte serial replaced by `i`.
//! Same lengths, so the DER stays well formed and every certificate differs (its signature
//! no longer verifies: the store checks signatures only of self-issued certificates).
//! Sessions are `ja3-jl` lines shaped as `d4 tls` writes them (its Go certificate objects
//! from `d4_tls::gojson`), with JA3/JA3S/JA4 and client addresses reused across sessions.

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, SerialNumber,
};

/// The name every template carries, patched per certificate.
const NAME: &str = "h9999999999";
/// The template serial: 8 bytes, positive (first byte < 0x80), patched per certificate.
const SERIAL: [u8; 8] = [0x42, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5];
/// 2024-01-01T00:00:00Z.
pub const T0: i64 = 1_704_067_200;

/// Deterministic pseudo-random numbers (xorshift).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Template {
    der: Vec<u8>,
    /// Offsets of the 10 digits of every occurrence of [`NAME`].
    names: Vec<usize>,
    /// Offset of the serial's content bytes.
    serial: usize,
}

/// Makes certificates (see the module doc).
pub struct CertGen {
    pub ca_der: Vec<u8>,
    templates: Vec<Template>,
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

impl Template {
    /// Finds the places to patch (`None`: not a template).
    fn new(der: Vec<u8>) -> Option<Template> {
        let names: Vec<usize> = find_all(&der, NAME.as_bytes())
            .into_iter()
            .map(|at| at + 1)
            .collect();
        let mut tag = vec![0x02, 0x08];
        tag.extend_from_slice(&SERIAL);
        let serial = find_all(&der, &tag);
        // the name is in the CN and the SAN; one serial
        (names.len() == 2 && serial.len() == 1).then(|| Template {
            der,
            names,
            serial: serial[0] + 2,
        })
    }
}

impl CertGen {
    /// The CA and the templates, length-prefixed, to make the same certificates again
    /// (keys are random: a kept store needs its own templates).
    pub fn save(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for d in std::iter::once(&self.ca_der).chain(self.templates.iter().map(|t| &t.der)) {
            out.extend_from_slice(&(d.len() as u32).to_be_bytes());
            out.extend_from_slice(d);
        }
        out
    }

    /// What [`CertGen::save`] wrote.
    pub fn from_saved(mut b: &[u8]) -> Option<CertGen> {
        let mut ders = Vec::new();
        while !b.is_empty() {
            let n = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
            ders.push(b.get(4..4 + n)?.to_vec());
            b = &b[4 + n..];
        }
        let mut ders = ders.into_iter();
        let ca_der = ders.next()?;
        let templates = ders.map(Template::new).collect::<Option<Vec<_>>>()?;
        (!templates.is_empty()).then_some(CertGen { ca_der, templates })
    }

    /// `keys` templates, one key each.
    pub fn new(keys: usize) -> CertGen {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "d4-rs bench");
        dn.push(DnType::CommonName, "d4 pssl bench CA");
        ca.distinguished_name = dn;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.not_before = date_time_ymd(2024, 1, 1);
        ca.not_after = date_time_ymd(2034, 1, 1);
        let ca_der = ca.self_signed(&ca_key).unwrap().der().to_vec();
        let issuer = Issuer::new(ca, ca_key);
        let host = format!("{NAME}.bench.test");
        let templates = (0..keys.max(1))
            .map(|_| {
                let key = KeyPair::generate().unwrap();
                let mut p = CertificateParams::new(vec![host.clone()]).unwrap();
                let mut dn = DistinguishedName::new();
                dn.push(DnType::OrganizationName, "d4-rs bench");
                dn.push(DnType::CommonName, host.clone());
                p.distinguished_name = dn;
                p.serial_number = Some(SerialNumber::from_slice(&SERIAL));
                p.not_before = date_time_ymd(2024, 1, 1);
                p.not_after = date_time_ymd(2027, 1, 1);
                Template::new(p.signed_by(&key, &issuer).unwrap().der().to_vec()).unwrap()
            })
            .collect();
        CertGen { ca_der, templates }
    }

    /// Distinct keys.
    pub fn keys(&self) -> usize {
        self.templates.len()
    }

    /// Certificate `i` (below 10^10).
    pub fn cert(&self, i: u64) -> Vec<u8> {
        let t = &self.templates[(i % self.templates.len() as u64) as usize];
        let mut der = t.der.clone();
        let digits = format!("{:010}", i % 10_000_000_000);
        for &at in &t.names {
            der[at..at + 10].copy_from_slice(digits.as_bytes());
        }
        der[t.serial + 1..t.serial + 8].copy_from_slice(&i.to_be_bytes()[1..]);
        der
    }

    /// The server name in certificate `i`.
    pub fn host(i: u64) -> String {
        format!("h{:010}.bench.test", i % 10_000_000_000)
    }
}

pub fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// PEM text of a DER certificate.
pub fn pem(der: &[u8]) -> Vec<u8> {
    let b = b64(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out.into_bytes()
}

/// The server address of certificate `i` in the query store: two certificates per
/// address (ports 443 and 8443), from 10.0.0.0 up.
pub fn server_ip(i: u64) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000u32.wrapping_add((i / 2) as u32))
}

pub fn server_port(i: u64) -> u16 {
    if i % 2 == 0 {
        443
    } else {
        8443
    }
}

/// The raw JA3 string of fingerprint `j` (its digest is computed by the parser).
pub fn ja3_raw(j: u64) -> String {
    format!(
        "771,{}-4866-4867-49195-49199-49196-49200-52393-52392,0-23-65281-10-11-35-16-5-13-18-51-45-43-27,29-23-24,0",
        4865 + j
    )
}

pub fn ja3s_raw(j: u64) -> String {
    format!("771,{},43-51", 4865 + j)
}

pub fn ja4(j: u64) -> String {
    format!("t13d1516h2_8daaf6152771_{j:012x}")
}

/// One session line as `d4 tls` writes it.
pub struct Line<'a> {
    pub ts: i64,
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
    pub ja3: u64,
    pub ja3s: u64,
    pub sni: &'a str,
    /// Go certificate objects (`d4_tls::gojson::certificate_json`), leaf first.
    pub chain: &'a [&'a str],
}

impl Line<'_> {
    pub fn json(&self) -> String {
        let ja3 = ja3_raw(self.ja3);
        let ja3s = ja3s_raw(self.ja3s);
        let md5 = |s: &str| {
            use md5::Digest;
            hex::encode(md5::Md5::digest(s.as_bytes()))
        };
        format!(
            concat!(
                r#"{{"ServerIP":"{}","ServerPort":"{}","ClientIP":"{}","ClientPort":"{}","TLSH":"","#,
                r#""Timestamp":"{}","JA3":"{}","JA3Digest":"{}","JA3S":"{}","JA3SDigest":"{}","#,
                r#""Certificates":[{}],"JA4":"{}","JA4_r":"","SNI":"{}","ALPN":["h2","http/1.1"],"#,
                r#""Version":"TLS 1.2","Transport":"tcp","Complete":true}}"#
            ),
            self.server.0,
            self.server.1,
            self.client.0,
            self.client.1,
            d4_tls::session::rfc3339(self.ts as u64 * 1_000_000_000),
            ja3,
            md5(&ja3),
            ja3s,
            md5(&ja3s),
            self.chain.join(","),
            ja4(self.ja3),
            self.sni,
        )
    }
}

/// The Go certificate object `d4 tls` writes for a DER certificate.
pub fn go_json(der: &[u8]) -> String {
    d4_tls::gojson::certificate_json(der)
        .unwrap()
        .get()
        .to_string()
}
