//! `d4_pssl::server` on a loopback port over an embedded store filled with the suite's
//! generated certificates and sessions (`testsuite::scenario`): every endpoint's shape,
//! paging (all pages together = everything, once), auth (raw token, Bearer, Basic, wrong
//! → 401 JSON, too many wrong → 429), bad input → 400, too wide → 422, IPv6, unknown
//! values, Host check. Expected values come from the scenario's own inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use d4_pssl::server::{self, Credentials, ServeConfig};
use d4_pssl::testsuite::scenario::{five, md5_hex, Scenario, JA3S_1, JA3_1, JA4_Y};
use d4_pssl::{EmbeddedStore, PsslStore};
use serde_json::{json, Value};

struct Server {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(store: Arc<dyn PsslStore>, cfg: ServeConfig) -> Server {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            port_tx.send(l.local_addr().unwrap().port()).unwrap();
            let shutdown = async move {
                let _ = rx.await;
            };
            server::serve(l, store, cfg, server::default_limits(), shutdown)
                .await
                .unwrap();
        });
    });
    Server {
        port: port_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        stop: Some(tx),
        thread: Some(thread),
    }
}

struct Resp {
    status: u16,
    raw: d4_testkit::http::Response,
    json: Value,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.raw.header(name)
    }
}

/// A raw HTTP/1.1 GET; the body must be JSON whatever the status.
fn get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> Resp {
    let raw = d4_testkit::http::get(port, path, headers);
    let json =
        serde_json::from_str(&raw.body).unwrap_or_else(|e| panic!("{path}: {e}: {:?}", raw.body));
    assert_eq!(
        raw.header("content-type"),
        Some("application/json"),
        "{path}"
    );
    Resp {
        status: raw.status,
        raw,
        json,
    }
}

fn get(port: u16, path: &str) -> Resp {
    get_with(port, path, &[])
}

fn ok(port: u16, path: &str) -> Value {
    let r = get(port, path);
    assert_eq!(r.status, 200, "{path}: {}", r.json);
    r.json
}

fn error(port: u16, path: &str, status: u16) -> String {
    let r = get(port, path);
    assert_eq!(r.status, status, "{path}: {}", r.json);
    r.json["error"].as_str().unwrap().to_string()
}

/// The scenario plus the five paging sessions, in a fresh embedded store.
fn filled() -> (Scenario, String, Arc<dyn PsslStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("pssl.redb")).unwrap();
    let sc = Scenario::new();
    store.commit(&sc.batch()).unwrap();
    let (five_ja3, b) = five(&sc.certs);
    store.commit(&b).unwrap();
    (sc, five_ja3, Arc::new(store), dir)
}

fn subject(cn: &str) -> String {
    format!("CN={cn},O=d4-rs pssl tests,C=LU")
}

/// The same name as the PyPSSL-shaped answers print it (OpenSSL's one-line form).
fn oneline(cn: &str) -> String {
    format!("C=LU, O=d4-rs pssl tests, CN={cn}")
}

/// Follows the cursors (`x-dribble-cursor`) of a paged path; every page's items.
fn walk(port: u16, path: &str, items: impl Fn(&Value) -> Vec<Value>) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let p = match &cursor {
            Some(c) => format!("{path}{sep}cursor={c}"),
            None => path.to_string(),
        };
        let r = get(port, &p);
        assert_eq!(r.status, 200, "{p}: {}", r.json);
        pages.push(items(&r.json));
        if let Some(next) = r.json.get("next") {
            assert_eq!(next.as_str(), r.header("x-dribble-cursor"), "{p}");
        }
        match r.header("x-dribble-cursor") {
            Some(c) => cursor = Some(c.to_string()),
            None => return pages,
        }
    }
    panic!("{path}: no last page");
}

#[test]
fn pssl_v2_query_cquery_cfetch() {
    let (sc, _, store, _dir) = filled();
    let c = &sc.certs;
    let srv = start(store, ServeConfig::default());
    let port = srv.port;

    // One address: both certificates of its chain, subjects, ports, seen.
    let v = ok(port, "/v2pssl/query/198.51.100.7");
    let mut want = vec![c.a.sha1.clone(), c.ca.sha1.clone()];
    want.sort();
    let ip = &v["198.51.100.7"];
    assert_eq!(ip["certificates"], json!(want));
    assert_eq!(
        ip["subjects"][&c.a.sha1]["values"][0],
        oneline("a.example.test")
    );
    assert_eq!(
        ip["subjects"][&c.ca.sha1]["values"][0],
        oneline("d4 pssl test CA")
    );
    assert_eq!(ip["ports"], json!([443]));
    assert_eq!(ip["seen"][&c.a.sha1]["first_seen"], "2024-01-01T00:00:00Z");
    assert_eq!(ip["seen"][&c.a.sha1]["last_seen"], "2024-01-01T01:00:00Z");
    assert_eq!(ip["seen"][&c.a.sha1]["count"], 2);
    assert_eq!(v.as_object().unwrap().len(), 1);

    // A /24 (slash unescaped): the two servers with data only.
    let v = ok(port, "/v2pssl/query/198.51.100.0/24");
    let keys: HashSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, HashSet::from(["198.51.100.7", "198.51.100.9"]));
    assert_eq!(v["198.51.100.9"]["certificates"], json!([c.a2.sha1]));

    // IPv6, an address and its /64.
    for q in ["2001:db8:2::1", "2001:db8:2::/64"] {
        let v = ok(port, &format!("/v2pssl/query/{q}"));
        assert_eq!(v["2001:db8:2::1"]["certificates"], json!([c.b.sha1]), "{q}");
        assert_eq!(v["2001:db8:2::1"]["ports"], json!([8443]), "{q}");
    }

    // Unknown, malformed, too wide.
    assert_eq!(ok(port, "/v2pssl/query/192.0.2.99"), json!({}));
    error(port, "/v2pssl/query/not-an-ip", 400);
    error(port, "/v2pssl/query/192.0.2.0/33", 400);
    assert!(error(port, "/v2pssl/query/10.0.0.0/22", 422).contains("/23"));
    error(port, "/v2pssl/query/2001:db8::/48", 422);

    // Paging the /24 of the five servers, one address per page: all five, once.
    let pages = walk(port, "/v2pssl/query/203.0.113.0/24?limit=2", |v| {
        v.as_object().unwrap().keys().map(|k| json!(k)).collect()
    });
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    let all: HashSet<String> = pages
        .iter()
        .flatten()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let want: HashSet<String> = (1..=5).map(|i| format!("203.0.113.{i}")).collect();
    assert_eq!(all, want);

    // cquery: addresses in address order, sessions that carried it.
    let v = ok(port, &format!("/v2pssl/cquery/{}", c.a.sha1.to_uppercase()));
    let mut seen = vec!["198.51.100.7".to_string()];
    seen.extend((1..=5).map(|i| format!("203.0.113.{i}")));
    assert_eq!(v["certificate"], c.a.sha1);
    assert_eq!(v["seen"], json!(seen));
    assert_eq!(v["hits"], 7);
    assert_eq!(v["ports"], json!([443]));
    assert_eq!(v["first_seen"], "2024-01-01T00:00:00Z");
    let v = ok(port, &format!("/v2pssl/cquery/{}", c.b.sha1));
    assert_eq!(v["seen"], json!(["2001:db8:2::1"]));
    assert_eq!(v["hits"], 1);
    let unknown = "0123456789abcdef0123456789abcdef01234567";
    assert_eq!(
        ok(port, &format!("/v2pssl/cquery/{unknown}")),
        json!({"certificate": unknown, "seen": [], "hits": 0, "first_seen": null,
               "last_seen": null, "ports": []})
    );
    error(port, "/v2pssl/cquery/xyz", 400);
    // cquery's seen paged by the header.
    let r = get_with(
        port,
        &format!("/v2pssl/cquery/{}", c.a.sha1),
        &[("dribble-paginate-count", "4")],
    );
    assert_eq!(r.json["seen"].as_array().unwrap().len(), 4);
    let cur = r.header("x-dribble-cursor").unwrap().to_string();
    let r = get_with(
        port,
        &format!("/v2pssl/cquery/{}", c.a.sha1),
        &[
            ("dribble-paginate-count", "4"),
            ("dribble-paginate-cursor", &cur),
        ],
    );
    assert_eq!(r.json["seen"], json!(["203.0.113.4", "203.0.113.5"]));
    assert_eq!(r.header("x-dribble-cursor"), None);

    // cfetch: PEM, OpenSSL-style info, dates.
    let v = ok(port, &format!("/v2pssl/cfetch/{}", c.a.sha1));
    assert_eq!(v["pem"], c.a.pem());
    let info = &v["info"];
    assert_eq!(info["subject"], oneline("a.example.test"));
    assert_eq!(info["issuer"], oneline("d4 pssl test CA"));
    assert_eq!(info["fingerprint"], c.a.sha1.to_uppercase());
    assert_eq!(info["keylength"], 256);
    assert_eq!(info["not_before"], "2024-01-01T00:00:00Z");
    assert_eq!(info["not_after"], "2034-01-01T00:00:00Z");
    assert_eq!(info["extension"]["subjectAltName"], "DNS:a.example.test");
    assert!(info["key"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert_eq!(info["sha256"], c.a.sha256);
    assert_eq!(info["spki_sha256"], c.a.spki_sha256);
    assert_eq!(info["sans"], json!(["a.example.test"]));
    assert_eq!(v["hits"], 7);
    let ca = ok(port, &format!("/v2pssl/cfetch/{}", c.ca.sha1));
    assert_eq!(ca["info"]["extension"]["basicConstraints"], "CA:TRUE");
    assert_eq!(ca["info"]["is_ca"], true);
    assert_eq!(
        error(port, &format!("/v2pssl/cfetch/{unknown}"), 404),
        "certificate not found"
    );
    error(port, "/v2pssl/cfetch/12", 400);
}

#[test]
fn ja3_sessions_and_pivots() {
    let (sc, five_ja3, store, _dir) = filled();
    let c = &sc.certs;
    let srv = start(store, ServeConfig::default());
    let port = srv.port;

    // /ja3: oldest first, records rebuilt with Go certificate objects.
    let v = ok(port, &format!("/ja3/{}", md5_hex(JA3_1).to_uppercase()));
    let s = v["Sessions"].as_array().unwrap();
    let times: Vec<&str> = s.iter().map(|r| r["Timestamp"].as_str().unwrap()).collect();
    assert_eq!(
        times,
        vec![
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:10Z",
            "2024-01-01T01:00:00Z"
        ]
    );
    assert_eq!(s[0]["ServerIP"], "198.51.100.7");
    assert_eq!(s[0]["ServerPort"], "443");
    assert_eq!(s[0]["ClientIP"], "192.0.2.10");
    assert_eq!(s[0]["ClientPort"], "50000");
    assert_eq!(s[0]["JA3"], JA3_1);
    assert_eq!(s[0]["JA3Digest"], md5_hex(JA3_1));
    assert_eq!(s[0]["JA3S"], JA3S_1);
    assert_eq!(s[0]["JA3SDigest"], md5_hex(JA3S_1));
    assert_eq!(s[0]["SNI"], "a.example.test");
    assert_eq!(s[0]["ALPN"], json!(["h2", "http/1.1"]));
    assert_eq!(s[0]["Transport"], "tcp");
    let chain = s[0]["Certificates"].as_array().unwrap();
    assert_eq!(chain[0]["CertHash"], c.a.sha1);
    assert_eq!(chain[1]["CertHash"], c.ca.sha1);
    assert_eq!(chain[0]["Raw"], c.a.b64());
    assert_eq!(chain[0]["DNSNames"], json!(["a.example.test"]));
    assert_eq!(chain[1]["IsCA"], true);
    assert_eq!(s[1]["ServerIP"], "198.51.100.9");
    assert_eq!(s[1]["Certificates"][0]["CertHash"], c.a2.sha1);
    assert_eq!(
        ok(port, &format!("/ja3/{}", "0".repeat(32))),
        json!({ "Sessions": null })
    );
    error(port, "/ja3/zz", 400);
    error(port, "/ja3/'%20OR%201=1", 400);

    // /ja3s and /ja4.
    let v = ok(port, &format!("/ja3s/{}", md5_hex(JA3S_1)));
    assert_eq!(v["Sessions"].as_array().unwrap().len(), 2);
    let v = ok(port, &format!("/ja4/{JA4_Y}"));
    let s = v["Sessions"].as_array().unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["ServerIP"], "2001:db8:2::1");
    assert_eq!(s[0]["Certificates"][0]["CertHash"], c.b.sha1);
    error(port, "/ja4/a%2Fb", 400);

    // Paging /ja3: five sessions by two, each once, oldest first.
    let pages = walk(port, &format!("/ja3/{five_ja3}?limit=2"), |v| {
        v["Sessions"].as_array().cloned().unwrap_or_default()
    });
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    let clients: Vec<String> = pages
        .iter()
        .flatten()
        .map(|r| r["ClientIP"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (1..=5).map(|i| format!("10.0.0.{i}")).collect();
    assert_eq!(clients, want);

    // /sessions.
    let v = ok(port, "/sessions?sni=b.example.test");
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["items"][0]["ClientIP"], "2001:db8:1::5");
    assert_eq!(v["next"], Value::Null);
    let v = ok(port, "/sessions?ip=192.0.2.10");
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    let pages = walk(port, "/sessions?ip=203.0.113.3&limit=1", |v| {
        v["items"].as_array().unwrap().clone()
    });
    assert_eq!(pages.concat().len(), 1);
    error(port, "/sessions", 400);
    error(
        port,
        &format!("/sessions?ja3={}&sni=x", md5_hex(JA3_1)),
        400,
    );
    error(port, "/sessions?ip=300.1.1.1", 400);

    // /certificate by SHA-256 and by SHA-1.
    let v = ok(port, &format!("/certificate/{}", c.a.sha256));
    assert_eq!(v["sha1"], c.a.sha1);
    assert_eq!(v["subject"], subject("a.example.test"));
    assert_eq!(v["spki_sha256"], c.a.spki_sha256);
    assert_eq!(v["key"]["spki_sha256"], c.a.spki_sha256);
    assert_eq!(v["key"]["curve"], "P-256");
    assert_eq!(v["key"]["bits"], 256);
    assert_eq!(v["chain_positions"], json!([0]));
    assert_eq!(v["hits"], 7);
    assert_eq!(v["not_before"], "2024-01-01T00:00:00Z");
    assert_eq!(v["pem"], c.a.pem());
    let v = ok(port, &format!("/certificate/{}", c.ca.sha1));
    assert_eq!(v["chain_positions"], json!([1]));
    assert_eq!(
        (v["is_ca"].clone(), v["self_signed"].clone()),
        (json!(true), json!(true))
    );
    error(port, &format!("/certificate/{}", "1".repeat(64)), 404);
    error(port, "/certificate/123", 400);

    // /certificate/<hash>/ips, paged: six (address, port) links, each once.
    let pages = walk(
        port,
        &format!("/certificate/{}/ips?limit=4", c.a.sha256),
        |v| v["items"].as_array().unwrap().clone(),
    );
    let links: Vec<Value> = pages.concat();
    assert_eq!(links.len(), 6);
    assert_eq!(links[0]["ip"], "198.51.100.7");
    assert_eq!(links[0]["port"], 443);
    assert_eq!(links[0]["count"], 2);
    assert_eq!(links[0]["last_seen"], "2024-01-01T01:00:00Z");
    let distinct: HashSet<String> = links.iter().map(|l| l["ip"].to_string()).collect();
    assert_eq!(distinct.len(), 6);
    error(port, &format!("/certificate/{}/ips", "2".repeat(40)), 404);

    // /sni (case-insensitive), /subject, /key, /fingerprint.
    let v = ok(port, "/sni/A.Example.TEST");
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["items"][0]["sha1"], c.a.sha1);
    assert_eq!(v["items"][0]["subject"], subject("a.example.test"));
    assert_eq!(v["items"][0]["count"], 2);
    assert_eq!(
        ok(port, "/sni/nothing.example"),
        json!({"items": [], "next": null})
    );
    let v = ok(port, "/subject/A2.EXAMPLE");
    assert_eq!(
        v["items"],
        json!([{ "sha1": c.a2.sha1, "subject": subject("a2.example.test") }])
    );
    let v = ok(port, &format!("/key/{}", c.a.spki_sha256));
    let mut want = vec![c.a.sha1.clone(), c.a2.sha1.clone()];
    want.sort();
    assert_eq!(v["items"], json!(want));
    assert_eq!(v["key"]["curve"], "P-256");
    assert_eq!(
        ok(port, &format!("/key/{}", "3".repeat(64))),
        json!({"key": null, "items": [], "next": null})
    );
    error(port, "/key/abc", 400);
    let v = ok(port, &format!("/fingerprint/ja3/{}", md5_hex(JA3_1)));
    let ips: Vec<(&str, u64)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["ip"].as_str().unwrap(), i["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(ips, vec![("192.0.2.10", 2), ("192.0.2.11", 1)]);
    let v = ok(port, &format!("/fingerprint/ja3s/{}", md5_hex(JA3S_1)));
    assert_eq!(v["items"][0]["ip"], "198.51.100.7");
    assert_eq!(v["items"][0]["count"], 2);
    error(port, &format!("/fingerprint/md5/{}", md5_hex(JA3_1)), 400);

    // /info, /openapi.json, unknown path.
    let v = ok(port, "/info");
    assert_eq!(v["certificates"], 4);
    assert_eq!(v["keys"], 3);
    assert_eq!(v["sessions"], 10);
    assert_eq!(v["backend"], "embedded");
    let v = ok(port, "/openapi.json");
    assert_eq!(v["openapi"], "3.0.3");
    assert!(v["paths"]["/v2pssl/cfetch/{sha1}"].is_object());
    error(port, "/nope", 404);
    assert_eq!(
        get_with(port, "/info", &[("Host", "evil.example")]).status,
        421
    );
}

#[test]
fn auth_token_bearer_basic() {
    let (sc, _, store, _dir) = filled();
    let cfg = ServeConfig {
        credentials: Credentials {
            tokens: vec!["s3cret-token".into()],
            basic: vec![("misp".into(), "pa:ss".into())],
        },
        max_auth_failures: 3,
        ..ServeConfig::default()
    };
    let srv = start(store, cfg);
    let port = srv.port;
    let path = format!("/v2pssl/cquery/{}", sc.certs.b.sha1);
    let basic = |s: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    };
    for good in ["s3cret-token", "Bearer s3cret-token", &basic("misp:pa:ss")] {
        let r = get_with(port, &path, &[("Authorization", good)]);
        assert_eq!(r.status, 200, "{good}: {}", r.json);
        assert_eq!(r.json["hits"], 1);
    }
    let r = get(port, "/openapi.json");
    assert_eq!(r.status, 401);
    assert_eq!(r.json, json!({"error": "authentication required"}));
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"d4 pssl\"")
    );
    for bad in ["wrong", &basic("misp:nope")] {
        let r = get_with(port, &path, &[("Authorization", bad)]);
        assert_eq!(r.status, 401, "{bad}");
        assert_eq!(r.json["error"], "authentication required");
    }
    // Three failures in the minute (openapi, wrong, misp:nope): the next is 429, even
    // with the right token.
    let r = get_with(port, &path, &[("Authorization", "s3cret-token")]);
    assert_eq!(r.status, 429, "{}", r.json);
    assert!(r.json["error"].is_string());
}

/// `cquery`'s `seen` is paged by address: an address on two ports is never cut between
/// pages nor shown twice, whatever the page size.
#[test]
fn cquery_pages_whole_addresses() {
    use d4_pssl::testsuite::data::{record_line, Rec};
    let (sc, _, store, _dir) = filled();
    let c = &sc.certs;
    // b is also served on 2001:db8:2::1 port 9443 (and 8443 from the scenario), and on
    // 192.0.2.200:443
    for (ts, server) in [
        ("2024-02-01T00:00:00Z", ("2001:db8:2::1", 9443)),
        ("2024-02-01T00:00:01Z", ("192.0.2.200", 443)),
    ] {
        let line = record_line(&Rec {
            ts,
            client: Some(("192.0.2.99", 41000)),
            server: Some(server),
            ja3: JA3_1,
            chain: vec![&c.b],
            ..Rec::default()
        });
        store
            .commit(&d4_pssl::parse_record(line.as_bytes()).unwrap().batch)
            .unwrap();
    }
    let srv = start(store, ServeConfig::default());
    for limit in 1..=4 {
        let pages = walk(
            srv.port,
            &format!("/v2pssl/cquery/{}?limit={limit}", c.b.sha1),
            |v| v["seen"].as_array().unwrap().clone(),
        );
        let all: Vec<Value> = pages.into_iter().flatten().collect();
        assert_eq!(
            all,
            vec![json!("192.0.2.200"), json!("2001:db8:2::1")],
            "limit {limit}"
        );
    }
}
