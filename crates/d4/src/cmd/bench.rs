//! `d4 bench server`: throughput of the real collector over TLS on loopback, as a ratio to
//! the plain HMAC-SHA256 throughput of this machine measured in the same run, and the
//! server's memory with many connected sensors.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use d4_server::direct::DirectAppender;
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

/// Plain HMAC-SHA256 over header + payload on one thread: (frames/s, MB/s, CPU seconds
/// of that thread per frame). The CPU figure does not depend on what else runs.
fn hmac_ceiling(size: usize, secs: f64) -> (f64, f64, f64) {
    let key = d4_proto::HmacKey::new(KEY);
    let enc = d4_proto::Encoder::new(Uuid::new_v4(), KEY, 7);
    let payload = vec![0x5au8; size];
    let header = match enc.header(1, &payload) {
        Ok(h) => h,
        Err(_) => return (0.0, 0.0, 0.0),
    };
    let cpu0 = stat_cpu("/proc/thread-self/stat").map_or(0.0, |(u, k)| u + k);
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
    let cpu = stat_cpu("/proc/thread-self/stat").map_or(0.0, |(u, k)| u + k) - cpu0;
    let fps = n as f64 / el;
    (fps, fps * (size + 62) as f64 / 1e6, cpu / n.max(1) as f64)
}

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

/// CPU seconds used so far by a process or thread, from its `stat` file: (user, system).
fn stat_cpu(path: &str) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(path).ok()?;
    // fields after the parenthesised command name; utime and stime are 14 and 15
    let rest = s.rsplit_once(')')?.1.to_owned();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let u: u64 = f.get(11)?.parse().ok()?;
    let k: u64 = f.get(12)?.parse().ok()?;
    Some((u as f64 / clock_ticks(), k as f64 / clock_ticks()))
}

/// CPU seconds (user + system) used so far by a process (`self` or a pid).
fn cpu_secs(pid: &str) -> f64 {
    stat_cpu(&format!("/proc/{pid}/stat")).map_or(0.0, |(u, k)| u + k)
}

/// The server's CPU seconds so far, split: (total, system part, network tasks =
/// tokio workers, gzip threads). What is left of the total is the session pipelines
/// (journal, workers) and housekeeping; threads that ended still count in the total.
#[derive(Debug, Clone, Copy, Default)]
struct ServerCpu {
    total: f64,
    sys: f64,
    net: f64,
    gzip: f64,
}

impl std::ops::Sub for ServerCpu {
    type Output = ServerCpu;
    fn sub(self, o: ServerCpu) -> ServerCpu {
        ServerCpu {
            total: self.total - o.total,
            sys: self.sys - o.sys,
            net: self.net - o.net,
            gzip: self.gzip - o.gzip,
        }
    }
}

fn server_cpu(pid: &str) -> ServerCpu {
    let (u, k) = stat_cpu(&format!("/proc/{pid}/stat")).unwrap_or_default();
    let mut c = ServerCpu {
        total: u + k,
        sys: k,
        ..Default::default()
    };
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.filter_map(Result::ok) {
            let base = t.path();
            let comm = std::fs::read_to_string(base.join("comm")).unwrap_or_default();
            let Some((u, k)) = stat_cpu(&base.join("stat").to_string_lossy()) else {
                continue;
            };
            if comm.starts_with("tokio-rt-worker") {
                c.net += u + k;
            } else if comm.starts_with("d4-gzip") {
                c.gzip += u + k;
            }
        }
    }
    c
}

fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// Waits (bounded) until the server has journaled, handed to the workers and
/// acknowledged everything: its sessions' journals are removed when their pipeline
/// drained.
async fn wait_drained(data: &std::path::Path) {
    let dir = data.join("journal");
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120) {
        let busy = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().ends_with(".jnl"))
            })
            .unwrap_or(false);
        if !busy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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

/// What one streaming measurement saw.
struct Run {
    frames: u64,
    secs: f64,
    started: Instant,
    server: ServerCpu,
    client_cpu: f64,
}

/// N connections stream `size`-byte frames for `secs`; the clock stops when the server
/// has closed every connection and drained its journals (every frame decrypted, decoded,
/// verified, journaled, written by its worker and acknowledged).
///
/// The client is kept cheap so that it leaves the CPU to the server: each connection
/// signs one batch of frames (256 KiB) once and writes it again and again, one TLS write
/// per batch (the server accepts repeated timestamps; every HMAC is valid).
async fn stream(srv: &Child, conns: usize, size: usize, secs: u64) -> anyhow::Result<Run> {
    let spid = srv.child.id().to_string();
    let s0 = server_cpu(&spid);
    let mut r = stream_to(srv.tls, conns, size, secs).await?;
    wait_drained(srv.dir.path()).await;
    r.secs = r.started.elapsed().as_secs_f64();
    r.server = server_cpu(&spid) - s0;
    Ok(r)
}

/// The streaming part of [`stream`], against any TLS receiver at `addr`: returns when
/// the receiver has closed every connection (the server's CPU is left at zero).
async fn stream_to(addr: SocketAddr, conns: usize, size: usize, secs: u64) -> anyhow::Result<Run> {
    let c = connector()?;
    let total = Arc::new(AtomicU64::new(0));
    let mut streams = Vec::new();
    for _ in 0..conns {
        streams.push(connect(addr, &c).await?);
    }
    let c0 = cpu_secs("self");
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
    Ok(Run {
        frames: total.load(Ordering::Relaxed),
        secs: start.elapsed().as_secs_f64(),
        started: start,
        server: ServerCpu::default(),
        client_cpu: cpu_secs("self") - c0,
    })
}

/// What a [`Receiver`] does with every frame after checking its HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Nothing.
    Nothing,
    /// Appends the payload to a file per connection (buffered, no fsync).
    File,
    /// Appends the payload to a file per connection with `O_DIRECT` writes of 1 MiB
    /// (no page cache, no fsync), off the runtime's worker through `block_in_place`.
    Direct,
}

/// A minimal TLS receiver that is not the server, for the ceiling rows: its own tokio
/// runtime (as many workers as the server's), reads of up to 256 KiB, every frame
/// decoded and its HMAC checked with the bench key, then `keep`. It closes a connection
/// at the end of its stream, which is when the bench client's clock stops.
struct Receiver {
    addr: SocketAddr,
    frames: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
    rt: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl Receiver {
    fn start(keep: Keep) -> anyhow::Result<Receiver> {
        let dir = tempfile::tempdir()?;
        let (cert, key, _) = d4_server::tls::ensure_generated(dir.path(), &[])?;
        let acceptor = tokio_rustls::TlsAcceptor::from(d4_server::tls::server_config(&cert, &key)?);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .thread_name("bench-receiver")
            .enable_all()
            .build()?;
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let frames = Arc::new(AtomicU64::new(0));
        let bad = Arc::new(AtomicU64::new(0));
        let out = dir.path().to_path_buf();
        let (f2, b2) = (frames.clone(), bad.clone());
        rt.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                return;
            };
            let mut n = 0u64;
            while let Ok((tcp, _)) = listener.accept().await {
                n += 1;
                let (acceptor, frames, bad) = (acceptor.clone(), f2.clone(), b2.clone());
                let file = out.join(format!("conn-{n}"));
                tokio::spawn(async move {
                    if let Err(e) = receive(acceptor, tcp, file, keep, &frames).await {
                        eprintln!("bench receiver: {e:#}");
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        Ok(Receiver {
            addr,
            frames,
            bad,
            rt: Some(rt),
            _dir: dir,
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn receive(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    file: std::path::PathBuf,
    keep: Keep,
    frames: &AtomicU64,
) -> anyhow::Result<()> {
    let mut tls = acceptor.accept(tcp).await?;
    let mut out: Option<Box<dyn Write + Send>> = match keep {
        Keep::Nothing => None,
        Keep::File => Some(Box::new(std::io::BufWriter::with_capacity(
            256 * 1024,
            std::fs::File::create(file)?,
        ))),
        Keep::Direct => Some(Box::new(DirectWriter::create(&file)?)),
    };
    let key = d4_proto::HmacKey::new(KEY);
    let mut dec = d4_proto::Decoder::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = tls.read(&mut buf).await?;
        if k == 0 {
            break;
        }
        let mut input = bytes::Bytes::copy_from_slice(&buf[..k]);
        while let Some(f) = dec.decode(&mut input)? {
            if !key.verify(&f) {
                anyhow::bail!("a frame failed its HMAC check");
            }
            if let Some(w) = out.as_mut() {
                w.write_all(&f.payload)?;
            }
            n += 1;
        }
    }
    if let Some(mut w) = out {
        w.flush()?;
    }
    frames.fetch_add(n, Ordering::Relaxed);
    Ok(())
}

/// Appends bytes to a file with `O_DIRECT` (the page cache is bypassed) through the
/// journal's [`DirectAppender`] with a 1 MiB buffer, its writes off the runtime's worker
/// (`block_in_place`); `flush` writes the rest and cuts the padding.
struct DirectWriter {
    file: std::fs::File,
    app: DirectAppender,
}

impl DirectWriter {
    fn create(path: &std::path::Path) -> std::io::Result<DirectWriter> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)?;
        let mut app = DirectAppender::new();
        app.reserve(d4_server::direct::MAX_BUF);
        Ok(DirectWriter { file, app })
    }
}

impl std::io::Write for DirectWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let (file, app) = (&self.file, &mut self.app);
        if data.len() >= app.room() {
            tokio::task::block_in_place(|| app.push(file, data))?;
        } else {
            app.push(file, data)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let (file, app) = (&self.file, &mut self.app);
        tokio::task::block_in_place(|| app.write_padded(file))?;
        self.file.set_len(self.app.end())
    }
}

/// One ceiling row: the same client and method as against the server, against a
/// [`Receiver`]; frames/s as counted by the receiver.
async fn ceiling(keep: Keep, conns: usize, size: usize, secs: u64) -> anyhow::Result<f64> {
    let rx = Receiver::start(keep)?;
    let r = stream_to(rx.addr, conns, size, secs).await?;
    let got = rx.frames.load(Ordering::Relaxed);
    if rx.bad.load(Ordering::Relaxed) > 0 || got != r.frames {
        anyhow::bail!(
            "the bench receiver got {got} of {} frames ({} connections failed)",
            r.frames,
            rx.bad.load(Ordering::Relaxed)
        );
    }
    Ok(got as f64 / r.secs)
}

async fn server_bench(b: ServerBench) -> anyhow::Result<()> {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("warning: cannot raise the open files limit: {e}");
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    outln!("d4 bench server: {cpus} CPUs, load average {}", load.trim());
    outln!(
        "journal fsync: {}, journal O_DIRECT: {}",
        b.fsync,
        b.journal_direct
    );
    outln!(
        "ratio = frames/s over TLS / plain HMAC-SHA256 frames/s on one core (best of 1 s before \
         and 1 s after the stream); \
         srv µs/f = server CPU time per frame; HMAC eff = HMAC CPU time per frame / server CPU time per frame"
    );
    outln!(
        "{:>7} {:>5} {:>10} {:>8} {:>10} {:>8} {:>6} {:>9} {:>9} {:>8} {:>5}",
        "payload",
        "conns",
        "frames/s",
        "MB/s",
        "HMAC f/s",
        "HMAC MB/s",
        "ratio",
        "srv µs/f",
        "cli µs/f",
        "HMAC eff",
        "load"
    );
    let mut cpu_split = Vec::new();
    let mut ceilings = Vec::new();
    for &size in &b.sizes {
        for &conns in &b.conns {
            let srv = start_server(&b)?;
            // The HMAC ceiling is measured just before and just after the stream; the
            // better of the two counts (other load on the machine only lowers it).
            let h1 = tokio::task::spawn_blocking(move || hmac_ceiling(size, 1.0)).await?;
            let r = stream(&srv, conns, size, b.secs).await?;
            let h2 = tokio::task::spawn_blocking(move || hmac_ceiling(size, 1.0)).await?;
            let (hfps, hmbs) = if h2.0 > h1.0 {
                (h2.0, h2.1)
            } else {
                (h1.0, h1.1)
            };
            let hcpu = if h1.2 > 0.0 && h2.2 > 0.0 {
                h1.2.min(h2.2)
            } else {
                h1.2.max(h2.2)
            };
            let fps = r.frames as f64 / r.secs;
            let mbs = fps * (size + 62) as f64 / 1e6;
            let per = |cpu: f64| cpu / (r.frames.max(1) as f64) * 1e6;
            outln!(
                "{:>7} {:>5} {:>10.0} {:>8.1} {:>10.0} {:>8.1} {:>6.2} {:>9.2} {:>9.2} {:>8.2} {:>5}",
                size,
                conns,
                fps,
                mbs,
                hfps,
                hmbs,
                fps / hfps,
                per(r.server.total),
                per(r.client_cpu),
                hcpu * 1e6 / per(r.server.total).max(1e-9),
                loadavg()
            );
            cpu_split.push(format!(
                "{:>7} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>6.0}%",
                size,
                conns,
                hcpu * 1e6,
                per(r.server.net),
                per(r.server.total - r.server.net - r.server.gzip),
                per(r.server.gzip),
                per(r.client_cpu),
                100.0 * r.server.sys / r.server.total.max(1e-9)
            ));
            drop(srv);
            if b.ceiling {
                let verify = ceiling(Keep::Nothing, conns, size, b.secs).await?;
                let write = ceiling(Keep::File, conns, size, b.secs).await?;
                // O_DIRECT is not supported everywhere (tmpfs): n/a then
                let direct = match ceiling(Keep::Direct, conns, size, b.secs).await {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("+direct ceiling not measured: {e:#}");
                        f64::NAN
                    }
                };
                ceilings.push(format!(
                    "{:>7} {:>5} {:>10.0} {:>6.2} {:>10.0} {:>6.2} {:>11.0} {:>6.2} {:>6.2} {:>8.2}",
                    size,
                    conns,
                    verify,
                    verify / hfps,
                    write,
                    write / hfps,
                    direct,
                    direct / hfps,
                    fps / hfps,
                    fps / verify
                ));
            }
            if let Some(url) = b.redis.as_deref() {
                let srv = start_server_with(&b, Some(url))?;
                let r = stream(&srv, conns, size, b.secs).await?;
                let rfps = r.frames as f64 / r.secs;
                outln!(
                    "{:>7} {:>5} {:>10.0} {:>8.1}   redis store: {:.2} of the embedded store",
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
    outln!(
        "CPU µs per frame: plain HMAC-SHA256; server network tasks (TLS, decode, HMAC \
         check); server pipelines (journal, fsync, workers); gzip; bench client (TLS \
         encrypt); server system-time share"
    );
    outln!(
        "{:>7} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "payload",
        "conns",
        "HMAC",
        "net",
        "pipeline",
        "gzip",
        "client",
        "sys"
    );
    for l in cpu_split {
        outln!("{l}");
    }
    if !ceilings.is_empty() {
        outln!(
            "Ceilings, same client, no server: a minimal TLS receiver that checks every \
             frame's HMAC and stores nothing (verify), or also appends every payload to a \
             file once, no fsync: buffered (+write) or O_DIRECT in 1 MiB writes (+direct); \
             ratios to the same HMAC baseline as the server row; of verify = server \
             frames/s / verify frames/s"
        );
        outln!(
            "{:>7} {:>5} {:>10} {:>6} {:>10} {:>6} {:>11} {:>6} {:>6} {:>8}",
            "payload",
            "conns",
            "verify f/s",
            "ratio",
            "+write f/s",
            "ratio",
            "+direct f/s",
            "ratio",
            "server",
            "of verify"
        );
        for l in ceilings {
            outln!("{l}");
        }
    }
    // memory with N connected (authenticated) sensors
    let srv = start_server(&b)?;
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
    outln!(
        "RSS: {} MB idle, {} MB with {} connected sensors (goal < 200 MB), load {}",
        rss0 / 1024,
        rss1 / 1024,
        b.sensors,
        loadavg()
    );
    drop(held);
    drop(srv);
    Ok(())
}
