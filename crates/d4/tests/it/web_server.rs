//! The web UI inside the real `d4 server`, over HTTPS with the server's certificate:
//! first-start admin, forced password change, API token, sensor registration over the
//! reference API, approval in the UI, and the sensor shown connected once it streams;
//! on the embedded store and on Redis.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::server::*;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn cookie(&self, name: &str) -> String {
        let needle = format!("set-cookie: {name}=");
        self.head
            .lines()
            .find_map(|l| {
                let low = l.to_ascii_lowercase();
                low.starts_with(&needle)
                    .then(|| l[needle.len()..].split(';').next().unwrap().to_string())
            })
            .unwrap_or_else(|| panic!("no cookie {name} in {}", self.head))
    }
    fn location(&self) -> String {
        self.head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("location: ")
                    .then(|| l[10..].trim().to_string())
            })
            .unwrap_or_default()
    }
}

/// One HTTPS request (Connection: close).
async fn https(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let fut = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut s = tls_connector()
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let req = http_request(method, path, headers, body);
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let (status, head, body) = parse_response(&out);
        Resp { status, head, body }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("HTTPS request timed out")
}

fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    html[start..start + 64].to_string()
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
const JSON: (&str, &str) = ("Content-Type", "application/json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_first_login_token_register_approve_and_connected() {
    first_login_token_register_approve_and_connected(&[]).await;
}

/// The same on the Redis store (`d4 server --redis URL`): the UI runs over it unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_on_the_redis_store() {
    let redis = d4_testkit::RedisServer::start();
    let url = redis.url_db(0);
    first_login_token_register_approve_and_connected(&["--redis", &url]).await;
}

async fn first_login_token_register_approve_and_connected(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path(), extra);
    let log = srv.log_text();
    let web: SocketAddr = log
        .lines()
        .find_map(|l| l.strip_prefix("d4-web-ready https://"))
        .expect("web ready line")
        .trim()
        .parse()
        .unwrap();
    let password = std::fs::read_to_string(dir.path().join("web-admin-password.txt")).unwrap();
    let password = password.trim();
    assert!(log.contains(password), "printed once on stderr");

    // Log in: forced to the password page.
    let r = https(web, "GET", "/login", &[], "").await;
    assert_eq!(r.status, 200);
    let lc = r.cookie("d4_login_csrf");
    assert!(
        r.head.to_ascii_lowercase().contains("secure"),
        "Secure cookies over HTTPS"
    );
    let cookie_hdr = format!("d4_login_csrf={lc}");
    let r = https(
        web,
        "POST",
        "/login",
        &[FORM, ("Cookie", &cookie_hdr)],
        &format!("csrf={lc}&user=admin&password={password}&next=%2F"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location(), "/password");
    let session = format!("d4_session={}", r.cookie("d4_session"));
    let r = https(web, "GET", "/", &[("Cookie", &session)], "").await;
    assert_eq!(r.location(), "/password");
    let r = https(web, "GET", "/password", &[("Cookie", &session)], "").await;
    let csrf = csrf_of(&r.body);
    let r = https(
        web,
        "POST",
        "/password",
        &[FORM, ("Cookie", &session)],
        &format!("csrf={csrf}&current={password}&new=new-admin-password&repeat=new-admin-password"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(!dir.path().join("web-admin-password.txt").exists());
    // The change ended every session of the user and renewed this one (new cookie, new
    // CSRF token); the old id is logged out.
    let old = session;
    let session = format!("d4_session={}", r.cookie("d4_session"));
    assert_ne!(old, session);
    let r = https(web, "GET", "/account", &[("Cookie", &old)], "").await;
    assert!(r.location().starts_with("/login"), "{}", r.head);
    let r = https(web, "GET", "/account", &[("Cookie", &session)], "").await;
    assert_eq!(r.status, 200);
    let csrf = csrf_of(&r.body);

    // API token from the account page (shown once).
    let r = https(
        web,
        "POST",
        "/account/token",
        &[FORM, ("Cookie", &session)],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 200);
    let start = r.body.find("class=\"secret\">").unwrap() + 15;
    let token = r.body[start..start + 64].to_string();

    // Reference registration API.
    let uuid = Uuid::new_v4();
    let key = "key-of-the-web-test";
    let body = format!(
        "{{\"uuid\":\"{}\",\"hmac_key\":\"{key}\"}}",
        uuid.hyphenated()
    );
    let r = https(
        web,
        "POST",
        "/api/v1/add/sensor/register",
        &[JSON, ("Authorization", &token)],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, format!("{{\"uuid\":\"{}\"}}", uuid.simple()));
    let r = https(
        web,
        "POST",
        "/api/v1/add/sensor/register",
        &[JSON, ("Authorization", &token)],
        &body,
    )
    .await;
    assert_eq!(r.status, 409);

    // Approve in the UI.
    let id = uuid.simple().to_string();
    let r = https(
        web,
        "POST",
        &format!("/sensors/{id}/approve"),
        &[FORM, ("Cookie", &session)],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = https(
        web,
        "GET",
        &format!("/sensors/{id}"),
        &[("Cookie", &session)],
        "",
    )
    .await;
    assert!(r.body.contains("approved"));

    // Stream as this sensor: it shows up connected.
    let mut sensor = tokio::net::TcpStream::connect(srv.plain).await.unwrap();
    let enc = d4_proto::Encoder::new(uuid, key.as_bytes(), 3);
    let ts = d4_store::now();
    sensor
        .write_all(&enc.encode(ts, b"hello from the web test\n").unwrap())
        .await
        .unwrap();
    let connected = wait_for(15, || async {
        let r = https(
            web,
            "GET",
            &format!("/api/v1/sensors/{id}"),
            &[("Authorization", &token)],
            "",
        )
        .await;
        r.body.contains("\"connected\":true").then_some(r.body)
    })
    .await;
    assert!(
        connected.is_some(),
        "sensor never shown connected: {}",
        srv.log_text()
    );
    let r = https(web, "GET", "/sensors", &[("Cookie", &session)], "").await;
    assert!(r.body.contains("connected"));
    let r = https(web, "GET", "/metrics", &[("Authorization", &token)], "").await;
    assert!(r.body.contains("d4_sensors_connected 1"), "{}", r.body);
    drop(sensor);
    srv.stop();
    // On Redis, nothing went to an embedded database file.
    assert_eq!(
        dir.path().join("d4.redb").exists(),
        !extra.contains(&"--redis")
    );
}
