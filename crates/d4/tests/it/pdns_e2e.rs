//! Passive DNS end to end: a `d4 client` streams a passivedns CSV file as type 8 to a real
//! `d4 server`, whose worker pushes the lines to a type-8 analyzer queue; `d4 pdns ingest
//! --queue` consumes it (through the server's store socket) and `d4 pdns serve` returns the
//! records over HTTP as COF.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::server::ServerProc;
use d4_store::{QueueConfig, QueueKind};
use serde_json::Value;

const D4: &str = env!("CARGO_BIN_EXE_d4");
const SENSOR_KEY: &str = "pdns sensor key";

const CSV: &str = "\
1549491848.123456||192.0.2.10||8.8.8.8||IN||www.Example.com.||CNAME||web.example.com.||300||2
1549491849.000001||192.0.2.10||8.8.8.8||IN||web.example.com.||A||192.0.2.80||300||1
1549491850.5||192.0.2.10||8.8.8.8||IN||web.example.com.||AAAA||2001:DB8:0:0::80||300||4
1549491851.0||192.0.2.10||8.8.8.8||IN||example.com.||TXT||\"v=spf1 ||include:_spf.Example.com ~all\"||60||1
1549491852.0||192.0.2.10||8.8.8.8||IN||web.example.com.||A||192.0.2.80||300||3
";

struct Serve(Child);
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (head.to_string(), body.to_string())
}

fn cof(body: &str) -> Vec<Value> {
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn client_to_server_to_queue_to_pdns_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(dir.path(), &[]);
    let sensor = uuid::Uuid::new_v4();
    let rt = tokio::runtime::Runtime::new().unwrap();

    // Register and approve the sensor with the admin CLI (through the server's socket).
    let out = Command::new(D4)
        .args([
            "sensor",
            "register",
            &sensor.to_string(),
            "--key",
            SENSOR_KEY,
            "--approve",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let queue = uuid::Uuid::new_v4();
    rt.block_on(async {
        let store = server.store().await;
        store
            .create_queue(
                QueueConfig {
                    uuid: queue,
                    kind: QueueKind::Type(8),
                    description: "pdns e2e".into(),
                    max_size: 1000,
                    sensors: None,
                    groups: Vec::new(),
                },
                d4_store::now(),
            )
            .await
            .unwrap();
    });

    // The sensor streams the CSV file as type 8 (small snaplen: lines cross frames).
    let csv = dir.path().join("passivedns.csv");
    std::fs::write(&csv, CSV).unwrap();
    let out = Command::new(D4)
        .args([
            "client",
            "--uuid",
            &sensor.to_string(),
            "--key",
            SENSOR_KEY,
            "--type",
            "8",
        ])
        .args(["--snaplen", "100", "--no-tls", "--spool-dir"])
        .arg(dir.path().join("spool"))
        .arg("--source")
        .arg(&csv)
        .arg("--destination")
        .arg(server.plain.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every line reaches the queue.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let len = rt.block_on(async { server.store().await.queue_len(queue).await.unwrap() });
        if len == 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queue holds {len} of 5 lines\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The ingester drains the queue.
    let out = Command::new(D4)
        .arg("pdns")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["ingest", "--queue", &queue.to_string(), "--until-empty"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ingest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let len = rt.block_on(async { server.store().await.queue_len(queue).await.unwrap() });
    assert_eq!(len, 0, "queue drained");

    // The lookup server returns the records.
    let port = d4_testkit::free_port();
    let serve = Serve(
        Command::new(D4)
            .arg("pdns")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "d4 pdns serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (head, body) = http_get(port, "/query/web.example.com");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("application/x-ndjson"),
        "{head}"
    );
    let recs = cof(&body);
    assert_eq!(recs.len(), 2, "{body}");
    let a = recs.iter().find(|r| r["rrtype"] == "A").unwrap();
    assert_eq!(a["rrname"], "web.example.com");
    assert_eq!(a["rdata"], "192.0.2.80");
    assert_eq!(a["count"], 4);
    assert_eq!(a["time_first"], 1549491849);
    assert_eq!(a["time_last"], 1549491852);
    let aaaa = recs.iter().find(|r| r["rrtype"] == "AAAA").unwrap();
    assert_eq!(aaaa["rdata"], "2001:db8::80");
    assert_eq!(aaaa["sensor_id"], sensor.simple().to_string(), "{aaaa}");

    let (_, body) = http_get(port, "/query/example.com");
    let txt = cof(&body);
    let txt = txt
        .iter()
        .find(|r| r["rrtype"] == "TXT")
        .expect("TXT record");
    assert_eq!(txt["rdata"], "\"v=spf1 ||include:_spf.Example.com ~all\"");

    let (_, body) = http_get(port, "/fquery/web.example.com");
    let rev = cof(&body);
    assert_eq!(rev.len(), 1, "{body}");
    assert_eq!(rev[0]["rrname"], "www.example.com");
    assert_eq!(rev[0]["rrtype"], "CNAME");

    drop(serve);
    assert_eq!(server.stop(), Some(0));
}

/// A rejected line is the sensor's text: logged with its control characters escaped, so a
/// carriage return or a terminal escape in it cannot forge or hide log lines.
#[test]
fn rejected_lines_are_logged_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("bad.txt");
    std::fs::write(
        &input,
        b"1700000000||1.2.3.4||5.6.7.8||IN||x.||A||1.2.3.4||\x1b[2Kforged\r2026-01-01T00:00:00Z  INFO d4: fake||1\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_d4"))
        .args(["pdns", "ingest", "--data-dir"])
        .arg(tmp.path())
        .arg(&input)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("passivedns line rejected"), "{err}");
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
    assert!(err.contains("\\u{1b}[2Kforged\\r"), "{err}");
}
