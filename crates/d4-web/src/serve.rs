//! Serving the router on a socket with bounds (the serving itself is `d4-http`'s): a cap on
//! open connections (global and per client IP; excess connections are closed at once), a
//! deadline for the request head (hyper's HTTP/1 `header_read_timeout`) and the TLS
//! handshake, an idle deadline on every connection (no byte read or written for that long
//! closes it: stalled TLS handshakes, keep-alive leftovers), and, in [`guard`], body size
//! limits (small before authentication and on `/login`) and a deadline for reading the
//! body. The web UI shares the collector's process and file descriptors: none of this may
//! let a peer hold more than its share.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use d4_http::{host_allowed, Idle};
use ipnet::IpNet;
use tokio::net::TcpStream;

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

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    let header_timeout = limits.header_timeout;
    let opts = d4_http::Options {
        name: "web",
        limits: d4_http::Limits {
            max_connections: limits.max_connections,
            max_connections_per_ip: limits.max_connections_per_ip,
            exempt: limits.exempt,
            header_timeout,
            idle_timeout: limits.idle_timeout,
        },
        nodelay: true,
        drain: None,
    };
    match tls {
        None => d4_http::serve(listener, router, opts, d4_http::plain, shutdown).await?,
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            // The handshake has the request head's deadline.
            let handshake = move |io: Idle<TcpStream>, peer: SocketAddr| {
                let acceptor = acceptor.clone();
                async move {
                    match tokio::time::timeout(header_timeout, acceptor.accept(io)).await {
                        Ok(Ok(tls)) => Some(tls),
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "web: TLS handshake failed");
                            None
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "web: TLS handshake timed out");
                            None
                        }
                    }
                }
            };
            d4_http::serve(listener, router, opts, handshake, shutdown).await?
        }
    }
    Ok(())
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
