//! Test support shared by the crates of d4-rs. Used only as a dev-dependency.
//!
//! * [`shared_dir`] / [`vector`] / [`manifest`]: the protocol test vectors live in
//!   `../shared/vectors` beside the repository (or `$D4_SHARED_DIR`). They are never
//!   copied into the repo; a test that needs them panics with a clear message when they
//!   are missing, it does not skip.
//! * [`RedisServer`]: a real `redis-server` on a free loopback port, for the tests of the
//!   Redis-backed code (`$D4_TEST_REDIS_URL` points at an existing one instead).
//! * [`PostgresServer`]: a real PostgreSQL cluster (Debian's binaries, `initdb` in a temporary
//!   folder, run as the `postgres` user when we are root) on a free loopback port, one
//!   database per test (`$D4_TEST_POSTGRES_URL` points at an existing server instead).
//! * [`free_port`]: a loopback TCP port the OS just handed out; [`http`]: a raw HTTP GET
//!   and a server process started on a free port.
//! * [`python_with`]: a python3 that can import a PyPI package (a venv under `target/` when
//!   the system python lacks it); [`d4core_analyzer`]: a d4-core style analyzer that
//!   `RPOP`s a Redis analyzer queue, to prove existing analyzers work unchanged.
//! * [`tlsgen`]: real TLS handshakes made in memory (rustls, OpenSSL), their expected
//!   JA3/JA3S/JA4 and certificate hashes, and TCP captures (pcap, pcapng) of them.
//!
//! Must never depend on any other crate of d4-rs.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: failing loudly is the point

pub mod http;
pub mod postgres;
pub mod tlsgen;

pub use postgres::{PostgresServer, TestDatabase};

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `shared/` folder that sits beside the repository (`$D4_SHARED_DIR` overrides).
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("D4_SHARED_DIR") {
        return PathBuf::from(dir);
    }
    // crates/d4-testkit -> repo root -> its parent
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("../shared");
    assert!(
        dir.join("vectors/manifest.json").is_file(),
        "the shared test vectors are missing: expected {}/vectors/manifest.json \
         (clone the repository with ../shared beside it, or set D4_SHARED_DIR)",
        dir.display()
    );
    dir
}

/// Path of one vector file under `shared/vectors/`.
pub fn vector(name: &str) -> PathBuf {
    let p = shared_dir().join("vectors").join(name);
    assert!(p.is_file(), "test vector {} is missing", p.display());
    p
}

/// Bytes of one vector file.
pub fn vector_bytes(name: &str) -> Vec<u8> {
    std::fs::read(vector(name)).expect("reading a test vector")
}

/// `shared/vectors/manifest.json`, parsed.
pub fn manifest() -> serde_json::Value {
    let raw = std::fs::read(vector("manifest.json")).expect("reading manifest.json");
    serde_json::from_slice(&raw).expect("manifest.json is not valid JSON")
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// The workspace's target dir (`$CARGO_TARGET_DIR` or `<repo>/target`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// A python3 that can `import module`: the system one when it can, else a venv
/// `target/<venv>` into which the PyPI `package` is installed once. Panics with a clear
/// message when neither works (python3, python3-venv and access to PyPI are needed): the
/// compatibility tests that call this fail, they never skip.
pub fn python_with(module: &str, package: &str, venv: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let imports = |py: &std::path::Path| {
        Command::new(py)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let system = PathBuf::from("python3");
    if imports(&system) {
        return system;
    }
    let venv = target_dir().join(venv);
    let py = venv.join("bin/python3");
    if imports(&py) {
        return py;
    }
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        created,
        "cannot create a Python venv at {} (install python3 and python3-venv)",
        venv.display()
    );
    let installed = Command::new(&py)
        .args(["-m", "pip", "install", "--quiet", package])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        installed && imports(&py),
        "cannot install the PyPI package `{package}` into {} (access to PyPI is needed, \
         or `pip install {package}` for the system python3)",
        venv.display()
    );
    py
}

/// Runs a d4-core style analyzer (PyPI `redis`, as analyzer-d4-passivedns reads its
/// queue): `RPOP analyzer:<qtype>:<queue>` on `url` until the list is empty. Returns the
/// entries popped, oldest first.
pub fn d4core_analyzer(url: &str, qtype: &str, queue: &str) -> Vec<Vec<u8>> {
    let py = python_with("redis", "redis", "py-redis-venv");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/d4_analyzer.py");
    let out = Command::new(py)
        .arg(script)
        .args([url, qtype, queue])
        .output()
        .expect("running the python analyzer");
    assert!(
        out.status.success(),
        "python analyzer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("the analyzer prints hex")
        .lines()
        .map(|l| hex::decode(l).expect("the analyzer prints hex"))
        .collect()
}

/// A real redis-server for one test (or a shared one named by `$D4_TEST_REDIS_URL`).
///
/// A spawned server listens on 127.0.0.1 only, keeps nothing on disk and is killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    url: String,
}

impl RedisServer {
    /// Starts redis-server on a free loopback port, or uses `$D4_TEST_REDIS_URL`.
    /// Panics with a clear message when neither is possible.
    pub fn start() -> RedisServer {
        if let Ok(url) = std::env::var("D4_TEST_REDIS_URL") {
            return RedisServer { child: None, url };
        }
        let bin = std::env::var("D4_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(&bin)
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match child {
                Ok(c) => c,
                Err(e) => panic!(
                    "cannot start `{bin}` ({e}): install it (`apt-get install -y redis-server`; \
                     ./ci.sh does this) or set D4_TEST_REDIS_URL"
                ),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken between free_port and spawn: try another
                }
                if ping(port) {
                    return RedisServer {
                        child: Some(child),
                        url: format!("redis://127.0.0.1:{port}/"),
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not come up on a loopback port");
    }

    /// `redis://127.0.0.1:PORT/` (no database number).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL with a database number: `redis://127.0.0.1:PORT/DB`.
    pub fn url_db(&self, db: u8) -> String {
        format!(
            "{}{db}",
            self.url.trim_end_matches(|c: char| c.is_ascii_digit())
        )
    }

    /// `host:port` of the server.
    pub fn host_port(&self) -> String {
        let rest = self.url.trim_start_matches("redis://");
        rest.split('/').next().unwrap_or(rest).to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Runs one of the d4-core stand-ins of `d4-testkit/python/` (`d4core_ui.py`,
/// `pdns_lookup.py`...) with the PyPI `redis` package, `args` as its arguments and `stdin`
/// as its input. Panics when it fails; returns its stdout.
pub fn d4core_script(script: &str, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let py = python_with("redis", "redis", "py-redis-venv");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let mut child = Command::new(py)
        .arg(path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running a python stand-in");
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.as_bytes())
            .expect("writing to the python stand-in");
    }
    let out = child.wait_with_output().expect("running a python stand-in");
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the stand-ins print UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_is_found() {
        assert!(manifest()["cases"].as_array().is_some());
    }

    #[test]
    fn redis_server_answers() {
        let r = RedisServer::start();
        let hp = r.host_port();
        let port: u16 = hp.rsplit(':').next().unwrap().parse().unwrap();
        assert!(ping(port));
        assert!(r.url_db(3).ends_with("/3"));
    }
}
