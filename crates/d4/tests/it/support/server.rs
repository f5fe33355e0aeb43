//! Shared support of the `server_*` integration tests: start the real `d4 server` on
//! loopback, reach its store through the Unix socket, stream over TLS or plain TCP.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use d4_store::{RemoteStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

pub const KEY: &[u8] = b"private key to change";

/// Removes the caller's `D4_*` variables (`D4_SHARED_DIR`, the test vectors' folder,
/// aside) and colours: a test's `d4` sees only the settings the test gives it.
pub fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("D4_") && k != "D4_SHARED_DIR" {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1");
}

/// The command line every test server shares: `d4 server` on `dir` with the given TLS,
/// plain-TCP and web listeners (`""`: none), a clean environment, stdout discarded and
/// stderr piped.
pub fn server_args(cmd: &mut Command, dir: &Path, tls: &str, plain: &str, web: &str) {
    cmd.arg("server")
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", tls, "--plain-listen", plain])
        .args(["--web-listen", web])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    clean_env(cmd);
}

pub struct ServerProc {
    pub child: Child,
    pub dir: PathBuf,
    pub tls: Option<SocketAddr>,
    pub plain: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ServerProc {
    /// Starts `d4 server` on `dir` with a TLS and a plain listener on free loopback ports.
    pub fn start(dir: &Path, extra: &[&str]) -> ServerProc {
        ServerProc::start_at(dir, "127.0.0.1:0", "127.0.0.1:0", extra, &[])
    }

    /// [`ServerProc::start`] on given listen addresses, with extra environment variables.
    pub fn start_at(
        dir: &Path,
        tls: &str,
        plain: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> ServerProc {
        ServerProc::start_via(
            Command::new(env!("CARGO_BIN_EXE_d4")),
            dir,
            tls,
            plain,
            extra,
            envs,
        )
    }

    /// [`ServerProc::start`] through `sh -c 'umask <umask>; exec d4 server ...'`.
    pub fn start_umask(dir: &Path, umask: &str, extra: &[&str]) -> ServerProc {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_d4"));
        ServerProc::start_via(sh, dir, "127.0.0.1:0", "127.0.0.1:0", extra, &[])
    }

    fn start_via(
        mut cmd: Command,
        dir: &Path,
        tls: &str,
        plain: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> ServerProc {
        server_args(&mut cmd, dir, tls, plain, "127.0.0.1:0");
        cmd.args(["--stats-flush-ms", "100"])
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied());
        let mut child = cmd.spawn().expect("spawning d4 server");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("d4-server-ready") {
                    let _ = tx.send(line.clone());
                }
                l2.lock().unwrap().push(line);
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("server did not start: {:?}", log.lock().unwrap()));
        let mut tls = None;
        let mut plain = None;
        for part in ready.split_whitespace() {
            if let Some(v) = part.strip_prefix("tls=") {
                tls = v.parse().ok();
            }
            if let Some(v) = part.strip_prefix("plain=") {
                plain = v.split(',').next().and_then(|s| s.parse().ok());
            }
        }
        ServerProc {
            child,
            dir: dir.to_path_buf(),
            tls,
            plain: plain.expect("plain listener address"),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait (bounded) for a clean exit; returns the exit status code.
    pub fn stop(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("server did not stop within 60 s");
    }

    /// Waits (bounded) for the process to end by itself (a test crash hook).
    pub fn wait_died(mut self, secs: u64) -> std::process::ExitStatus {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the server did not die within {secs} s");
    }

    /// kill -9.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn rss_kb(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        let sock = d4_store::socket_path(&self.dir);
        Arc::new(RemoteStore::connect(&sock).await.expect("store socket"))
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- server log ----\n{}", self.log_text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS connector that accepts the server's self-signed certificate (like the reference
/// clients without a CA file).
pub fn tls_connector() -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(d4_client::dest::NoChainVerifier::any(provider)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

pub type TlsStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

pub async fn connect_tls(addr: SocketAddr) -> TlsStream {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tls_connector()
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

/// A raw HTTP/1.1 response split into (status, head, body).
pub fn parse_response(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

/// An HTTP/1.1 request to `localhost` (Connection: close) with extra headers and a body.
pub fn http_request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req
}

/// One plain-HTTP request (Connection: close) with extra headers and a body, answered
/// within 20 s: (status, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = http_request(method, path, headers, body);
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let (status, _, body) = parse_response(&out);
        (status, body)
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("HTTP request timed out")
}

/// A tiny deterministic PRNG (xorshift) for chunk sizes.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Writes `bytes` in random chunks (1..=max), flushing each.
pub async fn write_chunked<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    rng: &mut Rng,
    max: u64,
) -> std::io::Result<()> {
    let mut i = 0;
    while i < bytes.len() {
        let n = (1 + rng.below(max) as usize).min(bytes.len() - i);
        w.write_all(&bytes[i..i + n]).await?;
        w.flush().await?;
        i += n;
    }
    Ok(())
}

/// Waits until `f` returns Some, polling every 50 ms, at most `secs`.
pub async fn wait_for<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// The last error message recorded for a sensor, once it contains `needle`.
pub async fn wait_error(store: &Arc<dyn Store>, uuid: Uuid, needle: &str) -> String {
    let r = wait_for(10, || {
        let store = store.clone();
        async move {
            let s = store.get_sensor(uuid).await.ok()??;
            let e = s.last_error?;
            e.message.contains(needle).then_some(e.message)
        }
    })
    .await;
    r.unwrap_or_else(|| panic!("no last error containing {needle:?} for {uuid}"))
}

/// Registers and approves a new sensor (random v4 UUID) with its own HMAC `key`.
pub async fn register_sensor(store: &Arc<dyn Store>, key: &str, description: &str) -> Uuid {
    let uuid = Uuid::new_v4();
    store
        .register_sensor(d4_store::SensorRegistration {
            uuid,
            hmac_key: Some(key.into()),
            mail: None,
            third_party: false,
            description: Some(description.into()),
            approve: true,
        })
        .await
        .unwrap();
    uuid
}

/// Creates an analyzer queue of `kind` for every sensor and returns its configuration.
pub async fn create_queue(
    store: &Arc<dyn Store>,
    kind: d4_store::QueueKind,
    description: &str,
    max_size: u64,
) -> d4_store::QueueConfig {
    let q = d4_store::QueueConfig {
        uuid: Uuid::new_v4(),
        kind,
        description: description.into(),
        max_size,
        sensors: None,
        groups: Vec::new(),
    };
    store
        .create_queue(q.clone(), d4_store::now())
        .await
        .unwrap();
    q
}

/// Every file under `dir` (recursive), sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// File content, gunzipped when the name ends in .gz; None when it vanished meanwhile.
pub fn content(p: &Path) -> Option<Vec<u8>> {
    let raw = std::fs::read(p).ok()?;
    if p.extension().is_some_and(|e| e == "gz") {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .ok()?;
        Some(out)
    } else {
        Some(raw)
    }
}

fn sensor_bytes_once(dir: &Path, uuid: Uuid, d4_type: u8) -> Option<Vec<u8>> {
    let root = dir
        .join(uuid.simple().to_string())
        .join(d4_type.to_string());
    let all = files(&root);
    let names: std::collections::HashSet<String> = all
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    // In the order the files were opened: `<sensor>-<YYYY-MM-DD-HHMMSS>[-N]<suffix>`,
    // where a file opened in the same second as another takes the next `-N` (which
    // sorts before the plain name).
    let mut all = all;
    all.sort_by_key(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (stem, rest) = name.split_at(name.len().min(50));
        let n: u32 = rest
            .strip_prefix('-')
            .map(|r| {
                r.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        (p.parent().map(Path::to_path_buf), stem.to_owned(), n)
    });
    let mut out = Vec::new();
    for p in &all {
        let s = p.to_string_lossy();
        if s.ends_with(".tmp") {
            continue;
        }
        // while a file is being compressed both X and X.gz exist: read X only
        if let Some(orig) = s.strip_suffix(".gz") {
            if names.contains(orig) {
                continue;
            }
        }
        out.extend(content(p)?);
    }
    Some(out)
}

/// The concatenated content of a sensor's files of one type (sorted by name), read
/// until two reads agree (files may be rotated and compressed meanwhile).
pub fn sensor_bytes(dir: &Path, uuid: Uuid, d4_type: u8) -> Vec<u8> {
    let mut last: Option<Vec<u8>> = None;
    for _ in 0..200 {
        if let Some(b) = sensor_bytes_once(dir, uuid, d4_type) {
            if last.as_ref() == Some(&b) {
                return b;
            }
            last = Some(b);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    last.unwrap_or_default()
}

/// Whether the server closed `s` (end of stream or reset) within `secs` seconds.
pub async fn closed_within(s: &mut TcpStream, secs: u64) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(secs), s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// A plain-TCP connection to `addr` that has sent `bytes`.
pub async fn open(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s
}

/// Open file descriptors of process `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The web UI's address from the server's `d4-web-ready SCHEME://ADDR` line in `log`.
pub fn web_addr(log: &str, scheme: &str) -> SocketAddr {
    let prefix = format!("d4-web-ready {scheme}://");
    log.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no web ready line in {log}"))
        .trim()
        .parse()
        .unwrap()
}
