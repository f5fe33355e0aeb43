//! Attacks on the real `d4 pdns serve` (issue #15), loopback only, bounded in time and
//! count, with the bound asserted (RSS from /proc/<pid>/status) while a real user's lookups
//! keep being answered (from 127.0.0.2), and the server healthy after. Bounds: docs/pdns.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::server::open_fds;

const D4: &str = env!("CARGO_BIN_EXE_d4");
const USER_IP: &str = "127.0.0.2";

struct Serve {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- pdns log ----\n{}",
                self.log.lock().unwrap().join("\n")
            );
        }
    }
}

impl Serve {
    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
    fn rss_kb(&self) -> u64 {
        rss_kb(self.child.id())
    }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn ingest(data: &Path, lines: &str) {
    let file = data.join("in.csv");
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(&file, lines).unwrap();
    let out = Command::new(D4)
        .args(["pdns", "--data-dir"])
        .arg(data)
        .arg("ingest")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start(data: &Path, extra: &[&str]) -> Serve {
    for _ in 0..5 {
        let port = d4_testkit::free_port();
        let mut child = Command::new(D4)
            .args(["pdns", "--data-dir"])
            .arg(data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let l2 = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                l2.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Serve { child, port, log };
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("d4 pdns serve did not come up");
}

/// A GET from `src` (Connection: close): (status, head + body); `extra` adds header lines.
fn get_from(src: &str, port: u16, path: &str, extra: &str) -> (u16, String) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{src}:0").parse().unwrap();
    sock.bind(&local.into()).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    if sock
        .connect_timeout(&addr.into(), Duration::from_secs(5))
        .is_err()
    {
        return (0, String::new());
    }
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let head = text.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A real user's lookup, retried on 429 (busy) for up to 30 s.
fn user_lookup(port: u16, extra: &str) {
    let t = Instant::now();
    loop {
        let (status, text) = get_from(USER_IP, port, "/query/h7.sub.big.example", extra);
        if status == 200 {
            assert!(text.contains("\"rrname\""), "{text}");
            return;
        }
        assert!(
            status == 429 && t.elapsed() < Duration::from_secs(30),
            "real user's lookup: {status} {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn big_csv(n: u32, sub_share: u32) -> String {
    let mut s = String::new();
    for i in 0..n {
        let zone = if i % 10 < sub_share { "sub" } else { "other" };
        s += &format!(
            "{}.0||192.0.2.1||192.0.2.53||IN||h{i}.{zone}.big.example.||A||10.{}.{}.{}||60||1\n",
            1_600_000_000 + i,
            i >> 16,
            (i >> 8) & 255,
            i & 255
        );
    }
    s
}

/// With the default settings, 16 parallel `limit=1` pages of a 54,000-record answer keep
/// RSS within 40 MiB of the idle server (every page used to rebuild and sort the whole
/// answer); lookups past `--max-concurrent` (4) wait, then 429. Then `?since=<far future>`
/// over the whole index is refused once `--max-examined` records were read (it used to
/// scan everything and answer nothing).
#[test]
fn work_and_memory_per_request_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ingest(&data, &big_csv(60_000, 9));
    let srv = start(&data, &[]);
    let port = srv.port;
    user_lookup(port, "");
    let (status, text) = get_from("127.0.0.1", port, "/query/*.sub.big.example?limit=1", "");
    assert_eq!(status, 200, "{text}");
    assert_eq!(header(&text, "x-d4-total"), Some("54000"), "{text}");
    let cursor = header(&text, "x-dribble-cursor").unwrap().to_string();
    let (status, second) = get_from(
        "127.0.0.1",
        port,
        "/query/*.sub.big.example?limit=1",
        &format!("dribble-paginate-cursor: {cursor}\r\n"),
    );
    assert_eq!(status, 200);
    let body = |t: &str| t.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    assert_ne!(
        body(&text),
        body(&second),
        "the second page repeats the first"
    );

    let base = srv.rss_kb();
    let stop = Arc::new(AtomicBool::new(false));
    let pid = srv.child.id();
    let s2 = stop.clone();
    let sampler = std::thread::spawn(move || {
        let mut max = 0;
        while !s2.load(Ordering::Relaxed) {
            max = max.max(rss_kb(pid));
            std::thread::sleep(Duration::from_millis(20));
        }
        max
    });
    let attackers: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                get_from("127.0.0.1", port, "/query/*.sub.big.example?limit=1", "").0
            })
        })
        .collect();
    user_lookup(port, "");
    let statuses: Vec<u16> = attackers.into_iter().map(|a| a.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let grown = peak.saturating_sub(base);
    eprintln!("16 parallel pages: RSS {base} kB idle, +{grown} kB at peak; {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(grown < 40 * 1024, "RSS grew by {grown} kB");
    user_lookup(port, "");
    drop(srv);

    // Whole index, far-future filter: within --max-examined it is answered (empty), below
    // it refused with a message, fast either way.
    let srv = start(&data, &["--max-examined", "100000"]);
    let t = Instant::now();
    let (status, text) = get_from(
        "127.0.0.1",
        srv.port,
        "/query/0.0.0.0/0?since=99999999999",
        "",
    );
    assert_eq!(status, 200, "{text}");
    assert!(t.elapsed() < Duration::from_secs(30));
    drop(srv);
    let srv = start(&data, &["--max-examined", "20000"]);
    let port = srv.port;
    let (status, text) = get_from("127.0.0.1", port, "/query/0.0.0.0/0?since=99999999999", "");
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("--max-examined"), "{text}");
    let (status, text) = get_from("127.0.0.1", port, "/query/*.big.example?limit=1", "");
    assert_eq!(status, 422, "{text}");
    user_lookup(port, "");
    let (status, _) = get_from("127.0.0.1", port, "/info", "");
    assert_eq!(status, 200);
}

/// Wrong tokens are limited per client IP (429 after 10 a minute, no check at all); the
/// real user's token keeps working from elsewhere; an empty `--token` is refused at start.
#[test]
fn token_guessing_is_limited_and_empty_token_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ingest(&data, &big_csv(20, 9));
    let srv = start(&data, &["--token", "s3cret-token"]);
    let port = srv.port;
    let good = "Authorization: s3cret-token\r\n";
    user_lookup(port, good);
    let (status, _) = get_from("127.0.0.1", port, "/info", "Authorization: \r\n");
    assert_eq!(status, 401, "empty Authorization header");
    let mut statuses = Vec::new();
    for i in 0..40 {
        let h = format!("Authorization: guess-{i}\r\n");
        statuses.push(get_from("127.0.0.1", port, "/info", &h).0);
    }
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        unauthorized <= 10,
        "{unauthorized} guesses checked: {statuses:?}"
    );
    assert!(statuses.iter().skip(10).all(|s| *s == 429), "{statuses:?}");
    // The guesser's IP is refused even with the right token for the rest of the minute;
    // the real user elsewhere is not.
    assert_eq!(get_from("127.0.0.1", port, "/info", good).0, 429);
    user_lookup(port, good);
    drop(srv);
    // An empty token is refused at start.
    let mut empty = Command::new(D4)
        .args(["pdns", "--data-dir"])
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0", "--token", ""])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(st) = empty.try_wait().unwrap() {
            break Some(st);
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = empty.kill();
            let _ = empty.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let mut err = String::new();
    let _ = empty.stderr.take().unwrap().read_to_string(&mut err);
    assert!(
        status.is_some_and(|s| !s.success()),
        "`--token ''` was accepted (still serving after 10 s): {err}"
    );
    assert!(err.contains("empty --token"), "{err}");
}

/// A foreign `Host` (DNS rebinding onto a loopback server) gets 421; a query holding a
/// newline is logged escaped (no forged log line).
#[test]
fn host_check_and_escaped_log_values() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ingest(&data, &big_csv(20, 9));
    let srv = start(&data, &[]);
    let port = srv.port;
    user_lookup(port, "");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /info HTTP/1.1\r\nHost: rebind.evil.example\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 421"), "{out}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");

    let (status, _) = get_from(
        "127.0.0.1",
        port,
        "/query/a%0A2026-01-01T00:00:00.000000Z%20INFO%20forged%1B%5B2J",
        "",
    );
    assert_eq!(status, 400);
    let t = Instant::now();
    while !srv.log_text().contains("query refused") && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = srv.log_text();
    assert!(log.contains("a\\n2026-01-01"), "{log}");
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01")),
        "forged log line: {log}"
    );
    assert!(!log.contains('\u{1b}'), "raw escape in the log");
    user_lookup(port, "");
}

/// 1,500 connections that never finish their request head, with the default settings: at
/// most the per-IP cap (32) stays open, those are closed after the head deadline (10 s),
/// and the real user's lookups are answered meanwhile.
#[test]
fn stalled_heads_are_capped_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ingest(&data, &big_csv(20, 9));
    let srv = start(&data, &[]);
    let port = srv.port;
    let pid = srv.child.id();
    user_lookup(port, "");
    let fds0 = open_fds(pid);
    let started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..1500 {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            let _ = s.write_all(b"GET /info HTTP/1.1\r\nHost: localhost\r\n");
            held.push(s);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let fds = open_fds(pid);
    eprintln!("1500 stalled heads: server fds {fds0} -> {fds}");
    assert!(
        fds <= fds0 + 32 + 8,
        "{fds} descriptors open (idle: {fds0})"
    );
    user_lookup(port, "");
    while open_fds(pid) > fds0 + 4 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let fds = open_fds(pid);
    assert!(
        fds <= fds0 + 4,
        "{fds} descriptors still open (idle: {fds0})"
    );
    drop(held);
    user_lookup(port, "");
}
