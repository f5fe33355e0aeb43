//! Weak keys: per weak public key, a `crypto-material` object (`origin`
//! `mathematical-attack`, the type, modulus and exponent, the recovered factors `p` and
//! `q` only when configured to include them, the checks that found it as `text`), and an
//! `x509` object per certificate holding the key, `related-to` the key's object. In the
//! event of the UTC day the key was first found weak.

use crate::build::{day_of, Analyzer, EventSettings};
use crate::model::Event;
use crate::template::CRYPTO_MATERIAL;

use super::tls::{x509_object, TlsCertificate};
use super::{decimal_to_hex, Days};

/// One weak public key and what was found on it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WeakKeyFinding {
    /// SHA-256 of the SubjectPublicKeyInfo, lowercase hex.
    pub spki_sha256: String,
    /// `RSA`, `ECDSA`, `DSA`, `Ed25519`, `other`.
    pub key_type: String,
    pub bits: u32,
    /// RSA modulus, decimal.
    pub modulus: Option<String>,
    pub exponent: Option<u64>,
    /// The checks that found it (`fermat`, `sharedprimes/…`), with how (`check`, `batch_gcd`).
    pub checks: Vec<String>,
    /// Recovered factors, lowercase hex.
    pub p: Option<String>,
    pub q: Option<String>,
    /// When it was first found, Unix seconds.
    pub found: i64,
    /// Certificates holding the key.
    pub certificates: Vec<TlsCertificate>,
}

/// The `crypto-material` `type` of a key type (the template's values).
fn material_type(key_type: &str) -> &'static str {
    match key_type {
        "RSA" => "RSA",
        "DSA" => "DSA",
        "ECDSA" => "ECDSA",
        _ => "unknown",
    }
}

/// The weak-key events, and how many objects were left out by `max_per_event`.
pub fn events(
    settings: &EventSettings,
    mut findings: Vec<WeakKeyFinding>,
    include_factors: bool,
    max_per_event: usize,
) -> (Vec<Event>, usize) {
    findings.sort_by(|a, b| (a.found, &a.spki_sha256).cmp(&(b.found, &b.spki_sha256)));
    let mut days = Days::new(settings, Analyzer::WeakKeys);
    let mut dropped = 0;
    for f in findings {
        let ev = days.day(day_of(f.found));
        if ev.objects() >= max_per_event {
            dropped += 1 + f.certificates.len();
            continue;
        }
        let mut key = ev.object(&CRYPTO_MATERIAL, &f.spki_sha256);
        key.add("type", material_type(&f.key_type))
            .add("origin", "mathematical-attack")
            .add_opt("modulus", f.modulus.as_deref().and_then(decimal_to_hex))
            .add_opt("e", f.exponent.map(|e| e.to_string()));
        if f.key_type == "RSA" && f.bits > 0 {
            key.add("rsa-modulus-size", f.bits.to_string());
        }
        if include_factors {
            key.add_opt("p", f.p.clone()).add_opt("q", f.q.clone());
        }
        let mut checks = f.checks.clone();
        checks.sort();
        checks.dedup();
        key.add(
            "text",
            format!(
                "weak {} key (SPKI SHA-256 {}): {}",
                f.key_type,
                f.spki_sha256,
                checks.join(", ")
            ),
        );
        let key_uuid = key.uuid();
        ev.add(key);
        let mut certs = f.certificates.clone();
        certs.sort_by(|a, b| a.sha1.cmp(&b.sha1));
        for c in &certs {
            if ev.objects() >= max_per_event {
                dropped += 1;
                continue;
            }
            let mut o = x509_object(ev, c);
            o.reference("related-to", key_uuid);
            ev.add(o);
        }
    }
    (days.finish(), dropped)
}
