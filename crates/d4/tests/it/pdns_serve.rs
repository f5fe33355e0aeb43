//! `d4 pdns ingest` + `d4 pdns serve` through the real binary: every answer line is checked
//! by a COF validator; pagination, filters, wildcard/prefix/CIDR/reverse lookups, token auth,
//! rate limit, `--rdata-array`; and the PyPI `pypdns` client against the server.

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const D4: &str = env!("CARGO_BIN_EXE_d4");
const SENSOR: &str = "15dde53e50b54bbba76117210179b4da";

/// 120 hosts under example.org (A, one each), a CNAME chain, TXT with `||`, AAAA, an
/// unnamed type, an NXDOMAIN line and malformed lines.
fn csv() -> String {
    let mut s = String::new();
    for i in 0..120u32 {
        s += &format!(
            "{}.250000||192.0.2.1||192.0.2.53||IN||Host{i}.Example.ORG.||A||10.1.{}.{}||60||{}\n",
            1_600_000_000 + i,
            i / 100,
            i % 100,
            i + 1
        );
    }
    s += "1600001000.0||192.0.2.1||192.0.2.53||IN||www.example.net.||CNAME||Edge.Example.NET.||60||1\n";
    s += "1600001001.0||192.0.2.1||192.0.2.53||IN||edge.example.net.||CNAME||e1.cdn.example.||60||1\n";
    s += "1600001002.0||192.0.2.1||192.0.2.53||IN||e1.cdn.example.||AAAA||2001:DB8:0::1||60||1\n";
    s += "1600001003.0||192.0.2.1||192.0.2.53||IN||example.net.||TXT||\"V=spf1 a||b\"||60||1\n";
    s += "1600001004.0||192.0.2.1||192.0.2.53||IN||example.net.||TYPE65280||\\# 1 ff||60||1\n";
    s += "1600001005.0||192.0.2.1||192.0.2.53||IN||gone.example.net.||A||NXDOMAIN||0||1\n";
    s += "1600001006.0||192.0.2.1||192.0.2.53||IN||example.net.||A||999.1.1.1||60||1\n";
    s += "not a line\n";
    s += "1600001007.x||192.0.2.1||192.0.2.53||IN||example.net.||A||1.1.1.1||60||1\n";
    // The same record again, later: first/last/count aggregate.
    s += "1600002000.0||192.0.2.1||192.0.2.53||IN||host0.example.org.||A||10.1.0.0||60||5\n";
    s
}

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ingest(dir: &Path) -> Value {
    let file = dir.join("in.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&file).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(csv().as_bytes()).unwrap();
    gz.finish().unwrap();
    let out = Command::new(D4)
        .args(["pdns", "--data-dir"])
        .arg(dir.join("data"))
        .arg("ingest")
        .arg(&file)
        .args(["--sensor-id", SENSOR])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn start(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let summary = ingest(dir.path());
    assert_eq!(summary["lines_ok"], 127, "{summary}");
    assert_eq!(summary["lines_bad"], 3, "{summary}");
    assert_eq!(summary["rcode_lines"], 1, "{summary}");
    for _ in 0..5 {
        let port = d4_testkit::free_port();
        let mut child = Command::new(D4)
            .args(["pdns", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Server {
                    child,
                    port,
                    _dir: dir,
                };
            }
            if let Ok(Some(_)) = child.try_wait() {
                break; // port taken meanwhile: try another
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("d4 pdns serve did not come up");
}

use d4_testkit::http::{get, Response as Resp};

const COF_FIELDS: &[&str] = &[
    "rrname",
    "rrtype",
    "rdata",
    "time_first",
    "time_last",
    "count",
    "bailiwick",
    "sensor_id",
    "zone_time_first",
    "zone_time_last",
    "origin",
    "time_first_ms",
    "time_last_ms",
];

/// Checks an answer against the COF rules; returns its records.
fn cof(resp: &Resp) -> Vec<Value> {
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("content-type"), Some("application/x-ndjson"));
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in resp.body.split('\n') {
        if line.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let o = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        for k in o.keys() {
            assert!(
                COF_FIELDS.contains(&k.as_str()),
                "unknown field {k}: {line}"
            );
        }
        let rrname = o["rrname"].as_str().expect("rrname string");
        assert!(!rrname.is_empty() && !rrname.ends_with('.') || rrname == ".");
        match &o["rrtype"] {
            Value::String(t) => assert!(
                d4_pdns::rrtype::parse(t).is_some() && !t.bytes().all(|b| b.is_ascii_digit()),
                "rrtype {t} is not a mnemonic"
            ),
            Value::Number(n) => {
                let n = n.as_u64().expect("rrtype number") as u16;
                assert!(
                    d4_pdns::rrtype::name(n).is_none(),
                    "named type {n} as a number"
                );
            }
            other => panic!("bad rrtype {other}"),
        }
        match &o["rdata"] {
            Value::String(_) => {}
            Value::Array(a) => assert!(!a.is_empty() && a.iter().all(Value::is_string)),
            other => panic!("bad rdata {other}"),
        }
        let tf = o["time_first"].as_u64().expect("time_first integer");
        let tl = o["time_last"].as_u64().expect("time_last integer");
        assert!(tf <= tl, "{line}");
        if let Some(c) = o.get("count") {
            assert!(c.as_u64().is_some(), "{line}");
        }
        for k in ["sensor_id", "origin", "bailiwick"] {
            if let Some(s) = o.get(k) {
                assert!(s.is_string(), "{line}");
            }
        }
        if let (Some(a), Some(b)) = (o.get("time_first_ms"), o.get("time_last_ms")) {
            assert_eq!(a.as_u64().unwrap() / 1000, tf);
            assert_eq!(b.as_u64().unwrap() / 1000, tl);
        }
        let key = (
            rrname.to_string(),
            o["rrtype"].to_string(),
            o["rdata"].to_string(),
        );
        assert!(seen.insert(key), "duplicate triple in one answer: {line}");
        out.push(v);
    }
    out
}

fn names(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|r| r["rrname"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn lookups_filters_and_pagination() {
    let s = start(&[]);
    let p = s.port;

    // Exact name, normalized; aggregated first/last/count; sensor id.
    let r = cof(&get(p, "/query/HOST0.example.org.", &[]));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["rdata"], "10.1.0.0");
    assert_eq!(r[0]["time_first"], 1_600_000_000);
    assert_eq!(r[0]["time_last"], 1_600_002_000);
    assert_eq!(r[0]["count"], 6);
    assert_eq!(r[0]["sensor_id"], SENSOR);

    // Wildcard: all 120, newest first, ties broken by name; the total announced.
    let all = get(p, "/query/*.example.org", &[]);
    assert_eq!(all.header("x-d4-total"), Some("120"));
    assert!(all.header("x-dribble-cursor").is_none());
    let all = cof(&all);
    assert_eq!(all.len(), 120);
    assert_eq!(all[0]["rrname"], "host0.example.org");
    let tl: Vec<u64> = all
        .iter()
        .map(|r| r["time_last"].as_u64().unwrap())
        .collect();
    assert!(tl.windows(2).all(|w| w[0] >= w[1]));

    // Pagination with PyPDNS's headers walks the same sequence, no loss, no repeat.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut h = vec![("dribble-paginate-count", "50")];
        if let Some(c) = &cursor {
            h.push(("dribble-paginate-cursor", c.as_str()));
        }
        let resp = get(p, "/query/*.example.org", &h);
        let page = cof(&resp);
        assert!(page.len() <= 50);
        paged.extend(page);
        match resp.header("x-dribble-cursor") {
            Some(c) => {
                // A positive integer (PyPDNS parses it with int()), opaque to clients.
                assert!(
                    c.bytes().all(|b| b.is_ascii_digit()) && !c.starts_with('0'),
                    "{c}"
                );
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    assert_eq!(names(&paged), names(&all));
    // limit/cursor query parameters do the same.
    let resp = get(p, "/query/*.example.org?limit=100&cursor=100", &[]);
    assert!(resp.header("x-dribble-cursor").is_none());
    assert_eq!(names(&cof(&resp)), names(&all[100..]));
    let resp = get(p, "/query/*.example.org?limit=7", &[]);
    let c = resp.header("x-dribble-cursor").unwrap().to_string();
    assert_eq!(names(&cof(&resp)), names(&all[..7]));
    let resp = get(p, &format!("/query/*.example.org?limit=7&cursor={c}"), &[]);
    assert_eq!(names(&cof(&resp)), names(&all[7..14]));
    let bogus = format!("9{}", "1".repeat(30));
    assert_eq!(
        get(p, &format!("/query/*.example.org?cursor={bogus}"), &[]).status,
        400
    );
    assert_eq!(get(p, "/query/*.example.org?cursor=abc", &[]).status, 400);

    // Prefix search.
    let r = cof(&get(p, "/query/host11*", &[]));
    assert_eq!(r.len(), 11); // host11, host110..host119

    // CIDR, IPv4 and IPv6, and an IP query (reverse).
    assert_eq!(cof(&get(p, "/query/10.1.1.0/24", &[])).len(), 20);
    let r = cof(&get(p, "/query/2001:db8::/32", &[]));
    assert_eq!(names(&r), vec!["e1.cdn.example"]);
    let r = cof(&get(p, "/query/2001:db8:0:0::1", &[]));
    assert_eq!(names(&r), vec!["e1.cdn.example"]);

    // Reverse: only the records whose rdata is the value.
    let r = cof(&get(p, "/fquery/edge.example.net", &[]));
    assert_eq!(names(&r), vec!["www.example.net"]);
    assert_eq!(r[0]["rrtype"], "CNAME");

    // TXT exact, with `||`; an unnamed type as a JSON number; rrtype filters.
    let r = cof(&get(p, "/query/example.net", &[]));
    assert_eq!(r.len(), 2);
    assert!(r.iter().any(|x| x["rdata"] == "\"V=spf1 a||b\""));
    assert!(r.iter().any(|x| x["rrtype"] == 65280));
    let r = cof(&get(
        p,
        "/query/example.net",
        &[("dribble-filter-rrtype", "TXT")],
    ));
    assert_eq!(r.len(), 1);
    let r = cof(&get(p, "/query/example.net?rrtype=65280", &[]));
    assert_eq!(r.len(), 1);
    assert_eq!(get(p, "/query/example.net?rrtype=BOGUS", &[]).status, 400);

    // Time window.
    let r = cof(&get(p, "/query/*.example.org?since=1600000110", &[]));
    assert_eq!(r.len(), 11); // host110..119 and host0 (seen again later)
    let r = cof(&get(p, "/query/*.example.org?until=1600000009", &[]));
    assert_eq!(r.len(), 10);

    // NXDOMAIN is stored apart, not served as a record; the counters show it.
    assert!(cof(&get(p, "/query/gone.example.net", &[])).is_empty());
    let info: Value = serde_json::from_str(&get(p, "/info", &[]).body).unwrap();
    assert_eq!(info["records"], 125);
    assert_eq!(info["rcode_records"], 1);
    assert_eq!(info["rrtypes"]["A"], 120);
    assert_eq!(info["rrtypes"]["65280"], 1);
    assert_eq!(info["lines_rejected"]["bad_rdata"], 1);
    assert!(info["sensors"][SENSOR].as_u64().unwrap() > 0);

    // Bad queries are errors, not empty answers.
    assert_eq!(get(p, "/query/a%20b", &[]).status, 400);
    assert_eq!(get(p, "/query/h*", &[]).status, 400);
}

#[test]
fn token_rate_limit_and_rdata_array() {
    let s = start(&[
        "--token",
        "s3cret",
        "--rate-limit",
        "5",
        "--rdata-array",
        "--origin",
        "d4-test",
    ]);
    let p = s.port;
    assert_eq!(get(p, "/query/host1.example.org", &[]).status, 401);
    assert_eq!(
        get(p, "/query/host1.example.org", &[("Authorization", "wrong")]).status,
        401
    );
    let r = cof(&get(
        p,
        "/query/host1.example.org",
        &[("Authorization", "s3cret")],
    ));
    assert_eq!(r[0]["rdata"], serde_json::json!(["10.1.0.1"]));
    assert_eq!(r[0]["origin"], "d4-test");
    let mut limited = false;
    for _ in 0..10 {
        let resp = get(p, "/info", &[("Authorization", "Bearer s3cret")]);
        if resp.status == 429 {
            assert!(resp.header("retry-after").is_some());
            limited = true;
            break;
        }
        assert_eq!(resp.status, 200);
    }
    assert!(limited, "no 429 after the rate limit");
}

const PY: &str = r#"
import json, sys
from pypdns import PyPDNS
url = sys.argv[1]
p = PyPDNS(url=url)
calls = []
orig = p.session.get
def counting_get(*a, **k):
    calls.append(dict(k.get('headers') or {}))
    return orig(*a, **k)
p.session.get = counting_get
paged = [r.rrname for r in p.iter_query('*.example.org')]
pages = len(calls)
txt = [r.record for r in p.rfc_query('example.net', filter_rrtype='TXT')]
one = p.rfc_query('host5.example.org')[0]
print(json.dumps({
    'paged': paged, 'pages': pages, 'cursors': [c.get('dribble-paginate-cursor') for c in calls[:pages]],
    'txt': txt,
    'one': {'rrname': one.rrname, 'rrtype': one.rrtype, 'rdata': one.rdata,
            'time_first': one.time_first, 'time_last': one.time_last, 'count': one.count,
            'sensor_id': one.sensor_id},
}))
"#;

#[test]
fn pypdns_client_gets_the_records_with_pagination() {
    let py = d4_testkit::python_with("pypdns", "pypdns", "pypdns-venv");
    let s = start(&[]);
    let url = format!("http://127.0.0.1:{}/query", s.port);
    let out = Command::new(&py).args(["-c", PY, &url]).output().unwrap();
    assert!(
        out.status.success(),
        "pypdns script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let paged: Vec<&str> = v["paged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(paged.len(), 120);
    let uniq: HashSet<_> = paged.iter().collect();
    assert_eq!(uniq.len(), 120);
    assert!(paged.contains(&"host119.example.org"));
    assert_eq!(v["pages"], 3, "50 + 50 + 20 records: {v}");
    let cursors = v["cursors"].as_array().unwrap();
    assert!(cursors[0].is_null(), "{v}");
    for c in &cursors[1..] {
        let c = c.as_str().unwrap();
        assert!(c.len() > 20 && c.bytes().all(|b| b.is_ascii_digit()), "{c}");
    }
    assert_eq!(v["txt"][0]["rdata"], "\"V=spf1 a||b\"");
    assert_eq!(v["txt"][0]["rrtype"], "TXT");
    assert_eq!(
        v["one"],
        serde_json::json!({"rrname": "host5.example.org", "rrtype": "A", "rdata": "10.1.0.5",
            "time_first": 1_600_000_005u64, "time_last": 1_600_000_005u64, "count": 6,
            "sensor_id": SENSOR})
    );
}
