//! badkeys' own test keys (`../shared/vectors/keys/`) against the `expected.json` that
//! badkeys 0.0.21 produced for them: key type, size, SPKI fingerprint, and every check with
//! its subtest and recovered numbers. A missing vectors folder is a failure, never a skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use d4_keys::check::{check_key, Checks};
use d4_keys::key::{parse_hex_modulus, parse_keys, Key, KeyData, Parsed};
use d4_keys::report::Report;
use serde_json::Value;

fn shared_dir() -> PathBuf {
    let dir = match std::env::var_os("D4_SHARED_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    let keys = dir.join("vectors/keys");
    assert!(
        keys.join("expected.json").is_file(),
        "the key vectors are missing: {} (set D4_SHARED_DIR to the shared folder)",
        keys.display()
    );
    keys
}

fn checks(dir: &std::path::Path) -> Checks {
    let mut c = Checks::with_warnings(true);
    c.load_bad_primes(&dir.join("primes")).unwrap();
    c.load_blocklist(&dir.join("blocklist/blocklist.dat"))
        .unwrap();
    c
}

/// The JSON object of one report, as `d4 keys check --json` prints it.
fn json_of(report: &Report) -> Value {
    serde_json::from_str(&report.to_json_line()).unwrap()
}

/// Compares one of our objects with badkeys' (the fields badkeys' expected.json keeps).
fn compare(name: &str, ours: &Value, want: &Value, failures: &mut Vec<String>) {
    for field in ["type", "bits", "spkisha256"] {
        if ours.get(field) != want.get(field) {
            failures.push(format!(
                "{name}: {field}: ours {:?}, badkeys {:?}",
                ours.get(field),
                want.get(field)
            ));
        }
    }
    if want.get("error").is_some() != ours.get("error").is_some() {
        failures.push(format!(
            "{name}: error: ours {:?}, badkeys {:?}",
            ours.get("error"),
            want["error"]
        ));
    }
    let ours_r = ours["results"].as_object().cloned().unwrap_or_default();
    let want_r = want["results"].as_object().cloned().unwrap_or_default();
    let ours_names: Vec<_> = ours_r.keys().collect();
    let want_names: Vec<_> = want_r.keys().collect();
    if ours_names != want_names {
        failures.push(format!(
            "{name}: checks: ours {ours_names:?}, badkeys {want_names:?}"
        ));
        return;
    }
    for (check, w) in &want_r {
        let o = &ours_r[check];
        for field in ["subtest", "p", "q", "d", "blid"] {
            let (ov, wv) = (o.get(field), w.get(field));
            // d is an integer in badkeys' JSON, p and q hex strings
            if ov != wv {
                failures.push(format!(
                    "{name}: {check}.{field}: ours {ov:?}, badkeys {wv:?}"
                ));
            }
        }
    }
}

#[test]
fn badkeys_vectors_match_expected_json() {
    let dir = shared_dir();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let want = expected["keys"].as_object().unwrap();
    let checks = checks(&dir);
    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    let mut files = Vec::new();
    for sub in ["", "defect", "unsupported"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            let name = p.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
            if p.is_file() && name != "expected.json" && !name.starts_with("LICENSE") {
                files.push((name, p));
            }
        }
    }
    files.sort();
    assert!(files.len() >= 30, "only {} vector files", files.len());
    for (name, path) in files {
        let bytes = std::fs::read(&path).unwrap();
        if name.ends_with("hexmodulus.txt") {
            // read with -m: one report per modulus, named after it
            for line in String::from_utf8(bytes).unwrap().lines() {
                let n = parse_hex_modulus(line).expect("a hex modulus");
                let key = Key {
                    data: KeyData::Rsa {
                        n: n.clone(),
                        e: 65537.into(),
                        private: None,
                    },
                    spki_sha256: None,
                };
                let r = Report::key(
                    format!("modulus {}", n.to_string_radix(16)),
                    &key,
                    check_key(&key, &checks),
                );
                seen.insert(format!("modulus {}", n.to_string_radix(16)), json_of(&r));
            }
            continue;
        }
        let parsed = parse_keys(&bytes);
        assert_eq!(parsed.len(), 1, "{name}: one key per vector file");
        let r = match &parsed[0] {
            Parsed::Key(k) => Report::key(name.clone(), k, check_key(k, &checks)),
            other => Report::not_key(name.clone(), other),
        };
        seen.insert(name, json_of(&r));
    }
    let mut failures = Vec::new();
    for (name, w) in want {
        match seen.get(name) {
            Some(o) => compare(name, o, w, &mut failures),
            None => failures.push(format!("{name}: no result")),
        }
    }
    for name in seen.keys() {
        if !want.contains_key(name) {
            failures.push(format!("{name}: not in expected.json"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
