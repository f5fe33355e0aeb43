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
    serve(store).await
}

/// The lookup server over `store`; its base URL.
async fn serve(store: EmbeddedStore) -> String {
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

/// The weak-key vector's certificate (badkeys' `rsa-fermat.crt`): its SHA-1 and SPKI
/// SHA-256 as the openssl CLI gives them (`openssl x509 -fingerprint -sha1`;
/// `openssl x509 -pubkey | openssl pkey -pubin -outform DER | sha256sum`).
const FERMAT_SHA1: &str = "cc9e342ec4e64caab42639a8124c9dccbb8d7204";
const FERMAT_SPKI: &str = "fc463a3661c13512beea5f1fae6f509067e31828d0e4bdf47deef0254299f4ff";
/// The address and port the test's session has the certificate served from.
const FERMAT_SERVER: &str = "203.0.113.77";
const FERMAT_PORT: u16 = 8443;

/// The vector's certificate, its key, a session serving it from [`FERMAT_SERVER`] and the
/// key's `fermat` finding (recorded as `d4 pssl ingest`'s checks would).
fn commit_weak(store: &EmbeddedStore) {
    let path = d4_testkit::shared_dir().join("vectors/keys/rsa-fermat.crt");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "the weak-key vector {} is missing ({e}): clone the repository with ../shared \
             beside it, or set D4_SHARED_DIR",
            path.display()
        )
    });
    let mut found = d4_pssl::certfile::parse_bytes(&bytes);
    assert_eq!(found.len(), 1, "one certificate in {}", path.display());
    let (cert, key) = found.remove(0).unwrap();
    assert_eq!(cert.sha1, FERMAT_SHA1);
    assert_eq!(key.spki_sha256, FERMAT_SPKI);
    let mut b = d4_pssl::BatchBuilder::new();
    b.add_certificate(cert);
    b.add_key(key);
    b.add_session(d4_pssl::Session {
        ts: 1_700_000_000,
        client_ip: Some("192.0.2.200".parse().unwrap()),
        client_port: Some(50000),
        server_ip: Some(FERMAT_SERVER.parse().unwrap()),
        server_port: Some(FERMAT_PORT),
        sni: "weak.example.test".into(),
        transport: "tcp".into(),
        chain: vec![FERMAT_SHA1.into()],
        ..d4_pssl::Session::default()
    });
    store.commit(&b.build()).unwrap();
    store
        .record_weak(&[d4_pssl::WeakKey {
            spki_sha256: FERMAT_SPKI.into(),
            check: "fermat".into(),
            subtest: None,
            how: d4_pssl::store::HOW_CHECK.into(),
            p: None,
            q: None,
            d: None,
            partners: Vec::new(),
            found: 1_700_000_000,
        }])
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_keys_over_the_real_lookup_server() {
    let dir = tempfile::tempdir().unwrap();
    let sc = Scenario::new();
    let store = EmbeddedStore::open(&dir.path().join("pssl.redb")).unwrap();
    store.commit(&sc.batch()).unwrap();
    commit_weak(&store);
    let url = serve(store).await;
    let a = app_configured(|c| {
        c.pssl_url = Some(url);
        c.pssl_token = Some(d4_web::pssl_client::Secret(TOKEN.into()));
    })
    .await;
    a.user("ana", Role::User).await;
    let (cookie, _) = a.session("ana", "password-of-test").await;
    let c = &sc.certs;

    // The Passive SSL page links to the weak keys.
    let b = page(&a, &cookie, "/pssl").await;
    has("/pssl", &b, &["href=\"/pssl/weak\""]);

    // The weak keys: the key, its check, when found, its certificate and where it was served.
    let p = "/pssl/weak";
    let b = page(&a, &cookie, p).await;
    let port = format!("port {FERMAT_PORT}");
    has(
        p,
        &b,
        &[
            &format!("href=\"/pssl/key/{FERMAT_SPKI}\""),
            "<code>fermat</code>",
            "2023-11-14T22:13:20Z",
            &format!("href=\"/pssl/cert/{FERMAT_SHA1}\""),
            &format!("href=\"/pssl?q={FERMAT_SERVER}\""),
            &port,
        ],
    );
    // Only the weak key is listed.
    assert!(
        !b.contains(&c.a.sha1),
        "{p}: a clean certificate is listed:\n{b}"
    );

    // Its certificate's view and its key's view warn; a clean certificate's and key's do not.
    for p in [
        format!("/pssl/cert/{FERMAT_SHA1}"),
        format!("/pssl/key/{FERMAT_SPKI}"),
    ] {
        let b = page(&a, &cookie, &p).await;
        has(&p, &b, &["Weak key", "<code>fermat</code> (per-key check)"]);
    }
    for p in [
        format!("/pssl/cert/{}", c.a.sha1),
        format!("/pssl/key/{}", c.a.spki_sha256),
    ] {
        let b = page(&a, &cookie, &p).await;
        assert!(!b.contains("Weak key"), "{p}: a clean key warns:\n{b}");
        assert!(!b.contains("fermat"), "{p}:\n{b}");
    }
}
