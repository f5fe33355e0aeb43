//! Serving the router on a socket with bounds: a cap on open connections (global and per
//! client IP; excess connections are closed at once), a deadline for the request head
//! (hyper's HTTP/1 `header_read_timeout`), an idle deadline on every connection (no byte
//! read or written for that long closes it: stalled TLS handshakes, keep-alive leftovers),
//! and, in [`guard`], body size limits (small before authentication and on `/login`) and a
//! deadline for reading the body. The web UI shares the collector's process and file
//! descriptors: none of this may let a peer hold more than its share.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::{WebError, WebState};

/// Connection-level bounds of [`crate::serve_with_limits`].
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Connections open at once (all clients together); more are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one client IP (peers in `exempt` only count in
    /// `max_connections`: a trusted proxy carries everyone's connections).
    pub max_connections_per_ip: usize,
    /// Peers exempt from the per-IP cap (the trusted proxies).
    pub exempt: Vec<IpNet>,
    /// Deadline for a request head (HTTP/1), and for the TLS handshake.
    pub header_timeout: Duration,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 512,
            max_connections_per_ip: 64,
            exempt: Vec::new(),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Counts open connections; a slot is given back when its [`Slot`] drops.
struct Slots {
    global: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    limits: ServeLimits,
}

struct Slot {
    _permit: OwnedSemaphorePermit,
    ip: Option<IpAddr>,
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut map = match self.slots.per_ip.lock() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            if let Some(n) = map.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

impl Slots {
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let permit = self.global.clone().try_acquire_owned().ok()?;
        if self.limits.exempt.iter().any(|n| n.contains(&ip)) {
            return Some(Slot {
                _permit: permit,
                ip: None,
                slots: self.clone(),
            });
        }
        let mut map = match self.per_ip.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let n = map.entry(ip).or_insert(0);
        if *n >= self.limits.max_connections_per_ip {
            return None;
        }
        *n += 1;
        Some(Slot {
            _permit: permit,
            ip: Some(ip),
            slots: self.clone(),
        })
    }
}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Slots {
        global: Arc::new(Semaphore::new(limits.max_connections.max(1))),
        per_ip: Mutex::new(HashMap::new()),
        limits: limits.clone(),
    });
    let mut shutdown = std::pin::pin!(shutdown);
    let mut refused_logged = Instant::now() - Duration::from_secs(60);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "web: accept failed");
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
                tracing::warn!(%ip, "web: connection refused (connection cap reached)");
            }
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = router.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match acceptor {
                None => serve_conn(Idle::new(tcp, limits.idle_timeout), peer, app, &limits).await,
                Some(acceptor) => {
                    let hs = tokio::time::timeout(
                        limits.header_timeout,
                        acceptor.accept(Idle::new(tcp, limits.idle_timeout)),
                    );
                    match hs.await {
                        Ok(Ok(tls)) => serve_conn(tls, peer, app, &limits).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "web: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "web: TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_conn<I>(io: I, peer: SocketAddr, app: Router, limits: &ServeLimits)
where
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
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    if let Err(e) = builder.serve_connection(TokioIo::new(io), svc).await {
        tracing::debug!(%peer, error = %e, "web: connection error");
    }
}

/// An I/O stream that fails with `TimedOut` once nothing was read or written for `idle`.
pub(crate) struct Idle<T> {
    inner: T,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl<T> Idle<T> {
    pub(crate) fn new(inner: T, idle: Duration) -> Idle<T> {
        Idle {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn touch(&mut self) {
        let at = Instant::now() + self.idle;
        self.sleep.as_mut().reset(at);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.sleep.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Per-request checks before any handler: the `Host` header (DNS rebinding), then the
/// body: at most `login_body_limit` bytes on `/login`, `preauth_body_limit` without a
/// valid session or token, `body_limit` otherwise, read within `body_timeout`.
pub(crate) async fn guard(State(st): State<WebState>, req: Request, next: Next) -> Response {
    let cfg = st.config();
    if !host_ok(cfg, &req) {
        return crate::text(StatusCode::MISDIRECTED_REQUEST, "unknown Host\n");
    }
    let bodyless = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && !req.headers().contains_key(header::CONTENT_LENGTH)
        && !req.headers().contains_key(header::TRANSFER_ENCODING);
    if bodyless {
        return next.run(req).await;
    }
    let limit = if req.uri().path() == "/login" {
        cfg.login_body_limit
    } else if authenticated(&st, req.headers()).await {
        cfg.body_limit
    } else {
        cfg.preauth_body_limit
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(
        Duration::from_secs(cfg.body_timeout_secs.max(1)),
        axum::body::to_bytes(body, limit),
    );
    match read.await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => too_large(),
        Err(_) => {
            let mut r = crate::text(StatusCode::REQUEST_TIMEOUT, "request body too slow\n");
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            r
        }
    }
}

fn too_large() -> Response {
    let mut r = (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}

async fn authenticated(st: &WebState, headers: &axum::http::HeaderMap) -> bool {
    if headers.contains_key(header::AUTHORIZATION) {
        return matches!(
            crate::auth::token_user(st.store(), headers).await,
            Ok(Some(_))
        );
    }
    crate::auth::viewer(st, headers).await.is_some()
}

fn host_ok(cfg: &crate::WebConfig, req: &Request) -> bool {
    let host = match req.headers().get(header::HOST) {
        Some(h) => match h.to_str() {
            Ok(h) => h.to_string(),
            Err(_) => return false,
        },
        None => match req.uri().authority() {
            Some(a) => a.as_str().to_string(),
            // HTTP/1.0 without Host: not a browser that DNS rebinding could steer.
            None => return true,
        },
    };
    host_allowed(&host, &cfg.allowed_hosts)
}

/// Whether a `Host` value (name or address, optional port) is one of `allowed` (names,
/// case-insensitive; `*` allows any). IP literals are always allowed: DNS rebinding needs
/// the attacker's own name in `Host`.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or("")
    } else {
        host
    };
    let name = name.trim_end_matches('.');
    if name.parse::<IpAddr>().is_ok() {
        return true;
    }
    allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('.').eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let allowed = vec!["localhost".to_string(), "d4.example.org".to_string()];
        for ok in [
            "localhost",
            "LOCALHOST:7000",
            "d4.example.org.",
            "127.0.0.1:7000",
            "[::1]:7000",
            "::1",
            "192.0.2.7",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7000",
            "localhost.evil.example",
            "",
        ] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
        assert!(host_allowed("anything.example", &["*".to_string()]));
    }
}
