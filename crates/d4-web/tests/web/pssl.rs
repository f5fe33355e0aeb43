//! The "Passive SSL" page against a small fake of `d4 pssl serve` (a real HTTP server in
//! the test, answering the API contract's shapes, built by hand from docs/pssl.md): the
//! values and links shown, paging, escaping of hostile text, the token sent, and the
//! messages when the API is unconfigured, down, refusing, too slow or too large.

use std::sync::Mutex;

use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};

use crate::support::*;

// Hashes of "test" and "foo" (sha1sum / sha256sum / md5sum of the words).
const SHA1_A: &str = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";
const SHA256_A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const SHA1_B: &str = "0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33";
const SPKI: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
const MD5: &str = "098f6bcd4621d373cade4e832627b4f6";
const JA4: &str = "t13d1516h2_8daaf6152771_e5627efa2ab1";
const TOKEN: &str = "tok-123";

/// Requests the fake API got: (path and query, Authorization header).
type Log = Arc<Mutex<Vec<(String, Option<String>)>>>;

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

fn err(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({"error": msg}))).into_response()
}

fn session() -> Value {
    json!({
        "ServerIP": "192.0.2.1", "ServerPort": "443", "ClientIP": "198.51.100.20",
        "ClientPort": "51515", "TLSH": "", "Timestamp": "2019-06-12T10:00:00Z",
        "JA3": "771,4865", "JA3Digest": MD5, "JA3S": "771,4865", "JA3SDigest": "b".repeat(32),
        "Certificates": [{"CertHash": SHA1_A}], "JA4": JA4, "JA4_r": "", "SNI": "www.example.com",
        "ALPN": "h2", "Transport": "tcp"
    })
}

fn certificate() -> Value {
    json!({
        "sha1": SHA1_A, "sha256": SHA256_A,
        "subject": "CN=<script>alert('subject')</script>", "issuer": "CN=Example CA, O=Example",
        "serial": "81985529216486895", "not_before": "2019-01-01T00:00:00Z",
        "not_after": "2021-01-01T00:00:00Z", "sans": ["www.example.com", "192.0.2.1"],
        "is_ca": false, "self_signed": false, "spki_sha256": SPKI,
        "key": {"spki_sha256": SPKI, "key_type": "RSA", "bits": 2048,
                "modulus": "c0ffee".repeat(64), "exponent": 65537, "curve": null, "x": null, "y": null},
        "first_seen": "2019-06-12T10:00:00Z", "last_seen": "2019-07-01T00:00:00Z", "hits": 42,
        "chain_positions": [0],
        "pem": "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
    })
}

fn ip_entry(sha1: &str, subject: &str) -> Value {
    json!({
        "certificates": [sha1], "subjects": {sha1: {"values": [subject]}}, "ports": [443],
        "seen": {sha1: {"first_seen": "2019-06-12T10:00:00Z", "last_seen": "2019-06-13T10:00:00Z",
                        "count": 3}}
    })
}

async fn fake_api(
    axum::extract::State(log): axum::extract::State<Log>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let pq = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("")
        .to_string();
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_string());
    log.lock().unwrap().push((pq.clone(), auth));
    let sha1_cert = format!("/certificate/{SHA1_A}");
    let sha256_cert = format!("/certificate/{SHA256_A}");
    let ips = format!("/certificate/{SHA1_A}/ips?limit=100");
    let ips2 = format!("{ips}&cursor=ipc%202");
    let key = format!("/key/{SPKI}?limit=100");
    let ja3 = format!("/sessions?ja3={MD5}&limit=100");
    let ja3s = format!("/sessions?ja3s={MD5}&limit=100");
    let ja4 = format!("/sessions?ja4={JA4}&limit=100");
    let p = pq.as_str();
    match p {
        "/v2pssl/query/192.0.2.0/24?limit=100" => {
            let mut r = ok(json!({
                "192.0.2.1": ip_entry(SHA1_A, "CN=www.example.com"),
                "192.0.2.10": ip_entry(SHA1_B, "CN=<b>bold</b>"),
            }));
            r.headers_mut()
                .insert("x-dribble-cursor", "p2/+=".parse().unwrap());
            r
        }
        "/v2pssl/query/192.0.2.0/24?limit=100&cursor=p2%2F%2B%3D" => {
            ok(json!({"192.0.2.200": ip_entry(SHA1_B, "CN=page two")}))
        }
        "/v2pssl/query/2001:db8::/64?limit=100" => ok(json!({})),
        "/v2pssl/query/10.0.0.0/8?limit=100" => err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "prefix too wide: at most /23",
        ),
        _ if p == sha1_cert || p == sha256_cert => ok(certificate()),
        _ if p.starts_with("/certificate/") && !p.contains("/ips") => {
            err(StatusCode::NOT_FOUND, "certificate not found")
        }
        _ if p == ips => ok(json!({"items": [
            {"ip": "192.0.2.1", "port": 443, "first_seen": "2019-06-12T10:00:00Z",
             "last_seen": "2019-06-13T10:00:00Z", "count": 3},
            {"ip": "2001:db8::1", "port": 8443, "first_seen": "2019-06-14T10:00:00Z",
             "last_seen": "2019-06-15T10:00:00Z", "count": 9}], "next": "ipc 2"})),
        _ if p == ips2 => ok(json!({"items": [
            {"ip": "198.51.100.7", "port": 443, "first_seen": "2019-08-01T00:00:00Z",
             "last_seen": "2019-08-02T00:00:00Z", "count": 1}], "next": null})),
        _ if p == key => ok(
            json!({"key": certificate()["key"], "items": [SHA1_A, SHA1_B],
                                   "next": null}),
        ),
        _ if p.starts_with("/key/") => err(StatusCode::NOT_FOUND, "key not found"),
        _ if p == ja3 || p == ja4 => ok(json!({"items": [session()], "next": null})),
        _ if p == ja3s => ok(json!({"items": [], "next": null})),
        "/sni/www.example.com?limit=100" => ok(json!({"items": [
            {"sha1": SHA1_A, "subject": "CN=www.example.com", "first_seen": "2019-06-12T10:00:00Z",
             "last_seen": "2019-06-20T10:00:00Z", "count": 17}], "next": "s2"})),
        "/subject/www.example.com?limit=100" => {
            err(StatusCode::UNPROCESSABLE_ENTITY, "subject search too broad")
        }
        "/sni/a%2Fb%20%3Cscript%3E?limit=100" => ok(json!({"items": [], "next": null})),
        "/subject/a%2Fb%20%3Cscript%3E?limit=100" => ok(json!({"items": [
            {"sha1": SHA1_B, "subject": "CN=a/b <script>alert(2)</script>"}], "next": null})),
        "/sni/huge?limit=100" => ok(json!({"items": [], "pad": "x".repeat(9 << 20)})),
        "/subject/huge?limit=100" => ok(json!({"items": [], "next": null})),
        _ if p.starts_with("/sni/slow") || p.starts_with("/subject/slow") => {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            ok(json!({"items": []}))
        }
        "/weak?limit=50" => ok(json!({"items": [
            {"spki_sha256": SPKI, "check": "fermat", "subtest": null, "how": "check",
             "found": "2024-05-01T00:00:00Z", "certificates": weak_certs(0, 15)},
            {"spki_sha256": "d".repeat(64), "check": "<i>roca</i>", "subtest": "x<y",
             "how": "batch_gcd", "found": "2024-05-02T00:00:00Z",
             "certificates": weak_certs(10, 25)}], "next": "w 2"})),
        "/weak?limit=50&cursor=w%202" => ok(json!({"items": [], "next": null})),
        _ if p.starts_with("/certificate/") && p.ends_with("/ips?limit=5") => {
            // The certificate's number, from its SHA-1 made by `weak_certs`.
            let n: u8 = p["/certificate/".len()..][..40].parse::<u128>().unwrap() as u8;
            ok(
                json!({"items": [{"ip": format!("198.18.0.{n}"), "port": 443}],
                      "next": if n == 3 { json!("more") } else { Value::Null }}),
            )
        }
        _ => err(StatusCode::IM_A_TEAPOT, &format!("unexpected request {p}")),
    }
}

/// SHA-1s of the fake weak keys' certificates `from..to`: the number in 40 decimal digits.
fn weak_certs(from: u8, to: u8) -> Vec<String> {
    (from..to).map(|i| format!("{i:040}")).collect()
}

/// Starts the fake API; returns its base URL and request log.
async fn start_fake() -> (String, Log) {
    let log: Log = Arc::default();
    let router = Router::new().fallback(fake_api).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}/"), log)
}

/// A logged-in user's cookie on an app asking `url` with the test token.
async fn app_for(url: Option<String>, timeout: u64) -> (App, String) {
    let a = app_configured(|c| {
        c.pssl_url = url;
        c.pssl_token = Some(d4_web::pssl_client::Secret(TOKEN.into()));
        c.pssl_timeout_secs = timeout;
    })
    .await;
    a.user("ana", Role::User).await;
    let (cookie, _) = a.session("ana", "password-of-test").await;
    (a, cookie)
}

/// GET a page: must be 200; returns its HTML.
async fn page_ok(a: &App, cookie: &str, path: &str) -> String {
    let r = a.get(path, cookie).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    assert!(!r.body.contains("unexpected request"), "{path}: {}", r.body);
    r.body
}

fn has(body: &str, wants: &[&str]) {
    for w in wants {
        assert!(body.contains(w), "missing {w:?} in:\n{body}");
    }
}

/// The href of the "Next page" link, unescaped.
fn next_of(body: &str) -> String {
    let end = body.find("\">Next page").expect("a next page link");
    let start = body[..end].rfind("href=\"").unwrap() + 6;
    body[start..end].replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pssl_page_shows_values_links_and_pages() {
    let (url, log) = start_fake().await;
    let (a, c) = app_for(Some(url), 10).await;

    // The menu links the page; an empty search explains what can be searched.
    let b = page_ok(&a, &c, "/pssl").await;
    has(&b, &["href=\"/pssl\">Passive SSL</a>", "name=\"q\"", "JA4"]);

    // A network: the address table, links, and the next page through the header cursor.
    let b = page_ok(&a, &c, "/pssl?q=192.0.2.0%2F24").await;
    has(
        &b,
        &[
            "href=\"/pssl?q=192.0.2.1\"",
            "href=\"/pssl?q=192.0.2.10\"",
            &format!("href=\"/pssl/cert/{SHA1_A}\""),
            &format!("href=\"/pssl/cert/{SHA1_B}\""),
            "CN=www.example.com",
            "CN=&lt;b&gt;bold&lt;/b&gt;",
            "2019-06-13T10:00:00Z",
            "<td>443</td>",
        ],
    );
    assert!(!b.contains("<b>bold"));
    let next = next_of(&b);
    assert_eq!(next, "/pssl?q=192.0.2.0%2F24&cursor=p2%2F%2B%3D");
    let b = page_ok(&a, &c, &next).await;
    has(&b, &["192.0.2.200", "CN=page two"]);
    assert!(!b.contains("Next page"));
    // IPv6 networks; no data; a refused prefix shows the API's message.
    let b = page_ok(&a, &c, "/pssl?q=2001%3Adb8%3A%3A%2F64").await;
    has(&b, &["No certificate known"]);
    let b = page_ok(&a, &c, "/pssl?q=10.1.2.3%2F8").await;
    has(&b, &["422", "prefix too wide: at most /23"]);

    // The certificate view, by SHA-1.
    let b = page_ok(&a, &c, &format!("/pssl/cert/{SHA1_A}")).await;
    has(
        &b,
        &[
            "CN=&lt;script&gt;alert('subject')&lt;/script&gt;",
            "CN=Example CA, O=Example",
            "81985529216486895",
            "2021-01-01T00:00:00Z",
            "href=\"/pssl?q=www.example.com\"",
            SHA256_A,
            "0 (leaf)",
            "<td>42</td>",
            &format!("href=\"/pssl/key/{SPKI}\""),
            "RSA",
            "65537",
            &format!("{}…", &"c0ffee".repeat(3)[..16]),
            &format!("href=\"/pssl/cert/{SHA1_B}\""),
            "href=\"/pssl?q=2001%3Adb8%3A%3A1\"",
            "<td>8443</td>",
            "<td>9</td>",
            "<summary>PEM</summary>",
            "MIIBfake",
        ],
    );
    assert!(!b.contains("<script>"), "{b}");
    let next = next_of(&b);
    assert_eq!(next, format!("/pssl/cert/{SHA1_A}?cursor=ipc%202"));
    let b = page_ok(&a, &c, &next).await;
    has(&b, &["198.51.100.7", "2019-08-02T00:00:00Z"]);

    // By SHA-256 through the search box (upper case accepted); an SPKI falls back to the
    // key view; an unknown 64-hex value says so; an unknown SHA-1 too.
    let b = page_ok(&a, &c, &format!("/pssl?q={}", SHA256_A.to_uppercase())).await;
    has(&b, &["81985529216486895", "MIIBfake"]);
    let b = page_ok(&a, &c, &format!("/pssl?q={SPKI}")).await;
    has(
        &b,
        &[
            "Certificates with this key",
            &format!("href=\"/pssl/cert/{SHA1_A}\""),
            &format!("href=\"/pssl/cert/{SHA1_B}\""),
        ],
    );
    let b = page_ok(&a, &c, &format!("/pssl/key/{SPKI}")).await;
    has(&b, &[&format!("href=\"/pssl/cert/{SHA1_B}\""), "2048"]);
    let b = page_ok(&a, &c, &format!("/pssl?q={}", "0".repeat(64))).await;
    has(&b, &["Nothing is known of"]);
    let b = page_ok(&a, &c, &format!("/pssl?q={}", "0".repeat(40))).await;
    has(&b, &["is known."]);
    assert_eq!(
        a.get("/pssl/cert/nothex", &c).await.status,
        StatusCode::BAD_REQUEST
    );

    // A 32-hex digest: JA3 and JA3S sessions.
    let b = page_ok(&a, &c, &format!("/pssl?q={MD5}")).await;
    has(
        &b,
        &[
            "Sessions with this JA3",
            "Sessions with this JA3S",
            "No session.",
            "href=\"/pssl?q=192.0.2.1\"",
            ":443",
            "href=\"/pssl?q=198.51.100.20\"",
            "href=\"/pssl?q=www.example.com\"",
            &format!("href=\"/pssl?q={JA4}\""),
            &format!("href=\"/pssl?q={}\"", "b".repeat(32)),
            &format!("href=\"/pssl/cert/{SHA1_A}\""),
            "2019-06-12T10:00:00Z",
        ],
    );
    let b = page_ok(&a, &c, &format!("/pssl?q={JA4}")).await;
    has(
        &b,
        &["Sessions with this JA4", "href=\"/pssl?q=198.51.100.20\""],
    );

    // Text: SNI and subject; one section's error does not hide the other.
    let b = page_ok(&a, &c, "/pssl?q=www.example.com").await;
    has(
        &b,
        &[
            "Certificates seen with this server name",
            "<td>17</td>",
            "subject search too broad",
        ],
    );
    assert_eq!(next_of(&b), "/pssl?q=www.example.com&part=sni&cursor=s2");
    // Hostile text: encoded in the API path, escaped on the page (form value included).
    let b = page_ok(&a, &c, "/pssl?q=a%2Fb%20%3Cscript%3E").await;
    has(
        &b,
        &[
            "CN=a/b &lt;script&gt;alert(2)&lt;/script&gt;",
            "value=\"a/b &lt;script&gt;\"",
            &format!("href=\"/pssl/cert/{SHA1_B}\""),
        ],
    );
    assert!(!b.contains("<script>"), "{b}");

    // Too large an answer: a message, the page still works.
    let b = page_ok(&a, &c, "/pssl?q=huge").await;
    has(
        &b,
        &["larger than 8388608 bytes", "No certificate whose subject"],
    );

    // Every call carried the token (page_ok: the fake saw no request it does not know).
    let log = log.lock().unwrap();
    assert!(log.len() > 20, "{log:?}");
    for (path, auth) in log.iter() {
        assert_eq!(auth.as_deref(), Some(TOKEN), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pssl_page_unconfigured_down_slow_and_login() {
    // Not configured: the page says what to set.
    let (a, c) = app_for(None, 10).await;
    let b = page_ok(&a, &c, "/pssl?q=192.0.2.1").await;
    has(
        &b,
        &[
            "not configured",
            "pssl_url",
            "D4_WEB_PSSL_URL",
            "pssl_token_file",
        ],
    );
    // Not logged in: the login page; a sensor_register account may not read it.
    let r = a
        .send(
            Request::get("/pssl?q=192.0.2.1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().starts_with("/login"), "{}", r.location());
    a.user("reg", Role::SensorRegister).await;
    let (rc, _) = a.session("reg", "password-of-test").await;
    let r = a.get("/pssl?q=192.0.2.1", &rc).await;
    assert_ne!(r.status, StatusCode::OK);
    assert!(!r.body.contains("not configured"));

    // An unusable URL: said on the page.
    let (a, c) = app_for(Some("https://127.0.0.1:8500".into()), 10).await;
    let b = page_ok(&a, &c, "/pssl?q=192.0.2.1").await;
    has(&b, &["not usable", "https is not supported"]);

    // The API down (a port nobody listens on): a message, never a 500.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (a, c) = app_for(Some(format!("http://127.0.0.1:{port}")), 10).await;
    for q in [
        "192.0.2.1".to_string(),
        SHA1_A.to_string(),
        MD5.to_string(),
        "example.org".to_string(),
    ] {
        let b = page_ok(&a, &c, &format!("/pssl?q={q}")).await;
        has(&b, &["cannot be reached"]);
    }
    let b = page_ok(&a, &c, &format!("/pssl/cert/{SHA1_A}")).await;
    has(&b, &["cannot be reached"]);

    // Too slow: the deadline (1 s here) ends the call.
    let (url, _log) = start_fake().await;
    let (a, c) = app_for(Some(url), 1).await;
    let t = std::time::Instant::now();
    let b = page_ok(&a, &c, "/pssl?q=slow").await;
    has(&b, &["did not answer within 1 s"]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_keys_page_bounds_its_calls_and_pages() {
    let (url, log) = start_fake().await;
    let (a, c) = app_for(Some(url), 10).await;

    let b = page_ok(&a, &c, "/pssl/weak").await;
    has(
        &b,
        &[
            &format!("href=\"/pssl/key/{SPKI}\""),
            "<code>fermat</code>",
            "per-key check",
            "2024-05-01T00:00:00Z",
            "<code>&lt;i&gt;roca&lt;/i&gt;</code> / <code>x&lt;y</code>",
            "batch GCD",
        ],
    );
    assert!(!b.contains("<i>roca"), "{b}");
    // 25 distinct certificates (10..15 shared by both keys): the first 20 of the page
    // (0..20) with their address, 3 with more to see; 20..25 pointing to their view.
    let certs = weak_certs(0, 25);
    for (i, sha) in certs.iter().enumerate() {
        assert!(
            b.contains(&format!("href=\"/pssl/cert/{sha}\"")),
            "{sha}: {b}"
        );
        let addr = format!("href=\"/pssl?q=198.18.0.{i}\"");
        assert_eq!(b.contains(&addr), i < 20, "certificate {i}: {b}");
    }
    has(&b, &["198.18.0.3</code></a> port 443, …"]);
    assert_eq!(b.matches("(addresses on its page)").count(), 5, "{b}");
    {
        let log = log.lock().unwrap();
        let ip_calls = log
            .iter()
            .filter(|(p, _)| p.ends_with("/ips?limit=5"))
            .count();
        assert_eq!(ip_calls, 20, "{log:?}");
        assert!(log.iter().all(|(_, t)| t.as_deref() == Some(TOKEN)));
    }
    // The next page, from the API's cursor; it is empty.
    let next = next_of(&b);
    assert_eq!(next, "/pssl/weak?cursor=w%202");
    let b = page_ok(&a, &c, &next).await;
    has(&b, &["No weak key is known."]);
    assert!(!b.contains("Next page"), "{b}");

    // The fake's certificate has no `key.weak` (an older server): no warning.
    let b = page_ok(&a, &c, &format!("/pssl/cert/{SHA1_A}")).await;
    assert!(!b.contains("Weak key"), "{b}");
}
