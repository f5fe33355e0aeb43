//! One TLS session as the sensor found it ([`Session`]) and its JSON record ([`Record`]):
//! the reference sensor's fields (sensor-d4-tls-fingerprinting, what
//! analyzer-d4-passivessl reads) in its order, then ours.
//!
//! | key | content |
//! |---|---|
//! | `ServerIP`, `ServerPort`, `ClientIP`, `ClientPort` | text; the client sent the ClientHello |
//! | `TLSH` | the reference's TLSH ([`crate::tlsh`]), `""` when too little input |
//! | `Timestamp` | RFC 3339 UTC with fractional seconds: capture time of the ClientHello |
//! | `JA3`, `JA3Digest`, `JA3S`, `JA3SDigest` | `""` when that hello was not seen |
//! | `Certificates` | `null` or Go `x509.Certificate` objects with `CertHash` (SHA-1) and `CertSHA256` |
//! | `JA4`, `JA4_r` | the client's JA4 (`t` TCP, `q` QUIC) and its raw form |
//! | `SNI`, `ALPN` | server name (`""`), offered ALPN values (array) |
//! | `Version` | negotiated version (`TLS 1.2`...), `""` when no ServerHello was seen |
//! | `Transport` | `tcp` or `quic` |
//! | `Complete` | false when the flow ended before the server's certificates were complete |
//! | `UnparsedCertificates` | `null`, or the certificates x509-parser could not read, as `CertHash`, `CertSHA256`, `Raw` (kept out of `Certificates`, whose readers expect Go's fields) |

use std::net::SocketAddr;

use serde::Serialize;
use serde_json::value::RawValue;
use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::fingerprint::{self, Transport};
use crate::hello::{ClientHello, ServerHello};

/// What the sensor learnt about one TLS session.
#[derive(Debug, Clone)]
pub struct Session {
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Capture time of the ClientHello (of the server's first bytes without one), ns since
    /// the epoch.
    pub ts_ns: u64,
    pub transport: Transport,
    pub client_hello: Option<ClientHello>,
    pub server_hello: Option<ServerHello>,
    /// DER, in the order the server sent them.
    pub certificates: Vec<Vec<u8>>,
    /// The negotiated version (supported_versions or the ServerHello's legacy version).
    pub version: Option<u16>,
    /// The server's certificates are complete, or known not to come in clear.
    pub complete: bool,
}

/// A session's JSON line and the certificates it holds (SHA-1 hex, DER) for `-w`.
#[derive(Debug, Clone)]
pub struct Record {
    line: String,
    certs: Vec<(String, Vec<u8>)>,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct Line<'a> {
    ServerIP: String,
    ServerPort: String,
    ClientIP: String,
    ClientPort: String,
    TLSH: String,
    Timestamp: String,
    JA3: String,
    JA3Digest: String,
    JA3S: String,
    JA3SDigest: String,
    Certificates: Option<Vec<&'a RawValue>>,
    JA4: String,
    JA4_r: String,
    SNI: String,
    ALPN: Vec<String>,
    Version: &'static str,
    Transport: &'static str,
    Complete: bool,
    UnparsedCertificates: Option<Vec<&'a RawValue>>,
}

/// `TLS 1.2`-style name of a protocol version number.
pub fn version_name(v: u16) -> &'static str {
    match v {
        0x0002 => "SSL 2.0",
        0x0300 => "SSL 3.0",
        0x0301 => "TLS 1.0",
        0x0302 => "TLS 1.1",
        0x0303 => "TLS 1.2",
        0x0304 => "TLS 1.3",
        _ => "unknown",
    }
}

/// RFC 3339 UTC with as many fractional digits as needed (0, 3, 6 or 9), like Go's
/// `RFC3339Nano` output for capture timestamps.
pub fn rfc3339(ts_ns: u64) -> String {
    let secs = i64::try_from(ts_ns / 1_000_000_000).unwrap_or(i64::MAX);
    let nanos = (ts_ns % 1_000_000_000) as u32;
    let whole = crate::cert::num::rfc3339_utc(secs);
    let frac = if nanos == 0 {
        String::new()
    } else if nanos % 1_000_000 == 0 {
        format!(".{:03}", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!(".{:06}", nanos / 1_000)
    } else {
        format!(".{nanos:09}")
    };
    match whole.strip_suffix('Z') {
        Some(w) => format!("{w}{frac}Z"),
        None => whole,
    }
}

/// A certificate x509-parser cannot read still goes out, with what we know.
fn minimal_certificate(der: &[u8], sha1: &str) -> Option<Box<RawValue>> {
    use base64::Engine;
    let v = serde_json::json!({
        "CertHash": sha1,
        "CertSHA256": hex::encode(Sha256::digest(der)),
        "Raw": base64::engine::general_purpose::STANDARD.encode(der),
    });
    serde_json::value::to_raw_value(&v).ok()
}

impl Record {
    pub fn new(s: &Session) -> Record {
        let (ja3, ja3_digest, ja4, ja4_r, sni, alpn) = match &s.client_hello {
            Some(ch) => {
                let j = fingerprint::ja3(ch);
                let d = fingerprint::md5_hex(&j);
                (
                    j,
                    d,
                    fingerprint::ja4(ch, s.transport),
                    fingerprint::ja4_r(ch, s.transport),
                    ch.server_name.clone().unwrap_or_default(),
                    ch.alpn
                        .iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect(),
                )
            }
            None => Default::default(),
        };
        let (ja3s, ja3s_digest) = match &s.server_hello {
            Some(sh) => {
                let j = fingerprint::ja3s(sh);
                let d = fingerprint::md5_hex(&j);
                (j, d)
            }
            None => Default::default(),
        };
        let mut certs = Vec::with_capacity(s.certificates.len());
        let mut raws: Vec<Box<RawValue>> = Vec::with_capacity(s.certificates.len());
        // certificates x509-parser cannot read stay out of `Certificates`: the reference's
        // analyzer stops on a certificate without its Go fields (the reference sensor dropped
        // them); ours keeps them apart
        let mut unparsed: Vec<Box<RawValue>> = Vec::new();
        let mut infos = Vec::with_capacity(s.certificates.len());
        for der in &s.certificates {
            let sha1 = hex::encode(Sha1::digest(der));
            match crate::gojson::certificate_json(der) {
                Ok(raw) => raws.push(raw),
                Err(_) => unparsed.extend(minimal_certificate(der, &sha1)),
            }
            if let Ok(info) = crate::cert::parse(der) {
                infos.push(info);
            }
            certs.push((sha1, der.clone()));
        }
        let tlsh = if s.certificates.is_empty() {
            String::new()
        } else {
            let input = crate::tlsh::reference_input(&ja3, &ja3s, &infos);
            crate::tlsh::digest(input.as_bytes()).unwrap_or_default()
        };
        let line = Line {
            ServerIP: s.server.ip().to_string(),
            ServerPort: s.server.port().to_string(),
            ClientIP: s.client.ip().to_string(),
            ClientPort: s.client.port().to_string(),
            TLSH: tlsh,
            Timestamp: rfc3339(s.ts_ns),
            JA3: ja3,
            JA3Digest: ja3_digest,
            JA3S: ja3s,
            JA3SDigest: ja3s_digest,
            Certificates: (!raws.is_empty()).then(|| raws.iter().map(|r| r.as_ref()).collect()),
            JA4: ja4,
            JA4_r: ja4_r,
            SNI: sni,
            ALPN: alpn,
            Version: s.version.map(version_name).unwrap_or(""),
            Transport: match s.transport {
                Transport::Tcp => "tcp",
                Transport::Quic => "quic",
            },
            Complete: s.complete,
            UnparsedCertificates: (!unparsed.is_empty())
                .then(|| unparsed.iter().map(|r| r.as_ref()).collect()),
        };
        // Serialising strings, numbers and pre-validated raw JSON cannot fail.
        let line = serde_json::to_string(&line).unwrap_or_default();
        Record { line, certs }
    }

    /// The JSON object, one line, without its newline.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// (SHA-1 hex, DER) of each certificate, in the order sent.
    pub fn certificates(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.certs.iter().map(|(h, d)| (h.as_str(), d.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review finding: a certificate only with `CertHash`/`CertSHA256`/`Raw` in
    /// `Certificates` stops analyzer-d4-passivessl; it goes to `UnparsedCertificates`.
    #[test]
    fn unreadable_certificates_are_kept_apart() {
        let s = Session {
            client: "10.0.0.1:1000".parse().unwrap(),
            server: "10.0.0.2:443".parse().unwrap(),
            ts_ns: 1,
            transport: Transport::Tcp,
            client_hello: None,
            server_hello: None,
            certificates: vec![vec![0x30, 0x03, 0x01, 0x01, 0xff]],
            version: None,
            complete: true,
        };
        let r = Record::new(&s);
        let v: serde_json::Value = serde_json::from_str(r.line()).unwrap();
        assert_eq!(v["Certificates"], serde_json::Value::Null);
        let u = v["UnparsedCertificates"].as_array().unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0]["Raw"], "MAMBAf8=");
        assert_eq!(
            u[0]["CertHash"],
            hex::encode(Sha1::digest([0x30, 0x03, 0x01, 0x01, 0xff]))
        );
        // -w still gets it
        assert_eq!(r.certificates().count(), 1);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // 2019-06-12T10:00:00Z = 1560333600
        assert_eq!(
            rfc3339(1_560_333_600_123_456_789),
            "2019-06-12T10:00:00.123456789Z"
        );
        assert_eq!(
            rfc3339(1_560_333_600_123_456_000),
            "2019-06-12T10:00:00.123456Z"
        );
        assert_eq!(
            rfc3339(1_560_333_600_500_000_000),
            "2019-06-12T10:00:00.500Z"
        );
        // leap day, end of century rules
        assert_eq!(rfc3339(951_782_400 * 1_000_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc3339(4_107_542_399 * 1_000_000_000),
            "2100-02-28T23:59:59Z"
        );
    }
}
