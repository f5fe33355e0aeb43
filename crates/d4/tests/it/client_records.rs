//! Writes end on frame boundaries: over TLS no record shorter than the 62-byte header ends
//! a frame, so d4-core's server (which only buffers such a short read while a frame is
//! pending, and parses it at the next longer read) gets every frame, the last one included.
//!
//! The collector is a Python `ssl` server (one TLS record per read) that parses like
//! d4-core's `server.py`. Before the fix, the 32,302-byte file below (8 frames, 32,798 bytes
//! on the wire) went out as records of 16,384 + 16,384 + 30 bytes and d4-core never
//! processed the last frame: 556 of its 628 lines arrived.

use std::process::Stdio;
use std::time::Duration;

use crate::support::client::tls_peer::PyPeer;
use crate::support::client::*;

/// `n` lines, `len` bytes in all (each line at least 11 bytes).
fn lines(n: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    for i in 0..n {
        let want = len / n + usize::from(i < len % n);
        let mut l = format!("line {i:05}");
        while l.len() < want - 1 {
            l.push('x');
        }
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    assert_eq!(out.len(), len);
    out
}

#[test]
fn d4core_parser_gets_every_frame() {
    // (file, snaplen, frames): the file; one frame whose record would end 28 bytes
    // into the next 16 KiB; one whose last record is exactly a header long (already fine)
    let cases: [(Vec<u8>, usize, usize); 3] = [
        (lines(628, 32_302), 4096, 8),
        (lines(300, 16_350), 16_350, 1),
        (lines(300, 16_384), 16_384, 1),
    ];
    let peer = PyPeer::start("d4core", cases.len(), &[]);
    let dir = tempfile::tempdir().unwrap();
    for (i, (input, snaplen, frames)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("in{i}.txt"));
        std::fs::write(&file, input).unwrap();
        let mut child = d4()
            .args(["client", "--uuid", UUID, "--key", KEY, "--type", "3"])
            .arg("--snaplen")
            .arg(snaplen.to_string())
            .arg("--source")
            .arg(&file)
            .arg("--destination")
            .arg(peer.addr())
            .arg("--ca")
            .arg(&peer.ca)
            .arg("--spool-dir")
            .arg(dir.path().join("spool"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let st = wait_exit(&mut child, Duration::from_secs(30));
        let rep = peer.next_report(Duration::from_secs(30));
        assert!(st.success(), "case {i}: {st:?}");
        let reads: Vec<u64> = rep["reads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let wire: u64 = reads.iter().sum();
        assert_eq!(wire as usize, input.len() + 62 * frames, "case {i}: {rep}");
        let got = rep["payload"].as_str().unwrap();
        assert_eq!(
            got.lines().count(),
            input.iter().filter(|&&b| b == b'\n').count(),
            "case {i}: lines processed by the d4-core parser (records {reads:?})"
        );
        assert_eq!(rep["frames"], *frames, "case {i}: {rep}");
        assert_eq!(rep["unprocessed"], 0, "case {i}: {rep}");
        assert_eq!(got.as_bytes(), input.as_slice(), "case {i}");
        assert!(
            reads.iter().all(|&n| n >= 62),
            "case {i}: a record shorter than a header: {reads:?}"
        );
        assert!(rep["error"].is_null(), "case {i}: {rep}");
    }
}
