//! `d4 misp feed`, the real binary, over stores filled through the real ingest commands:
//! passivedns lines (`d4 pdns ingest`), the pssl suite's `ja3-jl` records and badkeys'
//! Fermat certificate (`d4 pssl ingest`). The feed is read by PyMISP
//! (`crates/d4-misp/tests/misp_check.py`: events load, objects match their misp-objects
//! templates, hashes.csv and the manifest match the events), the values compared with the
//! inputs (the Fermat factors with the shared vectors' expected values, its modulus with the
//! openssl CLI's), then:
//! a second run changes nothing, and one new passive DNS record changes exactly one event's
//! timestamp.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use base64::Engine;
use d4_pssl::testsuite::scenario::{md5_hex, Scenario, JA3_1, JA3_2};
use serde_json::Value;
use sha1::{Digest, Sha1};

use crate::tls_cli::d4;

const ORG: &str = "55f6ea5e-2c60-40e5-964f-47a8950d210f";
/// 2024-01-01T00:00:00Z
const T0: u64 = 1_704_067_200;

fn ok(out: Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn run(args: &[&str]) -> Output {
    d4().args(args).stdin(Stdio::null()).output().unwrap()
}

fn pdns_ingest(data: &Path, lines: &str) {
    let file = data.join(format!("pdns-{}.log", lines.len()));
    std::fs::write(&file, lines).unwrap();
    ok(run(&[
        "pdns",
        "--data-dir",
        data.to_str().unwrap(),
        "ingest",
        file.to_str().unwrap(),
    ]));
}

/// `d4 misp feed` over `data` into `out` for 2024-01-01 ..= `until`, then `extra` flags.
fn feed(data: &Path, out: &Path, until: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "misp",
        "feed",
        "--out",
        out.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--org-name",
        "Test Org",
        "--org-uuid",
        ORG,
        "--tag",
        "tlp:green",
        "--since",
        "2024-01-01",
        "--until",
        until,
        "--include-factors",
    ];
    args.extend_from_slice(extra);
    ok(run(&args))
}

/// PyMISP's verdict and summary of the feed.
fn check(feed: &Path) -> Value {
    let py = d4_testkit::python_with("pymisp", "pymisp", "pymisp-venv");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../d4-misp/tests/misp_check.py");
    let out = Command::new(py).arg(script).arg(feed).output().unwrap();
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

fn manifest_times(feed: &Path) -> BTreeMap<String, i64> {
    let m: Value =
        serde_json::from_slice(&std::fs::read(feed.join("manifest.json")).unwrap()).unwrap();
    m.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["timestamp"].as_i64().unwrap()))
        .collect()
}

#[test]
fn feed_of_the_stores_checked_with_pymisp() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("feed");
    std::fs::create_dir_all(&data).unwrap();
    let today = chrono::Utc::now().date_naive().to_string();

    // Passive DNS: two records new on 2024-01-01, one on 2024-01-02.
    pdns_ingest(
        &data,
        &format!(
            "{}.5||192.0.2.10||8.8.8.8||IN||www.example.com.||A||192.0.2.80||300||2\n\
             {}.0||192.0.2.10||8.8.8.8||IN||web.example.net.||CNAME||www.example.com.||300||1\n\
             {}.0||192.0.2.10||8.8.8.8||IN||www.example.com.||AAAA||2001:db8::80||300||4\n",
            T0 + 5,
            T0 + 50,
            T0 + 86_400 + 10
        ),
    );
    // Passive SSL: the suite's five sessions of 2024-01-01; weak keys: the Fermat
    // certificate (found today, at ingest).
    let sc = Scenario::new();
    let records = data.join("records.jsonl");
    std::fs::write(&records, sc.lines.join("\n") + "\n").unwrap();
    let fermat = d4_testkit::vector("keys/rsa-fermat.crt");
    for input in [records.to_str().unwrap(), fermat.to_str().unwrap()] {
        ok(run(&[
            "pssl",
            "--data-dir",
            data.to_str().unwrap(),
            "ingest",
            input,
        ]));
    }

    let first = feed(&data, &out, &today, &[]);
    assert_eq!(first["events"], 4, "{first}");
    assert_eq!(first["written"], 4, "{first}");
    let summary = check(&out);
    assert_eq!(summary.as_object().unwrap().len(), 4);
    for e in summary.as_object().unwrap().values() {
        assert_eq!(e["Orgc"]["uuid"], ORG);
        assert_eq!(e["Tag"][0], "tlp:green");
    }

    // Passive DNS objects: the lines' values.
    let dns = objects(&summary, "passive-dns");
    assert_eq!(dns.len(), 3);
    let www_a = dns.iter().find(|o| attr(o, "rrtype") == ["A"]).unwrap();
    assert_eq!(attr(www_a, "rrname"), ["www.example.com"]);
    assert_eq!(attr(www_a, "rdata"), ["192.0.2.80"]);
    assert_eq!(attr(www_a, "count"), ["2"]);
    assert_eq!(attr(www_a, "time_first"), ["2024-01-01T00:00:05+00:00"]);

    // Passive SSL: leaves a (S1, S2), a2 (S4), b (S3); their servers; JA3 per client.
    let c = &sc.certs;
    let mut sha1s: Vec<String> = objects(&summary, "x509")
        .iter()
        .flat_map(|o| attr(o, "x509-fingerprint-sha1"))
        .collect();
    sha1s.sort();
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            std::fs::read_to_string(&fermat)
                .unwrap()
                .lines()
                .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
                .skip(1)
                .take_while(|l| !l.starts_with("-----END"))
                .collect::<String>(),
        )
        .unwrap();
    let fermat_sha1 = hex::encode(Sha1::digest(&der));
    let mut want = vec![
        c.a.sha1.clone(),
        c.a2.sha1.clone(),
        c.b.sha1.clone(),
        fermat_sha1,
    ];
    want.sort();
    assert_eq!(sha1s, want);
    let mut servers: Vec<(String, String)> = objects(&summary, "ip-port")
        .iter()
        .map(|o| (attr(o, "ip")[0].clone(), attr(o, "dst-port")[0].clone()))
        .collect();
    servers.sort();
    assert_eq!(
        servers,
        [
            ("198.51.100.7", "443"),
            ("198.51.100.9", "443"),
            ("2001:db8:2::1", "8443")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let x509_a = objects(&summary, "x509")
        .into_iter()
        .find(|o| attr(o, "x509-fingerprint-sha1") == [c.a.sha1.clone()])
        .unwrap();
    assert_eq!(
        x509_a["references"],
        serde_json::json!([["seen-by", "ip-port"]])
    );
    let mut ja3: Vec<(String, String)> = objects(&summary, "ja3")
        .iter()
        .map(|o| {
            (
                attr(o, "ja3-fingerprint-md5")[0].clone(),
                attr(o, "ip-src")[0].clone(),
            )
        })
        .collect();
    ja3.sort();
    let mut want = vec![
        (md5_hex(JA3_1), "192.0.2.10".to_string()),
        (md5_hex(JA3_1), "192.0.2.11".to_string()),
        (md5_hex(JA3_2), "2001:db8:1::5".to_string()),
    ];
    want.sort();
    assert_eq!(ja3, want);

    // Weak keys: the Fermat key's modulus and factors, as the shared vectors give them.
    let expected: Value =
        serde_json::from_slice(&d4_testkit::vector_bytes("keys/expected.json")).unwrap();
    let f = &expected["keys"]["rsa-fermat.crt"]["results"]["fermat"];
    let cm = objects(&summary, "crypto-material");
    assert_eq!(cm.len(), 1);
    let mut pq = vec![attr(cm[0], "p")[0].clone(), attr(cm[0], "q")[0].clone()];
    pq.sort();
    let mut want = vec![
        f["p"].as_str().unwrap().to_string(),
        f["q"].as_str().unwrap().to_string(),
    ];
    want.sort();
    assert_eq!(pq, want);
    // The modulus as the openssl CLI reads it from the certificate.
    let openssl = Command::new("openssl")
        .args(["x509", "-noout", "-modulus", "-in"])
        .arg(&fermat)
        .output()
        .unwrap();
    let modulus = String::from_utf8(openssl.stdout).unwrap();
    let modulus = modulus
        .trim()
        .trim_start_matches("Modulus=")
        .to_ascii_lowercase();
    assert_eq!(attr(cm[0], "modulus"), [modulus]);
    assert_eq!(attr(cm[0], "origin"), ["mathematical-attack"]);

    // Again: nothing changed, nothing written.
    let before = manifest_times(&out);
    let again = feed(&data, &out, &today, &[]);
    assert_eq!(
        (again["written"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(4)),
        "{again}"
    );
    assert_eq!(manifest_times(&out), before);

    // One new record on 2024-01-02: exactly one event's timestamp moves.
    pdns_ingest(
        &data,
        &format!(
            "{}.0||192.0.2.10||8.8.8.8||IN||new.example.com.||A||192.0.2.99||300||1\n",
            T0 + 86_400 + 500
        ),
    );
    let third = feed(&data, &out, &today, &[]);
    assert_eq!(third["written"], 1, "{third}");
    let after = manifest_times(&out);
    let changed: Vec<&String> = after.keys().filter(|k| after[*k] != before[*k]).collect();
    assert_eq!(changed.len(), 1, "{before:?} -> {after:?}");
    assert!(after[changed[0]] > before[changed[0]]);
    let summary = check(&out);
    assert_eq!(summary[changed[0].as_str()]["date"], "2024-01-02");
    assert_eq!(objects(&summary, "passive-dns").len(), 4);
}

#[test]
fn configuration_errors_name_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "misp",
        "feed",
        "--out",
        dir.path().join("f").to_str().unwrap(),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--org-name"));
    let cfg = dir.path().join("misp.toml");
    std::fs::write(&cfg, "[org]\nname = \"X\"\nuuid = \"55f6ea5e-2c60-40e5-964f-47a8950d210f\"\n[event]\nthreat_level = 9\n").unwrap();
    let out = run(&[
        "misp",
        "feed",
        "--out",
        dir.path().join("f").to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("threat_level"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&cfg, "[org]\nnmae = \"X\"\n").unwrap();
    let out = run(&[
        "misp",
        "feed",
        "--out",
        dir.path().join("f").to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("misp.toml") && err.contains("nmae"), "{err}");
    // A valid config and no stores: an empty feed.
    std::fs::write(
        &cfg,
        "[org]\nname = \"X\"\nuuid = \"55f6ea5e-2c60-40e5-964f-47a8950d210f\"\n",
    )
    .unwrap();
    let s = ok(run(&[
        "misp",
        "feed",
        "--out",
        dir.path().join("f").to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]));
    assert_eq!(s["events"], 0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("f/manifest.json"))
            .unwrap()
            .trim(),
        "{}"
    );
}

/// Backscatter: a capture with two planted attacks (an IPv4 SYN flood victim answering with
/// SYN/ACKs on 443, an IPv6 DNS server answering with port unreachables on 53) goes through
/// `d4 pibs ingest` into the backscatter store; `d4 misp feed` with `[backscatter] enabled`
/// turns each attack into a `ddos` object that PyMISP accepts, with the planted values.
#[test]
fn backscatter_attacks_become_ddos_objects() {
    use d4_pibs::synth::{pcap_file, reply_frame, Reply};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("feed");
    std::fs::create_dir_all(&data).unwrap();
    // 2024-01-03T00:10:00Z
    let t0 = T0 + 2 * 86_400 + 600;
    let v4: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    let v6: std::net::IpAddr = "2001:db8::53".parse().unwrap();
    let mut frames: Vec<(u64, Vec<u8>)> = (0..120u64)
        .map(|i| {
            let dark = format!("10.0.0.{}", i % 50).parse().unwrap();
            (
                t0 + i,
                reply_frame(v4, 443, dark, 1024 + i as u16, Reply::SynAck),
            )
        })
        .collect();
    frames.extend((0..30u64).map(|i| {
        let dark = format!("2001:db8:dead::{}", i + 1).parse().unwrap();
        (
            t0 + 200 + i,
            reply_frame(v6, 53, dark, 5000, Reply::PortUnreach),
        )
    }));
    let pcap = dir.path().join("bs.pcap");
    std::fs::write(&pcap, pcap_file(1, &frames)).unwrap();
    ok(run(&[
        "pibs",
        "ingest",
        "--data-dir",
        data.to_str().unwrap(),
        pcap.to_str().unwrap(),
    ]));
    let cfg = dir.path().join("misp.toml");
    std::fs::write(&cfg, "[backscatter]\nenabled = true\n").unwrap();
    let s = feed(
        &data,
        &out,
        "2024-01-05",
        &["--config", cfg.to_str().unwrap()],
    );
    assert_eq!(s["events"], 1, "{s}");
    let summary = check(&out);
    let ddos = objects(&summary, "ddos");
    assert_eq!(ddos.len(), 2, "{summary}");
    let of = |ip: &str| {
        *ddos
            .iter()
            .find(|o| attr(o, "ip-dst") == [ip])
            .unwrap_or_else(|| panic!("no ddos object for {ip}: {summary}"))
    };
    let a = of("198.51.100.7");
    assert_eq!(attr(a, "protocol"), ["TCP"]);
    assert_eq!(attr(a, "type"), ["tcp-syn"]);
    assert_eq!(attr(a, "dst-port"), ["443"]);
    assert_eq!(attr(a, "total-packets-sent"), ["120"]);
    assert_eq!(
        attr(a, "capture-origin"),
        ["Indirect network capture (e.g. backscatter)"]
    );
    assert!(attr(a, "first-seen")[0].starts_with("2024-01-03T00:10:00"));
    assert!(attr(a, "last-seen")[0].starts_with("2024-01-03T00:11:59"));
    let b = of("2001:db8::53");
    assert_eq!(attr(b, "protocol"), ["UDP"]);
    assert_eq!(attr(b, "dst-port"), ["53"]);
    assert_eq!(attr(b, "total-packets-sent"), ["30"]);
    assert!(attr(b, "first-seen")[0].starts_with("2024-01-03T00:13:20"));
}
