//! `d4 client` against a TLS test collector on loopback: stdin, file, follow, meta header,
//! configuration errors.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::support::client::*;

fn check_common(seen: &Seen, d4_type: u8, snaplen: usize) {
    assert_eq!(seen.bad_hmac, 0, "every HMAC verifies");
    assert_eq!(seen.decode_errors, 0);
    for f in seen.frames() {
        assert_eq!(f.header.uuid.to_string(), UUID);
        assert_eq!(f.header.version, 1);
        if f.header.d4_type != 2 {
            assert_eq!(f.header.d4_type, d4_type);
        }
        assert!(f.payload.len() <= snaplen, "{} > snaplen", f.payload.len());
    }
}

#[test]
fn stdin_over_tls() {
    let srv = TestServer::start(false);
    let spool = tempfile::tempdir().unwrap();
    let input = data(300_000, 1);
    let mut c = client(&srv, spool.path());
    c.args(["--type", "3", "--snaplen", "1000"]);
    let mut child = spawn_stdin(c);
    write_all_then_close(&mut child, &input);
    let st = wait_exit(&mut child, Duration::from_secs(60));
    assert!(st.success(), "{st:?}");
    assert!(srv.wait_for(Duration::from_secs(10), |s| s.data_len() >= input.len()));
    let seen = srv.seen.lock().unwrap();
    check_common(&seen, 3, 1000);
    assert_eq!(seen.data(), input);
    assert_eq!(seen.torn, 0);
}

#[test]
fn file_source_plain_tcp() {
    let srv = TestServer::start(true);
    let dir = tempfile::tempdir().unwrap();
    let input = data(100_000, 2);
    let f = dir.path().join("in.bin");
    std::fs::write(&f, &input).unwrap();
    let mut c = d4();
    c.args([
        "client",
        "--uuid",
        UUID,
        "--key",
        KEY,
        "--no-tls",
        "--type",
        "1",
        "--destination",
    ])
    .arg(srv.addr())
    .arg("--source")
    .arg(&f)
    .arg("--spool-dir")
    .arg(dir.path().join("spool"));
    let st = c.stdin(Stdio::null()).status().unwrap();
    assert!(st.success());
    assert!(srv.wait_for(Duration::from_secs(10), |s| s.data_len() >= input.len()));
    let seen = srv.seen.lock().unwrap();
    check_common(&seen, 1, 4096);
    assert_eq!(seen.data(), input);
    // a regular file gives full reads: every frame but the last is snaplen long
    let frames = seen.frames();
    assert!(frames[..frames.len() - 1]
        .iter()
        .all(|f| f.payload.len() == 4096));
}

#[test]
fn follow_a_growing_file() {
    let srv = TestServer::start(false);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("log.txt");
    std::fs::write(&f, b"line 1\n").unwrap();
    let mut c = client(&srv, &dir.path().join("spool"));
    c.args(["--type", "3", "--follow", "--source"]).arg(&f);
    let mut child = c.stdin(Stdio::null()).spawn().unwrap();
    let mut expected = b"line 1\n".to_vec();
    assert!(srv.wait_for(Duration::from_secs(20), |s| s.data_len() >= 7));
    let mut fh = std::fs::OpenOptions::new().append(true).open(&f).unwrap();
    for i in 2..=20 {
        let l = format!("line {i}\n");
        fh.write_all(l.as_bytes()).unwrap();
        expected.extend_from_slice(l.as_bytes());
        std::thread::sleep(Duration::from_millis(20));
    }
    let n = expected.len();
    assert!(srv.wait_for(Duration::from_secs(20), |s| s.data_len() >= n));
    sigterm(&child);
    let st = wait_exit(&mut child, Duration::from_secs(20));
    assert!(st.success(), "SIGTERM exits 0: {st:?}");
    let seen = srv.seen.lock().unwrap();
    check_common(&seen, 3, 4096);
    assert_eq!(seen.data(), expected);
}

#[test]
fn meta_header_then_254_resent_after_reconnect() {
    let srv = TestServer::start(false);
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("metaheader.json");
    std::fs::write(&meta, br#"{"type":"ja3-jl","sensor":"test"}"#).unwrap();
    let mut c = client(&srv, &dir.path().join("spool"));
    c.args(["--type", "254", "--metaheader"]).arg(&meta);
    let mut child = spawn_stdin(c);
    let mut stdin = child.stdin.take().unwrap();
    let a = data(5000, 3);
    stdin.write_all(&a).unwrap();
    stdin.flush().unwrap();
    assert!(srv.wait_for(Duration::from_secs(20), |s| s.data_len() >= a.len()));
    // past the connection's probe (its first batch is kept until the connection stood a
    // second: a collector that goes away sooner gets it again, as one that refuses)
    std::thread::sleep(d4_client::run::PROBE + Duration::from_millis(300));
    srv.down();
    // the client notices the close and reconnects when the server is back
    std::thread::sleep(Duration::from_millis(500));
    let b = data(7000, 4);
    stdin.write_all(&b).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    srv.up();
    assert!(srv.wait_for(Duration::from_secs(20), |s| s.data_len()
        >= a.len() + b.len()));
    drop(stdin);
    let st = wait_exit(&mut child, Duration::from_secs(30));
    assert!(st.success());
    let seen = srv.seen.lock().unwrap();
    check_common(&seen, 254, 4096);
    assert_eq!(seen.data(), [a, b].concat());
    let with_data: Vec<_> = seen.conns.iter().filter(|c| !c.is_empty()).collect();
    assert!(with_data.len() >= 2, "a second connection after the outage");
    for conn in with_data {
        assert_eq!(
            conn[0].header.d4_type, 2,
            "each connection opens with the meta header"
        );
        assert_eq!(
            &conn[0].payload[..],
            br#"{"type":"ja3-jl","sensor":"test"}"#
        );
        assert!(conn[1..].iter().all(|f| f.header.d4_type == 254));
    }
}

#[test]
fn bad_configuration_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec![
            "--key".into(),
            "k".into(),
            "--source".into(),
            "nosuchsource".into(),
        ],
        vec![
            "--key".into(),
            "k".into(),
            "--destination".into(),
            "no-port".into(),
        ],
        vec!["--destination".into(), "stdout".into()],
        vec![
            "--key".into(),
            "k".into(),
            "--destination".into(),
            "127.0.0.1:9".into(),
            "--ca".into(),
            dir.path().join("missing.pem").display().to_string(),
        ],
    ];
    for args in cases {
        let out = d4()
            .arg("client")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("d4: error:"), "{err}");
    }
    // a CA file that is not PEM
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let out = d4()
        .args([
            "client",
            "--key",
            "k",
            "--destination",
            "127.0.0.1:9",
            "--ca",
        ])
        .arg(&bad)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_dir_uuid_generated_and_saved() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), format!("{KEY}\n")).unwrap();
    std::fs::write(dir.path().join("source"), "stdin\n").unwrap();
    std::fs::write(dir.path().join("destination"), "stdout\n").unwrap();
    std::fs::write(dir.path().join("type"), "3\n").unwrap();
    let out = d4()
        .args(["client", "-c"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let saved = std::fs::read_to_string(dir.path().join("uuid")).unwrap();
    let u = uuid::Uuid::parse_str(saved.trim_end()).unwrap();
    assert_eq!(u.get_version_num(), 4);
    let mut child = d4()
        .args(["client", "-c"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let h = d4_proto::Header::from_prefix(&out.stdout).unwrap();
    assert_eq!(h.uuid, u);
    assert_eq!(h.d4_type, 3);
}

#[test]
fn tls_verification_is_on_by_default_and_insecure_skips_it() {
    let srv = TestServer::start(false);
    let dir = tempfile::tempdir().unwrap();
    // no --ca: the self-signed certificate is rejected (system roots); data stays spooled
    let out = d4()
        .args(["client", "--uuid", UUID, "--key", KEY, "--destination"])
        .arg(srv.addr())
        .arg("--spool-dir")
        .arg(dir.path().join("s1"))
        .args(["--drain-timeout", "1", "--backoff-max", "0.3"])
        .stdin(std::fs::File::open(d4_testkit::vector("single_log_line.d4")).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.contains("spooled"), "{err}");
    assert_eq!(srv.seen.lock().unwrap().data_len(), 0);
    // --insecure: delivered, with a warning in the log
    let input = b"insecure but delivered\n";
    let mut child = d4()
        .args([
            "client",
            "--uuid",
            UUID,
            "--key",
            KEY,
            "--insecure",
            "--destination",
        ])
        .arg(srv.addr())
        .arg("--spool-dir")
        .arg(dir.path().join("s2"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT verified"));
    assert!(srv.wait_for(Duration::from_secs(10), |s| s.data_len() >= input.len()));
    assert_eq!(srv.seen.lock().unwrap().data(), input);
}

#[test]
fn ipv6_literal_destination_plain_tcp() {
    // a bare loopback listener on [::1]: read everything, decode, verify
    let l = std::net::TcpListener::bind("[::1]:0").expect("IPv6 loopback is needed for this test");
    let port = l.local_addr().unwrap().port();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut all).unwrap();
        all
    });
    let dir = tempfile::tempdir().unwrap();
    let input = data(20_000, 21);
    let mut child = d4()
        .args([
            "client", "--uuid", UUID, "--key", KEY, "--no-tls", "--type", "1",
        ])
        .arg("--destination")
        .arg(format!("[::1]:{port}"))
        .arg("--spool-dir")
        .arg(dir.path())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    let all = reader.join().unwrap();
    let mut b = bytes::Bytes::from(all);
    let mut dec = d4_proto::Decoder::new();
    let key = d4_proto::HmacKey::new(KEY.as_bytes());
    let mut got = Vec::new();
    for f in dec.frames(&mut b) {
        let f = f.unwrap();
        assert!(key.verify(&f));
        got.extend_from_slice(&f.payload);
    }
    dec.finish().unwrap();
    assert_eq!(got, input);
}

#[test]
fn a_collector_that_refuses_is_retried_with_growing_delays() {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use std::sync::Arc;
    // accepts, reads the first header (or waits 200 ms), closes: what d4-core does with a
    // sensor it refuses
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let connects = Arc::new(AtomicU64::new(0));
    let c2 = connects.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            c2.fetch_add(1, SeqCst);
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let mut head = [0u8; d4_proto::HEADER_LEN];
            let _ = std::io::Read::read_exact(&mut s, &mut head);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut child = d4()
        .args([
            "client", "--uuid", UUID, "--key", KEY, "--no-tls", "--type", "3",
        ])
        .arg("--destination")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--spool-dir")
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"a line\n".repeat(100).as_slice()).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let n = connects.load(SeqCst);
    let _ = child.kill();
    let _ = child.wait();
    // delays of 0.125-0.25, 0.25-0.5, 0.5-1, 1-2 s ...: at most 6 connects in 4 s (it
    // reconnected every 0.125-0.25 s, plus the stand-in's up to 200 ms wait for a header,
    // when a connection reset the backoff: 9 to 12 seen)
    assert!((1..=7).contains(&n), "{n} connects in 4 s");
    drop(stdin);
}
