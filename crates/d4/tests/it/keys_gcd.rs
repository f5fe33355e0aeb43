//! `d4 keys batch-gcd` end to end: the real binary on files of hex moduli with planted shared
//! primes (known factorisations: the expected findings come from them, not from the library),
//! in memory and spilled, and incrementally against a corpus.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use d4_keys::batchgcd::synth::prime_pairs;
use d4_keys::batchgcd::Integer;
use serde_json::Value;

fn d4(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d4"))
        .args(["keys", "batch-gcd", "--no-progress"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn hex_lines(moduli: &[Integer]) -> String {
    moduli
        .iter()
        .map(|m| format!("{}\n", m.to_string_radix(16)))
        .collect()
}

/// (where, how, sorted factors, sorted partner wheres) per weak modulus, from JSON lines.
fn findings(stdout: &[u8]) -> BTreeMap<String, (String, Vec<String>, Vec<String>)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let mut factors: Vec<String> = v["factors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
            factors.sort();
            let mut partners: Vec<String> = v["shared_with"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["where"].as_str().unwrap().to_string())
                .collect();
            partners.sort();
            (
                v["where"].as_str().unwrap().to_string(),
                (v["how"].as_str().unwrap().to_string(), factors, partners),
            )
        })
        .collect()
}

fn hx(x: &Integer) -> String {
    x.to_string_radix(16)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn planted_moduli_are_reported_exactly_in_memory_and_spilled() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = prime_pairs(1919, 210, 512, 2);
    let mut moduli: Vec<Integer> = pairs[..200]
        .iter()
        .map(|(p, q)| Integer::from(p * q))
        .collect();
    let fresh: Vec<&Integer> = pairs[200..].iter().map(|(p, _)| p).collect();
    let (p0, q0) = &pairs[0];
    let (p1, _) = &pairs[1];
    let (p2, q2) = &pairs[2];
    let (p3, q3) = &pairs[3];
    moduli.push(Integer::from(p0 * fresh[0])); // line 201: pair with line 1 (prime p0)
    moduli.push(Integer::from(p1 * fresh[1])); // 202 and 203: group of three with line 2
    moduli.push(Integer::from(p1 * fresh[2]));
    moduli.push(Integer::from(p2 * fresh[3])); // 204: p2 of line 3
    moduli.push(Integer::from(q2 * fresh[4])); // 205: q2 of line 3 (line 3 has both shared)
    moduli.push(Integer::from(p3 * q3)); // 206: duplicate of line 4
    let mut text = hex_lines(&moduli);
    text.push_str("not a modulus\n");
    std::fs::write(dir.path().join("m.txt"), &text).unwrap();

    let at = |line: usize| format!("m.txt:{line}");
    let mut want = BTreeMap::new();
    let f = |a: &Integer, b: &Integer| sorted(vec![hx(a), hx(b)]);
    want.insert(at(1), ("shared_prime".into(), f(p0, q0), vec![at(201)]));
    want.insert(
        at(201),
        ("shared_prime".into(), f(p0, fresh[0]), vec![at(1)]),
    );
    let (_, q1) = &pairs[1];
    want.insert(
        at(2),
        (
            "shared_prime".into(),
            f(p1, q1),
            sorted(vec![at(202), at(203)]),
        ),
    );
    want.insert(
        at(202),
        (
            "shared_prime".into(),
            f(p1, fresh[1]),
            sorted(vec![at(2), at(203)]),
        ),
    );
    want.insert(
        at(203),
        (
            "shared_prime".into(),
            f(p1, fresh[2]),
            sorted(vec![at(2), at(202)]),
        ),
    );
    want.insert(
        at(3),
        (
            "both_primes_shared".into(),
            f(p2, q2),
            sorted(vec![at(204), at(205)]),
        ),
    );
    want.insert(
        at(204),
        ("shared_prime".into(), f(p2, fresh[3]), vec![at(3)]),
    );
    want.insert(
        at(205),
        ("shared_prime".into(), f(q2, fresh[4]), vec![at(3)]),
    );
    want.insert(at(4), ("duplicate".into(), vec![], vec![at(206)]));
    want.insert(at(206), ("duplicate".into(), vec![], vec![at(4)]));

    for extra in [
        &[][..],
        &["--memory-limit", "1", "--threads", "1"],
        &["--method", "plain"],
    ] {
        let mut args = vec!["--json", "m.txt"];
        args.extend_from_slice(extra);
        let out = d4(&args, dir.path());
        // 4: weak moduli found, 2: a line was not a modulus
        assert_eq!(
            out.status.code(),
            Some(6),
            "{extra:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(findings(&out.stdout), want, "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("m.txt:207: not hex"), "{err}");
        if extra.contains(&"--memory-limit") {
            assert!(err.contains("4 levels spilled"), "{err}");
        }
    }

    // the text table names the same moduli, one line each
    let out = d4(&["m.txt"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), want.len());
    assert!(text
        .lines()
        .any(|l| l.starts_with("m.txt:3  both_primes_shared  rsa[512]")));

    // clean input: exit 0 and nothing on stdout; from stdin too
    std::fs::write(dir.path().join("clean.txt"), hex_lines(&moduli[4..200])).unwrap();
    let out = d4(&["clean.txt"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    // an unreadable input is an error: exit 1
    assert_eq!(d4(&["missing.txt"], dir.path()).status.code(), Some(1));
}

#[test]
fn incremental_finds_a_prime_shared_with_the_oldest_modulus() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = prime_pairs(2323, 160, 512, 2);
    let corpus: Vec<Integer> = pairs[..100]
        .iter()
        .map(|(p, q)| Integer::from(p * q))
        .collect();
    std::fs::write(dir.path().join("corpus.txt"), hex_lines(&corpus)).unwrap();
    let mut new: Vec<Integer> = pairs[100..150]
        .iter()
        .map(|(p, q)| Integer::from(p * q))
        .collect();
    let (p0, q0) = &pairs[0];
    let r = &pairs[150].0;
    new.push(Integer::from(p0 * r)); // new line 51: the oldest modulus's prime
    new.push(corpus[50].clone()); // new line 52: a copy of corpus line 51
    let (p101, q101) = &pairs[101];
    let s = &pairs[151].0;
    new.push(Integer::from(q101 * s)); // new line 53: shares with new line 2
    std::fs::write(dir.path().join("new.txt"), hex_lines(&new)).unwrap();

    let mut want = BTreeMap::new();
    let f = |a: &Integer, b: &Integer| sorted(vec![hx(a), hx(b)]);
    want.insert(
        "new.txt:51".to_string(),
        (
            "shared_prime".to_string(),
            f(p0, r),
            vec!["corpus.txt:1".to_string()],
        ),
    );
    want.insert(
        "new.txt:52".to_string(),
        (
            "duplicate".to_string(),
            vec![],
            vec!["corpus.txt:51".to_string()],
        ),
    );
    want.insert(
        "new.txt:2".to_string(),
        (
            "shared_prime".to_string(),
            f(p101, q101),
            vec!["new.txt:53".to_string()],
        ),
    );
    want.insert(
        "new.txt:53".to_string(),
        (
            "shared_prime".to_string(),
            f(q101, s),
            vec!["new.txt:2".to_string()],
        ),
    );
    let _ = q0;
    let args = [
        "--json",
        "--incremental-against",
        "corpus.txt",
        "--corpus-product",
        "corpus.prod",
        "new.txt",
    ];
    for round in 0..2 {
        let out = d4(&args, dir.path());
        assert_eq!(
            out.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(findings(&out.stdout), want, "round {round}");
        assert!(dir.path().join("corpus.prod").exists());
    }
    // a stored product of another corpus is rebuilt, not trusted
    std::fs::write(dir.path().join("corpus.txt"), hex_lines(&corpus[..99])).unwrap();
    let out = d4(&args, dir.path());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rebuilding"));
}

/// DER INTEGER of a non-negative number (a leading zero byte when the top bit is set).
fn der_int(x: &Integer) -> Vec<u8> {
    let mut h = x.to_string_radix(16);
    if h.len() % 2 == 1 {
        h.insert(0, '0');
    }
    let mut v: Vec<u8> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect();
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    der_tlv(0x02, &v)
}

fn der_tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let len = (n as u32).to_be_bytes();
        let skip = len.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// A PKCS#1 `RSA PUBLIC KEY` PEM block of (n, 65537), encoded here by hand.
fn rsa_public_pem(n: &Integer) -> String {
    use base64::Engine;
    let der = der_tlv(0x30, &[der_int(n), der_int(&Integer::from(65537))].concat());
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN RSA PUBLIC KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem + "-----END RSA PUBLIC KEY-----\n"
}

#[test]
fn keys_in_pem_files_are_read_for_their_moduli() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = prime_pairs(4242, 4, 512, 2);
    let (p0, q0) = &pairs[0];
    let shared = Integer::from(p0 * &pairs[1].1); // shares p0 with key 1
    let keys = [
        Integer::from(p0 * q0),
        Integer::from(&pairs[2].0 * &pairs[2].1),
        shared.clone(),
        Integer::from(&pairs[3].0 * &pairs[3].1),
    ];
    let pem: String = keys.iter().map(rsa_public_pem).collect();
    std::fs::write(dir.path().join("keys.pem"), pem).unwrap();
    let out = d4(&["--json", "keys.pem"], dir.path());
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = findings(&out.stdout);
    let f = |a: &Integer, b: &Integer| sorted(vec![hx(a), hx(b)]);
    let mut want = BTreeMap::new();
    want.insert(
        "keys.pem:1".to_string(),
        (
            "shared_prime".to_string(),
            f(p0, q0),
            vec!["keys.pem:3".to_string()],
        ),
    );
    want.insert(
        "keys.pem:3".to_string(),
        (
            "shared_prime".to_string(),
            f(p0, &pairs[1].1),
            vec!["keys.pem:1".to_string()],
        ),
    );
    assert_eq!(got, want);
}
