//! Issue 14: `d4 pdns ingest --redis` writes a database that analyzer-d4-passivedns's own
//! lookup server (bin/pdns-cof-server.py) serves completely: a Python stand-in builds its
//! key names exactly as that server does (name and value lower-cased for `s:`/`l:`/`o:`,
//! value lower-cased for `v:`) and finds every record d4-rs serves, TXT values with
//! capitals included; the `dist:ttl` and `dist:class` statistics hashes are written as the
//! reference ingester writes them; `d4 pdns serve --redis` counts the records in `/info`.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const D4: &str = env!("CARGO_BIN_EXE_d4");

const CSV: &str = "\
1600000000.5||192.0.2.1||192.0.2.53||IN||Mixed.Example.COM.||A||192.0.2.10||300||1
1600000100.5||192.0.2.1||192.0.2.53||IN||mixed.example.com.||TXT||\"v=spf1 Include:_spf.Example.com ~ALL\"||3600||2
1600000150.5||192.0.2.1||192.0.2.53||IN||mixed.example.com.||TXT||\"v=spf1 Include:_spf.Example.com ~ALL\"||3600||1
1600000200.5||192.0.2.1||192.0.2.53||IN||mixed.example.com.||MX||10 Mail.Example.com.||600||1
1600000300.5||192.0.2.1||192.0.2.53||CH||txt.example.org.||TXT||\"Hello World\"||60||1
1600000400.5||192.0.2.1||192.0.2.53||IN||www.example.org.||CNAME||Edge.Example.NET.||300||1
1600000500.5||192.0.2.1||192.0.2.53||IN||www.example.org.||AAAA||2001:DB8::1||300||1
";
const NAMES: &[&str] = &["mixed.example.com", "txt.example.org", "www.example.org"];

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(url: &str) -> (Server, u16) {
    for _ in 0..5 {
        let port = d4_testkit::free_port();
        let mut child = Command::new(D4)
            .args(["pdns", "--redis", url, "serve", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (Server(child), port);
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("d4 pdns serve did not come up");
}

/// GET (HTTP/1.1, Connection: close), the body de-chunked.
fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_string();
    }
    let (mut out, mut rest) = (String::new(), body);
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

fn lines(body: &str) -> Vec<Value> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_reference_lookup_server_finds_every_record() {
    let redis = d4_testkit::RedisServer::start();
    let url = redis.url_db(0);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, CSV).unwrap();
    let out = Command::new(D4)
        .args(["pdns", "--redis", &url, "ingest"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What d4-rs serves from the database...
    let (_server, port) = serve(&url);
    let mut served = Vec::new();
    for name in NAMES {
        served.extend(lines(&get(port, &format!("/query/{name}"))));
    }
    assert_eq!(served.len(), 6, "{served:?}");
    assert!(
        served.iter().any(|r| r["rdata"]
            .as_str()
            .is_some_and(|d| d.contains("Include:_spf.Example.com"))),
        "TXT keeps its case: {served:?}"
    );

    // ... the reference lookup server finds too, with the same times and counts.
    let mut requests = String::new();
    for name in NAMES {
        requests += &format!("{}\n", json!({ "query": name }));
    }
    for r in &served {
        requests += &format!("{}\n", json!({ "fquery": r["rdata"] }));
    }
    requests += "{\"hash\": \"dist:ttl\"}\n{\"hash\": \"dist:class\"}\n";
    let answers: Vec<Value> = d4_testkit::d4core_script("pdns_lookup.py", &[&url], &requests)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let key = |r: &Value| {
        (
            r["rrname"].as_str().unwrap().to_string(),
            r["rrtype"].as_str().unwrap().to_string(),
            r["rdata"].as_str().unwrap().to_string(),
            r["time_first"].as_u64().unwrap(),
            r["time_last"].as_u64().unwrap(),
            r["count"].as_u64().unwrap(),
        )
    };
    let want: BTreeSet<_> = served.iter().map(key).collect();
    let found: BTreeSet<_> = answers[..NAMES.len()]
        .iter()
        .flat_map(|a| a.as_array().unwrap().iter().map(key))
        .collect();
    assert_eq!(found, want, "the reference's getRecord");
    for (r, names) in served.iter().zip(&answers[NAMES.len()..]) {
        assert!(
            names.as_array().unwrap().contains(&r["rrname"].clone()),
            "the reference's getAssociatedRecords({}) -> {names}",
            r["rdata"]
        );
    }
    let n = NAMES.len() + served.len();
    // One per line, as the reference ingester counts them.
    assert_eq!(
        answers[n],
        json!({"300": "3", "3600": "2", "600": "1", "60": "1"}),
        "dist:ttl"
    );
    assert_eq!(answers[n + 1], json!({"IN": "6", "CH": "1"}), "dist:class");

    // /info counts the records of the database.
    let info: Value = serde_json::from_str(&get(port, "/info")).unwrap();
    assert_eq!(info["records"], 6, "{info}");
}
