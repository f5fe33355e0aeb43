//! `ja3-jl` lines into batches: our sensor's records, the reference sensor's, partial ones,
//! unquoted big integers, bad certificates and bad lines. Expected values are the lines'
//! own inputs and hashes the test computes from the DER.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use d4_pssl::record::{parse_record, RecordError};
use d4_pssl::testsuite::data::{
    big_n, certs, go_cert_object, record_line, reference_line, Rec, T0,
};
use d4_pssl::testsuite::scenario::md5_hex;

const JA3: &str = "771,4865-4866-4867,0-10-11-13-43,29-23-24,0";

#[test]
fn a_617_digit_number_is_skipped_not_read() {
    let c = certs();
    let line = record_line(&Rec {
        ts: "2024-01-01T00:00:00Z",
        client: Some(("192.0.2.1", 1234)),
        server: Some(("198.51.100.1", 443)),
        ja3: JA3,
        chain: vec![&c.a],
        ..Rec::default()
    });
    let n = big_n();
    assert_eq!(n.len(), 617);
    assert!(
        line.contains(&format!(r#""N":{n},"#)),
        "the line holds N unquoted"
    );
    // A generic JSON value cannot hold it (the reason for the narrow struct)...
    assert!(serde_json::from_str::<serde_json::Value>(&line).is_err());
    // ...the record parser skips it.
    let p = parse_record(line.as_bytes()).unwrap();
    assert_eq!(p.bad_certificates, 0);
    assert_eq!(p.batch.certificates.len(), 1);
    assert_eq!(p.batch.certificates[0].sha1, c.a.sha1);
    assert_eq!(p.batch.certificates[0].der, c.a.der);
    assert_eq!(p.batch.keys.len(), 1);
    assert_eq!(p.batch.keys[0].spki_sha256, c.a.spki_sha256);
    let s = &p.batch.sessions[0];
    assert_eq!(s.ts, T0);
    assert_eq!(s.chain, vec![c.a.sha1.clone()]);
    assert_eq!(s.ja3, md5_hex(JA3));
    assert_eq!(s.server_ip, Some("198.51.100.1".parse::<IpAddr>().unwrap()));
    assert_eq!((s.client_port, s.server_port), (Some(1234), Some(443)));
}

#[test]
fn the_reference_sensors_record() {
    let c = certs();
    let line = reference_line(&Rec {
        ts: "2019-06-12T10:00:00.123456789Z",
        client: Some(("10.0.0.2", 51000)),
        server: Some(("10.0.0.1", 443)),
        ja3: JA3,
        ja3s: "771,49200,65281-11",
        chain: vec![&c.a, &c.ca],
        ..Rec::default()
    });
    assert!(!line.contains("JA4") && !line.contains("SNI"));
    assert!(line.contains(&format!(r#""CertHash":"{}""#, c.a.sha256)));
    let p = parse_record(line.as_bytes()).unwrap();
    let s = &p.batch.sessions[0];
    // 2019-06-12T10:00:00Z (date -u -d @1560333600).
    assert_eq!(s.ts, 1_560_333_600);
    // The certificates come from Raw: SHA-1 of the DER, whatever CertHash says.
    assert_eq!(s.chain, vec![c.a.sha1.clone(), c.ca.sha1.clone()]);
    // §2 vector: JA3S `771,49200,65281-11`.
    assert_eq!(s.ja3s, "0debd3853f330c574b05e0b6d882dc27");
    assert_eq!(s.ja3s_raw, "771,49200,65281-11");
    assert_eq!(
        (s.ja4.as_str(), s.sni.as_str(), s.transport.as_str()),
        ("", "", "")
    );
    assert_eq!(s.tlsh, "T1A0B0");
    assert_eq!(p.batch.certificates.len(), 2);
    assert_eq!(p.batch.keys.len(), 2);
}

#[test]
fn a_partial_record_is_a_session() {
    // Our sensor's record of a flow that ended early: no addresses it is sure of, no
    // certificates, only the client's fingerprints.
    let line = format!(
        r#"{{"ServerIP":"","ServerPort":"","ClientIP":"","ClientPort":"","TLSH":"","Timestamp":"2024-01-01T00:00:00Z","JA3":"{JA3}","JA3Digest":"{}","JA3S":"","JA3SDigest":"","Certificates":null,"JA4":"t13d1516h2_8daaf6152771_e5627efa2ab1","JA4_r":"","SNI":"x.test","ALPN":[],"Version":"","Transport":"quic","Complete":false}}"#,
        md5_hex(JA3)
    );
    let p = parse_record(line.as_bytes()).unwrap();
    assert!(p.batch.certificates.is_empty());
    let s = &p.batch.sessions[0];
    assert_eq!(
        (s.client_ip, s.server_ip, s.server_port),
        (None, None, None)
    );
    assert_eq!((s.sni.as_str(), s.transport.as_str()), ("x.test", "quic"));
    assert!(s.chain.is_empty());
}

#[test]
fn a_bad_certificate_is_counted_and_left_out() {
    let c = certs();
    let mut bad = c.a.clone();
    bad.der.truncate(20);
    let line = format!(
        r#"{{"ServerIP":"10.0.0.1","ServerPort":443,"ClientIP":"10.0.0.2","ClientPort":"5000","Timestamp":"2024-01-01T00:00:00Z","JA3Digest":"{}","Certificates":[{},{},{{"CertHash":"00"}}]}}"#,
        md5_hex(JA3),
        go_cert_object(&bad, "x"),
        go_cert_object(&c.ca, "y"),
    );
    let p = parse_record(line.as_bytes()).unwrap();
    assert_eq!(p.bad_certificates, 2);
    assert_eq!(p.batch.sessions[0].chain, vec![c.ca.sha1.clone()]);
    assert_eq!(p.batch.sessions[0].server_port, Some(443));
}

#[test]
fn bad_lines_are_error_values() {
    for (line, kind) in [
        (&b"not json"[..], "json"),
        (b"", "json"),
        (b"{\"JA3Digest\": 5}", "json"),
        (
            b"{\"Timestamp\":\"2024-01-01\",\"JA3\":\"1,2,3,4,5\"}",
            "field",
        ),
        (
            b"{\"ServerIP\":\"10.0.0.1\",\"ServerPort\":\"443\"}",
            "empty",
        ),
        (b"\xff\xfe", "json"),
    ] {
        let e = parse_record(line).unwrap_err();
        assert_eq!(e.kind(), kind, "{:?}", String::from_utf8_lossy(line));
    }
    assert_eq!(
        parse_record(b"{\"Certificates\":null}"),
        Err(RecordError::Empty)
    );
}
