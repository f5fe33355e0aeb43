//! Fixes found running d4-rs beside the reference programs, each against the real
//! `d4 server` on loopback: 2 → 254 sessions release the store lease they claimed and are
//! recorded the same way whatever the TCP reads; one IP-history entry per connection;
//! the generated certificate verifies for loopback addresses and `--tls-san` names; an IP
//! address as SNI is not warned about; shared-secret mode refuses the reference key; a
//! stop is quick whatever the open file's size; `--rotation-bytes`; failed store writes
//! are logged and counted in `/metrics`; a stop reads a sensor until it closes.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::server::*;
use d4_proto::Encoder;
use d4_store::Store;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use uuid::Uuid;

const SENSOR_KEY: &str = "fixes test sensor key";

fn frame(uuid: Uuid, t: u8, payload: &[u8]) -> Vec<u8> {
    Encoder::new(uuid, SENSOR_KEY.as_bytes(), t)
        .encode(d4_store::now(), payload)
        .unwrap()
}

async fn register(store: &Arc<dyn Store>) -> Uuid {
    register_sensor(store, SENSOR_KEY, "fixes test").await
}

/// Sends `parts` on one plain connection with a pause between them (so the server reads
/// each part on its own), then closes it.
async fn send_parts(addr: SocketAddr, parts: &[Vec<u8>]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    for p in parts {
        s.write_all(p).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    s.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
}

async fn types_of(store: &Arc<dyn Store>, u: Uuid) -> BTreeSet<(u8, Option<String>)> {
    store
        .get_sensor(u)
        .await
        .unwrap()
        .map(|s| s.types.into_iter().map(|t| (t.d4_type, t.ext)).collect())
        .unwrap_or_default()
}

async fn no_sessions_within(store: &Arc<dyn Store>, secs: u64) -> bool {
    wait_for(secs, || async move {
        store
            .list_leases(d4_store::now())
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await
    .is_some()
}

/// The leak: a 2 → 254 session whose first read held only the meta header was claimed as
/// type 2 and released as type 254, so its lease lived (and was renewed) forever.
async fn meta_header_session_case(srv: &ServerProc, redis: Option<&redis::Client>) {
    let store = srv.store().await;
    let u = register(&store).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let meta = frame(u, 2, br#"{"type":"ja3-jl"}"#);
    let data = frame(u, 254, b"{\"ja3\":\"x\"}\n");
    // First read: the meta header alone.
    send_parts(srv.plain, &[meta.clone(), data.clone()]).await;
    assert!(
        no_sessions_within(&store, 5).await,
        "the session's store lease outlived it: {:?}",
        store.list_leases(d4_store::now()).await.unwrap()
    );
    // Types recorded: the same whether the reads split the stream or not.
    let st = &store;
    let ok = wait_for(5, || async move {
        let t = types_of(st, u).await;
        (t.len() >= 2).then_some(t)
    })
    .await
    .unwrap();
    let mut both = meta.clone();
    both.extend_from_slice(&data);
    send_parts(srv.plain, &[both]).await;
    assert!(no_sessions_within(&store, 5).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(types_of(&store, u).await, ok, "types depend on TCP reads");
    assert_eq!(
        ok,
        BTreeSet::from([(2, None), (254, Some("ja3-jl".to_string()))])
    );
    if let Some(r) = redis {
        let mut c = r.get_multiplexed_async_connection().await.unwrap();
        let leases: Vec<String> = redis::cmd("KEYS")
            .arg("d4rs:session:*")
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(leases.is_empty(), "leases left in Redis: {leases:?}");
        // One IP-history entry per connection, however many reads and flushes.
        let ips: Vec<String> = redis::cmd("LRANGE")
            .arg(format!("list_uuid_ip:{}", u.simple()))
            .arg(0)
            .arg(-1)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(ips.len(), 2, "two connections: {ips:?}");
        assert!(ips.iter().all(|e| e.starts_with("127.0.0.1-")), "{ips:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_header_sessions_release_their_lease_embedded() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(tmp.path(), &[]);
    meta_header_session_case(&srv, None).await;
    assert_eq!(srv.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_header_sessions_release_their_lease_redis() {
    let redis = d4_testkit::RedisServer::start();
    let url = redis.url_db(0);
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(tmp.path(), &["--redis", url.as_str()]);
    let client = redis::Client::open(url.as_str()).unwrap();
    meta_header_session_case(&srv, Some(&client)).await;
    assert_eq!(srv.stop(), Some(0));
}

fn run_server(dir: &std::path::Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_d4"));
    server_args(&mut cmd, dir, "", "127.0.0.1:0", "");
    cmd.args(extra);
    let child = cmd.spawn().unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_secret_mode_refuses_the_reference_key() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let (code, err) = run_server(tmp.path(), &["--mode", "shared-secret"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--allow-reference-key"), "{err}");
    assert!(err.contains("--default-key"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(20));
    // Refused before anything is created: no web account, no certificate, no store.
    assert!(!tmp.path().join("web-admin-password.txt").exists(), "{err}");
    assert!(!tmp.path().join("tls").exists());
    // The same key given explicitly is the same public key: still refused.
    let (code, _) = run_server(
        tmp.path(),
        &[
            "--mode",
            "shared-secret",
            "--default-key",
            "private key to change",
        ],
    );
    assert_eq!(code, Some(2));
    // Accepted with the flag (and warned about), or with a key of one's own.
    let srv = ServerProc::start(
        tmp.path(),
        &["--mode", "shared-secret", "--allow-reference-key"],
    );
    assert!(
        srv.log_text()
            .contains("reference's public default HMAC key"),
        "{}",
        srv.log_text()
    );
    assert_eq!(srv.stop(), Some(0));
    let dir2 = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(
        dir2.path(),
        &["--mode", "shared-secret", "--default-key", "our own key"],
    );
    assert!(!srv.log_text().contains("reference's public"));
    assert_eq!(srv.stop(), Some(0));
}

/// A rustls client that trusts only `ca` and checks the certificate for `name`.
async fn handshake(addr: SocketAddr, ca: &std::path::Path, name: &str) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let sn = rustls_pki_types::ServerName::try_from(name.to_string()).unwrap();
    conn.connect(sn, tcp)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_certificate_verifies_for_loopback_and_extra_names() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(
        tmp.path(),
        &["--tls-san", "d4.example.test", "--tls-san", "192.0.2.44"],
    );
    let addr = srv.tls.unwrap();
    let ca = tmp.path().join("tls/server.crt");
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let mut names = vec![
        "127.0.0.1",
        "::1",
        "localhost",
        "d4.example.test",
        "192.0.2.44",
    ];
    if !host.is_empty() {
        names.push(host.as_str());
    }
    for name in names {
        handshake(addr, &ca, name)
            .await
            .unwrap_or_else(|e| panic!("certificate refused for {name}: {e}"));
    }
    assert!(handshake(addr, &ca, "other.example.test").await.is_err());

    // The issue's own command: `d4 client --destination 127.0.0.1:PORT --ca server.crt`.
    let store = srv.store().await;
    let u = register(&store).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let input = tmp.path().join("lines.txt");
    std::fs::write(&input, "one line\nanother line\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_d4"))
        .args(["client", "--type", "3", "--key", SENSOR_KEY])
        .args(["--uuid", &u.to_string()])
        .arg("--source")
        .arg(&input)
        .args(["--destination", &addr.to_string()])
        .arg("--ca")
        .arg(&ca)
        .arg("--spool-dir")
        .arg(tmp.path().join("spool"))
        .args(["--drain-timeout", "20"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.to_lowercase().contains("certificate"), "{err}");
    let dir = tmp.path();
    let got = wait_for(10, || async move {
        let b = sensor_bytes(dir, u, 3);
        (b == b"one line\nanother line\n").then_some(())
    })
    .await;
    assert!(got.is_some(), "the data did not arrive");
    assert_eq!(srv.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_address_as_sni_is_not_warned_about() {
    if Command::new("openssl").arg("version").output().is_err() {
        panic!("openssl (the command) is needed by this test: apt-get install -y openssl");
    }
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(tmp.path(), &[]);
    let addr = srv.tls.unwrap();
    for _ in 0..3 {
        // s_client sends -servername as given, like socat sends an address.
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string()])
            .args(["-servername", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("BEGIN CERTIFICATE"), "no handshake: {text}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = srv.log_text();
    assert!(!log.contains("SNI"), "{log}");
    assert!(!log.contains("rustls"), "{log}");
    assert_eq!(srv.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_reported_as_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let (code, err) = run_server(
        tmp.path(),
        &["--plain-listen", &format!("127.0.0.1:{port}")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("port {port} is already in use")),
        "{err}"
    );
    assert!(!err.contains("IPv6 unavailable"), "{err}");
}

/// Lines of pseudo-random hex: gzip cannot shrink them much, so it takes its time.
fn noisy_lines(bytes: usize) -> Vec<u8> {
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let mut out = Vec::with_capacity(bytes + 100);
    while out.len() < bytes {
        for _ in 0..8 {
            out.extend_from_slice(format!("{:016x}", r.next()).as_bytes());
        }
        out.push(b'\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_quick_whatever_the_open_file_size() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(tmp.path(), &[]);
    let store = srv.store().await;
    let u = register(&store).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let data = noisy_lines(96 << 20);
    let enc = Encoder::new(u, SENSOR_KEY.as_bytes(), 3);
    let mut s = TcpStream::connect(srv.plain).await.unwrap();
    let mut wire = Vec::with_capacity(data.len() + data.len() / 100);
    for c in data.chunks(60_000) {
        wire.extend_from_slice(&enc.encode(d4_store::now(), c).unwrap());
    }
    s.write_all(&wire).await.unwrap();
    s.flush().await.unwrap();
    // Wait until the worker's (open, not yet gzipped) file holds everything.
    let want = data.len() as u64;
    let sdir = tmp.path().join(u.simple().to_string());
    let dir = sdir.as_path();
    let written = wait_for(120, || async move {
        let n: u64 = files(dir)
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        (n >= want).then_some(())
    })
    .await;
    assert!(written.is_some(), "the worker did not write the data");
    drop(s);
    let t0 = Instant::now();
    let code = srv.stop();
    let took = t0.elapsed();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    // Nothing lost: the next start gzips what the stop left.
    let srv = ServerProc::start(tmp.path(), &[]);
    let done = wait_for(300, || async move {
        let fs = files(dir);
        let all_gz = !fs.is_empty() && fs.iter().all(|p| p.extension().is_some_and(|e| e == "gz"));
        all_gz.then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "not gzipped after restart: {:?}",
        files(dir)
    );
    assert_eq!(sensor_bytes(tmp.path(), u, 3), data);
    assert_eq!(srv.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_bytes_cuts_files_by_size() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(tmp.path(), &["--rotation-bytes", "10000"]);
    let store = srv.store().await;
    let u = register(&store).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let data = noisy_lines(100_000);
    let mut wire = Vec::new();
    for c in data.chunks(4_000) {
        wire.extend_from_slice(&frame(u, 3, c));
    }
    send_parts(srv.plain, &[wire]).await;
    assert_eq!(srv.stop(), Some(0));
    let fs = files(&tmp.path().join(u.simple().to_string()));
    assert!(fs.len() >= 9, "{} files: {fs:?}", fs.len());
    // Every file ends with a whole line; together they hold every line once (files of
    // the same second are named -1, -2...: their names do not sort in time order).
    let mut got: Vec<Vec<u8>> = Vec::new();
    for f in &fs {
        let c = content(f).unwrap();
        assert!(c.ends_with(b"\n"), "{f:?} cut inside a line");
        got.extend(
            c.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    let mut want: Vec<Vec<u8>> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// A redis-server on a given loopback port (so it can come back on the same one).
fn redis_on(port: u16) -> std::process::Child {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install -y redis-server)");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_store_writes_are_logged_and_counted() {
    let port = d4_testkit::free_port();
    let mut redis = redis_on(port);
    let url = format!("redis://127.0.0.1:{port}/0");
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(
        tmp.path(),
        &["--redis", url.as_str(), "--web-plain", "--metrics-public"],
    );
    let sr = &srv;
    let web = wait_for(10, || async move {
        sr.log_text()
            .lines()
            .find_map(|l| l.split("web UI listening").nth(1).map(str::to_string))
    })
    .await;
    let addr = web
        .and_then(|w| {
            w.split_whitespace()
                .find_map(|p| p.strip_prefix("addr=").map(str::to_string))
        })
        .expect("web address in the log");
    let store = srv.store().await;
    let u = register(&store).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(srv.plain).await.unwrap();
    s.write_all(&frame(u, 3, b"hello\n")).await.unwrap();
    s.flush().await.unwrap();
    let st = &store;
    let up = wait_for(10, || async move {
        (!st.list_leases(d4_store::now()).await.ok()?.is_empty()).then_some(())
    })
    .await;
    assert!(up.is_some());
    let before = http_get(&addr, "/metrics").await;
    assert!(
        before.contains("d4_store_failures_total{op=\"release-session\"} 0"),
        "{before}"
    );
    // The store goes away, then the session ends: its release fails.
    redis.kill().unwrap();
    redis.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(s);
    let logged = wait_for(15, || async move {
        sr.log_text()
            .contains("could not release the session in the store")
            .then_some(())
    })
    .await;
    assert!(logged.is_some(), "{}", srv.log_text());
    // Back on the same port: /metrics (which reads the store too) shows the count.
    let mut redis = redis_on(port);
    let a = addr.as_str();
    let counted = wait_for(15, || async move {
        let m = http_get(a, "/metrics").await;
        m.contains("d4_store_failures_total{op=\"release-session\"} 1")
            .then_some(())
    })
    .await;
    assert!(counted.is_some(), "{}", http_get(&addr, "/metrics").await);
    srv.crash();
    let _ = redis.kill();
    let _ = redis.wait();
}

/// A plain HTTP/1.0 GET on loopback (no client library needed for one request).
async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

/// A stop closes a sending sensor's connection for writing and reads on until the sensor
/// closes it: a sensor (or a forwarding server) that stops writing when it sees the close
/// loses nothing it wrote before, and the server's files hold exactly that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_reads_what_a_sensor_wrote_until_it_sees_the_close() {
    use tokio::io::AsyncReadExt;
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(tmp.path(), &[]);
    let store = srv.store().await;
    let u = register(&store).await;
    drop(store);
    let (mut rd, mut wr) = TcpStream::connect(srv.plain).await.unwrap().into_split();
    let writer = tokio::spawn(async move {
        let enc = Encoder::new(u, SENSOR_KEY.as_bytes(), 3);
        let mut sent = 0usize;
        let mut buf = [0u8; 64];
        loop {
            // a frame of ten lines every 2 ms, until the server closes its side
            tokio::select! {
                r = rd.read(&mut buf) => {
                    assert!(matches!(r, Ok(0)), "the server closes its side cleanly: {r:?}");
                    break;
                }
                _ = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
            let lines: String = (sent..sent + 10).map(|i| format!("line {i}\n")).collect();
            if wr
                .write_all(&enc.encode(d4_store::now(), lines.as_bytes()).unwrap())
                .await
                .is_err()
            {
                break;
            }
            sent += 10;
        }
        sent
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let t0 = Instant::now();
    let code = tokio::task::spawn_blocking(move || srv.stop())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let sent = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the writer saw the close")
        .unwrap();
    assert!(sent > 0);
    let srv = ServerProc::start(tmp.path(), &[]);
    let want: Vec<String> = (0..sent).map(|i| format!("line {i}")).collect();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let got: Vec<String> = String::from_utf8_lossy(&sensor_bytes(&srv.dir, u, 3))
            .lines()
            .map(str::to_string)
            .collect();
        if got == want {
            break;
        }
        assert!(
            Instant::now() < end,
            "the files hold {} of the {sent} lines written before the close (last {:?})",
            got.len(),
            got.last()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(srv.stop(), Some(0));
}
