//! Attacks on the web UI of the real `d4 server` (issue #15), on loopback only, each bounded
//! in time and count, with the bound asserted (RSS from /proc/<pid>/status, open
//! descriptors from /proc/<pid>/fd) while a real user keeps logging in from another
//! loopback address (127.0.0.2), and the server healthy after. Bounds: docs/web.md.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::server::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const USER_IP: &str = "127.0.0.2";

fn admin_password(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("web-admin-password.txt"))
        .unwrap()
        .trim()
        .to_string()
}

/// VmRSS of `pid` in kB (0 once the process is gone).
fn proc_rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Samples the RSS of `pid` every 20 ms until dropped; `peak()` is the highest seen.
struct Peak {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<u64>>,
}

impl Peak {
    fn start(pid: u32) -> Peak {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut max = 0;
            while !s.load(Ordering::Relaxed) {
                max = max.max(proc_rss_kb(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            max.max(proc_rss_kb(pid))
        });
        Peak {
            stop,
            handle: Some(handle),
        }
    }
    fn peak(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

async fn connect_from(src: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(src.parse::<IpAddr>().unwrap(), 0))?;
    s.connect(addr).await
}

/// One HTTP/1.1 request (Connection: close) from `src`: (status, head + body).
async fn request(src: &str, addr: SocketAddr, req: String) -> (u16, String) {
    let fut = async {
        let mut s = connect_from(src, addr).await.ok()?;
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, text))
    };
    match tokio::time::timeout(Duration::from_secs(30), fut).await {
        Ok(Some(r)) => r,
        _ => (0, String::new()),
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A login POST (double-submit CSRF cookie included); `extra` adds header lines.
fn login_request(user: &str, password: &str, extra: &str) -> String {
    let body = format!(
        "csrf=t0ken&user={}&password={}&next=%2F",
        enc(user),
        enc(password)
    );
    format!(
        "POST /login HTTP/1.1\r\nHost: localhost\r\nCookie: d4_login_csrf=t0ken\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n{extra}\r\n{body}",
        body.len()
    )
}

async fn login(src: &str, addr: SocketAddr, user: &str, password: &str, extra: &str) -> u16 {
    request(src, addr, login_request(user, password, extra))
        .await
        .0
}

/// The real user logs in (retrying on 429 "busy", as a person would) within 30 s.
async fn real_user_logs_in(addr: SocketAddr, password: &str) {
    let t = Instant::now();
    loop {
        let status = login(USER_IP, addr, "admin", password, "").await;
        if status == 303 {
            return;
        }
        assert!(
            status == 429 && t.elapsed() < Duration::from_secs(30),
            "real user's login: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn healthy(addr: SocketAddr) {
    let (status, text) = request(
        USER_IP,
        addr,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
}

/// 40 parallel wrong passwords for one user from one IP: only the lockout's 5 are
/// verified (the rest 429 at once); then 60 parallel wrong logins under 60 different user
/// names: at most 4 argon2 checks run at once. RSS stays within 150 MiB of the idle
/// server while the real user logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_passwords_are_counted_before_argon2_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path(), &["--web-plain"]);
    let web = web_addr(&srv.log_text(), "http");
    let password = admin_password(dir.path());
    real_user_logs_in(web, &password).await; // warm-up: one argon2 check done
    let base = srv.rss_kb();
    let peak = Peak::start(srv.pid());

    let attempts: Vec<_> = (0..40)
        .map(|_| tokio::spawn(login("127.0.0.1", web, "admin", "wrong password!", "")))
        .collect();
    let mut statuses = Vec::new();
    for a in attempts {
        statuses.push(a.await.unwrap());
    }
    let verified = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        verified <= 5,
        "{verified} of 40 parallel wrong passwords verified: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );

    let names: Vec<_> = (0..60)
        .map(|i| {
            tokio::spawn(async move {
                let name = format!("u{i}");
                login("127.0.0.1", web, &name, "wrong", "").await
            })
        })
        .collect();
    real_user_logs_in(web, &password).await;
    for n in names {
        let s = n.await.unwrap();
        assert!(s == 401 || s == 429, "{s}");
    }
    let grown = peak.peak().saturating_sub(base);
    eprintln!("login flood: RSS {base} kB idle, +{grown} kB at peak");
    assert!(
        grown < 150 * 1024,
        "RSS grew by {grown} kB during the login flood"
    );
    // Locked for admin from 127.0.0.1, even with the right password; healthy for others.
    assert_eq!(login("127.0.0.1", web, "admin", &password, "").await, 429);
    real_user_logs_in(web, &password).await;
    healthy(web).await;
}

/// 1,500 connections that never finish their head: at most the per-IP cap (64) stays
/// open, and those are closed after the head deadline (10 s); then 200 login bodies of
/// 2 MiB announced and stalled (from 200 addresses): refused after 4 KiB, RSS within
/// 64 MiB of the idle server. The real user logs in meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_heads_and_bodies_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path(), &["--web-plain"]);
    let web = web_addr(&srv.log_text(), "http");
    let password = admin_password(dir.path());
    real_user_logs_in(web, &password).await;
    let fds0 = open_fds(srv.pid());
    let started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..1500 {
        if let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_secs(2), connect_from("127.0.0.1", web)).await
        {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n").await;
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fds = open_fds(srv.pid());
    eprintln!("1500 stalled heads: server fds {fds0} -> {fds}");
    assert!(
        fds <= fds0 + 64 + 8,
        "{fds} descriptors open (idle: {fds0})"
    );
    real_user_logs_in(web, &password).await;
    // After the head deadline every stalled connection is closed by the server.
    let deadline = started + Duration::from_secs(20);
    while open_fds(srv.pid()) > fds0 + 8 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fds = open_fds(srv.pid());
    assert!(
        fds <= fds0 + 8,
        "{fds} descriptors still open (idle: {fds0})"
    );
    let mut closed = 0;
    for s in held.iter_mut().take(50) {
        let mut b = [0u8; 512];
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), s.read(&mut b)).await {
            closed += 1; // EOF or an error answer: the server ended it
        }
    }
    assert_eq!(closed, 50, "stalled connections left open");
    drop(held);

    // 200 stalled 2 MiB login bodies, one per source address.
    let base = srv.rss_kb();
    let peak = Peak::start(srv.pid());
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let src = format!("127.0.{}.{}", 1 + i / 250, 1 + i % 250);
        tasks.push(tokio::spawn(async move {
            let Ok(mut s) = connect_from(&src, web).await else {
                return;
            };
            let head = "POST /login HTTP/1.1\r\nHost: localhost\r\n\
                        Content-Type: application/x-www-form-urlencoded\r\n\
                        Transfer-Encoding: chunked\r\n\r\n200000\r\n";
            let chunk = vec![b'a'; 64 * 1024];
            let send = async {
                s.write_all(head.as_bytes()).await?;
                for _ in 0..31 {
                    s.write_all(&chunk).await?;
                }
                // The last bytes never come.
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, std::io::Error>(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(15), send).await;
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    real_user_logs_in(web, &password).await;
    for t in tasks {
        t.await.unwrap();
    }
    let grown = peak.peak().saturating_sub(base);
    eprintln!("200 stalled 2 MiB bodies: RSS {base} kB idle, +{grown} kB at peak");
    assert!(
        grown < 64 * 1024,
        "RSS grew by {grown} kB with 200 stalled bodies"
    );
    real_user_logs_in(web, &password).await;
    healthy(web).await;
}

/// Behind a trusted proxy (127.0.0.1 here) the lockout is per (user, client IP from
/// X-Forwarded-For): an attacker's bad passwords lock only the attacker; a client that is
/// not a trusted proxy cannot escape its own lockout by sending X-Forwarded-For.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_behind_a_trusted_proxy_is_per_user_and_client() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(
        dir.path(),
        &["--web-plain", "--web-trusted-proxy", "127.0.0.1/32"],
    );
    let web = web_addr(&srv.log_text(), "http");
    let password = admin_password(dir.path());
    let attacker = "X-Forwarded-For: 198.51.100.7\r\n";
    let user = "X-Forwarded-For: 203.0.113.9\r\n";
    for i in 0..5 {
        let s = login("127.0.0.1", web, "admin", "wrong password!", attacker).await;
        assert_eq!(s, 401, "attempt {i}");
    }
    assert_eq!(
        login("127.0.0.1", web, "admin", &password, attacker).await,
        429
    );
    // The real user behind the same proxy still logs in.
    assert_eq!(login("127.0.0.1", web, "admin", &password, user).await, 303);
    // Not a trusted proxy: X-Forwarded-For is ignored, the lockout holds.
    for i in 0..5 {
        let xff = format!("X-Forwarded-For: 192.0.2.{i}\r\n");
        assert_eq!(
            login(USER_IP, web, "admin", "wrong password!", &xff).await,
            401
        );
    }
    let xff = "X-Forwarded-For: 192.0.2.99\r\n";
    assert_eq!(login(USER_IP, web, "admin", &password, xff).await, 429);
    healthy(web).await;
}

/// Over TLS: HSTS on every answer, a foreign Host (DNS rebinding) refused with 421, and a
/// user name with a newline and a terminal escape logged escaped (no forged log line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_check_hsts_and_escaped_log_values() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path(), &[]);
    let web = web_addr(&srv.log_text(), "https");
    async fn tls_request(addr: SocketAddr, req: &str) -> String {
        let mut s = connect_tls(addr).await;
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }
    let ok = tls_request(
        web,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(
        ok.to_ascii_lowercase()
            .contains("strict-transport-security: max-age="),
        "{ok}"
    );
    let rebound = tls_request(
        web,
        "GET /api/v1/sensors HTTP/1.1\r\nHost: rebind.evil.example:7000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(rebound.starts_with("HTTP/1.1 421"), "{rebound}");
    let by_ip = tls_request(
        web,
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(by_ip.starts_with("HTTP/1.1 200"), "{by_ip}");

    let forged = "x\n2026-01-01T00:00:00.000000Z  INFO web: login user=admin\u{1b}[2J";
    let answer = tls_request(web, &login_request(forged, "wrong password!", "")).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let t = Instant::now();
    while !srv.log_text().contains("failed login") && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = srv.log_text();
    assert!(log.contains("x\\n2026-01-01"), "{log}");
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01")),
        "forged log line: {log}"
    );
    assert!(!log.contains('\u{1b}'), "raw escape in the log");
}

/// Bodies that stop coming get 408 after `--web-body-timeout`; a keep-alive connection that
/// went quiet and one that never sent a byte are closed after `--web-idle-timeout`; the
/// real user logs in meanwhile and the descriptors come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_bodies_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(
        dir.path(),
        &[
            "--web-plain",
            "--web-body-timeout",
            "2",
            "--web-idle-timeout",
            "3",
        ],
    );
    let web = web_addr(&srv.log_text(), "http");
    let password = admin_password(dir.path());
    real_user_logs_in(web, &password).await;
    let fds0 = open_fds(srv.pid());
    let started = Instant::now();
    let mut slow = Vec::new();
    for i in 0..50u32 {
        let src = format!("127.0.3.{}", 1 + i);
        slow.push(tokio::spawn(async move {
            let mut s = connect_from(&src, web).await.unwrap();
            s.write_all(
                b"POST /login HTTP/1.1\r\nHost: localhost\r\n\
                  Content-Type: application/x-www-form-urlencoded\r\n\
                  Content-Length: 200\r\n\r\ncsrf=t&use",
            )
            .await
            .unwrap();
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut out)).await;
            String::from_utf8_lossy(&out).into_owned()
        }));
    }
    // Quiet after one request, and silent from the start.
    let mut quiet = connect_from("127.0.0.1", web).await.unwrap();
    quiet
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut silent = connect_from("127.0.0.1", web).await.unwrap();
    real_user_logs_in(web, &password).await;
    for t in slow {
        let answer = t.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "slow bodies answered after {:?}",
        started.elapsed()
    );
    for (name, s) in [("quiet", &mut quiet), ("silent", &mut silent)] {
        let mut all = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut all)).await;
        assert!(r.is_ok(), "{name} connection still open after 10 s");
    }
    assert!(started.elapsed() < Duration::from_secs(12));
    let t = Instant::now();
    while open_fds(srv.pid()) > fds0 + 4 && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(open_fds(srv.pid()) <= fds0 + 4);
    real_user_logs_in(web, &password).await;
    healthy(web).await;
}

/// The new web settings follow the precedence of every other one: flags > D4_* > d4.toml.
#[test]
fn web_bound_settings_from_file_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("d4.toml"),
        "web_trusted_proxy = [\"10.0.0.0/8\"]\nweb_header_timeout = 7\nweb_max_connections = 99\nweb_host = [\"file.example\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_d4"))
        .args(["server", "--print-config", "--data-dir"])
        .arg(dir.path())
        .args(["--web-host", "flag.example", "--web-host", "other.example"])
        .env("D4_WEB_MAX_CONNECTIONS", "77")
        .env("D4_WEB_MAX_LOGIN_CHECKS", "2")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = String::from_utf8_lossy(&out.stdout);
    for line in [
        "web_trusted_proxy = [\"10.0.0.0/8\"]",
        "web_header_timeout = 7",
        "web_max_connections = 77",
        "web_max_login_checks = 2",
        "web_host = [\"flag.example\", \"other.example\"]",
        "web_body_timeout = 10",
    ] {
        assert!(cfg.contains(line), "{line} missing in:\n{cfg}");
    }
}
