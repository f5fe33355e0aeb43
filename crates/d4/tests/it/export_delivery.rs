//! `d4 export` at least once: receivers that go away mid-stream and come back (TCP, TLS,
//! UDP, Unix stream and datagram), an exporter killed with `kill -9` and restarted, and
//! SIGTERM (while entries flow, and while the receiver is down). Every entry arrives, in
//! order on each connection; repeats only of the batch that was not acknowledged.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::export_util::*;

const POP: usize = 50;
/// How long the receiver stays away.
const AWAY: Duration = Duration::from_millis(400);

fn bind_tcp(addr: SocketAddr) -> TcpListener {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => return l,
            Err(e) => {
                assert!(Instant::now() < end, "rebinding {addr}: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn pop_flags(rate: &'static str) -> Vec<&'static str> {
    vec!["--until-empty", "--pop-max", "50", "--rate", rate]
}

/// A TCP receiver that closes its connection AND its listening socket after each of
/// `limits` lines, stays away, then listens again on the same port.
#[test]
fn tcp_receiver_goes_away_and_comes_back() {
    const N: usize = 800;
    let (dir, queue) = queue_of(N);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let got = Got::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let mut l = Some(l);
        for limit in [Some(170), Some(200), Some(180), None] {
            let listener = l.take().unwrap_or_else(|| bind_tcp(addr));
            let (s, _) = listener.accept().unwrap();
            read_lines(s, &g, limit);
            drop(listener);
            std::thread::sleep(AWAY);
        }
    });
    let (out, err) = run_ok(
        export(
            dir.path(),
            queue,
            &format!("tcp://{addr}"),
            &pop_flags("1000"),
        ),
        120,
    );
    got.wait_distinct(N, 10);
    let conns = got.snapshot();
    assert!(conns.len() >= 4, "{} connections", conns.len());
    check_delivery(&conns, N, POP);
    let s = summary(&out);
    assert_eq!(s["entries"], N as u64, "{s}");
    assert!(s["resent_batches"].as_u64().unwrap() >= 3, "{s}");
    // one warning per outage, one "reachable again" per outage
    let outages = err.matches("sink unavailable").count();
    // (a reconnect that lands in the closing listener's backlog makes a second one)
    assert!(
        (3..=6).contains(&outages),
        "{outages} outage warnings:\n{err}"
    );
    assert_eq!(
        err.matches("sink reachable again").count(),
        outages,
        "{err}"
    );
    assert_eq!(queue_len(dir.path(), queue), 0);
}

#[test]
fn unix_stream_receiver_goes_away_and_comes_back() {
    const N: usize = 600;
    let (dir, queue) = queue_of(N);
    let path: PathBuf = dir.path().join("recv.sock");
    let got = Got::default();
    let g = got.clone();
    let p = path.clone();
    let l = UnixListener::bind(&p).unwrap();
    std::thread::spawn(move || {
        let mut l = Some(l);
        for limit in [Some(150), Some(390), None] {
            let listener = l.take().unwrap_or_else(|| UnixListener::bind(&p).unwrap());
            let (s, _) = listener.accept().unwrap();
            read_lines(s, &g, limit);
            drop(listener);
            let _ = std::fs::remove_file(&p);
            std::thread::sleep(AWAY);
        }
    });
    let to = format!("unix://{}?type=stream", path.display());
    run_ok(export(dir.path(), queue, &to, &pop_flags("1000")), 120);
    got.wait_distinct(N, 10);
    let conns = got.snapshot();
    assert!(conns.len() >= 3, "{} connections", conns.len());
    check_delivery(&conns, N, POP);
    assert_eq!(queue_len(dir.path(), queue), 0);
}

/// Datagrams until at least `limit`, then what is already queued, then the socket closes.
fn recv_datagrams(
    recv: impl Fn(&mut [u8]) -> std::io::Result<usize>,
    nonblock: impl Fn(),
    got: &Got,
    limit: Option<usize>,
) {
    let c = got.open();
    let mut buf = vec![0u8; 65_536];
    let mut n = 0;
    let mut draining = false;
    while let Ok(k) = recv(&mut buf) {
        got.push(c, String::from_utf8_lossy(&buf[..k]).into_owned());
        n += 1;
        if !draining && limit.is_some_and(|l| n >= l) {
            nonblock();
            draining = true;
        }
    }
}

#[test]
fn udp_receiver_goes_away_and_comes_back() {
    const N: usize = 600;
    let (dir, queue) = queue_of(N);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let got = Got::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let mut sock = Some(sock);
        for limit in [Some(160), Some(410), None] {
            let s = sock
                .take()
                .unwrap_or_else(|| UdpSocket::bind(addr).unwrap());
            // the last round waits for the end; earlier ones go away at `limit`
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            recv_datagrams(
                |b| s.recv(b),
                || s.set_nonblocking(true).unwrap(),
                &g,
                limit,
            );
            drop(s);
            std::thread::sleep(AWAY);
        }
    });
    let (out, _) = run_ok(
        export(
            dir.path(),
            queue,
            &format!("udp://{addr}"),
            &pop_flags("1000"),
        ),
        120,
    );
    got.wait_distinct(N, 10);
    let conns = got.snapshot();
    check_delivery(&conns, N, POP);
    let s = summary(&out);
    assert!(
        s["resent_batches"].as_u64().unwrap() >= 2,
        "ICMP errors seen: {s}"
    );
    assert_eq!(queue_len(dir.path(), queue), 0);
}

#[test]
fn unix_datagram_receiver_goes_away_and_comes_back() {
    const N: usize = 600;
    let (dir, queue) = queue_of(N);
    let path: PathBuf = dir.path().join("recv.dgram");
    let got = Got::default();
    let g = got.clone();
    let p = path.clone();
    let first = UnixDatagram::bind(&p).unwrap();
    std::thread::spawn(move || {
        let mut sock = Some(first);
        for limit in [Some(140), Some(380), None] {
            let s = sock
                .take()
                .unwrap_or_else(|| UnixDatagram::bind(&p).unwrap());
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            recv_datagrams(
                |b| s.recv(b),
                || s.set_nonblocking(true).unwrap(),
                &g,
                limit,
            );
            drop(s);
            let _ = std::fs::remove_file(&p);
            std::thread::sleep(AWAY);
        }
    });
    let to = format!("unix://{}?type=dgram", path.display());
    run_ok(export(dir.path(), queue, &to, &pop_flags("1000")), 120);
    got.wait_distinct(N, 10);
    check_delivery(&got.snapshot(), N, POP);
    assert_eq!(queue_len(dir.path(), queue), 0);
}

fn spawn(mut c: std::process::Command) -> Child {
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < end,
            "still running {secs} s after the signal"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A TCP receiver that accepts every connection in turn (the exporter is restarted).
fn tcp_collector() -> (SocketAddr, Got) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let got = Got::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            read_lines(s, &g, None);
        }
    });
    (addr, got)
}

/// Stops the exporter with `sig` three times mid-stream, then lets a last run drain the
/// queue: every entry arrives; each restart repeats at most one batch.
fn stop_and_restart(sig: &str) {
    const N: usize = 2000;
    let (dir, queue) = queue_of(N);
    let (addr, got) = tcp_collector();
    let to = format!("tcp://{addr}");
    for round in 1..=3 {
        let mut child = spawn(export(
            dir.path(),
            queue,
            &to,
            &["--pop-max", "50", "--rate", "2000"],
        ));
        let target = round * N / 5 + round * 37;
        got.wait_distinct(target, 30);
        signal(&child, sig);
        let st = wait_exit(&mut child, 10);
        if sig == "-TERM" {
            assert!(st.success(), "SIGTERM: clean exit, got {st}");
        }
        // the connection is closed: wait for the reader to see it
        std::thread::sleep(Duration::from_millis(100));
    }
    run_ok(
        export(
            dir.path(),
            queue,
            &to,
            &["--pop-max", "50", "--until-empty"],
        ),
        60,
    );
    got.wait_distinct(N, 10);
    let conns = got.snapshot();
    assert_eq!(conns.len(), 4);
    check_delivery(&conns, N, POP);
    assert_eq!(queue_len(dir.path(), queue), 0);
}

#[test]
fn kill_9_mid_stream_then_restart() {
    stop_and_restart("-KILL");
}

#[test]
fn sigterm_mid_stream_loses_nothing() {
    stop_and_restart("-TERM");
}

/// SIGTERM while the receiver is down (the exporter waits to reconnect): it ends at once
/// and the queue keeps every entry it could not deliver.
#[test]
fn sigterm_during_an_outage() {
    const N: usize = 300;
    let (dir, queue) = queue_of(N);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let got = Got::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        read_lines(s, &g, Some(120));
        // listener dropped: the receiver is gone for good
    });
    let mut child = spawn(export(
        dir.path(),
        queue,
        &format!("tcp://{addr}"),
        &["--pop-max", "50", "--rate", "1000"],
    ));
    got.wait_distinct(120, 30);
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "-TERM");
    let st = wait_exit(&mut child, 5);
    assert!(st.success(), "{st}");
    let received = got.distinct();
    // what the receiver did not get is still there for the next run (the unacknowledged
    // batch included); acknowledged batches are gone
    let left = leftover(dir.path(), queue);
    let mut all: Vec<usize> = got.snapshot().iter().flatten().map(|l| index(l)).collect();
    all.extend(left.iter().map(|l| index(l)));
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        N,
        "{received} received, {} left of {N}",
        left.len()
    );
    assert!(
        left.len() <= N - 100,
        "acknowledged batches are gone: {} left",
        left.len()
    );
}
