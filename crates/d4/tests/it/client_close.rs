//! The end of a TLS stream: `d4 client` closes properly (close_notify, half-close, then
//! reads until the collector's end of stream), so a collector that reads slowly still gets
//! every byte; a collector that never confirms makes the client say so and exit with 1.
//!
//! The collector is Python's `ssl` (OpenSSL defaults: TLS 1.3, session tickets sent after
//! the handshake). Before the fix, the client closed its socket at once, possibly with the
//! tickets unread: the close could become a reset and the collector's kernel dropped what
//! it had not read yet (15 of these 50 runs arrived short, most after 65,535 bytes).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::client::tls_peer::PyPeer;
use crate::support::client::*;
use sha2::{Digest, Sha256};

const RUNS: usize = 50;

fn client_cmd(peer: &PyPeer, source: &std::path::Path, spool: &std::path::Path) -> Command {
    let mut c = d4();
    c.args(["client", "--uuid", UUID, "--key", KEY, "--type", "1"])
        .args(["--snaplen", "65535", "--connect-timeout", "10"])
        .arg("--source")
        .arg(source)
        .arg("--destination")
        .arg(peer.addr())
        .arg("--ca")
        .arg(&peer.ca)
        .arg("--spool-dir")
        .arg(spool);
    c
}

#[test]
fn slow_tls_reader_gets_every_byte_every_time() {
    // 4 KiB per read, 1 ms pause after each: about 0.3 s to read 1 MiB, long after the
    // client has handed everything to its kernel and closed
    let peer = PyPeer::start("slow", RUNS, &["4096", "0.001"]);
    let dir = tempfile::tempdir().unwrap();
    let input = data(1 << 20, 14);
    let file = dir.path().join("in.bin");
    std::fs::write(&file, &input).unwrap();
    let want_sha = hex::encode(Sha256::digest(&input));
    let spool = dir.path().join("spool");
    let started = Instant::now();
    // one client after the other, each started as soon as the previous one exited (the
    // collector may still be reading the previous connection: a stream of sensors)
    for run in 0..RUNS {
        let mut child = client_cmd(&peer, &file, &spool)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let st = wait_exit(&mut child, Duration::from_secs(30));
        assert!(st.success(), "run {run}: client exited with {st:?}");
        assert!(started.elapsed() < Duration::from_secs(120), "too slow");
    }
    let mut short = Vec::new();
    for run in 0..RUNS {
        let rep = peer.next_report(Duration::from_secs(30));
        let whole = rep["payload"] == input.len()
            && rep["sha256"] == want_sha.as_str()
            && rep["torn"] == 0
            && rep["error"].is_null();
        if !whole {
            short.push((run, rep["payload"].clone(), rep["error"].clone()));
        }
    }
    assert!(
        short.is_empty(),
        "{} of {RUNS} runs arrived short (run, payload bytes, error): {short:?}",
        short.len()
    );
}

#[test]
fn unconfirmed_close_exits_non_zero_within_the_bound() {
    // reads everything, then neither answers our close_notify nor closes
    let mut peer = PyPeer::start("silent", 1, &[]);
    let dir = tempfile::tempdir().unwrap();
    let input = data(100_000, 15);
    let file = dir.path().join("in.bin");
    std::fs::write(&file, &input).unwrap();
    let log = dir.path().join("stderr.txt");
    let started = Instant::now();
    let mut child = client_cmd(&peer, &file, &dir.path().join("spool"))
        .args(["--close-timeout", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let st = wait_exit(&mut child, Duration::from_secs(30));
    let took = started.elapsed();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_eq!(st.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("did not confirm the end of the stream"),
        "{stderr}"
    );
    assert!(
        took >= Duration::from_secs(2),
        "gave up before the bound: {took:?}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    // everything was read: only the confirmation was missing
    let rep = peer.stop_and_report(Duration::from_secs(10));
    assert_eq!(rep["bytes"], input.len() + 62 * input.len().div_ceil(65535));
}
