//! One `ja3-jl` JSON line (the TLS sensor's record: ours from `d4 tls`, or the reference Go
//! sensor's) into a [`Batch`] fragment: at most one [`Session`], its certificates and their
//! keys. Sans-IO: bytes in, values out.
//!
//! Only the fields the store needs are read; every other key is skipped without being
//! decoded (serde's `IgnoredAny`), which matters because the Go certificate objects hold
//! unquoted big integers (RSA `N`, `SerialNumber`) that no numeric type could take.
//! Certificates come from `Raw` (base64 DER, read with d4-tls), never from the Go fields.
//! A certificate that cannot be read is left out of the chain and counted
//! ([`Parsed::bad_certificates`]).
//!
//! A record is a session when it has a JA3, JA3S or JA4 or a certificate, even without
//! addresses (our sensor emits partial records); an object with none of them is
//! [`RecordError::Empty`]. Empty strings mean absent (addresses, ports, digests); a missing
//! `Timestamp` reads as 0; a digest missing beside its raw JA3/JA3S string is computed (MD5).

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine;
use md5::{Digest, Md5};
use serde::Deserialize;

use crate::model::{certificate_from_der, Batch, BatchBuilder, Certificate, PublicKey, Session};

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not a JSON record: {0}")]
    Json(String),
    #[error("bad {field}: {value:?}")]
    Field { field: &'static str, value: String },
    #[error("the record holds no session (no fingerprint, no certificate)")]
    Empty,
}

impl RecordError {
    /// A short label for counters (`json`, `field`, `empty`).
    pub fn kind(&self) -> &'static str {
        match self {
            RecordError::Json(_) => "json",
            RecordError::Field { .. } => "field",
            RecordError::Empty => "empty",
        }
    }
}

/// A parsed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// One session, its certificates and keys.
    pub batch: Batch,
    /// Certificates whose `Raw` was missing or could not be read.
    pub bad_certificates: usize,
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "ServerIP", default)]
    server_ip: Option<String>,
    #[serde(rename = "ServerPort", default)]
    server_port: Option<Port>,
    #[serde(rename = "ClientIP", default)]
    client_ip: Option<String>,
    #[serde(rename = "ClientPort", default)]
    client_port: Option<Port>,
    #[serde(rename = "Timestamp", default)]
    timestamp: Option<String>,
    #[serde(rename = "JA3", default)]
    ja3: Option<String>,
    #[serde(rename = "JA3Digest", default)]
    ja3_digest: Option<String>,
    #[serde(rename = "JA3S", default)]
    ja3s: Option<String>,
    #[serde(rename = "JA3SDigest", default)]
    ja3s_digest: Option<String>,
    #[serde(rename = "JA4", default)]
    ja4: Option<String>,
    #[serde(rename = "JA4_r", default)]
    ja4_r: Option<String>,
    #[serde(rename = "SNI", default)]
    sni: Option<String>,
    #[serde(rename = "ALPN", default)]
    alpn: Option<Vec<String>>,
    #[serde(rename = "TLSH", default)]
    tlsh: Option<String>,
    #[serde(rename = "Transport", default)]
    transport: Option<String>,
    #[serde(rename = "Certificates", default)]
    certificates: Option<Vec<RawCert>>,
}

#[derive(Deserialize)]
struct RawCert {
    #[serde(rename = "Raw", default)]
    raw: Option<String>,
}

/// A port as the sensor writes it (decimal text) or as a JSON number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Port {
    Text(String),
    Number(u64),
}

fn port(field: &'static str, p: Option<Port>) -> Result<Option<u16>, RecordError> {
    let bad = |value: String| RecordError::Field { field, value };
    match p {
        None => Ok(None),
        Some(Port::Text(s)) if s.is_empty() => Ok(None),
        Some(Port::Text(s)) => s.parse::<u16>().map(Some).map_err(|_| bad(s)),
        Some(Port::Number(n)) => u16::try_from(n).map(Some).map_err(|_| bad(n.to_string())),
    }
}

fn ip(field: &'static str, s: Option<String>) -> Result<Option<IpAddr>, RecordError> {
    match s {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s
            .parse::<IpAddr>()
            .map(Some)
            .map_err(|_| RecordError::Field { field, value: s }),
    }
}

/// The digest field, or the MD5 of the raw string when only that is present.
fn digest(field: &'static str, digest: Option<String>, raw: &str) -> Result<String, RecordError> {
    let d = digest.unwrap_or_default().to_ascii_lowercase();
    if d.is_empty() {
        if raw.is_empty() {
            return Ok(String::new());
        }
        return Ok(hex::encode(Md5::digest(raw.as_bytes())));
    }
    if d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RecordError::Field { field, value: d });
    }
    Ok(d)
}

/// Certificates already read, by their `Raw` text: a busy server's certificate comes in
/// every session, and reading X.509 (hashes, key numbers in decimal, the self-signature
/// check) costs far more than the rest of the line, so an ingester keeps one of these and
/// reads each certificate once. Bounded: emptied when full (the store dedups anyway).
/// Largest `Raw` text a [`CertCache`] keeps (base64 of a 48 KiB certificate).
const MAX_CACHED_RAW: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct CertCache {
    map: HashMap<Box<str>, (Certificate, PublicKey)>,
    cap: usize,
}

impl CertCache {
    /// Holds at most `cap` certificates (0: nothing is kept).
    pub fn new(cap: usize) -> CertCache {
        CertCache {
            map: HashMap::new(),
            cap,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The certificate and key of a base64 `Raw` value; `None` when it is not base64 DER of
    /// a certificate.
    fn read(&mut self, raw: &str) -> Option<(Certificate, PublicKey)> {
        if let Some(hit) = self.map.get(raw) {
            return Some(hit.clone());
        }
        let der = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
        let read = certificate_from_der(&der).ok()?;
        // Only certificates of a usual size are kept (a hostile server can send megabytes):
        // the cache stays within `cap` × 64 KiB.
        if self.cap > 0 && raw.len() <= MAX_CACHED_RAW {
            if self.map.len() >= self.cap {
                self.map.clear();
            }
            self.map.insert(raw.into(), read.clone());
        }
        Some(read)
    }
}

/// Parses one JSON line.
pub fn parse_record(line: &[u8]) -> Result<Parsed, RecordError> {
    parse_record_cached(line, &mut CertCache::new(0))
}

/// Parses one JSON line, reading its certificates through `cache`.
pub fn parse_record_cached(line: &[u8], cache: &mut CertCache) -> Result<Parsed, RecordError> {
    let l: Line = serde_json::from_slice(line).map_err(|e| RecordError::Json(e.to_string()))?;
    let ts = match l.timestamp.as_deref() {
        None | Some("") => 0,
        Some(t) => parse_rfc3339(t).ok_or_else(|| RecordError::Field {
            field: "Timestamp",
            value: t.to_string(),
        })?,
    };
    let ja3_raw = l.ja3.unwrap_or_default();
    let ja3s_raw = l.ja3s.unwrap_or_default();
    let mut out = BatchBuilder::new();
    let mut chain = Vec::new();
    let mut bad_certificates = 0;
    for c in l.certificates.unwrap_or_default() {
        match c.raw.and_then(|r| cache.read(&r)) {
            Some((cert, key)) => {
                chain.push(cert.sha1.clone());
                out.add_certificate(cert);
                out.add_key(key);
            }
            _ => bad_certificates += 1,
        }
    }
    let session = Session {
        ts,
        client_ip: ip("ClientIP", l.client_ip)?,
        client_port: port("ClientPort", l.client_port)?,
        server_ip: ip("ServerIP", l.server_ip)?,
        server_port: port("ServerPort", l.server_port)?,
        ja3: digest("JA3Digest", l.ja3_digest, &ja3_raw)?,
        ja3_raw,
        ja3s: digest("JA3SDigest", l.ja3s_digest, &ja3s_raw)?,
        ja3s_raw,
        ja4: l.ja4.unwrap_or_default(),
        ja4_r: l.ja4_r.unwrap_or_default(),
        sni: l.sni.unwrap_or_default(),
        alpn: l.alpn.unwrap_or_default(),
        tlsh: l.tlsh.unwrap_or_default(),
        transport: l.transport.unwrap_or_default(),
        chain,
    };
    if session.ja3.is_empty()
        && session.ja3s.is_empty()
        && session.ja4.is_empty()
        && session.chain.is_empty()
    {
        return Err(RecordError::Empty);
    }
    out.add_session(session);
    Ok(Parsed {
        batch: out.build(),
        bad_certificates,
    })
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian; Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 (`2019-06-12T10:00:00.123456789Z`, any fraction, `Z` or `±hh:mm`; `t`, `z` and
/// a space for `T` accepted) → Unix seconds (the fraction is dropped).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        // 2019-06-12T10:00:00Z: 17964 days after the epoch (date -d @1560333600 -u).
        assert_eq!(parse_rfc3339("2019-06-12T10:00:00Z"), Some(1_560_333_600));
        assert_eq!(
            parse_rfc3339("2019-06-12T10:00:00.123456789Z"),
            Some(1_560_333_600)
        );
        assert_eq!(
            parse_rfc3339("2019-06-12T12:00:00.5+02:00"),
            Some(1_560_333_600)
        );
        assert_eq!(
            parse_rfc3339("2019-06-12T05:30:00-04:30"),
            Some(1_560_333_600)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "",
            "2019-06-12",
            "2019-06-12T10:00:00",
            "2019-13-12T10:00:00Z",
            "2019-06-12T10:00:00.Z",
            "2019-06-12T10:00:00+0200",
            "2019-06-12T10:00:00Zjunk",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn not_json_is_an_error() {
        assert!(matches!(parse_record(b"nope"), Err(RecordError::Json(_))));
        assert!(matches!(parse_record(b"[1,2]"), Err(RecordError::Json(_))));
        assert_eq!(parse_record(b"{}"), Err(RecordError::Empty));
    }

    #[test]
    fn digest_computed_when_only_raw() {
        // §2 vector: md5 of this JA3 string.
        let line = br#"{"JA3":"769,4-5-10-9-100-98-3-6-19-18-99,,,"}"#;
        let p = parse_record(line).unwrap();
        assert_eq!(p.batch.sessions[0].ja3, "de350869b8c85de67a350c8d186f11e6");
    }

    #[test]
    fn bad_fields_are_errors() {
        let e = parse_record(br#"{"JA3Digest":"de350869b8c85de67a350c8d186f11e6","ServerIP":"x"}"#);
        assert!(matches!(
            e,
            Err(RecordError::Field {
                field: "ServerIP",
                ..
            })
        ));
        let e = parse_record(
            br#"{"JA3Digest":"de350869b8c85de67a350c8d186f11e6","ServerPort":"70000"}"#,
        );
        assert!(matches!(
            e,
            Err(RecordError::Field {
                field: "ServerPort",
                ..
            })
        ));
        let e = parse_record(br#"{"JA3Digest":"zz","ServerPort":"443"}"#);
        assert!(matches!(
            e,
            Err(RecordError::Field {
                field: "JA3Digest",
                ..
            })
        ));
    }
}
