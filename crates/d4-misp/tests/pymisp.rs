//! Every object builder's output read by PyMISP (`misp_check.py`): a feed of hand-made
//! findings of the four analyzers (passive DNS, backscatter, passive SSL, weak keys) is
//! planned, written, and checked against the misp-objects templates PyMISP ships; the
//! values read back are compared with the inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use d4_misp::objects::ddos::{DdosFinding, Protocol};
use d4_misp::objects::dns::{DnsOptions, DnsRecord};
use d4_misp::objects::tls::{TlsCertificate, TlsSession};
use d4_misp::objects::weak::WeakKeyFinding;
use d4_misp::{EventFile, EventSettings, Existing, Org, Tag};
use serde_json::Value;
use uuid::Uuid;

/// 2024-01-01T00:00:00Z
const T0: i64 = 1_704_067_200;

fn settings() -> EventSettings {
    EventSettings {
        org: Org {
            name: "Test Org".into(),
            uuid: Uuid::parse_str("55f6ea5e-2c60-40e5-964f-47a8950d210f").unwrap(),
        },
        tags: vec![Tag {
            name: "tlp:green".into(),
            colour: "#339900".into(),
            local: false,
            relationship_type: String::new(),
        }],
        distribution: 1,
        threat_level: 3,
        analysis: 2,
        info_prefix: "d4 test".into(),
    }
}

fn write(dir: &Path, plan: &d4_misp::Plan) {
    for e in &plan.write {
        let f = EventFile { event: e.clone() };
        std::fs::write(
            dir.join(format!("{}.json", e.uuid)),
            serde_json::to_vec(&f).unwrap(),
        )
        .unwrap();
    }
    std::fs::write(dir.join("hashes.csv"), &plan.hashes_csv).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&plan.manifest).unwrap(),
    )
    .unwrap();
}

/// Runs the checker; its JSON summary.
pub fn check(dir: &Path) -> Value {
    let py = d4_testkit::python_with("pymisp", "pymisp", "pymisp-venv");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/misp_check.py");
    let out = Command::new(py).arg(script).arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "misp_check.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn objects<'a>(summary: &'a Value, name: &str) -> Vec<&'a Value> {
    summary
        .as_object()
        .unwrap()
        .values()
        .flat_map(|e| e["objects"].as_array().unwrap())
        .filter(|o| o["name"] == name)
        .collect()
}

fn attr(o: &Value, rel: &str) -> Vec<String> {
    o["attributes"][rel]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn every_builder_passes_pymisp() {
    let s = settings();
    let mut events = Vec::new();
    let (e, _) = d4_misp::objects::dns::events(
        &s,
        vec![DnsRecord {
            rrname: "www.example.com".into(),
            rrtype: "A".into(),
            rdata: "192.0.2.80".into(),
            time_first: T0 + 5,
            time_last: T0 + 90_000,
            count: 7,
            sensors: vec!["sensor-1".into()],
        }],
        &DnsOptions {
            max_per_event: 10,
            origin: Some("d4-rs".into()),
        },
    );
    events.extend(e);
    let (e, _) = d4_misp::objects::ddos::events(
        &s,
        vec![DdosFinding {
            victim: "198.51.100.9".parse().unwrap(),
            first_seen: T0 + 60,
            last_seen: T0 + 660,
            protocol: Protocol::Tcp,
            ports: vec![443, 80, 443],
            packets: 1200,
            pps: 2,
            kind: Some("tcp-syn".into()),
        }],
        10,
    );
    events.extend(e);
    let cert = TlsCertificate {
        sha1: "a".repeat(40),
        sha256: "b".repeat(64),
        subject: "CN=www.example.com".into(),
        issuer: "CN=Test CA".into(),
        serial: "4096".into(),
        not_before: T0,
        not_after: T0 + 86_400 * 365,
        key_algorithm: "RSA".into(),
        key_bits: 12,
        modulus: Some("3233".into()),
        exponent: Some(17),
        is_ca: false,
        self_signed: false,
        dns_names: vec!["www.example.com".into()],
        der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
    };
    let session = TlsSession {
        ts: T0 + 100,
        client_ip: Some("192.0.2.10".parse().unwrap()),
        server_ip: Some("2001:db8::1".parse().unwrap()),
        server_port: Some(8443),
        ja3: "c".repeat(32),
        ja3_raw: "771,4865,0,29,0".into(),
        ja3s: "d".repeat(32),
        ja4: "t13d1516h2_8daaf6152771_e5627efa2ab1".into(),
        sni: "www.example.com".into(),
        leaf: Some(cert.sha1.clone()),
    };
    let certs: HashMap<String, TlsCertificate> = [(cert.sha1.clone(), cert.clone())].into();
    let (e, _) = d4_misp::objects::tls::events(&s, &[session], &certs, 10);
    events.extend(e);
    let (e, _) = d4_misp::objects::weak::events(
        &s,
        vec![WeakKeyFinding {
            spki_sha256: "e".repeat(64),
            key_type: "RSA".into(),
            bits: 12,
            modulus: Some("3233".into()),
            exponent: Some(17),
            checks: vec!["fermat (check)".into()],
            p: Some("3d".into()),
            q: Some("35".into()),
            found: T0 + 86_400,
            certificates: vec![cert],
        }],
        true,
        10,
    );
    events.extend(e);
    assert_eq!(events.len(), 4);
    let dir = tempfile::tempdir().unwrap();
    let plan = d4_misp::plan(&Existing::default(), events, T0 + 200_000);
    write(dir.path(), &plan);
    let summary = check(dir.path());
    assert_eq!(summary.as_object().unwrap().len(), 4);

    let ddos = objects(&summary, "ddos");
    assert_eq!(ddos.len(), 1);
    let d = ddos[0];
    assert_eq!(attr(d, "ip-dst"), ["198.51.100.9"]);
    assert_eq!(attr(d, "dst-port"), ["443", "80"]);
    assert_eq!(attr(d, "protocol"), ["TCP"]);
    assert_eq!(attr(d, "type"), ["tcp-syn"]);
    assert_eq!(
        attr(d, "capture-origin"),
        ["Indirect network capture (e.g. backscatter)"]
    );
    assert_eq!(attr(d, "total-packets-sent"), ["1200"]);
    assert_eq!(attr(d, "first-seen"), ["2024-01-01T00:01:00+00:00"]);
    assert_eq!(attr(d, "last-seen"), ["2024-01-01T00:11:00+00:00"]);

    let dns = objects(&summary, "passive-dns");
    assert_eq!(attr(dns[0], "time_last"), ["2024-01-02T01:00:00+00:00"]);
    assert_eq!(attr(dns[0], "count"), ["7"]);

    // 3233 = 0xca1, serial 4096 = 0x1000 (by hand).
    let x509 = objects(&summary, "x509");
    assert_eq!(
        x509.len(),
        2,
        "one in the passive SSL event, one in the weak keys one"
    );
    for x in &x509 {
        assert_eq!(attr(x, "pubkey-info-modulus"), ["ca1"]);
        assert_eq!(attr(x, "serial-number"), ["1000"]);
        assert_eq!(attr(x, "raw-base64"), ["MAMCAQE="]);
    }
    let cm = objects(&summary, "crypto-material");
    assert_eq!(attr(cm[0], "modulus"), ["ca1"]);
    assert_eq!(
        (attr(cm[0], "p"), attr(cm[0], "q")),
        (vec!["3d".to_string()], vec!["35".to_string()])
    );
    assert_eq!(attr(cm[0], "origin"), ["mathematical-attack"]);
    let weak_x509 = x509
        .iter()
        .find(|x| {
            x["references"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r[1] == "crypto-material")
        })
        .expect("x509 related-to crypto-material");
    assert_eq!(weak_x509["references"][0][0], "related-to");
    let ssl_x509 = x509
        .iter()
        .find(|x| {
            x["references"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r[1] == "ip-port")
        })
        .expect("x509 seen-by ip-port");
    assert_eq!(ssl_x509["references"][0][0], "seen-by");
    assert_eq!(attr(objects(&summary, "ip-port")[0], "ip"), ["2001:db8::1"]);
    assert_eq!(attr(objects(&summary, "ja3")[0], "ip-src"), ["192.0.2.10"]);
    let ja3s = objects(&summary, "ja3s");
    assert_eq!(attr(ja3s[0], "ja3s-fingerprint-md5"), ["d".repeat(32)]);
    assert_eq!(attr(ja3s[0], "domain"), ["www.example.com"]);
    assert_eq!(attr(objects(&summary, "ja4-plus")[0], "ja4-type"), ["JA4"]);
}
