//! Weak keys through ingest and the API: a certificate whose RSA key falls to Fermat
//! factoring (`../shared/vectors/keys/rsa-fermat.crt`, badkeys' test data) and a clean
//! ECDSA certificate are ingested with the per-key checks on; the store, `/weak`,
//! `cfetch` and `/certificate` show the finding on the first and `"weak": []` on the
//! second. Expected values: the SHA-1 computed here from the DER, the SPKI SHA-256 and
//! factors from badkeys' `expected.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use d4_keys::check::Checks;
use d4_pssl::server::{self, ServeConfig};
use d4_pssl::{EmbeddedStore, IngestOptions, Ingester, PsslStore};
use serde_json::{json, Value};
use sha1::Digest;

/// The DER of the Fermat certificate and badkeys' expected result for it.
fn fermat() -> (Vec<u8>, Value) {
    let pem = d4_testkit::vector_bytes("keys/rsa-fermat.crt");
    let text = String::from_utf8(pem).unwrap();
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let expected: Value =
        serde_json::from_slice(&d4_testkit::vector_bytes("keys/expected.json")).unwrap();
    (der, expected["keys"]["rsa-fermat.crt"].clone())
}

fn ingest(store: &Arc<EmbeddedStore>, checks: Option<Arc<Checks>>, files: &[&[u8]]) -> Ingester {
    let mut ing = Ingester::new(store.clone(), IngestOptions::default());
    if let Some(c) = checks {
        ing = ing.with_key_checks(c);
    }
    for (i, f) in files.iter().enumerate() {
        ing.certificate_bytes(&format!("file {i}"), f).unwrap();
    }
    ing.flush().unwrap();
    ing
}

fn serve(store: Arc<dyn PsslStore>) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            port_tx.send(l.local_addr().unwrap().port()).unwrap();
            let shutdown = async move {
                let _ = rx.await;
            };
            server::serve(
                l,
                store,
                ServeConfig::default(),
                server::default_limits(),
                shutdown,
            )
            .await
            .unwrap();
        });
    });
    (port_rx.recv_timeout(Duration::from_secs(10)).unwrap(), tx)
}

fn ok(port: u16, path: &str) -> Value {
    let r = d4_testkit::http::get(port, path, &[]);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

#[test]
fn a_fermat_key_is_found_at_ingest_and_shown_by_the_api() {
    let (der, expected) = fermat();
    let spki = expected["spkisha256"].as_str().unwrap().to_string();
    let sha1 = hex::encode(sha1::Sha1::digest(&der));
    let clean = d4_pssl::testsuite::data::certs().b;

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("pssl.redb")).unwrap());
    let checks = Arc::new(Checks::with_warnings(false));

    // without the checks nothing is checked or recorded
    let ing = ingest(&store, None, &[&der]);
    assert_eq!(ing.stats().keys_checked, 0);
    assert!(store.key_weakness(&spki).unwrap().is_empty());

    let ing = ingest(
        &store,
        Some(checks.clone()),
        &[&der, clean.pem().as_bytes()],
    );
    assert_eq!(ing.stats().keys_checked, 2);
    assert_eq!(ing.stats().weak_keys_found, 1);

    let found = store.key_weakness(&spki).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let w = &found[0];
    assert_eq!(w.spki_sha256, spki);
    assert_eq!((w.check.as_str(), w.subtest.as_deref()), ("fermat", None));
    assert_eq!(w.how, "check");
    let want_p = expected["results"]["fermat"]["p"].as_str().unwrap();
    let want_q = expected["results"]["fermat"]["q"].as_str().unwrap();
    assert_eq!(w.p.as_deref(), Some(want_p));
    assert_eq!(w.q.as_deref(), Some(want_q));
    assert!(store.key_weakness(&clean.spki_sha256).unwrap().is_empty());

    // again, by a new ingester: checked again, recorded once
    let ing = ingest(&store, Some(checks), &[&der]);
    assert_eq!(ing.stats().keys_checked, 1);
    assert_eq!(store.key_weakness(&spki).unwrap().len(), 1);

    let (port, _stop) = serve(store.clone());
    let weak = ok(port, "/weak");
    assert_eq!(weak["next"], Value::Null);
    let items = weak["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{weak}");
    assert_eq!(items[0]["spki_sha256"], spki);
    assert_eq!(items[0]["check"], "fermat");
    assert_eq!(items[0]["subtest"], Value::Null);
    assert_eq!(items[0]["how"], "check");
    assert_eq!(items[0]["certificates"], json!([sha1]));
    assert!(items[0]["found"].as_str().unwrap().ends_with('Z'));

    let short = json!([{ "check": "fermat", "subtest": null, "how": "check" }]);
    let c = ok(port, &format!("/v2pssl/cfetch/{sha1}"));
    assert_eq!(c["info"]["spki_sha256"], spki);
    assert_eq!(c["info"]["weak"], short);
    let c = ok(port, &format!("/v2pssl/cfetch/{}", clean.sha1));
    assert_eq!(c["info"]["weak"], json!([]));

    let d = ok(port, &format!("/certificate/{sha1}"));
    assert_eq!(d["key"]["weak"], short);
    let d = ok(port, &format!("/certificate/{}", clean.sha1));
    assert_eq!(d["key"]["weak"], json!([]));
}
