//! The "Passive SSL" page against the real lookup server: `d4_pssl::server::router` over an
//! embedded store holding the conformance suite's scenario (five sessions, certificates made
//! with rcgen), asked through the page's HTTP client with a token. What the page must show
//! comes from the scenario's own inputs (addresses, names, hashes computed from the DER).

use d4_pssl::server::{Credentials, ServeConfig};
use d4_pssl::testsuite::scenario::{md5_hex, Scenario, JA3_1, JA4_X};
use d4_pssl::{EmbeddedStore, PsslStore};

use crate::support::*;

const TOKEN: &str = "real-token-1";

/// The lookup server on a free loopback port; its base URL.
async fn start_real(dir: &std::path::Path, scenario: &Scenario) -> String {
    let store = EmbeddedStore::open(&dir.join("pssl.redb")).unwrap();
    store.commit(&scenario.batch()).unwrap();
    let store: Arc<dyn PsslStore> = Arc::new(store);
    let cfg = ServeConfig {
        credentials: Credentials {
            tokens: vec![TOKEN.into()],
            basic: Vec::new(),
        },
        ..ServeConfig::default()
    };
    let router = d4_pssl::server::router(store, cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    format!("http://{addr}/")
}

async fn page(a: &App, cookie: &str, path: &str) -> String {
    let r = a.get(path, cookie).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    assert!(
        !r.body.contains("class=\"error\""),
        "{path}: the page shows an error:\n{}",
        r.body
    );
    r.body
}

fn has(path: &str, body: &str, wants: &[&str]) {
    for w in wants {
        assert!(body.contains(w), "{path}: missing {w:?} in:\n{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pssl_page_over_the_real_lookup_server() {
    let dir = tempfile::tempdir().unwrap();
    let sc = Scenario::new();
    let url = start_real(dir.path(), &sc).await;
    let a = app_configured(|c| {
        c.pssl_url = Some(url);
        c.pssl_token = Some(d4_web::pssl_client::Secret(TOKEN.into()));
    })
    .await;
    a.user("ana", Role::User).await;
    let (cookie, _) = a.session("ana", "password-of-test").await;
    let c = &sc.certs;

    // An address: its certificates (chain a, ca) with subjects and the port.
    let p = "/pssl?q=198.51.100.7";
    let b = page(&a, &cookie, p).await;
    has(p, &b, &[&c.a.sha1, &c.ca.sha1, "a.example.test", "443"]);

    // A network of both IPv4 servers; an IPv6 address.
    let p = "/pssl?q=198.51.100.0%2F24";
    let b = page(&a, &cookie, p).await;
    has(p, &b, &["198.51.100.7", "198.51.100.9", &c.a2.sha1]);
    let p = "/pssl?q=2001%3Adb8%3A2%3A%3A1";
    let b = page(&a, &cookie, p).await;
    has(p, &b, &[&c.b.sha1, "8443"]);

    // A certificate by SHA-1 and by SHA-256: its facts, key, addresses and the other
    // certificate with the same key (a2 shares a's key).
    for q in [&c.a.sha1, &c.a.sha256] {
        let p = format!("/pssl/cert/{q}");
        let b = page(&a, &cookie, &p).await;
        has(
            &p,
            &b,
            &[
                &c.a.sha1,
                &c.a.sha256,
                &c.a.spki_sha256,
                "a.example.test",
                "d4 pssl test CA",
                "198.51.100.7",
                "ECDSA",
                "BEGIN CERTIFICATE",
            ],
        );
    }
    let p = format!("/pssl/key/{}", c.a.spki_sha256);
    let b = page(&a, &cookie, &p).await;
    has(&p, &b, &[&c.a.sha1, &c.a2.sha1]);

    // Sessions by JA3 (MD5 computed here) and by JA4; certificates by server name.
    let p = format!("/pssl?q={}", md5_hex(JA3_1));
    let b = page(&a, &cookie, &p).await;
    has(
        &p,
        &b,
        &["192.0.2.10", "192.0.2.11", "198.51.100.7", "198.51.100.9"],
    );
    let p = format!("/pssl?q={JA4_X}");
    let b = page(&a, &cookie, &p).await;
    has(&p, &b, &["192.0.2.10", "198.51.100.7"]);
    let p = "/pssl?q=a.example.test";
    let b = page(&a, &cookie, p).await;
    has(p, &b, &[&c.a.sha1]);
}
