//! Unit tests of the answer builders: expected values written by hand from the inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use super::*;

/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200;

fn seen(v: &str, first: i64, last: i64, count: u64) -> Seen<String> {
    Seen {
        value: v.to_string(),
        first,
        last,
        count,
    }
}

#[test]
fn query_shape() {
    let a = "a".repeat(40);
    let b = "b".repeat(40);
    let items = vec![IpCerts {
        ip: "192.0.2.7".parse().unwrap(),
        certificates: vec![seen(&a, T0, T0 + 3600, 2), seen(&b, T0 + 60, T0 + 60, 1)],
        ports: vec![443, 8443],
    }];
    let subjects = HashMap::from([(a.clone(), "CN=a.example".to_string())]);
    let v = query(&items, &subjects);
    let ip = &v["192.0.2.7"];
    assert_eq!(ip["certificates"], json!([a, b]));
    assert_eq!(ip["subjects"][&a]["values"][0], "CN=a.example");
    assert!(ip["subjects"].get(&b).is_none());
    assert_eq!(ip["ports"], json!([443, 8443]));
    assert_eq!(ip["seen"][&a]["first_seen"], "2024-01-01T00:00:00Z");
    assert_eq!(ip["seen"][&a]["last_seen"], "2024-01-01T01:00:00Z");
    assert_eq!(ip["seen"][&a]["count"], 2);
    assert_eq!(v.as_object().unwrap().len(), 1);
    assert_eq!(query(&[], &subjects), json!({}));
}

#[test]
fn cquery_shape_and_unknown() {
    let ip: IpAddr = "198.51.100.7".parse().unwrap();
    let link = |ip: IpAddr, port| IpSeen {
        ip,
        port: Some(port),
        first: T0,
        last: T0,
        count: 1,
    };
    let ips = vec![
        link(ip, 443),
        link(ip, 8443),
        link("2001:db8::1".parse().unwrap(), 443),
    ];
    let sha1 = "c".repeat(40);
    let v = cquery(&sha1, None, &ips);
    assert_eq!(v["seen"], json!(["198.51.100.7", "2001:db8::1"]));
    assert_eq!(v["ports"], json!([443, 8443]));
    assert_eq!(v["hits"], 0);
    assert_eq!(v["certificate"], sha1.as_str());
    let unknown = cquery(&sha1, None, &[]);
    assert_eq!(unknown["seen"], json!([]));
    assert_eq!(unknown["first_seen"], Value::Null);
}

#[test]
fn pem_lines() {
    let der: Vec<u8> = (0..100u8).collect();
    let p = pem("CERTIFICATE", &der);
    let lines: Vec<&str> = p.lines().collect();
    assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
    assert_eq!(lines[1].len(), 64);
    // 100 bytes: 136 base64 characters → 64 + 64 + 8.
    assert_eq!(lines[3].len(), 8);
    assert_eq!(lines[4], "-----END CERTIFICATE-----");
    assert!(p.ends_with("-----\n"));
}

fn session() -> Session {
    Session {
        ts: T0 + 10,
        client_ip: Some("192.0.2.10".parse().unwrap()),
        client_port: Some(50000),
        server_ip: Some("198.51.100.7".parse().unwrap()),
        server_port: Some(443),
        ja3: "d".repeat(32),
        ja3_raw: "771,1-2,0,29,0".into(),
        ja3s: "e".repeat(32),
        ja3s_raw: "771,1,43".into(),
        ja4: "t13d0000h2_000000000000_000000000000".into(),
        ja4_r: String::new(),
        sni: "a.example".into(),
        alpn: vec!["h2".into()],
        tlsh: String::new(),
        transport: "tcp".into(),
        chain: vec!["1".repeat(40), "2".repeat(40)],
    }
}

#[test]
fn session_records() {
    let known =
        RawValue::from_string(r#"{"CertHash":"1111","N":123456789012345678901234567890}"#.into())
            .unwrap();
    let certs = HashMap::from([("1".repeat(40), known)]);
    let r = session_record(&session(), &certs);
    let text = serde_json::to_string(&r).unwrap();
    // The big integer stays as it was written.
    assert!(
        text.contains(r#""N":123456789012345678901234567890"#),
        "{text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ServerIP"], "198.51.100.7");
    assert_eq!(v["ServerPort"], "443");
    assert_eq!(v["ClientIP"], "192.0.2.10");
    assert_eq!(v["ClientPort"], "50000");
    assert_eq!(v["Timestamp"], "2024-01-01T00:00:10Z");
    assert_eq!(v["JA3"], "771,1-2,0,29,0");
    assert_eq!(v["JA3Digest"], "d".repeat(32));
    assert_eq!(v["JA3S"], "771,1,43");
    assert_eq!(v["JA3SDigest"], "e".repeat(32));
    assert_eq!(v["SNI"], "a.example");
    assert_eq!(v["ALPN"], json!(["h2"]));
    assert_eq!(v["Transport"], "tcp");
    assert_eq!(v["Certificates"][1], json!({ "CertHash": "2".repeat(40) }));
    let mut partial = session();
    partial.chain.clear();
    partial.server_ip = None;
    partial.server_port = None;
    let v = serde_json::to_value(session_record(&partial, &certs)).unwrap();
    assert_eq!(v["Certificates"], Value::Null);
    assert_eq!(v["ServerIP"], "");
    assert_eq!(v["ServerPort"], "");
    assert_eq!(
        serde_json::to_value(sessions(&[], &certs)).unwrap(),
        json!({ "Sessions": null })
    );
}

#[cfg(feature = "testsuite")]
#[test]
fn cfetch_and_certificate_of_a_generated_certificate() {
    use sha2::Digest;
    let c = crate::testsuite::data::certs();
    let (cert, key_value) = crate::model::certificate_from_der(&c.b.der).unwrap();
    let view = CertView {
        certificate: cert,
        key: Some(key_value),
        first_seen: Some(T0),
        last_seen: None,
        hits: 3,
        chain_positions: vec![0],
    };
    let v = cfetch(&view, &[]);
    assert_eq!(v["pem"], c.b.pem());
    let info = &v["info"];
    assert_eq!(info["fingerprint"], c.b.sha1.to_ascii_uppercase());
    assert_eq!(
        info["subject"],
        "C=LU, O=d4-rs pssl tests, CN=b.example.test"
    );
    assert_eq!(info["not_before"], "2024-01-01T00:00:00Z");
    assert_eq!(info["not_after"], "2034-01-01T00:00:00Z");
    assert_eq!(info["keylength"], 256);
    assert_eq!(info["key_type"], "ECDSA");
    assert_eq!(info["extension"]["subjectAltName"], "DNS:b.example.test");
    assert_eq!(info["sha256"], c.b.sha256);
    assert_eq!(info["spki_sha256"], c.b.spki_sha256);
    assert_eq!(info["self_signed"], true);
    assert_eq!(info["weak"], json!([]));
    // The key block holds the SubjectPublicKeyInfo whose SHA-256 the test computed.
    let key_pem = info["key"].as_str().unwrap();
    assert!(key_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let b64: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let spki = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(hex::encode(sha2::Sha256::digest(&spki)), c.b.spki_sha256);
    assert_eq!(v["first_seen"], "2024-01-01T00:00:00Z");
    assert_eq!(v["last_seen"], Value::Null);
    assert_eq!(v["hits"], 3);

    let d = certificate(&view, &[]);
    assert_eq!(d["sha1"], c.b.sha1);
    assert_eq!(d["key"]["weak"], json!([]));
    assert_eq!(d["key"]["bits"], 256);
    assert_eq!(d["key"]["curve"], "P-256");
    assert_eq!(d["chain_positions"], json!([0]));
    assert_eq!(d["pem"], c.b.pem());
}

#[test]
fn names_in_openssl_one_line_form() {
    assert_eq!(
        oneline("CN=a.example.test,O=d4-rs pssl tests,C=LU"),
        "C=LU, O=d4-rs pssl tests, CN=a.example.test"
    );
    assert_eq!(oneline("CN=x\\,y,O=Org"), "O=Org, CN=x\\,y");
    assert_eq!(oneline("CN=only"), "CN=only");
    assert_eq!(oneline(""), "");
}
