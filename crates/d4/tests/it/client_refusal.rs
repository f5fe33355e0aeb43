//! `d4 client` against collectors that refuse it: a refusing collector accepts, reads the
//! first frame or two and closes (d4 server: after at most 2 KiB; d4-core: after the first
//! frame, with a reset). The client's first batch on every connection is a probe, kept in
//! the spool until the connection stood a second: what a refused connection swallowed is
//! sent again on the next one. Every byte arrives once, in order.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::client::*;

/// How a stand-in collector treats one connection.
#[derive(Debug, Clone, Copy)]
enum Treat {
    /// Reads up to 2 KiB (what is there), then closes (a FIN when it read everything sent,
    /// else the kernel resets): what `d4 server` does with a sensor it refuses.
    ReadAndClose,
    /// Reads a frame header, then resets (`SO_LINGER 0`).
    Reset,
    /// Reads everything to the end of stream.
    Accept,
}

/// A plain-TCP stand-in treating its connections as `plan` says (the last for the rest);
/// what each accepted connection read comes out of the channel.
fn stand_in(plan: Vec<Treat>) -> (u16, mpsc::Receiver<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (i, s) in l.incoming().enumerate() {
            let Ok(mut s) = s else { return };
            let treat = plan[i.min(plan.len() - 1)];
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            match treat {
                Treat::ReadAndClose => {
                    let mut buf = [0u8; 2048];
                    let _ = s.read(&mut buf);
                }
                Treat::Reset => {
                    let mut head = [0u8; d4_proto::HEADER_LEN];
                    let _ = s.read_exact(&mut head);
                    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                }
                Treat::Accept => {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        let mut all = Vec::new();
                        let _ = s.read_to_end(&mut all);
                        let _ = tx.send(all);
                    });
                }
            }
        }
    });
    (port, rx)
}

/// The payloads of the frames in `streams` (each a whole connection), HMACs checked.
fn payloads(streams: &[Vec<u8>]) -> Vec<u8> {
    let key = d4_proto::HmacKey::new(KEY.as_bytes());
    let mut got = Vec::new();
    for s in streams {
        let mut b = bytes::Bytes::from(s.clone());
        let mut dec = d4_proto::Decoder::new();
        for f in dec.frames(&mut b) {
            let f = f.unwrap();
            assert!(key.verify(&f));
            got.extend_from_slice(&f.payload);
        }
        dec.finish().unwrap();
    }
    got
}

fn client_to(port: u16, spool: &std::path::Path) -> std::process::Command {
    let mut c = d4();
    c.args([
        "client", "--uuid", UUID, "--key", KEY, "--no-tls", "--type", "1",
    ])
    .arg("--destination")
    .arg(format!("127.0.0.1:{port}"))
    .arg("--spool-dir")
    .arg(spool)
    .stdin(Stdio::piped())
    .stderr(Stdio::null());
    c
}

/// Refused by `plan`'s first connections, then accepted: the accepted connections hold
/// the input exactly.
fn refused_then_accepted(input_len: usize, plan: Vec<Treat>) {
    let (port, rx) = stand_in(plan);
    let dir = tempfile::tempdir().unwrap();
    let input = data(input_len, input_len as u64);
    let mut child = client_to(port, dir.path()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    // refusals wait 0.125–0.25 s, then 0.25–0.5 s ...; each accepted connection stands
    // a second after its first batch
    let st = wait_exit(&mut child, Duration::from_secs(30));
    assert!(st.success(), "{st:?}");
    let streams: Vec<Vec<u8>> = rx.try_iter().collect();
    assert!(!streams.is_empty(), "no connection was accepted");
    let got = payloads(&streams);
    assert_eq!(got.len(), input.len(), "bytes lost or repeated");
    assert!(got == input, "the bytes differ");
}

#[test]
fn refused_by_read_and_close_with_a_small_input_loses_nothing() {
    // the collector reads the whole input and closes: a FIN, not a reset
    refused_then_accepted(
        1500,
        vec![Treat::ReadAndClose, Treat::ReadAndClose, Treat::Accept],
    );
}

#[test]
fn refused_by_read_and_close_and_by_a_reset_loses_nothing() {
    refused_then_accepted(
        200_000,
        vec![Treat::ReadAndClose, Treat::Reset, Treat::Accept],
    );
}

/// The probe is the first batch written, not the first second of the connection: a
/// source that is quiet when the client connects, then refused when it speaks.
#[test]
fn a_quiet_start_then_a_refusal_loses_nothing() {
    let (port, rx) = stand_in(vec![Treat::ReadAndClose, Treat::Accept]);
    let dir = tempfile::tempdir().unwrap();
    let input = data(30_000, 5);
    let mut child = client_to(port, dir.path()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    stdin.write_all(&input).unwrap();
    drop(stdin);
    let st = wait_exit(&mut child, Duration::from_secs(30));
    assert!(st.success(), "{st:?}");
    let streams: Vec<Vec<u8>> = rx.try_iter().collect();
    let got = payloads(&streams);
    assert_eq!(got.len(), input.len(), "bytes lost or repeated");
    assert!(got == input, "the bytes differ");
}

/// The real collector: `d4 server` with another key refuses the sensor (the HMAC does not
/// verify: it reads a little and closes); the input is smaller than what it reads, so the
/// refusal is a plain end of stream. Then a server with the sensor's key on the same
/// address gets every line once.
#[test]
fn refused_by_d4_server_then_accepted_by_the_next_one() {
    use crate::support::server::{sensor_bytes, ServerProc};
    let a_dir = tempfile::tempdir().unwrap();
    let a = ServerProc::start(
        a_dir.path(),
        &[
            "--mode",
            "shared-secret",
            "--default-key",
            "not the sensor's key",
        ],
    );
    let plain = a.plain;
    let spool = tempfile::tempdir().unwrap();
    let input: Vec<u8> = (0..40)
        .flat_map(|i| format!("line {i:03} of a small input\n").into_bytes())
        .collect();
    assert!(input.len() < 2048);
    let mut c = d4();
    c.args([
        "client", "--uuid", UUID, "--key", KEY, "--no-tls", "--type", "3",
    ])
    .arg("--destination")
    .arg(plain.to_string())
    .arg("--spool-dir")
    .arg(spool.path())
    .stdin(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    // the client's log, line by line: A is stopped once the client saw it refuse
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let Ok(line) = line else { break };
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) if l.contains("first batch") => break,
            Ok(_) => {}
            Err(e) => panic!("the client saw no refusal from d4 server: {e}"),
        }
    }
    a.stop();
    let b_dir = tempfile::tempdir().unwrap();
    let b = ServerProc::start_at(
        b_dir.path(),
        "127.0.0.1:0",
        &plain.to_string(),
        &["--mode", "shared-secret", "--allow-reference-key"],
        &[],
    );
    let st = wait_exit(&mut child, Duration::from_secs(30));
    let err = reader.join().unwrap();
    assert!(st.success(), "{st:?}\n{err}");
    let uuid: uuid::Uuid = UUID.parse().unwrap();
    let got = sensor_bytes(b_dir.path(), uuid, 3);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&input),
        "{}",
        b.log_text()
    );
    b.stop();
}

/// A signal while the connection's first batch is held: its close cannot tell a collector
/// that took it from one that refused (an end crossing ours), so the batch stays in the
/// spool and the next start sends it again (the collector may get it twice). A signal
/// once it stood: it counts as delivered, the next start has nothing to send.
#[test]
fn a_signal_keeps_a_held_first_batch_and_consumes_one_that_stood() {
    for (wait, kept) in [
        (Duration::from_millis(300), true),
        (Duration::from_millis(2500), false),
    ] {
        let (port, rx) = stand_in(vec![Treat::Accept]);
        let dir = tempfile::tempdir().unwrap();
        let input = data(3000, wait.as_millis() as u64);
        let mut child = client_to(port, dir.path()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&input).unwrap();
        // no end of input: the run ends with the signal
        std::thread::sleep(wait);
        sigterm(&child);
        let st = wait_exit(&mut child, Duration::from_secs(30));
        assert!(st.success(), "{st:?}");
        drop(stdin);
        let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // the collector read the batch either way
        assert!(payloads(&[first]) == input, "wait {wait:?}");
        // the next start, with the same spool and nothing new to read
        let (port2, rx2) = stand_in(vec![Treat::Accept]);
        let mut again = client_to(port2, dir.path()).spawn().unwrap();
        drop(again.stdin.take());
        let st = wait_exit(&mut again, Duration::from_secs(30));
        assert!(st.success(), "{st:?}");
        let resent = payloads(&rx2.try_iter().collect::<Vec<_>>());
        if kept {
            assert!(
                resent == input,
                "wait {wait:?}: {} bytes sent again",
                resent.len()
            );
        } else {
            assert!(
                resent.is_empty(),
                "wait {wait:?}: {} bytes sent again",
                resent.len()
            );
        }
    }
}
