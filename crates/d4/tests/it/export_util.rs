//! What the `d4 export` tests share: a queue filled through the store API (embedded
//! backend, as `pdns_queue.rs` does), the command, line receivers on loopback that keep
//! what each connection delivered, and the checks on it (every entry, in order on each
//! connection, duplicates only where allowed).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use d4_store::{QueueConfig, QueueEntry, QueueKind, StoreConfig};

pub const D4: &str = env!("CARGO_BIN_EXE_d4");

/// The `i`-th test entry: one line, its index readable back with [`index`].
pub fn entry(i: usize) -> String {
    format!("entry-{i:06} 192.0.2.{}||example-{i}.org||A", i % 250)
}

/// The index of a line made by [`entry`].
pub fn index(line: &str) -> usize {
    line.strip_prefix("entry-")
        .and_then(|r| r.get(..6))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a test entry: {line:?}"))
}

/// A queue of type 3 in a fresh data dir, filled with `entries`.
pub fn queue_with(entries: Vec<Vec<u8>>) -> (tempfile::TempDir, uuid::Uuid) {
    let dir = tempfile::tempdir().unwrap();
    let queue = uuid::Uuid::new_v4();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = d4_store::open(&StoreConfig {
            embedded_only: true,
            ..StoreConfig::new(dir.path())
        })
        .await
        .unwrap();
        store
            .create_queue(
                QueueConfig {
                    uuid: queue,
                    kind: QueueKind::Type(3),
                    description: "export test".into(),
                    max_size: 1_000_000,
                    sensors: None,
                    groups: Vec::new(),
                },
                1,
            )
            .await
            .unwrap();
        let n = entries.len() as u64;
        for chunk in entries.chunks(5_000) {
            let es = chunk.iter().map(|e| QueueEntry::new(e.clone())).collect();
            store.push_entries(vec![queue], es, 2).await.unwrap();
        }
        assert_eq!(store.queue_len(queue).await.unwrap(), n);
    });
    (dir, queue)
}

/// A queue holding `entry(0..n)`.
pub fn queue_of(n: usize) -> (tempfile::TempDir, uuid::Uuid) {
    queue_with((0..n).map(|i| entry(i).into_bytes()).collect())
}

/// Entries left in the queue (the exporter must have ended: the embedded file has one owner).
pub fn queue_len(dir: &Path, queue: uuid::Uuid) -> u64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = d4_store::open(&StoreConfig::new(dir)).await.unwrap();
        store.queue_len(queue).await.unwrap()
    })
}

/// What is left for the consumer `d4-export` (entries queued, and entries leased to it
/// and not acknowledged, which `queue_len` does not count): a run to stdout that empties
/// the queue, its lines.
pub fn leftover(dir: &Path, queue: uuid::Uuid) -> Vec<String> {
    let (out, _) = run_ok(export(dir, queue, "stdout", &["--until-empty"]), 60);
    out.lines().map(str::to_owned).collect()
}

/// `d4 export QUEUE --to URL` on the queue of `dir`, output piped.
pub fn export(dir: &Path, queue: uuid::Uuid, to: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(D4);
    c.arg("export")
        .arg(queue.to_string())
        .args(["--to", to, "--data-dir"])
        .arg(dir)
        .args(["--max-backoff", "1"])
        .args(extra)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs the command to its end (at most `secs`), asserting success: (stdout, stderr).
pub fn run_ok(mut c: Command, secs: u64) -> (String, String) {
    let mut child = c.spawn().unwrap();
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut out = String::new();
            let mut err = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert!(st.success(), "d4 export failed: {st}\n{err}");
            return (out, err);
        }
        if Instant::now() > end {
            child.kill().unwrap();
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("d4 export still running after {secs} s:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The JSON summary `d4 export` prints on stdout.
pub fn summary(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout:?}"))
}

/// What a receiver got: one list of records per connection (or per socket lifetime).
#[derive(Clone, Default)]
pub struct Got(pub Arc<Mutex<Vec<Vec<String>>>>);

impl Got {
    pub fn open(&self) -> usize {
        let mut g = self.0.lock().unwrap();
        g.push(Vec::new());
        g.len() - 1
    }
    pub fn push(&self, conn: usize, rec: String) {
        self.0.lock().unwrap()[conn].push(rec);
    }
    pub fn snapshot(&self) -> Vec<Vec<String>> {
        self.0.lock().unwrap().clone()
    }
    pub fn total(&self) -> usize {
        self.0.lock().unwrap().iter().map(Vec::len).sum()
    }
    /// How many distinct test entries arrived.
    pub fn distinct(&self) -> usize {
        let mut all: Vec<usize> = self.snapshot().iter().flatten().map(|l| index(l)).collect();
        all.sort_unstable();
        all.dedup();
        all.len()
    }
    /// Waits until `n` distinct entries arrived (panics after `secs`).
    pub fn wait_distinct(&self, n: usize, secs: u64) {
        let end = Instant::now() + Duration::from_secs(secs);
        while self.distinct() < n {
            assert!(
                Instant::now() < end,
                "{} of {n} entries after {secs} s",
                self.distinct()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Each connection got entries in increasing order, none twice; together all of
/// `0..n`; a connection that starts again below where the previous one ended repeats at
/// most `max_dup` entries (the unacknowledged batch). Returns the number of repeats.
pub fn check_delivery(conns: &[Vec<String>], n: usize, max_dup: usize) -> usize {
    let mut seen = vec![0usize; n];
    let mut last_end: Option<usize> = None;
    for (c, recs) in conns.iter().enumerate() {
        let idx: Vec<usize> = recs.iter().map(|l| index(l)).collect();
        for w in idx.windows(2) {
            assert!(w[0] < w[1], "connection {c}: {} then {}", w[0], w[1]);
        }
        if let (Some(first), Some(prev)) = (idx.first(), last_end) {
            assert!(
                prev < first + max_dup,
                "connection {c} starts at {first}, the previous one ended at {prev}: more than {max_dup} repeats"
            );
        }
        if let Some(l) = idx.last() {
            last_end = Some(*l);
        }
        for i in idx {
            seen[i] += 1;
        }
    }
    let missing: Vec<usize> = (0..n).filter(|i| seen[*i] == 0).collect();
    assert!(missing.is_empty(), "missing entries: {missing:?}");
    seen.iter().map(|s| s - 1).sum()
}

/// A stream the receiver can switch to non-blocking, to take what is already there
/// before it goes away.
pub trait Stream: Read {
    fn nonblocking(&self);
}
impl Stream for std::net::TcpStream {
    fn nonblocking(&self) {
        let _ = self.set_nonblocking(true);
    }
}
impl Stream for std::os::unix::net::UnixStream {
    fn nonblocking(&self) {
        let _ = self.set_nonblocking(true);
    }
}
impl Stream for rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream> {
    fn nonblocking(&self) {
        let _ = self.sock.set_nonblocking(true);
    }
}

/// Reads lines from a stream into `got` (a new connection record) until EOF, or until at
/// least `limit` lines: then it takes every complete line already readable and returns,
/// dropping the stream (the receiver goes away; what it read counts as received).
pub fn read_lines<R: Stream>(mut r: R, got: &Got, limit: Option<usize>) {
    let conn = got.open();
    let mut n = 0;
    let mut pending = Vec::new();
    let mut buf = [0u8; 8192];
    let mut draining = false;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return,
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        pending.extend_from_slice(&buf[..k]);
        while let Some(p) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=p).collect();
            got.push(conn, String::from_utf8_lossy(&line[..p]).into_owned());
            n += 1;
        }
        if !draining && limit.is_some_and(|l| n >= l) {
            r.nonblocking();
            draining = true;
        }
    }
}
