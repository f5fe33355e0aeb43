//! A stand-in collector in Python (`tls_peer.py`: the standard library's `ssl`, so OpenSSL
//! with its defaults — TLS 1.3 and session tickets), for the behaviours that depend on how
//! a real OpenSSL server reads: one TLS record per read, reads as slow as we like.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct PyPeer {
    pub port: u16,
    /// The peer's self-signed certificate, for `--ca`.
    pub ca: PathBuf,
    child: Child,
    /// Closing it tells the peer to exit.
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl PyPeer {
    /// Starts `tls_peer.py MODE cert key CONNS ARGS...` on 127.0.0.1 (port chosen by the OS).
    pub fn start(mode: &str, conns: usize, args: &[&str]) -> PyPeer {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let ca = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&ca, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/client/tls_peer.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(mode)
            .arg(&ca)
            .arg(&key)
            .arg(conns.to_string())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 is needed for the stand-in TLS collector");
        let stdin = child.stdin.take();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the Python TLS peer did not start");
        let port = first
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the peer: {first}"));
        PyPeer {
            port,
            ca,
            child,
            stdin,
            lines,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The report of the next connection served.
    pub fn next_report(&self, timeout: Duration) -> serde_json::Value {
        let l = self
            .lines
            .recv_timeout(timeout)
            .expect("no report from the Python TLS peer in time");
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("bad report {l:?}: {e}"))
    }
}

impl PyPeer {
    /// Tells the peer to stop (closes its stdin), then returns the report it prints.
    pub fn stop_and_report(&mut self, timeout: Duration) -> serde_json::Value {
        drop(self.stdin.take());
        self.next_report(timeout)
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
