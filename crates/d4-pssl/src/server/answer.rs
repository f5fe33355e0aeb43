//! The answers of `d4 pssl serve`, built from store values without I/O (the handlers read
//! the store, these functions shape the JSON): the CIRCL Passive SSL API v2 shapes
//! (`query`, `cquery`, `cfetch`), lookup-d4-passivessl's `{"Sessions": [...]}` with the
//! sensor's records rebuilt, and d4-rs's pivots. Times are RFC 3339 UTC (`...Z`), hashes
//! lowercase hex (but `cfetch`'s `fingerprint`: uppercase, as the CIRCL service).

use std::collections::{BTreeSet, HashMap};

use base64::Engine;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::model::{PublicKey, Session};
use crate::store::{CertView, Info, IpCerts, IpSeen, Seen, WeakKey};

/// Unix seconds as RFC 3339 UTC.
pub fn time(unix: i64) -> String {
    d4_tls::cert::rfc3339_utc(unix)
}

fn opt_time(unix: Option<i64>) -> Value {
    unix.map_or(Value::Null, |t| Value::String(time(t)))
}

/// A PEM block (`-----BEGIN <label>-----`, base64 in 64-column lines).
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A name as CIRCL's Passive SSL prints it (OpenSSL's one-line form, `C=LU, O=Org,
/// CN=host`: the RDNs from the first to the last, `", "` between them) from the Go
/// `pkix.Name` string the store keeps (`CN=host,O=Org,C=LU`: the RDNs last to first, `,`
/// between them, `\,` inside a value). The PyPSSL-shaped answers use it (MISP and Cortex
/// show it as it is); d4-rs's own answers keep the stored form.
pub fn oneline(go: &str) -> String {
    let mut rdns = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for ch in go.chars() {
        if escaped {
            cur.push(ch);
            escaped = false;
        } else if ch == '\\' {
            cur.push(ch);
            escaped = true;
        } else if ch == ',' {
            rdns.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    if !cur.is_empty() || !rdns.is_empty() {
        rdns.push(cur);
    }
    rdns.reverse();
    rdns.join(", ")
}

/// `/v2pssl/query`: `{"<ip>": {"certificates", "subjects", "ports", "seen"}}` for the
/// addresses with data; `subjects` maps SHA-1 → subject (unknown SHA-1s are left out).
pub fn query(items: &[IpCerts], subjects: &HashMap<String, String>) -> Value {
    let mut out = Map::new();
    for ip in items {
        let certificates: Vec<&str> = ip.certificates.iter().map(|c| c.value.as_str()).collect();
        let mut subj = Map::new();
        let mut seen = Map::new();
        for c in &ip.certificates {
            if let Some(s) = subjects.get(&c.value) {
                subj.insert(c.value.clone(), json!({ "values": [oneline(s)] }));
            }
            seen.insert(
                c.value.clone(),
                json!({
                    "first_seen": time(c.first),
                    "last_seen": time(c.last),
                    "count": c.count,
                }),
            );
        }
        out.insert(
            ip.ip.to_string(),
            json!({
                "certificates": certificates,
                "subjects": subj,
                "ports": ip.ports,
                "seen": seen,
            }),
        );
    }
    Value::Object(out)
}

/// `/v2pssl/cquery`: `{"certificate", "seen" (distinct addresses), "hits"}` and the
/// extras `first_seen`, `last_seen`, `ports`. `view` is `None` for an unknown certificate.
pub fn cquery(sha1: &str, view: Option<&CertView>, ips: &[IpSeen]) -> Value {
    let mut seen: Vec<String> = Vec::new();
    for i in ips {
        let s = i.ip.to_string();
        if seen.last() != Some(&s) {
            seen.push(s);
        }
    }
    let ports: BTreeSet<u16> = ips.iter().filter_map(|i| i.port).collect();
    json!({
        "certificate": sha1,
        "seen": seen,
        "hits": view.map_or(0, |v| v.hits),
        "first_seen": opt_time(view.and_then(|v| v.first_seen)),
        "last_seen": opt_time(view.and_then(|v| v.last_seen)),
        "ports": ports,
    })
}

/// `/v2pssl/cfetch`: the PEM and `info` as the CIRCL service answers, plus extras.
/// `weak` is what the store found on the certificate's key (`info.weak`).
pub fn cfetch(view: &CertView, weak: &[WeakKey]) -> Value {
    let c = &view.certificate;
    let (key_pem, extension) = match d4_tls::cert::openssl_view(&c.der) {
        Ok(v) => (
            pem("PUBLIC KEY", &v.spki_der),
            v.extensions
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect::<Map<_, _>>(),
        ),
        Err(_) => (String::new(), Map::new()),
    };
    let pem_text = if c.der.is_empty() {
        String::new()
    } else {
        pem("CERTIFICATE", &c.der)
    };
    json!({
        "pem": pem_text,
        "info": {
            "subject": oneline(&c.subject),
            "issuer": oneline(&c.issuer),
            "fingerprint": c.sha1.to_ascii_uppercase(),
            "keylength": view.key.as_ref().map_or(0, |k| k.bits),
            "key": key_pem,
            "not_before": time(c.not_before),
            "not_after": time(c.not_after),
            "extension": extension,
            "sha256": c.sha256,
            "serial": c.serial,
            "sans": c.sans,
            "is_ca": c.is_ca,
            "self_signed": c.self_signed,
            "spki_sha256": c.spki_sha256,
            "key_type": view.key.as_ref().map(|k| k.key_type.as_str()),
            "weak": weak_short(weak),
        },
        "first_seen": opt_time(view.first_seen),
        "last_seen": opt_time(view.last_seen),
        "hits": view.hits,
    })
}

/// A public key: `{"spki_sha256", "key_type", "bits", "modulus", "exponent", "curve",
/// "x", "y"}`.
pub fn key(k: &PublicKey) -> Value {
    json!({
        "spki_sha256": k.spki_sha256,
        "key_type": k.key_type,
        "bits": k.bits,
        "modulus": k.modulus,
        "exponent": k.exponent,
        "curve": k.curve,
        "x": k.x,
        "y": k.y,
    })
}

/// A key's findings in short: `[{"check", "subtest", "how"}]` (empty when clean).
pub fn weak_short(weak: &[WeakKey]) -> Value {
    Value::Array(
        weak.iter()
            .map(|w| json!({ "check": w.check, "subtest": w.subtest, "how": w.how }))
            .collect(),
    )
}

/// A `/weak` item: `{"spki_sha256", "check", "subtest", "how", "found", "certificates"}`
/// (the recovered numbers stay out of the API).
pub fn weak_item(w: &WeakKey, certificates: &[String]) -> Value {
    json!({
        "spki_sha256": w.spki_sha256,
        "check": w.check,
        "subtest": w.subtest,
        "how": w.how,
        "found": time(w.found),
        "certificates": certificates,
    })
}

/// `/certificate/<hash>`; `weak` (the key's findings) goes in `key.weak`.
pub fn certificate(view: &CertView, weak: &[WeakKey]) -> Value {
    let c = &view.certificate;
    let key_value = match &view.key {
        Some(k) => {
            let mut v = key(k);
            if let Value::Object(m) = &mut v {
                m.insert("weak".into(), weak_short(weak));
            }
            v
        }
        None => Value::Null,
    };
    json!({
        "sha1": c.sha1,
        "sha256": c.sha256,
        "subject": c.subject,
        "issuer": c.issuer,
        "serial": c.serial,
        "not_before": time(c.not_before),
        "not_after": time(c.not_after),
        "sans": c.sans,
        "is_ca": c.is_ca,
        "self_signed": c.self_signed,
        "spki_sha256": c.spki_sha256,
        "key": key_value,
        "first_seen": opt_time(view.first_seen),
        "last_seen": opt_time(view.last_seen),
        "hits": view.hits,
        "chain_positions": view.chain_positions,
        "pem": if c.der.is_empty() { String::new() } else { pem("CERTIFICATE", &c.der) },
    })
}

/// An address link: `{"ip", "port" (certificate links only), "first_seen", "last_seen",
/// "count"}`.
pub fn ip_seen(i: &IpSeen) -> Value {
    let mut v = json!({
        "ip": i.ip.to_string(),
        "first_seen": time(i.first),
        "last_seen": time(i.last),
        "count": i.count,
    });
    if let (Some(p), Some(o)) = (i.port, v.as_object_mut()) {
        o.insert("port".into(), p.into());
    }
    v
}

/// A certificate seen with a server name: `{"sha1", "subject", "first_seen", "last_seen",
/// "count"}`.
pub fn sni_item(s: &Seen<String>, subject: Option<&str>) -> Value {
    json!({
        "sha1": s.value,
        "subject": subject,
        "first_seen": time(s.first),
        "last_seen": time(s.last),
        "count": s.count,
    })
}

/// `{"items": [...], "next": cursor|null}`.
pub fn items(items: Vec<Value>, next: Option<&str>) -> Value {
    json!({ "items": items, "next": next })
}

/// `/info`: the store's counts, the backend and the version.
pub fn info(i: &Info, backend: &str) -> Value {
    json!({
        "certificates": i.certificates,
        "keys": i.keys,
        "sessions": i.sessions,
        "ips": i.ips,
        "ja3": i.ja3,
        "ja3s": i.ja3s,
        "ja4": i.ja4,
        "sni": i.sni,
        "ip_certificate_links": i.ip_certificate_links,
        "backend": backend,
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// The sensor's record rebuilt from a stored session (lookup-d4-passivessl's shape plus
/// d4-rs's keys). `Certificates` holds Go `x509.Certificate` objects whose big integers
/// are unquoted numbers, kept as raw JSON.
#[derive(Debug, Serialize)]
pub struct SessionRecord {
    #[serde(rename = "ServerIP")]
    pub server_ip: String,
    #[serde(rename = "ServerPort")]
    pub server_port: String,
    #[serde(rename = "ClientIP")]
    pub client_ip: String,
    #[serde(rename = "ClientPort")]
    pub client_port: String,
    #[serde(rename = "TLSH")]
    pub tlsh: String,
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    #[serde(rename = "JA3")]
    pub ja3: String,
    #[serde(rename = "JA3Digest")]
    pub ja3_digest: String,
    #[serde(rename = "JA3S")]
    pub ja3s: String,
    #[serde(rename = "JA3SDigest")]
    pub ja3s_digest: String,
    #[serde(rename = "Certificates")]
    pub certificates: Option<Vec<Box<RawValue>>>,
    #[serde(rename = "JA4")]
    pub ja4: String,
    #[serde(rename = "JA4_r")]
    pub ja4_r: String,
    #[serde(rename = "SNI")]
    pub sni: String,
    #[serde(rename = "ALPN")]
    pub alpn: Vec<String>,
    #[serde(rename = "Transport")]
    pub transport: String,
}

/// `{"CertHash": sha1}`: a chain entry whose certificate the store cannot give.
pub fn cert_hash_only(sha1: &str) -> Box<RawValue> {
    let text = json!({ "CertHash": sha1 }).to_string();
    RawValue::from_string(text).unwrap_or_else(|_| Box::<RawValue>::default())
}

/// The record of one session; `certs` maps a chain SHA-1 to its Go certificate object
/// ([`d4_tls::gojson::certificate_json`]); a SHA-1 missing there becomes
/// [`cert_hash_only`].
pub fn session_record(s: &Session, certs: &HashMap<String, Box<RawValue>>) -> SessionRecord {
    let ip = |a: &Option<std::net::IpAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    let port = |p: &Option<u16>| p.map(|p| p.to_string()).unwrap_or_default();
    let certificates = (!s.chain.is_empty()).then(|| {
        s.chain
            .iter()
            .map(|h| certs.get(h).cloned().unwrap_or_else(|| cert_hash_only(h)))
            .collect()
    });
    SessionRecord {
        server_ip: ip(&s.server_ip),
        server_port: port(&s.server_port),
        client_ip: ip(&s.client_ip),
        client_port: port(&s.client_port),
        tlsh: s.tlsh.clone(),
        timestamp: time(s.ts),
        ja3: s.ja3_raw.clone(),
        ja3_digest: s.ja3.clone(),
        ja3s: s.ja3s_raw.clone(),
        ja3s_digest: s.ja3s.clone(),
        certificates,
        ja4: s.ja4.clone(),
        ja4_r: s.ja4_r.clone(),
        sni: s.sni.clone(),
        alpn: s.alpn.clone(),
        transport: s.transport.clone(),
    }
}

/// `/ja3`, `/ja3s`, `/ja4`: `{"Sessions": [...]}`, `{"Sessions": null}` when none.
#[derive(Debug, Serialize)]
pub struct SessionsAnswer {
    #[serde(rename = "Sessions")]
    pub sessions: Option<Vec<SessionRecord>>,
}

/// `/sessions`: `{"items": [...], "next": ...}`.
#[derive(Debug, Serialize)]
pub struct SessionItems {
    pub items: Vec<SessionRecord>,
    pub next: Option<String>,
}

pub fn sessions(page: &[Session], certs: &HashMap<String, Box<RawValue>>) -> SessionsAnswer {
    SessionsAnswer {
        sessions: (!page.is_empty())
            .then(|| page.iter().map(|s| session_record(s, certs)).collect()),
    }
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
