//! `d4 bench server`: throughput of the real collector over TLS on loopback, as a ratio to
//! the plain HMAC-SHA256 throughput of this machine measured in the same run, and the
//! server's memory with many connected sensors.//!
//! `load` is the TLS load generator, `ceiling` the receivers that are not the server (and
//! the plain HMAC baseline), `procfs` the CPU and memory figures read from `/proc`,
//! `report` the measurement schedule and its tables.

mod ceiling;
mod forward;
mod load;
mod procfs;
mod report;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Stream frames into a `d4 server` (started here, on loopback, in a temporary data
    /// dir) over TLS: frames/s and MB/s for 64 B and 16 KiB payloads with 1 and 16
    /// connections, as ratios to plain HMAC-SHA256 throughput; RSS with N sensors.
    Server(ServerBench),
    /// Forwarding throughput (issue #20): two servers A and B on loopback, a rule on A
    /// (types 1 and 8, privacy transforms, TLS pinned to B); per case lines/s or MB/s
    /// arriving at B as a ratio to A's ingest without forwarding, same run.
    Forward(forward::ForwardBench),
}

#[derive(Debug, Args)]
pub struct ServerBench {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3)]
    pub secs: u64,
    /// Connected sensors for the memory figure.
    #[arg(long, default_value_t = 1000)]
    pub sensors: usize,
    /// Connection counts to measure (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub conns: Vec<usize>,
    /// Payload sizes to measure (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "64,16384")]
    pub sizes: Vec<usize>,
    /// Keep the journal fsync on (the default of the server).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub fsync: bool,
    /// Write the server's journal with O_DIRECT (the default of the server).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub journal_direct: bool,
    /// The `d4` binary whose server is measured (default: this one), e.g. an older build
    /// for a before/after comparison with the same client and method.
    #[arg(long, value_name = "PATH")]
    pub server_exe: Option<std::path::PathBuf>,
    /// Also measure every case with the Redis store at this URL (redis://HOST:PORT/DB),
    /// reported as a ratio to the embedded store in the same run.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Also measure, for every case, the same client against minimal receivers that are
    /// not the server: one that decrypts, decodes and checks the HMAC of every frame and
    /// stores nothing, and two that also append every payload to a file once (buffered,
    /// or O_DIRECT; no fsync). They show what this machine allows at all, and what
    /// writing the bytes once costs here.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub ceiling: bool,
    /// Instead of the tables, print one JSON object per line: one per measured case
    /// (payload size and connection count, `"case": "stream"`) with every figure of its
    /// table rows, then one for the memory figure (`"case": "memory"`). Keys:
    /// docs/server.md "Benchmark".
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        BenchWhat::Server(b) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(report::server_bench(b))?;
            Ok(ExitCode::SUCCESS)
        }
        BenchWhat::Forward(f) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(forward::forward_bench(f))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

const KEY: &[u8] = b"bench key";

struct Child {
    child: std::process::Child,
    tls: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(b: &ServerBench) -> anyhow::Result<Child> {
    start_server_with(b, None)
}

fn start_server_with(b: &ServerBench, redis: Option<&str>) -> anyhow::Result<Child> {
    let fsync = b.fsync;
    let dir = tempfile::tempdir()?;
    let exe = match &b.server_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let mut child = Command::new(exe)
        .args([
            "server",
            "--mode",
            "shared-secret",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        // the web UI on an OS-chosen port: two benches (or a bench and a server) at once
        // must not fight over its default port
        .args(["--web-listen", "127.0.0.1:0"])
        .args(["--default-key", "bench key", "--journal-fsync"])
        .arg(fsync.to_string())
        .args(if b.journal_direct {
            vec![]
        } else {
            vec!["--journal-direct", "false"]
        })
        .args(redis.map(|u| vec!["--redis", u]).unwrap_or_default())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting d4 server")?;
    let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("d4-server-ready") {
                let _ = tx.send(line);
            }
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(60))
        .context("d4 server did not start")?;
    let tls = ready
        .split_whitespace()
        .find_map(|p| p.strip_prefix("tls="))
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow!("no TLS address in {ready:?}"))?;
    Ok(Child { child, tls, dir })
}
