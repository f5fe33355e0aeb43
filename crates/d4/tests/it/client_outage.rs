//! Delivery across outages: the collector goes away for 10 s while the client streams
//! 50 MB; afterwards every byte has arrived exactly once and in order. Then the same across
//! a client restart with a non-empty spool.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::client::*;

#[test]
fn outage_of_10s_while_streaming_50mb() {
    let srv = TestServer::start(false);
    let spool = tempfile::tempdir().unwrap();
    let total = 50 * 1024 * 1024;
    let input = data(total, 7);
    let mut c = client(&srv, spool.path());
    c.args(["--type", "1", "--snaplen", "65535", "--drain-timeout", "60"]);
    let mut child = spawn_stdin(c);
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || {
            // streamed at a bounded pace so the outage happens in the middle of it
            for chunk in input.chunks(256 * 1024) {
                stdin.write_all(chunk).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    assert!(srv.wait_for(Duration::from_secs(60), |s| s.data_len() >= 5 * 1024 * 1024));
    srv.down();
    let down_at = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let during = srv.seen.lock().unwrap().data_len();
    assert!(during < total, "the outage must happen while streaming");
    srv.up();
    writer.join().unwrap();
    assert!(
        srv.wait_for(Duration::from_secs(120), |s| s.data_len() >= total),
        "not everything arrived after the outage"
    );
    let st = wait_exit(&mut child, Duration::from_secs(60));
    assert!(st.success(), "{st:?}");
    let seen = srv.seen.lock().unwrap();
    assert_eq!(seen.bad_hmac, 0);
    assert_eq!(seen.decode_errors, 0);
    let got = seen.data();
    assert_eq!(
        got.len(),
        total,
        "exactly once: no duplicates, nothing missing"
    );
    assert!(got == input, "in order, byte for byte");
    assert!(seen.conns.len() >= 2, "reconnected after the outage");
    assert!(down_at.elapsed() >= Duration::from_secs(10));
}

#[test]
fn spool_survives_a_client_restart() {
    let srv = TestServer::start(false);
    srv.down();
    std::thread::sleep(Duration::from_millis(200));
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // run 1: collector down; part A read, spooled, then SIGTERM: flush to the spool, exit 0
    let a = data(3 * 1024 * 1024 + 123, 8);
    let mut c = client(&srv, &spool);
    c.args(["--type", "1", "--snaplen", "8192"]);
    let mut child = spawn_stdin(c);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&a).unwrap();
    stdin.flush().unwrap();
    // wait until everything has been read into the spool
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let bytes: u64 = std::fs::read_dir(&spool)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                    .map(|e| e.metadata().unwrap().len())
                    .sum()
            })
            .unwrap_or(0);
        let frames = a.len().div_ceil(8192) as u64;
        if bytes >= a.len() as u64 + 62 * frames {
            break;
        }
        assert!(Instant::now() < deadline, "part A did not reach the spool");
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(&child);
    let st = wait_exit(&mut child, Duration::from_secs(20));
    assert!(st.success(), "{st:?}");
    drop(stdin);
    assert_eq!(srv.seen.lock().unwrap().data_len(), 0);

    // run 2: collector up; the spool (A) goes first, then the new input B
    srv.up();
    let b = data(1024 * 1024, 9);
    let mut c = client(&srv, &spool);
    c.args(["--type", "1", "--snaplen", "8192"]);
    let mut child = spawn_stdin(c);
    write_all_then_close(&mut child, &b);
    let st = wait_exit(&mut child, Duration::from_secs(60));
    assert!(st.success());
    let n = a.len() + b.len();
    assert!(srv.wait_for(Duration::from_secs(20), |s| s.data_len() >= n));
    let seen = srv.seen.lock().unwrap();
    assert_eq!(seen.bad_hmac, 0);
    assert!(seen.data() == [a, b].concat(), "A then B, exactly once");
    // nothing left behind
    let left: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .collect();
    assert!(left.is_empty());
}

#[test]
fn full_spool_stops_reading_and_loses_nothing() {
    let srv = TestServer::start(false);
    srv.down();
    std::thread::sleep(Duration::from_millis(200));
    let dir = tempfile::tempdir().unwrap();
    let input = data(4 * 1024 * 1024, 10);
    let mut c = client(&srv, &dir.path().join("spool"));
    c.args(["--type", "1", "--snaplen", "4096", "--spool-max", "1000000"])
        .stderr(Stdio::piped());
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut { stderr }, &mut s).unwrap();
        s
    });
    let input2 = input.clone();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&input2).unwrap();
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !writer.is_finished(),
        "backpressure: the client stopped reading"
    );
    srv.up();
    writer.join().unwrap();
    let st = wait_exit(&mut child, Duration::from_secs(60));
    assert!(st.success());
    assert!(srv.wait_for(Duration::from_secs(20), |s| s.data_len() >= input.len()));
    assert!(srv.seen.lock().unwrap().data() == input);
    let log = log.join().unwrap();
    assert!(log.contains("spool full"), "{log}");
}

#[test]
fn abrupt_connection_resets_are_survived() {
    // the collector drops connections without reading them (resets): the client must see
    // write errors, reconnect and keep going; every frame that arrives is whole and signed,
    // the stream ends with the end of the input. (Bytes the kernel had accepted for a
    // connection that was reset are lost: D4 v1 has no acknowledgements.)
    let srv = TestServer::start(false);
    let spool = tempfile::tempdir().unwrap();
    let total = 6 * 1024 * 1024;
    let input = data(total, 31);
    let mut c = client(&srv, spool.path());
    c.args(["--type", "1", "--snaplen", "4096"]);
    let mut child = spawn_stdin(c);
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || {
            for chunk in input.chunks(64 * 1024) {
                stdin.write_all(chunk).unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        srv.kill_connections();
    }
    writer.join().unwrap();
    let st = wait_exit(&mut child, Duration::from_secs(60));
    assert!(st.success(), "{st:?}");
    let tail = &input[total - 100_000..];
    assert!(
        srv.wait_for(Duration::from_secs(20), |s| s.data().ends_with(tail)),
        "the end of the input arrived, in order"
    );
    let seen = srv.seen.lock().unwrap();
    assert_eq!(seen.bad_hmac, 0);
    assert_eq!(seen.decode_errors, 0);
    assert!(seen.conns.len() >= 2, "reconnected after resets");
    // resends are bounded: at most the unconfirmed batch (256 KiB) per reset is repeated
    let got = seen.data();
    assert!(
        got.len() <= total + 8 * 256 * 1024,
        "no runaway duplication"
    );
}
