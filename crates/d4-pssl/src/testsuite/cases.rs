//! The conformance checks, each over a fresh, empty store. Expected values come from the
//! scenario's own inputs ([`super::scenario`]): times, addresses and fingerprints as
//! written in its lines, hashes computed by the suite from the DER.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::data::{T0, T_END};
use super::scenario::{md5_hex, Scenario, JA3S_1, JA3_1, JA3_2, JA4_X, JA4_Y};
use crate::store::{
    Fingerprint, Info, IpCerts, IpSeen, Page, Paged, PsslStore, Seen, SessionQuery,
};

pub use super::paging::{paging, paging_during_ingest};

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn all(limit: usize) -> Page {
    Page::first(limit)
}

fn set<I: IntoIterator<Item = String>>(i: I) -> BTreeSet<String> {
    i.into_iter().collect()
}

fn seen_ip(a: &str, port: Option<u16>, first: i64, last: i64, count: u64) -> IpSeen {
    IpSeen {
        ip: ip(a),
        port,
        first,
        last,
        count,
    }
}

/// The [`Info`] of the whole scenario.
fn scenario_info() -> Info {
    Info {
        certificates: 4,
        keys: 3,
        sessions: 5,
        ips: 3,
        ja3: 2,
        ja3s: 1,
        ja4: 2,
        sni: 2,
        ip_certificate_links: 4,
    }
}

/// Commit the scenario, then ask every query.
pub fn commit_then_every_query(s: &dyn PsslStore) {
    let sc = Scenario::new();
    let c = &sc.certs;
    let stats = s.commit(&sc.batch()).unwrap();
    assert_eq!(
        (stats.new_certificates, stats.new_keys, stats.new_sessions),
        (4, 3, 5)
    );
    assert_eq!(s.info().unwrap(), scenario_info());

    // Certificates by SHA-1 and SHA-256 (any case).
    let a = s.certificate(&c.a.sha1).unwrap().expect("a by sha1");
    assert_eq!(a.certificate.sha1, c.a.sha1);
    assert_eq!(a.certificate.sha256, c.a.sha256);
    assert_eq!(a.certificate.der, c.a.der);
    assert_eq!(a.certificate.spki_sha256, c.a.spki_sha256);
    assert!(a.certificate.subject.contains("CN=a.example.test"));
    assert!(a.certificate.issuer.contains("CN=d4 pssl test CA"));
    assert_eq!(a.certificate.sans, vec!["a.example.test".to_string()]);
    assert_eq!(
        (a.certificate.not_before, a.certificate.not_after),
        (T0, T_END)
    );
    assert!(!a.certificate.is_ca && !a.certificate.self_signed);
    assert_eq!(
        (a.first_seen, a.last_seen, a.hits),
        (Some(T0), Some(T0 + 3600), 2)
    );
    assert_eq!(a.chain_positions, vec![0]);
    let key = a.key.clone().expect("a's key");
    assert_eq!(key.spki_sha256, c.a.spki_sha256);
    assert_eq!((key.key_type.as_str(), key.bits), ("ECDSA", 256));
    assert_eq!(key.curve.as_deref(), Some("P-256"));
    assert!(key.x.is_some() && key.y.is_some() && key.modulus.is_none());
    assert_eq!(s.certificate(&c.a.sha256).unwrap(), Some(a.clone()));
    assert_eq!(s.certificate(&c.a.sha1.to_uppercase()).unwrap(), Some(a));

    let ca = s.certificate(&c.ca.sha256).unwrap().expect("ca by sha256");
    assert!(ca.certificate.is_ca && ca.certificate.self_signed);
    assert_eq!((ca.hits, ca.chain_positions.clone()), (2, vec![1]));
    let b = s.certificate(&c.b.sha1).unwrap().expect("b");
    assert!(!b.certificate.is_ca && b.certificate.self_signed);
    assert_eq!(
        (b.first_seen, b.last_seen, b.hits),
        (Some(T0 + 7200), Some(T0 + 7200), 1)
    );
    let a2 = s.certificate(&c.a2.sha1).unwrap().expect("a2");
    assert_eq!((a2.first_seen, a2.hits), (Some(T0 + 10), 1));

    // Certificate → addresses.
    let p = s.certificate_ips(&c.a.sha1, &all(100)).unwrap();
    assert_eq!(
        p,
        Paged {
            items: vec![seen_ip("198.51.100.7", Some(443), T0, T0 + 3600, 2)],
            next: None
        }
    );
    let p = s.certificate_ips(&c.b.sha1, &all(100)).unwrap();
    assert_eq!(
        p.items,
        vec![seen_ip(
            "2001:db8:2::1",
            Some(8443),
            T0 + 7200,
            T0 + 7200,
            1
        )]
    );

    // Addresses → certificates: /24, /32, IPv6 /64.
    let mut at7 = vec![
        Seen {
            value: c.a.sha1.clone(),
            first: T0,
            last: T0 + 3600,
            count: 2,
        },
        Seen {
            value: c.ca.sha1.clone(),
            first: T0,
            last: T0 + 3600,
            count: 2,
        },
    ];
    at7.sort_by(|x, y| x.value.cmp(&y.value));
    let at9 = IpCerts {
        ip: ip("198.51.100.9"),
        certificates: vec![Seen {
            value: c.a2.sha1.clone(),
            first: T0 + 10,
            last: T0 + 10,
            count: 1,
        }],
        ports: vec![443],
    };
    let p = s
        .ip_certificates("198.51.100.0/24".parse().unwrap(), &all(100))
        .unwrap();
    assert_eq!(
        p.items,
        vec![
            IpCerts {
                ip: ip("198.51.100.7"),
                certificates: at7,
                ports: vec![443]
            },
            at9.clone()
        ]
    );
    assert_eq!(p.next, None);
    let p = s
        .ip_certificates("198.51.100.9/32".parse().unwrap(), &all(100))
        .unwrap();
    assert_eq!(p.items, vec![at9]);
    let p = s
        .ip_certificates("2001:db8:2::/64".parse().unwrap(), &all(100))
        .unwrap();
    assert_eq!(p.items.len(), 1);
    assert_eq!(p.items[0].ip, ip("2001:db8:2::1"));
    assert_eq!(p.items[0].ports, vec![8443]);
    assert_eq!(
        set(p.items[0].certificates.iter().map(|x| x.value.clone())),
        set([c.b.sha1.clone()])
    );
    // The IPv6 query does not reach IPv4 servers, and the reverse.
    let p = s
        .ip_certificates("2001:db8::/32".parse().unwrap(), &all(100))
        .unwrap();
    assert_eq!(
        p.items.iter().map(|x| x.ip).collect::<Vec<_>>(),
        vec![ip("2001:db8:2::1")]
    );
    let p = s
        .ip_certificates("0.0.0.0/0".parse().unwrap(), &all(100))
        .unwrap();
    assert_eq!(
        p.items.iter().map(|x| x.ip).collect::<Vec<_>>(),
        vec![ip("198.51.100.7"), ip("198.51.100.9")]
    );

    // Fingerprints → addresses (clients for JA3/JA4, servers for JA3S).
    let q = |fp: Fingerprint| s.fingerprint_ips(&fp, &all(100)).unwrap().items;
    assert_eq!(
        q(Fingerprint::Ja3(md5_hex(JA3_1))),
        vec![
            seen_ip("192.0.2.10", None, T0, T0 + 10, 2),
            seen_ip("192.0.2.11", None, T0 + 3600, T0 + 3600, 1)
        ]
    );
    assert_eq!(
        q(Fingerprint::Ja3(md5_hex(JA3_2).to_uppercase())),
        vec![seen_ip("2001:db8:1::5", None, T0 + 7200, T0 + 7200, 1)]
    );
    assert_eq!(
        q(Fingerprint::Ja3s(md5_hex(JA3S_1))),
        vec![seen_ip("198.51.100.7", None, T0, T0 + 3600, 2)]
    );
    assert_eq!(
        q(Fingerprint::Ja4(JA4_X.into())),
        vec![
            seen_ip("192.0.2.10", None, T0, T0, 1),
            seen_ip("192.0.2.11", None, T0 + 3600, T0 + 3600, 1)
        ]
    );

    // Sessions, oldest first.
    let times = |by: SessionQuery| -> Vec<i64> {
        s.sessions(&by, &all(100))
            .unwrap()
            .items
            .iter()
            .map(|x| x.ts)
            .collect()
    };
    assert_eq!(
        times(SessionQuery::Ja3(md5_hex(JA3_1))),
        vec![T0, T0 + 10, T0 + 3600]
    );
    assert_eq!(
        times(SessionQuery::Ja3(md5_hex(JA3_2))),
        vec![T0 + 20, T0 + 7200]
    );
    assert_eq!(
        times(SessionQuery::Ja3s(md5_hex(JA3S_1))),
        vec![T0, T0 + 3600]
    );
    assert_eq!(times(SessionQuery::Ja4(JA4_Y.into())), vec![T0 + 7200]);
    assert_eq!(
        times(SessionQuery::Sni("A.Example.TEST".into())),
        vec![T0, T0 + 3600]
    );
    assert_eq!(times(SessionQuery::Ip(ip("192.0.2.10"))), vec![T0, T0 + 10]);
    assert_eq!(
        times(SessionQuery::Ip(ip("198.51.100.7"))),
        vec![T0, T0 + 3600]
    );
    let s1 = &s
        .sessions(&SessionQuery::Ip(ip("192.0.2.10")), &all(1))
        .unwrap()
        .items[0];
    assert_eq!(s1.client_ip, Some(ip("192.0.2.10")));
    assert_eq!(s1.client_port, Some(50000));
    assert_eq!(s1.server_ip, Some(ip("198.51.100.7")));
    assert_eq!(s1.server_port, Some(443));
    assert_eq!(
        (s1.ja3.as_str(), s1.ja3_raw.as_str()),
        (md5_hex(JA3_1).as_str(), JA3_1)
    );
    assert_eq!(
        (s1.ja3s.as_str(), s1.ja3s_raw.as_str()),
        (md5_hex(JA3S_1).as_str(), JA3S_1)
    );
    assert_eq!(
        (s1.ja4.as_str(), s1.sni.as_str()),
        (JA4_X, "a.example.test")
    );
    assert_eq!(s1.alpn, vec!["h2".to_string(), "http/1.1".to_string()]);
    assert_eq!(s1.transport, "tcp");
    assert_eq!(s1.chain, vec![c.a.sha1.clone(), c.ca.sha1.clone()]);
    let s5 = &s
        .sessions(&SessionQuery::Ja3(md5_hex(JA3_2)), &all(1))
        .unwrap()
        .items[0];
    assert_eq!(
        (s5.client_ip, s5.server_ip, s5.chain.len()),
        (None, None, 0)
    );

    // SNI → leaf certificates; subjects; keys.
    assert_eq!(
        s.sni_certificates("a.example.test", &all(100))
            .unwrap()
            .items,
        vec![Seen {
            value: c.a.sha1.clone(),
            first: T0,
            last: T0 + 3600,
            count: 2
        }]
    );
    assert_eq!(
        set(s.subject_search("EXAMPLE.test", &all(100)).unwrap().items),
        set([c.a.sha1.clone(), c.a2.sha1.clone(), c.b.sha1.clone()])
    );
    assert_eq!(
        s.subject_search("pssl test ca", &all(100)).unwrap().items,
        vec![c.ca.sha1.clone()]
    );
    assert_eq!(
        set(s
            .key_certificates(&c.a.spki_sha256, &all(100))
            .unwrap()
            .items),
        set([c.a.sha1.clone(), c.a2.sha1.clone()])
    );
    assert_eq!(
        s.key_certificates(&c.b.spki_sha256, &all(100))
            .unwrap()
            .items,
        vec![c.b.sha1.clone()]
    );
}

/// The same batch twice, then every record again one by one: nothing changes.
pub fn idempotent(s: &dyn PsslStore) {
    let sc = Scenario::new();
    let batch = sc.batch();
    s.commit(&batch).unwrap();
    let info = s.info().unwrap();
    let view = s.certificate(&sc.certs.a.sha1).unwrap();
    let ips = s.certificate_ips(&sc.certs.a.sha1, &all(100)).unwrap();
    let fps = s
        .fingerprint_ips(&Fingerprint::Ja3(md5_hex(JA3_1)), &all(100))
        .unwrap();
    let again = s.commit(&batch).unwrap();
    assert_eq!(
        (
            again.new_certificates,
            again.new_keys,
            again.new_sessions,
            again.known_sessions
        ),
        (0, 0, 0, 5)
    );
    for i in 0..sc.lines.len() {
        let st = s.commit(&sc.batch_of(&[i])).unwrap();
        assert_eq!((st.new_sessions, st.known_sessions), (0, 1));
    }
    assert_eq!(s.info().unwrap(), info);
    assert_eq!(info, scenario_info());
    assert_eq!(s.certificate(&sc.certs.a.sha1).unwrap(), view);
    assert_eq!(s.certificate_ips(&sc.certs.a.sha1, &all(100)).unwrap(), ips);
    assert_eq!(
        s.fingerprint_ips(&Fingerprint::Ja3(md5_hex(JA3_1)), &all(100))
            .unwrap(),
        fps
    );
    assert_eq!(
        s.sessions(&SessionQuery::Ja3(md5_hex(JA3_1)), &all(100))
            .unwrap()
            .items
            .len(),
        3
    );
}

/// Two sessions in two commits, the later one first: counts add up, first is the minimum
/// and last the maximum.
pub fn counts_first_last_across_commits(s: &dyn PsslStore) {
    let sc = Scenario::new();
    let c = &sc.certs;
    s.commit(&sc.batch_of(&[1])).unwrap(); // S2, T0+3600
    let v = s.certificate(&c.a.sha1).unwrap().unwrap();
    assert_eq!(
        (v.first_seen, v.last_seen, v.hits),
        (Some(T0 + 3600), Some(T0 + 3600), 1)
    );
    s.commit(&sc.batch_of(&[0])).unwrap(); // S1, T0
    let v = s.certificate(&c.a.sha1).unwrap().unwrap();
    assert_eq!(
        (v.first_seen, v.last_seen, v.hits),
        (Some(T0), Some(T0 + 3600), 2)
    );
    assert_eq!(
        s.certificate_ips(&c.ca.sha1, &all(10)).unwrap().items,
        vec![seen_ip("198.51.100.7", Some(443), T0, T0 + 3600, 2)]
    );
    assert_eq!(
        s.fingerprint_ips(&Fingerprint::Ja3s(md5_hex(JA3S_1)), &all(10))
            .unwrap()
            .items,
        vec![seen_ip("198.51.100.7", None, T0, T0 + 3600, 2)]
    );
    // A later session after an earlier one: last grows (JA3_1 from 192.0.2.10: S1 at T0,
    // then S4 at T0+10).
    s.commit(&sc.batch_of(&[3])).unwrap();
    assert_eq!(
        s.fingerprint_ips(&Fingerprint::Ja3(md5_hex(JA3_1)), &all(10))
            .unwrap()
            .items,
        vec![
            seen_ip("192.0.2.10", None, T0, T0 + 10, 2),
            seen_ip("192.0.2.11", None, T0 + 3600, T0 + 3600, 1)
        ]
    );
    let sni = s
        .sni_certificates("a.example.test", &all(10))
        .unwrap()
        .items;
    assert_eq!(
        (sni[0].first, sni[0].last, sni[0].count),
        (T0, T0 + 3600, 2)
    );
    let info = s.info().unwrap();
    // S1, S2 and S4: certificates a, ca, a2 (a and a2 share a key); servers .7 and .9.
    assert_eq!((info.certificates, info.keys, info.sessions), (3, 2, 3));
    assert_eq!(
        (
            info.ips,
            info.ip_certificate_links,
            info.ja3,
            info.ja4,
            info.sni
        ),
        (2, 3, 1, 1, 1)
    );
}

/// Unknown values answer empty or `None`; malformed ones are errors.
pub fn unknown_values(s: &dyn PsslStore) {
    for round in 0..2 {
        if round == 1 {
            s.commit(&Scenario::new().batch()).unwrap();
        } else {
            assert_eq!(s.info().unwrap(), Info::default());
        }
        let none = "0".repeat(40);
        let p = all(10);
        assert_eq!(s.certificate(&none).unwrap(), None);
        assert_eq!(s.certificate(&"1".repeat(64)).unwrap(), None);
        assert!(s.certificate_ips(&none, &p).unwrap().items.is_empty());
        let net = "203.0.113.0/24".parse().unwrap();
        assert_eq!(
            s.ip_certificates(net, &p).unwrap(),
            Paged {
                items: vec![],
                next: None
            }
        );
        assert!(s
            .fingerprint_ips(&Fingerprint::Ja3(md5_hex("nothing")), &p)
            .unwrap()
            .items
            .is_empty());
        assert!(s
            .fingerprint_ips(
                &Fingerprint::Ja4("t13d0000h2_000000000000_000000000000".into()),
                &p
            )
            .unwrap()
            .items
            .is_empty());
        assert!(s
            .sessions(&SessionQuery::Ip(ip("203.0.113.99")), &p)
            .unwrap()
            .items
            .is_empty());
        assert!(s
            .sessions(&SessionQuery::Sni("nowhere.test".into()), &p)
            .unwrap()
            .items
            .is_empty());
        assert!(s
            .sni_certificates("nowhere.test", &p)
            .unwrap()
            .items
            .is_empty());
        assert!(s
            .subject_search("no such subject", &p)
            .unwrap()
            .items
            .is_empty());
        assert!(s
            .key_certificates(&"2".repeat(64), &p)
            .unwrap()
            .items
            .is_empty());
        // Malformed values and cursors.
        assert!(s.certificate("not-a-hash").is_err());
        assert!(s.certificate(&"z".repeat(40)).is_err());
        assert!(s.certificate_ips("abc", &p).is_err());
        assert!(s
            .fingerprint_ips(&Fingerprint::Ja3("xyz".into()), &p)
            .is_err());
        assert!(s.key_certificates("00", &p).is_err());
        assert!(s
            .sessions(
                &SessionQuery::Ja3(md5_hex(JA3_1)),
                &Page::after("not hex!".into(), 1)
            )
            .is_err());
    }
}
