//! The lookup server's connection bounds, served by `d4-http`: connections open at once
//! (all clients, and per client IP: excess connections are closed at once), a deadline for
//! each request head, and an idle deadline (no byte read or written for that long closes
//! the connection). On shutdown it stops accepting, asks every connection to finish its
//! request in flight, and waits for them (bounded).

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;

/// Connection bounds of [`crate::server::serve_with_limits`].
#[derive(Debug, Clone)]
pub struct ListenLimits {
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one client IP.
    pub max_connections_per_ip: usize,
    /// Deadline for a request head.
    pub header_timeout: Duration,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ListenLimits {
    fn default() -> Self {
        ListenLimits {
            max_connections: 256,
            max_connections_per_ip: 32,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ListenLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let opts = d4_http::Options {
        name: "pdns",
        limits: d4_http::Limits {
            max_connections: limits.max_connections,
            max_connections_per_ip: limits.max_connections_per_ip.max(1),
            exempt: Vec::new(),
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
        },
        nodelay: false,
        drain: Some(Duration::from_secs(10)),
    };
    d4_http::serve(listener, app, opts, d4_http::plain, shutdown).await
}
