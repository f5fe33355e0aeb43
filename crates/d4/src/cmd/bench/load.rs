//! The TLS load generator: connections that stream signed frames at a receiver (the
//! server or a ceiling receiver), and the wait until the server has drained.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use super::procfs::{cpu_secs, server_cpu, ServerCpu};
use super::{Child, KEY};

/// Waits (bounded) until the server has journaled, handed to the workers and
/// acknowledged everything: its sessions' journals are removed when their pipeline
/// drained.
pub(super) async fn wait_drained(data: &std::path::Path) {
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

pub(super) fn connector() -> anyhow::Result<tokio_rustls::TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(d4_client::dest::NoChainVerifier::any(provider)))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

pub(super) type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

pub(super) async fn connect(
    addr: SocketAddr,
    c: &tokio_rustls::TlsConnector,
) -> anyhow::Result<Tls> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(
        c.connect(rustls::pki_types::ServerName::try_from("localhost")?, tcp)
            .await?,
    )
}

/// What one streaming measurement saw.
pub(super) struct Run {
    pub(super) frames: u64,
    pub(super) secs: f64,
    pub(super) started: Instant,
    pub(super) server: ServerCpu,
    pub(super) client_cpu: f64,
}

/// N connections stream `size`-byte frames for `secs`; the clock stops when the server
/// has closed every connection and drained its journals (every frame decrypted, decoded,
/// verified, journaled, written by its worker and acknowledged).
///
/// The client is kept cheap so that it leaves the CPU to the server: each connection
/// signs one batch of frames (256 KiB) once and writes it again and again, one TLS write
/// per batch (the server accepts repeated timestamps; every HMAC is valid).
pub(super) async fn stream(
    srv: &Child,
    conns: usize,
    size: usize,
    secs: u64,
) -> anyhow::Result<Run> {
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
pub(super) async fn stream_to(
    addr: SocketAddr,
    conns: usize,
    size: usize,
    secs: u64,
) -> anyhow::Result<Run> {
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
