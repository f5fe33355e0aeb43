//! Passive SSL: per UTC day, from the TLS sessions of that day: an `x509` object per leaf
//! certificate, an `ip-port` object per server address and port, the certificate
//! referencing the addresses that presented it with `seen-by` (as MISP's own passive SSL
//! module links an IP and a certificate); a `ja3` object per (JA3, client address), a
//! `ja3s` object per (JA3, JA3S, server address), a `ja4-plus` object per (JA4, client
//! address), each `related-to` the certificates of its sessions. First and last seen are
//! those of the day's sessions. Objects are added in that order up to the bound, and
//! references only point at objects the event holds.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use base64::Engine;
use chrono::NaiveDate;
use uuid::Uuid;

use crate::build::{datetime, day_of, Analyzer, EventBuilder, EventSettings, ObjectBuilder};
use crate::model::Event;
use crate::template::{IP_PORT, JA3, JA3S, JA4_PLUS, X509};

use super::{decimal_to_hex, is_domain, Days};

/// A certificate's facts (the passive SSL store's).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsCertificate {
    /// SHA-1 and SHA-256 of the DER, lowercase hex.
    pub sha1: String,
    pub sha256: String,
    pub subject: String,
    pub issuer: String,
    /// Serial number, signed decimal.
    pub serial: String,
    /// Validity, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// `RSA`, `ECDSA`, `Ed25519`…
    pub key_algorithm: String,
    pub key_bits: u32,
    /// RSA modulus, decimal.
    pub modulus: Option<String>,
    pub exponent: Option<u64>,
    pub is_ca: bool,
    pub self_signed: bool,
    /// DNS names of the subject alternative names.
    pub dns_names: Vec<String>,
    /// The DER (empty when unknown).
    pub der: Vec<u8>,
}

/// One TLS session (time in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSession {
    pub ts: i64,
    pub client_ip: Option<IpAddr>,
    pub server_ip: Option<IpAddr>,
    pub server_port: Option<u16>,
    /// JA3 / JA3S digests (lowercase hex MD5, empty when not seen), the JA3 string, JA4.
    pub ja3: String,
    pub ja3_raw: String,
    pub ja3s: String,
    pub ja4: String,
    pub sni: String,
    /// SHA-1 of the leaf certificate, when the server sent one.
    pub leaf: Option<String>,
}

/// The `x509` object of a certificate in an event.
pub fn x509_object(ev: &EventBuilder, c: &TlsCertificate) -> ObjectBuilder {
    let mut o = ev.object(&X509, &c.sha1);
    o.add("x509-fingerprint-sha1", c.sha1.clone())
        .add("x509-fingerprint-sha256", c.sha256.clone())
        .add("subject", c.subject.clone())
        .add("issuer", c.issuer.clone());
    match c.serial.strip_prefix('-') {
        None => o.add_opt("serial-number", decimal_to_hex(&c.serial)),
        Some(_) => o.add("serial-number", c.serial.clone()),
    };
    o.add("validity-not-before", datetime(c.not_before))
        .add("validity-not-after", datetime(c.not_after))
        .add("pubkey-info-algorithm", c.key_algorithm.clone());
    if c.key_bits > 0 {
        o.add("pubkey-info-size", c.key_bits.to_string());
    }
    o.add_opt(
        "pubkey-info-modulus",
        c.modulus.as_deref().and_then(decimal_to_hex),
    )
    .add_opt("pubkey-info-exponent", c.exponent.map(|e| e.to_string()))
    .add("is_ca", if c.is_ca { "True" } else { "False" })
    .add("self_signed", if c.self_signed { "True" } else { "False" });
    for n in c.dns_names.iter().filter(|n| is_domain(n)) {
        o.add("dns_names", n.clone());
    }
    if !c.der.is_empty() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&c.der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        o.add("pem", pem).add("raw-base64", b64);
    }
    o
}

struct Seen {
    first: i64,
    last: i64,
    certs: BTreeSet<String>,
    raw: String,
    snis: BTreeSet<String>,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen {
            first: i64::MAX,
            last: i64::MIN,
            certs: BTreeSet::new(),
            raw: String::new(),
            snis: BTreeSet::new(),
        }
    }
}

impl Seen {
    fn see(&mut self, ts: i64, leaf: &Option<String>) {
        self.first = self.first.min(ts);
        self.last = self.last.max(ts);
        if let Some(l) = leaf {
            self.certs.insert(l.clone());
        }
    }
}

#[derive(Default)]
struct Day {
    leaves: BTreeMap<String, BTreeSet<(IpAddr, u16)>>,
    servers: BTreeMap<(IpAddr, u16), Seen>,
    ja3: BTreeMap<(String, IpAddr), Seen>,
    ja3s: BTreeMap<(String, String, IpAddr), Seen>,
    ja4: BTreeMap<(String, IpAddr), Seen>,
}

/// The passive SSL events of `sessions` (certificates from `certs` by SHA-1), and how many
/// objects were left out by `max_per_event`.
pub fn events(
    settings: &EventSettings,
    sessions: &[TlsSession],
    certs: &HashMap<String, TlsCertificate>,
    max_per_event: usize,
) -> (Vec<Event>, usize) {
    let mut per_day: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    for s in sessions {
        let d = per_day.entry(day_of(s.ts)).or_default();
        let server = s.server_ip.zip(s.server_port);
        if let Some(leaf) = &s.leaf {
            let e = d.leaves.entry(leaf.clone()).or_default();
            if let Some(sv) = server {
                e.insert(sv);
            }
        }
        if let Some(sv) = server {
            d.servers.entry(sv).or_default().see(s.ts, &None);
        }
        if let Some(c) = s.client_ip {
            if !s.ja3.is_empty() {
                let e = d.ja3.entry((s.ja3.clone(), c)).or_default();
                e.see(s.ts, &s.leaf);
                if e.raw.is_empty() {
                    e.raw = s.ja3_raw.clone();
                }
            }
            if !s.ja4.is_empty() {
                d.ja4
                    .entry((s.ja4.clone(), c))
                    .or_default()
                    .see(s.ts, &s.leaf);
            }
        }
        if let (Some(sv), false, false) = (s.server_ip, s.ja3.is_empty(), s.ja3s.is_empty()) {
            let e = d
                .ja3s
                .entry((s.ja3.clone(), s.ja3s.clone(), sv))
                .or_default();
            e.see(s.ts, &s.leaf);
            if is_domain(&s.sni) {
                e.snis.insert(s.sni.to_ascii_lowercase());
            }
        }
    }
    let mut days = Days::new(settings, Analyzer::PassiveSsl);
    let mut dropped = 0;
    let mut servers_dropped = 0;
    for (day, d) in per_day {
        let ev = days.day(day);
        let mut added: HashSet<Uuid> = HashSet::new();
        let mut room = |ev: &mut EventBuilder, o: ObjectBuilder, added: &mut HashSet<Uuid>| {
            if ev.objects() >= max_per_event {
                dropped += 1;
                return;
            }
            added.insert(o.uuid());
            ev.add(o);
        };
        let server_uuid = |ev: &EventBuilder, sv: &(IpAddr, u16)| {
            ev.object(&IP_PORT, &format!("{}\0{}", sv.0, sv.1)).uuid()
        };
        // the servers take at most half of the event, so that the certificates and
        // fingerprints (what the event is for) always have room
        let server_room = (max_per_event / 2).max(1);
        for (sv, seen) in &d.servers {
            if ev.objects() >= server_room {
                servers_dropped += 1;
                continue;
            }
            let mut o = ev.object(&IP_PORT, &format!("{}\0{}", sv.0, sv.1));
            o.add("ip", sv.0.to_string())
                .add("dst-port", sv.1.to_string())
                .add("first-seen", datetime(seen.first))
                .add("last-seen", datetime(seen.last));
            room(ev, o, &mut added);
        }
        let mut cert_uuid: HashMap<&str, Uuid> = HashMap::new();
        for (sha1, servers) in &d.leaves {
            let Some(c) = certs.get(sha1) else { continue };
            let mut o = x509_object(ev, c);
            for sv in servers {
                let u = server_uuid(ev, sv);
                if added.contains(&u) {
                    o.reference("seen-by", u);
                }
            }
            cert_uuid.insert(sha1, o.uuid());
            room(ev, o, &mut added);
        }
        let related = |o: &mut ObjectBuilder, seen: &Seen, added: &HashSet<Uuid>| {
            for c in &seen.certs {
                if let Some(u) = cert_uuid.get(c.as_str()).filter(|u| added.contains(u)) {
                    o.reference("related-to", *u);
                }
            }
        };
        for ((ja3, ja3s, server), seen) in &d.ja3s {
            let mut o = ev.object(&JA3S, &format!("{ja3}\0{ja3s}\0{server}"));
            o.add("ja3-fingerprint-md5", ja3.clone())
                .add("ja3s-fingerprint-md5", ja3s.clone())
                .add("ip-dst", server.to_string());
            for n in &seen.snis {
                o.add("domain", n.clone());
            }
            o.add("first-seen", datetime(seen.first))
                .add("last-seen", datetime(seen.last));
            related(&mut o, seen, &added);
            room(ev, o, &mut added);
        }
        for ((ja3, client), seen) in &d.ja3 {
            let mut o = ev.object(&JA3, &format!("{ja3}\0{client}"));
            o.add("ja3-fingerprint-md5", ja3.clone())
                .add("ip-src", client.to_string())
                .add("first-seen", datetime(seen.first))
                .add("last-seen", datetime(seen.last));
            if !seen.raw.is_empty() {
                o.add("description", format!("JA3 string: {}", seen.raw));
            }
            related(&mut o, seen, &added);
            room(ev, o, &mut added);
        }
        for ((ja4, client), seen) in &d.ja4 {
            let mut o = ev.object(&JA4_PLUS, &format!("{ja4}\0{client}"));
            o.add("ja4-fingerprint", ja4.clone())
                .add("ja4-type", "JA4")
                .add("ip-src", client.to_string());
            related(&mut o, seen, &added);
            room(ev, o, &mut added);
        }
    }
    (days.finish(), dropped + servers_dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Org, Tag};

    /// A day with more servers than the event bound still carries its certificate and
    /// server fingerprints: the servers take at most half of the event.
    #[test]
    fn servers_do_not_crowd_out_the_certificates() {
        let s = EventSettings {
            org: Org {
                name: "T".into(),
                uuid: Uuid::from_u128(1),
            },
            tags: Vec::<Tag>::new(),
            distribution: 1,
            threat_level: 3,
            analysis: 2,
            info_prefix: "t".into(),
        };
        let cert = TlsCertificate {
            sha1: "a".repeat(40),
            sha256: "b".repeat(64),
            subject: "CN=x".into(),
            issuer: "CN=y".into(),
            serial: "5".into(),
            key_algorithm: "RSA".into(),
            ..Default::default()
        };
        let sessions: Vec<TlsSession> = (0..50u16)
            .map(|i| TlsSession {
                ts: 1_704_067_200 + i64::from(i),
                server_ip: Some(IpAddr::from([192, 0, 2, i as u8])),
                server_port: Some(443),
                ja3: "c".repeat(32),
                ja3s: "d".repeat(32),
                leaf: Some(cert.sha1.clone()),
                ..Default::default()
            })
            .collect();
        let certs: HashMap<String, TlsCertificate> = [(cert.sha1.clone(), cert)].into();
        let max = 10;
        let (events, dropped) = events(&s, &sessions, &certs, max);
        assert_eq!(events.len(), 1);
        let names: Vec<&str> = events[0].objects.iter().map(|o| o.name.as_str()).collect();
        let count = |n: &str| names.iter().filter(|x| **x == n).count();
        assert_eq!(count("ip-port"), max / 2, "{names:?}");
        assert_eq!(count("x509"), 1, "{names:?}");
        assert!(count("ja3s") >= 1, "{names:?}");
        assert!(names.len() <= max);
        assert!(dropped >= 50 - max / 2);
    }
}
