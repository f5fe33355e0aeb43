//! `d4-http`: bounded HTTP/1 serving of an axum Router over any accepted stream: connection
//! caps per IP and in total, header and idle deadlines, graceful drain; no D4 protocol, no
//! store. It is the one serving layer of d4-rs's HTTP servers (the web UI and API in
//! `d4-web`, the passive DNS lookup server in `d4-pdns`): connections over a cap are closed
//! at once, a request head must arrive within a deadline (hyper's HTTP/1
//! `header_read_timeout`), a connection with no byte read or written for too long is closed
//! ([`Idle`]), and on shutdown it can stop accepting, ask every connection to finish its
//! request in flight and wait for them (bounded). What differs between servers is given as
//! parameters ([`Options`]) and a per-connection hook turning the accepted TCP stream into
//! the stream served (a TLS handshake, or nothing: [`plain`]). The lookup servers share
//! their request guard too ([`Guard`]: `Host` check, rate limit, wrong-credential limit;
//! [`Gate`]: lookups at once).
//!
//! Must never depend on the D4 protocol, the store or any other d4-rs crate: it serves an
//! axum `Router` and knows nothing of what the router does. No `unsafe`, no panics on input.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

pub mod auth;
mod guard;
mod host;
mod idle;
mod slots;

pub use auth::Credentials;
pub use guard::{ct_eq, json_error, too_many, Gate, Guard, GuardConfig, Refusal, Windows};
pub use host::host_allowed;
pub use idle::Idle;

use slots::Slots;

/// Connection bounds.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once (all clients together; at least 1); more are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one client IP (taken as given: 0 refuses every peer
    /// outside `exempt`). Peers in `exempt` only count in `max_connections`.
    pub max_connections_per_ip: usize,
    /// Peers exempt from the per-IP cap (trusted proxies carry everyone's connections).
    pub exempt: Vec<IpNet>,
    /// Deadline for a request head (HTTP/1).
    pub header_timeout: Duration,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: Duration,
}

/// How one server is served.
#[derive(Debug, Clone)]
pub struct Options {
    /// Prefix of the log messages (`"web"`: `web: connection error`).
    pub name: &'static str,
    pub limits: Limits,
    /// Set `TCP_NODELAY` on accepted connections.
    pub nodelay: bool,
    /// On shutdown, `Some(bound)`: stop accepting, ask every connection to finish its
    /// request in flight and wait for them up to `bound`, then return. `None`: return at
    /// once; open connections run to their end.
    pub drain: Option<Duration>,
}

/// The per-connection hook for plain HTTP: the accepted stream is served as it is.
pub fn plain(
    io: Idle<TcpStream>,
    _peer: SocketAddr,
) -> std::future::Ready<Option<Idle<TcpStream>>> {
    std::future::ready(Some(io))
}

/// Serves `app` on `listener` until `shutdown` completes. Every accepted connection within
/// the caps is wrapped in [`Idle`] and handed to `upgrade` (in its own task), which returns
/// the stream to serve, or `None` to drop the connection (the hook logs why). The client
/// address reaches the handlers as `ConnectInfo<SocketAddr>`.
pub async fn serve<U, F, S>(
    listener: TcpListener,
    app: Router,
    opts: Options,
    upgrade: U,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    U: Fn(Idle<TcpStream>, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = Option<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let name = opts.name;
    let max = opts.limits.max_connections.max(1);
    let slots = Arc::new(Slots::new(
        max,
        opts.limits.max_connections_per_ip,
        opts.limits.exempt.clone(),
    ));
    let upgrade = Arc::new(upgrade);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut refused_logged = Instant::now() - Duration::from_secs(60);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "{name}: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ip = peer.ip().to_canonical();
        let Some(slot) = slots.take(ip) else {
            // Closed at once: the descriptor is given back before the next accept.
            drop(tcp);
            if refused_logged.elapsed() > Duration::from_secs(10) {
                refused_logged = Instant::now();
                tracing::warn!(%ip, "{name}: connection refused (connection cap reached)");
            }
            continue;
        };
        if opts.nodelay {
            let _ = tcp.set_nodelay(true);
        }
        let app = app.clone();
        let upgrade = upgrade.clone();
        let header_timeout = opts.limits.header_timeout;
        let idle = opts.limits.idle_timeout;
        let stop = opts.drain.map(|_| stop_rx.clone());
        tokio::spawn(async move {
            let _slot = slot;
            if let Some(io) = upgrade(Idle::new(tcp, idle), peer).await {
                serve_conn(io, peer, app, name, header_timeout, stop).await;
            }
        });
    }
    drop(listener);
    if let Some(bound) = opts.drain {
        let _ = stop_tx.send(true);
        // Requests in flight finish (bounded), then the server returns.
        let all = u32::try_from(max).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(bound, slots.global.acquire_many(all)).await;
    }
    Ok(())
}

async fn serve_conn<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    name: &'static str,
    header_timeout: Duration,
    stop: Option<tokio::sync::watch::Receiver<bool>>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let svc = tower::ServiceExt::map_request(
        app,
        move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        },
    );
    let svc = TowerToHyperService::new(svc);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    let result = match stop {
        // Without a drain, the connection runs to its end.
        None => conn.await,
        Some(mut stop) => tokio::select! {
            r = conn.as_mut() => r,
            _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        },
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "{name}: connection error");
    }
}
