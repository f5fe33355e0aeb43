//! The conformance suite on the PostgreSQL store (a real server from d4-testkit, one
//! database per test), and what only it has: reading a database the reference analyzer
//! (analyzer-d4-passivessl) filled with its own tables alone, both programs writing to one
//! database, reopening, and the layout check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::ops::Deref;

use d4_pssl::postgres::REFERENCE_SQL;
use d4_pssl::{Fingerprint, Page, PostgresStore, PsslError, PsslStore, Seen, SessionQuery};
use d4_testkit::{PostgresServer, TestDatabase};

struct Fresh {
    store: PostgresStore,
    _db: TestDatabase,
}

impl Deref for Fresh {
    type Target = PostgresStore;
    fn deref(&self) -> &PostgresStore {
        &self.store
    }
}

fn fresh() -> Fresh {
    let db = PostgresServer::shared().database();
    let store = PostgresStore::open(db.url()).unwrap();
    Fresh { store, _db: db }
}

d4_pssl::pssl_store_suite!(fresh());

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// A database as the reference analyzer leaves it: its tables only, hashes as hex text in
// bytea (a text literal cast to bytea keeps its ASCII bytes, as lib/pq's string parameters
// do), "sessionRecord" rows with hash_ja3. The values are written by hand.
const LEAF: &str = "1111111111111111111111111111111111111111";
const ROOT: &str = "2222222222222222222222222222222222222222";
const OTHER: &str = "3333333333333333333333333333333333333333";
const KEY: &str = "4444444444444444444444444444444444444444444444444444444444444444";
const JA3: &str = "5555555555555555555555555555555a";
const JA3S: &str = "6666666666666666666666666666666b";
const JA3_RAW: &str = "771,4865-4866,0-10-11,29-23,0";

const REFERENCE_ROWS: &str = "
INSERT INTO public_key (hash, type, modulus, exponent, modulus_size, bitsize)
    VALUES ('4444444444444444444444444444444444444444444444444444444444444444', 'RSA', '3233', 65537, 256, 2048);
INSERT INTO certificate (hash, issuer, subject, cert_chain, \"is_CA\", is_valid_chain, \"is_SS\", atrest_path, mounted_path) VALUES
    ('2222222222222222222222222222222222222222', 'CN=Root', 'CN=Root', '2222222222222222222222222222222222222222', true, true, true, '/certs/22/2222', '/mnt/22/2222'),
    ('1111111111111111111111111111111111111111', 'CN=Root', 'CN=www.example.org,O=Example',
     '2222222222222222222222222222222222222222.1111111111111111111111111111111111111111', false, true, false, '/certs/11/1111', '/mnt/11/1111'),
    ('3333333333333333333333333333333333333333', 'CN=Root', 'CN=other.example.org', NULL, false, false, false, '/certs/33/3333', '/mnt/33/3333');
INSERT INTO many_certificate_has_many_public_key (hash_certificate, hash_public_key)
    VALUES ('1111111111111111111111111111111111111111', '4444444444444444444444444444444444444444444444444444444444444444');
INSERT INTO ja3 (hash, raw, type) VALUES
    ('5555555555555555555555555555555a', '771,4865-4866,0-10-11,29-23,0', 'ja3'),
    ('6666666666666666666666666666666b', '771,4865,43', 'ja3s'),
    ('7777777777777777777777777777777c', '769,47-53,0,23,0', 'ja3');
INSERT INTO \"sessionRecord\" (id, dst_ip, src_ip, dst_port, src_port, hash_ja3, \"timestamp\") VALUES
    (1, '198.51.100.20', '192.0.2.1', 443, 50001, '5555555555555555555555555555555a', '2024-01-01 00:00:00+00'),
    (2, '198.51.100.20', '192.0.2.2', 443, 50002, '5555555555555555555555555555555a', '2024-01-01 01:00:00+00'),
    (3, '198.51.100.21', '192.0.2.1', 8443, 50003, '7777777777777777777777777777777c', '2024-01-01 02:00:00+00');
SELECT setval('\"sessionRecord_id_seq\"', 3);
INSERT INTO \"many_sessionRecord_has_many_certificate\" (\"id_sessionRecord\", hash_certificate) VALUES
    (1, '1111111111111111111111111111111111111111'), (1, '2222222222222222222222222222222222222222'),
    (2, '1111111111111111111111111111111111111111'), (2, '2222222222222222222222222222222222222222'),
    (3, '3333333333333333333333333333333333333333');
INSERT INTO fuzzy_hash (type, value, \"id_sessionRecord\") VALUES ('tlsh', 'T1ABCDEF', 1);
";

/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200;

fn reference_database() -> TestDatabase {
    let db = PostgresServer::shared().database();
    let mut c = postgres::Client::connect(db.url(), postgres::NoTls).unwrap();
    c.batch_execute(REFERENCE_SQL).unwrap();
    c.batch_execute(REFERENCE_ROWS).unwrap();
    db
}

#[test]
fn a_reference_database_is_read() {
    let db = reference_database();
    let s = PostgresStore::open(db.url()).unwrap();

    // Certificates by SHA-1 (any case), with their key and session statistics.
    let leaf = s.certificate(&LEAF.to_uppercase()).unwrap().expect("leaf");
    assert_eq!(leaf.certificate.sha1, LEAF);
    assert_eq!(leaf.certificate.subject, "CN=www.example.org,O=Example");
    assert_eq!(leaf.certificate.issuer, "CN=Root");
    assert!(!leaf.certificate.is_ca && !leaf.certificate.self_signed);
    assert!(leaf.certificate.der.is_empty() && leaf.certificate.sha256.is_empty());
    assert_eq!(leaf.certificate.spki_sha256, KEY);
    assert_eq!(
        (leaf.first_seen, leaf.last_seen, leaf.hits),
        (Some(T0), Some(T0 + 3600), 2)
    );
    let key = leaf.key.expect("the leaf's key");
    assert_eq!((key.key_type.as_str(), key.bits), ("RSA", 2048));
    assert_eq!(
        (key.modulus.as_deref(), key.exponent),
        (Some("3233"), Some(65537))
    );
    let root = s.certificate(ROOT).unwrap().expect("root");
    assert!(root.certificate.is_ca && root.certificate.self_signed);
    assert_eq!((root.hits, root.key), (2, None));
    assert_eq!(s.certificate(&"9".repeat(40)).unwrap(), None);

    // Sessions by JA3, oldest first, with the JA3 string, TLSH and chain.
    let p = s
        .sessions(&SessionQuery::Ja3(JA3.to_string()), &Page::first(10))
        .unwrap();
    assert_eq!(p.items.len(), 2);
    let s1 = &p.items[0];
    assert_eq!(s1.ts, T0);
    assert_eq!(
        (s1.client_ip, s1.client_port, s1.server_ip, s1.server_port),
        (
            Some(ip("192.0.2.1")),
            Some(50001),
            Some(ip("198.51.100.20")),
            Some(443)
        )
    );
    assert_eq!((s1.ja3.as_str(), s1.ja3_raw.as_str()), (JA3, JA3_RAW));
    assert_eq!(s1.tlsh, "T1ABCDEF");
    assert_eq!(s1.chain, vec![LEAF.to_string(), ROOT.to_string()]);
    assert_eq!(p.items[1].ts, T0 + 3600);
    // Paged one at a time.
    let first = s
        .sessions(&SessionQuery::Ja3(JA3.to_string()), &Page::first(1))
        .unwrap();
    let second = s
        .sessions(
            &SessionQuery::Ja3(JA3.to_string()),
            &Page::after(first.next.clone().unwrap(), 1),
        )
        .unwrap();
    assert_eq!(second.items, vec![p.items[1].clone()]);
    assert_eq!(
        s.sessions(&SessionQuery::Ip(ip("192.0.2.1")), &Page::first(10))
            .unwrap()
            .items
            .iter()
            .map(|x| x.ts)
            .collect::<Vec<_>>(),
        vec![T0, T0 + 7200]
    );

    // IP queries.
    let p = s
        .ip_certificates("198.51.100.0/24".parse().unwrap(), &Page::first(10))
        .unwrap();
    assert_eq!(
        p.items.iter().map(|x| x.ip).collect::<Vec<_>>(),
        vec![ip("198.51.100.20"), ip("198.51.100.21")]
    );
    assert_eq!(
        p.items[0].certificates,
        vec![
            Seen {
                value: LEAF.into(),
                first: T0,
                last: T0 + 3600,
                count: 2
            },
            Seen {
                value: ROOT.into(),
                first: T0,
                last: T0 + 3600,
                count: 2
            }
        ]
    );
    assert_eq!(p.items[0].ports, vec![443]);
    assert_eq!(p.items[1].ports, vec![8443]);
    assert_eq!(
        p.items[1]
            .certificates
            .iter()
            .map(|x| x.value.as_str())
            .collect::<Vec<_>>(),
        vec![OTHER]
    );
    let ips = s.certificate_ips(LEAF, &Page::first(10)).unwrap().items;
    assert_eq!(
        ips.iter()
            .map(|x| (x.ip, x.port, x.count))
            .collect::<Vec<_>>(),
        vec![(ip("198.51.100.20"), Some(443), 2)]
    );
    let clients = s
        .fingerprint_ips(&Fingerprint::Ja3(JA3.into()), &Page::first(10))
        .unwrap()
        .items;
    assert_eq!(
        clients
            .iter()
            .map(|x| (x.ip, x.first, x.count))
            .collect::<Vec<_>>(),
        vec![(ip("192.0.2.1"), T0, 1), (ip("192.0.2.2"), T0 + 3600, 1)]
    );
    // The reference keeps no JA3S per session ("sessionRecord" has hash_ja3 only): its
    // sessions are not found by JA3S, though the ja3 row is counted.
    assert!(s
        .fingerprint_ips(&Fingerprint::Ja3s(JA3S.into()), &Page::first(10))
        .unwrap()
        .items
        .is_empty());
    assert_eq!(
        s.key_certificates(KEY, &Page::first(10)).unwrap().items,
        vec![LEAF.to_string()]
    );
    assert_eq!(
        s.subject_search("example.ORG", &Page::first(10))
            .unwrap()
            .items,
        vec![LEAF.to_string(), OTHER.to_string()]
    );
    let info = s.info().unwrap();
    assert_eq!(
        (
            info.certificates,
            info.keys,
            info.sessions,
            info.ips,
            info.ja3,
            info.ja3s,
            info.ip_certificate_links
        ),
        (3, 1, 3, 2, 2, 1, 3)
    );
    drop(s);
    drop(db);
}

#[test]
fn both_programs_write_one_database() {
    let db = reference_database();
    let s = PostgresStore::open(db.url()).unwrap();
    let sc = d4_pssl::testsuite::scenario::Scenario::new();
    s.commit(&sc.batch()).unwrap();
    // The reference analyzer goes on writing after d4 added its tables.
    let mut c = postgres::Client::connect(db.url(), postgres::NoTls).unwrap();
    c.batch_execute(
        "INSERT INTO \"sessionRecord\" (dst_ip, src_ip, dst_port, src_port, hash_ja3, \"timestamp\") \
         VALUES ('198.51.100.22', '192.0.2.9', 443, 50009, '5555555555555555555555555555555a', \
         '2024-01-02 00:00:00+00');
         INSERT INTO \"many_sessionRecord_has_many_certificate\" (\"id_sessionRecord\", hash_certificate)
         SELECT max(id), '3333333333333333333333333333333333333333' FROM \"sessionRecord\";",
    )
    .unwrap();
    let p = s
        .ip_certificates("198.51.100.0/24".parse().unwrap(), &Page::first(10))
        .unwrap();
    // The scenario's servers .7 and .9, the reference's .20, .21 and .22.
    assert_eq!(
        p.items.iter().map(|x| x.ip).collect::<Vec<_>>(),
        [
            "198.51.100.7",
            "198.51.100.9",
            "198.51.100.20",
            "198.51.100.21",
            "198.51.100.22"
        ]
        .map(ip)
        .to_vec()
    );
    let other = s.certificate(OTHER).unwrap().unwrap();
    assert_eq!(
        (other.first_seen, other.last_seen, other.hits),
        (Some(T0 + 7200), Some(T0 + 86400), 2)
    );
    let info = s.info().unwrap();
    assert_eq!(
        (info.certificates, info.keys, info.sessions),
        (3 + 4, 1 + 3, 4 + 5)
    );
    // A d4 certificate reads back whole beside the reference's.
    let a = s.certificate(&sc.certs.a.sha256).unwrap().unwrap();
    assert_eq!(a.certificate.der, sc.certs.a.der);
}

#[test]
fn reopened_store_keeps_everything() {
    let db = PostgresServer::shared().database();
    let sc = d4_pssl::testsuite::scenario::Scenario::new();
    let info = {
        let s = PostgresStore::open(db.url()).unwrap();
        s.commit(&sc.batch()).unwrap();
        s.info().unwrap()
    };
    let s = PostgresStore::open(db.url()).unwrap();
    assert_eq!(s.info().unwrap(), info);
    assert!(s.certificate(&sc.certs.b.sha1).unwrap().is_some());
    // Two stores on one database: the second's commit of the same batch adds nothing.
    let t = PostgresStore::open(db.url()).unwrap();
    let st = t.commit(&sc.batch()).unwrap();
    assert_eq!((st.new_sessions, st.known_sessions), (0, 5));
}

#[test]
fn a_database_of_another_layout_is_refused() {
    let db = PostgresServer::shared().database();
    drop(PostgresStore::open(db.url()).unwrap());
    let mut c = postgres::Client::connect(db.url(), postgres::NoTls).unwrap();
    c.execute("UPDATE d4_meta SET value = 99 WHERE name = 'layout'", &[])
        .unwrap();
    assert!(matches!(
        PostgresStore::open(db.url()),
        Err(PsslError::Layout {
            found: 99,
            want: 1,
            ..
        })
    ));
}

#[test]
fn an_unreachable_server_is_an_error() {
    let port = d4_testkit::free_port();
    let e = PostgresStore::open(&format!("postgres://d4:secret@127.0.0.1:{port}/x"))
        .err()
        .expect("nothing listens there");
    let msg = e.to_string();
    assert!(msg.contains("cannot connect"), "{msg}");
    assert!(!msg.contains("secret"), "{msg}");
}

#[test]
fn nul_characters_are_stored_as_replacement_characters() {
    let s = fresh();
    // A hostile certificate ("CN=www.example.org\0.evil.test") and SNI: PostgreSQL text
    // cannot hold U+0000, the batch must still be stored.
    let sha1 = "ab".repeat(20);
    let cert = d4_pssl::Certificate {
        sha1: sha1.clone(),
        sha256: "cd".repeat(32),
        der: vec![0x30, 0x00],
        subject: "CN=www.example.org\0.evil.test".into(),
        issuer: "CN=Evil\0CA".into(),
        serial: "1".into(),
        not_before: 0,
        not_after: 1,
        sans: vec!["www.example.org\0.evil.test".into()],
        is_ca: false,
        self_signed: false,
        spki_sha256: "ef".repeat(32),
    };
    let session = d4_pssl::Session {
        ts: T0,
        server_ip: Some(ip("203.0.113.50")),
        server_port: Some(443),
        sni: "www.example.org\0.evil.test".into(),
        alpn: vec!["h2\0".into()],
        chain: vec![sha1.clone()],
        ..d4_pssl::Session::default()
    };
    let batch = d4_pssl::Batch {
        certificates: vec![cert],
        keys: vec![],
        sessions: vec![session.clone()],
    };
    let st = s.commit(&batch).unwrap();
    assert_eq!((st.new_certificates, st.new_sessions), (1, 1));
    let v = s.certificate(&sha1).unwrap().unwrap();
    assert_eq!(
        v.certificate.subject,
        "CN=www.example.org\u{fffd}.evil.test"
    );
    assert_eq!(v.certificate.issuer, "CN=Evil\u{fffd}CA");
    assert_eq!(
        v.certificate.sans,
        vec!["www.example.org\u{fffd}.evil.test"]
    );
    let got = s
        .sessions(&SessionQuery::Sni(session.sni.clone()), &Page::first(10))
        .unwrap()
        .items;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].alpn, vec!["h2\u{fffd}".to_string()]);
    assert_eq!(
        s.sni_certificates(&session.sni, &Page::first(10))
            .unwrap()
            .items
            .len(),
        1
    );
    // The same session again is known (its identity is computed from the original).
    assert_eq!(s.commit(&batch).unwrap().known_sessions, 1);
}

#[test]
fn concurrent_writers_store_each_session_once() {
    let db = PostgresServer::shared().database();
    let sc = d4_pssl::testsuite::scenario::Scenario::new();
    let batch = sc.batch();
    let stores: Vec<PostgresStore> = (0..3)
        .map(|_| PostgresStore::open(db.url()).unwrap())
        .collect();
    let stats: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .iter()
            .map(|s| scope.spawn(|| s.commit(&batch).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Five sessions, four certificates, three keys: stored once whoever wins.
    assert_eq!(stats.iter().map(|s| s.new_sessions).sum::<u64>(), 5);
    assert_eq!(stats.iter().map(|s| s.known_sessions).sum::<u64>(), 10);
    assert_eq!(stats.iter().map(|s| s.new_certificates).sum::<u64>(), 4);
    assert_eq!(stats.iter().map(|s| s.new_keys).sum::<u64>(), 3);
    let info = stores[0].info().unwrap();
    assert_eq!((info.sessions, info.certificates, info.keys), (5, 4, 3));
    // Sessions alone (their certificates are known): no certificate row to wait on, only
    // the commit lock keeps the writers from storing a session twice or failing.
    let (_, five) = d4_pssl::testsuite::scenario::five(&sc.certs);
    let sessions = d4_pssl::Batch {
        sessions: five.sessions,
        ..d4_pssl::Batch::default()
    };
    for _ in 0..3 {
        let new: u64 = std::thread::scope(|scope| {
            let handles: Vec<_> = stores
                .iter()
                .map(|s| scope.spawn(|| s.commit(&sessions).unwrap().new_sessions))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert!(new == 5 || new == 0, "{new}");
    }
    assert_eq!(stores[1].info().unwrap().sessions, 10);
}
