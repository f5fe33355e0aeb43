//! Ceilings: what this machine allows without the server. The plain HMAC-SHA256 rate on
//! one core, and minimal TLS receivers that check every frame (and append it to a file,
//! buffered or `O_DIRECT`) against the same load generator.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use d4_server::direct::DirectAppender;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::load::stream_to;
use super::procfs::stat_cpu;
use super::KEY;

/// Plain HMAC-SHA256 over header + payload on one thread: (frames/s, MB/s, CPU seconds
/// of that thread per frame). The CPU figure does not depend on what else runs.
pub(super) fn hmac_ceiling(size: usize, secs: f64) -> (f64, f64, f64) {
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

/// What a [`Receiver`] does with every frame after checking its HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
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
pub(super) struct Receiver {
    pub(super) addr: SocketAddr,
    pub(super) frames: Arc<AtomicU64>,
    pub(super) bad: Arc<AtomicU64>,
    pub(super) rt: Option<tokio::runtime::Runtime>,
    pub(super) _dir: tempfile::TempDir,
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

pub(super) async fn receive(
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
pub(super) struct DirectWriter {
    pub(super) file: std::fs::File,
    pub(super) app: DirectAppender,
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
pub(super) async fn ceiling(
    keep: Keep,
    conns: usize,
    size: usize,
    secs: u64,
) -> anyhow::Result<f64> {
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
