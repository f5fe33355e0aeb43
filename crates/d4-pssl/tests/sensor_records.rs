//! The records `d4 tls` writes, from real handshakes (`d4_testkit::tlsgen`: rustls and
//! OpenSSL, RSA 2048 and ECDSA certificates, chains) through d4-tls's sensor, parsed and
//! stored: what the store answers matches the handshake's independent expectations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use d4_packet::LinkType;
use d4_pssl::{parse_record, BatchBuilder, EmbeddedStore, Fingerprint, Page, PsslStore};
use d4_testkit::tlsgen::{self, CaptureSpec, HandshakeSpec, KeyKind, Stack, Version};
use d4_tls::sensor::{Sensor, SensorConfig};

fn capture(client: &str, server: &str, seed: u64) -> CaptureSpec {
    CaptureSpec {
        ipv6: false,
        vlan: None,
        client: client.parse().unwrap(),
        server: server.parse().unwrap(),
        seed,
        max_segment: 1400,
        reorder: false,
        retransmit: false,
        start_mid_flow: false,
        fin: true,
        start_ts_us: 1_700_000_000_000_000 + seed * 1_000_000,
    }
}

#[test]
fn sensor_records_parse_and_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("pssl.redb")).unwrap();
    let mut batch = BatchBuilder::new();
    let mut expected = Vec::new();
    for (i, (stack, key)) in [
        (Stack::OpenSsl, KeyKind::Rsa2048),
        (Stack::Rustls, KeyKind::EcdsaP256),
    ]
    .into_iter()
    .enumerate()
    {
        let t = tlsgen::handshake(&HandshakeSpec {
            chain: true,
            sni: Some("www.example.test".into()),
            alpn: vec![b"h2".to_vec()],
            ..HandshakeSpec::new(stack, Version::Tls12, key)
        })
        .unwrap();
        let e = tlsgen::expected(&t);
        assert_eq!(e.cert_sha1.len(), 2, "a leaf and its CA");
        let server = format!("192.0.2.{}:443", 10 + i);
        let frames = tlsgen::tcp_frames(&t, &capture("10.0.0.1:40000", &server, i as u64));
        let mut sensor = Sensor::new(SensorConfig::default());
        let mut sessions = Vec::new();
        for (ts, f) in &frames {
            sensor.packet(ts * 1000, LinkType::Ethernet, f, &mut sessions);
        }
        sensor.finish(&mut sessions);
        assert_eq!(sessions.len(), 1);
        let line = d4_tls::session::Record::new(&sessions[0])
            .line()
            .to_string();
        if key == KeyKind::Rsa2048 {
            // The RSA modulus (2048 bits: 617 decimal digits) is an unquoted JSON number.
            assert!(serde_json::from_str::<serde_json::Value>(&line).is_err());
        }
        let p = parse_record(line.as_bytes()).unwrap();
        assert_eq!(p.bad_certificates, 0);
        let s = &p.batch.sessions[0];
        assert_eq!(s.chain, e.cert_sha1);
        assert_eq!(
            (s.ja3.as_str(), s.ja3s.as_str()),
            (e.ja3_digest.as_str(), e.ja3s_digest.as_str())
        );
        assert_eq!(
            (s.ja4.as_str(), s.sni.as_str()),
            (e.ja4.as_str(), "www.example.test")
        );
        assert_eq!(
            s.server_ip,
            Some(format!("192.0.2.{}", 10 + i).parse::<IpAddr>().unwrap())
        );
        assert_eq!(s.ts, 1_700_000_000 + i as i64);
        let rsa = p.batch.keys.iter().find(|k| k.key_type == "RSA");
        assert_eq!(rsa.is_some(), key == KeyKind::Rsa2048);
        if let Some(k) = rsa {
            assert_eq!((k.bits, k.exponent), (2048, Some(65537)));
            assert_eq!(k.modulus.as_ref().map(String::len), Some(617));
        }
        batch.extend(p.batch);
        expected.push(e);
    }
    let stats = store.commit(&batch.build()).unwrap();
    assert_eq!((stats.new_certificates, stats.new_sessions), (4, 2));
    for (i, e) in expected.iter().enumerate() {
        let ip: IpAddr = format!("192.0.2.{}", 10 + i).parse().unwrap();
        let p = store
            .ip_certificates(ipnet::IpNet::from(ip), &Page::first(10))
            .unwrap();
        let mut got: Vec<String> = p.items[0]
            .certificates
            .iter()
            .map(|c| c.value.clone())
            .collect();
        let mut want = e.cert_sha1.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        let leaf = store.certificate(&e.cert_sha256[0]).unwrap().unwrap();
        assert_eq!(leaf.certificate.sha1, e.cert_sha1[0]);
        assert_eq!(leaf.chain_positions, vec![0]);
        let fp = store
            .fingerprint_ips(&Fingerprint::Ja3s(e.ja3s_digest.clone()), &Page::first(10))
            .unwrap();
        assert!(fp.items.iter().any(|x| x.ip == ip));
    }
}
