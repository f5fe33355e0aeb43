//! Test support for the `d4 client` integration tests: a D4 collector stand-in on loopback
//! (TLS with a self-signed rcgen certificate, or plain TCP) that decodes every connection with
//! `d4_proto::Decoder`, checks every HMAC and can go away and come back (graceful outage:
//! it stops listening, closes its side of live connections and reads them to their end).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use d4_proto::{Decoder, Frame, HmacKey};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

pub mod tls_peer;

pub const KEY: &str = "private key to change";
pub const UUID: &str = "3b9cd0e3-a4c2-4d7a-9d8a-0d6c9c2f1a11";

/// What the server saw.
#[derive(Default, Debug)]
pub struct Seen {
    /// Frames of each connection, in order.
    pub conns: Vec<Vec<Frame>>,
    pub bad_hmac: usize,
    /// Connections that ended inside a frame (expected after a cut; never at a clean end).
    pub torn: usize,
    pub decode_errors: usize,
}

impl Seen {
    pub fn frames(&self) -> Vec<Frame> {
        self.conns.iter().flatten().cloned().collect()
    }
    /// Concatenated payloads of the data frames (types other than 2).
    pub fn data(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for f in self.conns.iter().flatten() {
            if f.header.d4_type != 2 {
                out.extend_from_slice(&f.payload);
            }
        }
        out
    }
    pub fn data_len(&self) -> usize {
        self.conns
            .iter()
            .flatten()
            .filter(|f| f.header.d4_type != 2)
            .map(|f| f.payload.len())
            .sum()
    }
}

pub struct TestServer {
    pub port: u16,
    pub ca: PathBuf,
    pub seen: Arc<Mutex<Seen>>,
    up: watch::Sender<bool>,
    kill: watch::Sender<u64>,
    rt: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

fn tls_acceptor(dir: &Path) -> (tokio_rustls::TlsAcceptor, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
    ])
    .unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(cfg)), ca)
}

impl TestServer {
    /// Starts listening on 127.0.0.1 (TLS unless `plain`).
    pub fn start(plain: bool) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let (acceptor, ca) = tls_acceptor(dir.path());
        let acceptor = if plain { None } else { Some(acceptor) };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (up_tx, up_rx) = watch::channel(true);
        let (kill_tx, kill_rx) = watch::channel(0u64);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = std_l.local_addr().unwrap().port();
        drop(std_l);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let seen2 = seen.clone();
        rt.spawn(async move {
            let mut up_rx = up_rx;
            loop {
                // wait until up
                while !*up_rx.borrow() {
                    if up_rx.changed().await.is_err() {
                        return;
                    }
                }
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                sock.set_reuseaddr(true).unwrap();
                let deadline = Instant::now() + Duration::from_secs(10);
                while let Err(e) = sock.bind(addr) {
                    assert!(Instant::now() < deadline, "cannot rebind {addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let listener = sock.listen(64).unwrap();
                loop {
                    tokio::select! {
                        r = listener.accept() => {
                            let Ok((s, _)) = r else { continue };
                            let seen = seen2.clone();
                            let up = up_rx.clone();
                            let kill = kill_rx.clone();
                            let acc = acceptor.clone();
                            tokio::spawn(async move {
                                match acc {
                                    Some(a) => {
                                        if let Ok(t) = a.accept(s).await {
                                            serve(t, seen, up, kill).await;
                                        }
                                    }
                                    None => serve(s, seen, up, kill).await,
                                }
                            });
                        }
                        r = up_rx.changed() => {
                            if r.is_err() { return; }
                            if !*up_rx.borrow() { break; }
                        }
                    }
                }
                drop(listener);
            }
        });
        TestServer {
            port,
            ca,
            seen,
            up: up_tx,
            kill: kill_tx,
            rt: Some(rt),
            _dir: dir,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Outage: stop listening and close live connections (reading them to their end).
    pub fn down(&self) {
        self.up.send_replace(false);
    }

    /// Abrupt failure: live connections are dropped at once, unread data and all (the
    /// peer gets a reset). The listener stays up.
    pub fn kill_connections(&self) {
        self.kill.send_modify(|v| *v += 1);
    }

    pub fn up(&self) {
        self.up.send_replace(true);
    }

    /// Waits until `pred(seen)` holds or the timeout passes; returns whether it held.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.seen.lock().unwrap()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        pred(&self.seen.lock().unwrap())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    seen: Arc<Mutex<Seen>>,
    mut up: watch::Receiver<bool>,
    mut kill: watch::Receiver<u64>,
) {
    kill.borrow_and_update(); // only kills requested from now on
    let key = HmacKey::new(KEY.as_bytes());
    let idx = {
        let mut g = seen.lock().unwrap();
        g.conns.push(Vec::new());
        g.conns.len() - 1
    };
    let (mut r, mut w) = tokio::io::split(s);
    let mut dec = Decoder::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut closing = false;
    let mut deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    loop {
        let n = tokio::select! {
            n = r.read(&mut buf) => n,
            _ = up.changed(), if !closing => {
                if !*up.borrow() {
                    // graceful outage: our side closes, we keep reading until the client's end
                    closing = true;
                    let _ = w.shutdown().await;
                    deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                }
                continue;
            }
            _ = tokio::time::sleep_until(deadline) => break,
            _ = kill.changed() => return,
        };
        let n = match n {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut input = Bytes::copy_from_slice(&buf[..n]);
        while !input.is_empty() {
            match dec.decode(&mut input) {
                Ok(Some(f)) => {
                    let mut g = seen.lock().unwrap();
                    if !key.verify(&f) {
                        g.bad_hmac += 1;
                    }
                    g.conns[idx].push(f);
                }
                Ok(None) => {}
                Err(_) => {
                    seen.lock().unwrap().decode_errors += 1;
                    return;
                }
            }
        }
    }
    if dec.finish().is_err() {
        seen.lock().unwrap().torn += 1;
    }
}

pub fn d4() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_d4"));
    c.env_remove("RUST_LOG");
    c
}

/// `d4 client` against the test server, with the common flags.
pub fn client(server: &TestServer, spool: &Path) -> Command {
    let mut c = d4();
    c.args(["client", "--uuid", UUID, "--key", KEY, "--destination"])
        .arg(server.addr())
        .arg("--ca")
        .arg(&server.ca)
        .arg("--spool-dir")
        .arg(spool)
        .args([
            "--backoff-max",
            "1",
            "--connect-timeout",
            "2",
            "--poll-ms",
            "50",
        ]);
    c
}

/// Waits for the child with a timeout; kills it (and panics) past it.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("d4 client did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGTERM (via the `kill` command: no unsafe, no extra crate).
pub fn sigterm(child: &Child) {
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Spawns the client with piped stdin and returns it.
pub fn spawn_stdin(mut cmd: Command) -> Child {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd.spawn().unwrap()
}

pub fn write_all_then_close(child: &mut Child, bytes: &[u8]) {
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(bytes).unwrap();
    drop(stdin);
}
