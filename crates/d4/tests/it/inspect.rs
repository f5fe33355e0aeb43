//! `d4 inspect` on every shared vector prints what the manifest says and exits 0 or 1
//! accordingly; on random bytes it exits 1 with a readable message, never a panic.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn d4() -> Command {
    Command::new(env!("CARGO_BIN_EXE_d4"))
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn assert_no_panic(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "d4 inspect panicked: {stderr}"
    );
}

#[test]
fn every_vector_matches_the_manifest() {
    let manifest = d4_testkit::manifest();
    for case in manifest["cases"].as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let out = d4()
            .args(["inspect", "--json", "--key", case["key"].as_str().unwrap()])
            .arg(d4_testkit::vector(file))
            .output()
            .unwrap();
        assert_no_panic(&out);
        let lines = json_lines(&out);
        let frames: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "frame").collect();
        let expected = case["frames"].as_array().unwrap();
        assert_eq!(frames.len(), expected.len(), "{file}: frame count");
        let mut all_valid = true;
        for (got, want) in frames.iter().zip(expected) {
            for field in ["uuid", "type", "timestamp", "size", "sha256"] {
                assert_eq!(got[field], want[field], "{file}: field {field}");
            }
            let valid = want["hmac_valid"].as_bool().unwrap();
            all_valid &= valid;
            assert_eq!(
                got["hmac"],
                if valid { "ok" } else { "bad" },
                "{file}: hmac"
            );
            assert!(got["time"].as_str().unwrap().ends_with('Z'));
        }
        let summary = lines.last().unwrap();
        assert_eq!(summary["kind"], "summary", "{file}: summary last");
        let trailing = case
            .get("trailing_incomplete_bytes")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        assert_eq!(
            summary["trailing_bytes"].as_u64().unwrap(),
            trailing,
            "{file}: trailing"
        );
        let expects_error = case.get("error").is_some();
        if expects_error {
            let err = lines
                .iter()
                .find(|l| l["kind"] == "error")
                .expect("an error line");
            assert!(
                err["message"].as_str().unwrap().contains("over the limit"),
                "{file}: {err}"
            );
        }
        let clean = all_valid && !expects_error && trailing == 0;
        assert_eq!(
            out.status.code(),
            Some(if clean { 0 } else { 1 }),
            "{file}: exit status"
        );
        assert_eq!(summary["status"], if clean { "ok" } else { "bad" });
    }
}

#[test]
fn text_output_and_stdin() {
    let wire = d4_testkit::vector_bytes("meta_then_254.d4");
    let mut child = d4()
        .args(["inspect", "-", "--key", "private key to change"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&wire).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("uuid=beac9327-687c-4e7d-889f-83b51785af66"),
        "{text}"
    );
    assert!(
        lines[0].contains("type=2 (meta-header)") && lines[0].contains("hmac=ok"),
        "{text}"
    );
    assert!(lines[0].contains("2023-11-14T22:13:20Z"), "{text}");
    assert!(lines[1].contains("type=254 (extended)"), "{text}");
    assert!(
        text.contains("meta header: extended type \"ja3-jl\""),
        "{text}"
    );
    assert!(
        lines.last().unwrap().starts_with("summary: 2 frames"),
        "{text}"
    );
}

#[test]
fn without_a_key_hmacs_are_unknown_and_a_wrong_key_fails() {
    let v = d4_testkit::vector("single_log_line.d4");
    let out = d4().arg("inspect").arg(&v).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("hmac=unknown"));
    let out = d4()
        .args(["inspect", "--key", "wrong"])
        .arg(&v)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("hmac=bad"));
}

#[test]
fn key_file_is_trimmed_like_the_clients() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "private key to change\n").unwrap();
    let out = d4()
        .arg("inspect")
        .arg(d4_testkit::vector("passivedns_csv.d4"))
        .arg("--key-file")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hmac ok 1, bad 0"));
}

#[test]
fn random_bytes_exit_1_with_a_readable_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..20u32 {
        let len = 1 + (round as usize * 997) % 20_000;
        let mut data = Vec::with_capacity(len);
        for _ in 0..len {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            data.push((state >> 33) as u8);
        }
        if round % 4 == 0 {
            data[0] = 1; // looks like a version-1 header: exercises the size / truncation paths
        }
        let path = dir.path().join(format!("random{round}.bin"));
        std::fs::write(&path, &data).unwrap();
        let out = d4().arg("inspect").arg(&path).output().unwrap();
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(1), "round {round}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("error: at byte offset"),
            "round {round}: {text}"
        );
    }
}

#[test]
fn unreadable_input_exits_2() {
    let out = d4()
        .args(["inspect", "/nonexistent/stream.d4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent/stream.d4"));
}
