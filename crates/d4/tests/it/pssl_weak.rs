//! `d4 pssl weak`, the real binary: RSA keys with planted shared primes and a duplicate
//! modulus committed to a store, the batch GCD run, the findings read back from the store
//! and compared with the planted ones (computed from the test's own primes); then more keys,
//! one sharing a prime with a key of the first run (incremental: only it and its partner are
//! new findings), `--full` (the same findings), and PostgreSQL.

use std::collections::BTreeMap;
use std::path::Path;

use d4_keys::batchgcd::synth::prime_pairs;
use d4_keys::batchgcd::Integer;
use d4_pssl::{BatchBuilder, EmbeddedStore, Page, PostgresStore, PsslStore, PublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::tls_cli::d4;

/// A made-up SPKI SHA-256 for a key label.
fn spki(label: &str) -> String {
    hex::encode(Sha256::digest(label.as_bytes()))
}

fn rsa_key(label: &str, n: &Integer) -> PublicKey {
    PublicKey {
        spki_sha256: spki(label),
        key_type: "RSA".into(),
        bits: n.significant_bits(),
        modulus: Some(n.to_string()),
        exponent: Some(65537),
        curve: None,
        x: None,
        y: None,
    }
}

fn add_keys(store: &dyn PsslStore, keys: &[(&str, Integer)]) {
    let mut b = BatchBuilder::new();
    for (label, n) in keys {
        assert!(b.add_key(rsa_key(label, n)));
    }
    store.commit(&b.build()).unwrap();
}

/// (spki, check) -> (sorted {p, q} hex when present, sorted partners)
type Found = BTreeMap<(String, String), (Option<[String; 2]>, Vec<String>)>;

fn findings(store: &dyn PsslStore) -> Found {
    let mut out = Found::new();
    let mut page = Page::first(1000);
    loop {
        let p = store.weak_keys(&page).unwrap();
        for w in p.items {
            assert_eq!(w.how, "batch_gcd", "{w:?}");
            let pq = match (w.p, w.q) {
                (Some(p), Some(q)) => {
                    let mut v = [p, q];
                    v.sort();
                    Some(v)
                }
                _ => None,
            };
            let mut partners = w.partners;
            partners.sort();
            assert!(out
                .insert((w.spki_sha256, w.check), (pq, partners))
                .is_none());
        }
        match p.next {
            Some(c) => page = Page::after(c, 1000),
            None => break,
        }
    }
    out
}

fn weak(dir: &Path, extra: &[&str]) -> Value {
    let out = d4()
        .arg("pssl")
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .arg("weak")
        .arg("--threads")
        .arg("1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn h(x: &Integer) -> String {
    x.to_string_radix(16)
}

fn pq(a: &Integer, b: &Integer) -> Option<[String; 2]> {
    let mut v = [h(a), h(b)];
    v.sort();
    Some(v)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The scenario on any store; `open` gives the store (the embedded one is opened only
/// while the binary is not running), `extra` the backend's global flags.
fn scenario(dir: &Path, open: &dyn Fn() -> Box<dyn PsslStore>, extra: &[&str]) {
    let pr = prime_pairs(0x5eed_1900, 8, 512, 2);
    let p = |i: usize| pr[i].clone();
    let (p1, q1) = p(1);
    let (_, q2) = p(2);
    let (p3, q3) = p(3);
    let (p4, q4) = p(4);
    let (p5, q5) = p(5);
    let (_, q6) = p(6);
    let (p7, q7) = p(7);
    let m = |a: &Integer, b: &Integer| Integer::from(a * b);
    {
        let s = open();
        add_keys(
            s.as_ref(),
            &[
                ("A", m(&p1, &q1)),
                ("B", m(&p1, &q2)),
                ("C", m(&p3, &q3)),
                ("D", m(&p4, &q4)),
                ("E", m(&p5, &q5)),
                ("F", m(&p5, &q5)),
            ],
        );
    }
    let s = weak(dir, extra);
    assert_eq!(s["moduli"], 6, "{s}");
    assert_eq!(s["new"], 6, "{s}");
    assert_eq!(s["full"], true, "{s}");
    assert_eq!(s["weak_keys"], 4, "{s}");
    let mut expected = Found::new();
    let sh = "sharedprimes".to_string();
    let dup = "duplicate".to_string();
    expected.insert((spki("A"), sh.clone()), (pq(&p1, &q1), vec![spki("B")]));
    expected.insert((spki("B"), sh.clone()), (pq(&p1, &q2), vec![spki("A")]));
    expected.insert((spki("E"), dup.clone()), (None, vec![spki("F")]));
    expected.insert((spki("F"), dup.clone()), (None, vec![spki("E")]));
    assert_eq!(findings(open().as_ref()), expected);

    // G shares p3 with C (of the first run), H is clean: incremental.
    {
        let s = open();
        add_keys(s.as_ref(), &[("G", m(&p3, &q6)), ("H", m(&p7, &q7))]);
    }
    let s = weak(dir, extra);
    assert_eq!(s["moduli"], 8, "{s}");
    assert_eq!(s["new"], 2, "{s}");
    assert_eq!(s["full"], false, "{s}");
    assert_eq!(s["weak_keys"], 2, "{s}");
    expected.insert((spki("G"), sh.clone()), (pq(&p3, &q6), vec![spki("C")]));
    expected.insert((spki("C"), sh.clone()), (pq(&p3, &q3), vec![spki("G")]));
    assert_eq!(findings(open().as_ref()), expected);

    // Nothing new: nothing to do.
    let s = weak(dir, extra);
    assert_eq!(s["new"], 0, "{s}");
    assert_eq!(s["full"], false, "{s}");
    assert_eq!(s["weak_keys"], 0, "{s}");

    // --full finds the same keys again (the store keeps one finding each).
    let out = d4()
        .arg("pssl")
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .args(["weak", "--full", "--threads", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["full"], true, "{s}");
    assert_eq!(s["new"], 8, "{s}");
    assert_eq!(s["weak_keys"], 6, "{s}");
    assert_eq!(findings(open().as_ref()), expected);
    let weak_spkis: Vec<String> = sorted(
        expected
            .keys()
            .map(|(k, _)| k.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
    );
    assert_eq!(
        weak_spkis,
        sorted(["A", "B", "C", "E", "F", "G"].map(spki).to_vec())
    );
}

#[test]
fn embedded_store_full_then_incremental() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pssl.redb");
    let open = || -> Box<dyn PsslStore> { Box::new(EmbeddedStore::open(&path).unwrap()) };
    scenario(dir.path(), &open, &[]);
    assert!(dir.path().join("pssl-weak.state").exists());
}

#[test]
fn a_corrupt_state_gives_a_full_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pssl.redb");
    let pr = prime_pairs(0x5eed_1901, 2, 512, 2);
    {
        let s = EmbeddedStore::open(&path).unwrap();
        add_keys(
            &s,
            &[
                ("X", Integer::from(&pr[0].0 * &pr[0].1)),
                ("Y", Integer::from(&pr[0].0 * &pr[1].1)),
            ],
        );
    }
    std::fs::write(dir.path().join("pssl-weak.state"), b"D4PSSLW1garbage").unwrap();
    let s = weak(dir.path(), &[]);
    assert_eq!(s["full"], true, "{s}");
    assert_eq!(s["weak_keys"], 2, "{s}");
    let s = weak(dir.path(), &[]);
    assert_eq!(s["full"], false, "{s}");
    assert_eq!(s["new"], 0, "{s}");
}

#[test]
fn postgres_backend() {
    let db = d4_testkit::PostgresServer::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let url = db.url().to_string();
    let open = || -> Box<dyn PsslStore> { Box::new(PostgresStore::open(&url).unwrap()) };
    scenario(dir.path(), &open, &["--postgres", db.url()]);
    assert!(!dir.path().join("pssl.redb").exists());
}

/// `--interval`: a full run; between runs the embedded file is free, a key sharing a prime
/// with X is added; the next run is incremental and finds it and X; SIGTERM ends the loop
/// cleanly between runs (exit 0).
#[test]
fn interval_runs_again_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let pr = prime_pairs(0x5eed_1902, 3, 512, 2);
    {
        let s = EmbeddedStore::open(&dir.path().join("pssl.redb")).unwrap();
        add_keys(
            &s,
            &[
                ("X", Integer::from(&pr[0].0 * &pr[0].1)),
                ("Y", Integer::from(&pr[0].0 * &pr[1].1)),
            ],
        );
    }
    let mut child = d4()
        .arg("pssl")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["weak", "--interval", "3", "--threads", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["full"], true, "{first}");
    assert_eq!(first["weak_keys"], 2, "{first}");
    {
        let s = EmbeddedStore::open(&dir.path().join("pssl.redb")).unwrap();
        add_keys(&s, &[("Z", Integer::from(&pr[0].1 * &pr[2].1))]);
    }
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(second["full"], false, "{second}");
    assert_eq!(second["new"], 1, "{second}");
    assert_eq!(second["weak_keys"], 2, "{second}");
    let kill = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}
