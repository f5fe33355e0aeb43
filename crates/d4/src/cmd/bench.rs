//! `d4 bench server`: throughput of the real collector over TLS on loopback, as a ratio to
//! the plain HMAC-SHA256 throughput of this machine measured in the same run, and the
//! server's memory with many connected sensors.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

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
    /// Also measure every case with the Redis store at this URL (redis://HOST:PORT/DB),
    /// reported as a ratio to the embedded store in the same run.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        BenchWhat::Server(b) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(server_bench(b))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

const KEY: &[u8] = b"bench key";

/// Plain HMAC-SHA256 throughput over header + payload: (frames/s, MB/s).
fn hmac_ceiling(size: usize, secs: f64) -> (f64, f64) {
    let key = d4_proto::HmacKey::new(KEY);
    let enc = d4_proto::Encoder::new(Uuid::new_v4(), KEY, 7);
    let payload = vec![0x5au8; size];
    let header = match enc.header(1, &payload) {
        Ok(h) => h,
        Err(_) => return (0.0, 0.0),
    };
    let t = Instant::now();
    let mut n = 0u64;
    let mut acc = 0u8;
    while t.elapsed().as_secs_f64() < secs {
        for _ in 0..64 {
            acc ^= key.sign_raw(&header, &payload)[0];
            n += 1;
        }
    }
    std::hint::black_box(acc);
    let el = t.elapsed().as_secs_f64();
    let fps = n as f64 / el;
    (fps, fps * (size + 62) as f64 / 1e6)
}

struct Child {
    child: std::process::Child,
    tls: SocketAddr,
    _dir: tempfile::TempDir,
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

fn start_server(fsync: bool) -> anyhow::Result<Child> {
    start_server_with(fsync, None)
}

fn start_server_with(fsync: bool, redis: Option<&str>) -> anyhow::Result<Child> {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
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
        .args(["--default-key", "bench key", "--journal-fsync"])
        .arg(fsync.to_string())
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
    Ok(Child {
        child,
        tls,
        _dir: dir,
    })
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn connector() -> anyhow::Result<tokio_rustls::TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(d4_client::dest::NoVerify(provider)))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(addr: SocketAddr, c: &tokio_rustls::TlsConnector) -> anyhow::Result<Tls> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(
        c.connect(rustls::pki_types::ServerName::try_from("localhost")?, tcp)
            .await?,
    )
}

/// N connections stream `size`-byte frames for `secs`; returns (frames, seconds) measured
/// until the server has read everything and closed each connection.
async fn stream(
    addr: SocketAddr,
    conns: usize,
    size: usize,
    secs: u64,
) -> anyhow::Result<(u64, f64)> {
    let c = connector()?;
    let total = Arc::new(AtomicU64::new(0));
    let mut streams = Vec::new();
    for _ in 0..conns {
        streams.push(connect(addr, &c).await?);
    }
    let start = Instant::now();
    let stop_at = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for mut s in streams {
        let total = total.clone();
        tasks.push(tokio::spawn(async move {
            let enc = d4_proto::Encoder::new(Uuid::new_v4(), KEY, 7);
            let payload = vec![0xa5u8; size];
            let per_batch = (256 * 1024 / (size + 62)).max(1);
            let mut batch = Vec::new();
            for _ in 0..per_batch {
                let _ = enc.encode_into(1_700_000_000, &payload, &mut batch);
            }
            let mut n = 0u64;
            while Instant::now() < stop_at {
                if s.write_all(&batch).await.is_err() {
                    break;
                }
                n += per_batch as u64;
            }
            let _ = s.shutdown().await;
            let mut b = [0u8; 16];
            let _ = tokio::time::timeout(Duration::from_secs(60), s.read(&mut b)).await;
            total.fetch_add(n, Ordering::Relaxed);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok((total.load(Ordering::Relaxed), start.elapsed().as_secs_f64()))
}

async fn server_bench(b: ServerBench) -> anyhow::Result<()> {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("warning: cannot raise the open files limit: {e}");
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("d4 bench server: {cpus} CPUs, load average {}", load.trim());
    println!("journal fsync: {}", b.fsync);
    println!(
        "{:>8} {:>6} {:>12} {:>10} {:>14} {:>10} {:>9}",
        "payload", "conns", "frames/s", "MB/s", "HMAC frames/s", "HMAC MB/s", "ratio"
    );
    for &size in &b.sizes {
        for &conns in &b.conns {
            let srv = start_server(b.fsync)?;
            let (hfps, hmbs) = tokio::task::spawn_blocking(move || hmac_ceiling(size, 1.0)).await?;
            let (n, el) = stream(srv.tls, conns, size, b.secs).await?;
            let fps = n as f64 / el;
            let mbs = fps * (size + 62) as f64 / 1e6;
            println!(
                "{:>8} {:>6} {:>12.0} {:>10.1} {:>14.0} {:>10.1} {:>9.2}",
                size,
                conns,
                fps,
                mbs,
                hfps,
                hmbs,
                fps / hfps
            );
            drop(srv);
            if let Some(url) = b.redis.as_deref() {
                let srv = start_server_with(b.fsync, Some(url))?;
                let (n, el) = stream(srv.tls, conns, size, b.secs).await?;
                let rfps = n as f64 / el;
                println!(
                    "{:>8} {:>6} {:>12.0} {:>10.1}   redis store: {:.2} of the embedded store",
                    size,
                    conns,
                    rfps,
                    rfps * (size + 62) as f64 / 1e6,
                    rfps / fps
                );
                drop(srv);
            }
        }
    }
    // memory with N connected (authenticated) sensors
    let srv = start_server(b.fsync)?;
    let pid = srv.child.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = rss_kb(pid);
    let c = connector()?;
    let mut held = Vec::new();
    for i in 0..b.sensors {
        let mut s = connect(srv.tls, &c).await?;
        let enc = d4_proto::Encoder::new(Uuid::new_v4(), KEY, 3);
        s.write_all(&enc.encode(1_700_000_000, format!("hello {i}\n").as_bytes())?)
            .await?;
        s.flush().await?;
        held.push(s);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = rss_kb(pid);
    println!(
        "RSS: {} MB idle, {} MB with {} connected sensors (goal < 200 MB)",
        rss0 / 1024,
        rss1 / 1024,
        b.sensors
    );
    drop(held);
    drop(srv);
    Ok(())
}
