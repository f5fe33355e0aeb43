//! The listeners: binding the TLS and plain TCP sockets, the accept loop (connection
//! permits, the pre-authentication admission, the TLS handshake under the header
//! timeout) and the bookkeeping of refusals (metrics, rate-limited warnings and
//! last-error writes, automatic IP blocks).

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use d4_store::{Block, BlockTarget};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use uuid::Uuid;

use crate::config::ServerConfig;
use crate::connection::Connection;
use crate::metrics::Listener;
use crate::now;
use crate::server::{Bound, Server, ServerError};
use crate::session::{Reason, Refusal};

/// Period of the refusal limiter (seconds): one warning / last-error write per key.
pub(crate) const REFUSAL_PERIOD_SECS: u64 = 60;

/// A bound socket and, for the TLS listener, its acceptor.
pub(crate) type Bind = (TcpListener, Option<TlsAcceptor>);

/// Binds the TLS listener (with the configured certificate, or a generated one) and the
/// plain ones.
pub(crate) fn bind(cfg: &ServerConfig) -> Result<(Bound, Vec<Bind>), ServerError> {
    let mut bound = Bound {
        tls: None,
        plain: Vec::new(),
    };
    let mut listeners = Vec::new();
    if !cfg.listen.is_empty() {
        let (cert, key) = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => {
                let (c, k, created) = crate::tls::ensure_generated(&cfg.data_dir, &cfg.tls_san)?;
                if created {
                    tracing::info!(cert = %c.display(), "generated a self-signed TLS certificate");
                }
                (c, k)
            }
        };
        let tls = crate::tls::server_config(&cert, &key)?;
        let l = crate::net::bind(&cfg.listen).map_err(|source| ServerError::Bind {
            addr: cfg.listen.clone(),
            source,
        })?;
        bound.tls = l.local_addr().ok();
        listeners.push((l, Some(tokio_rustls::TlsAcceptor::from(tls))));
    }
    for spec in &cfg.plain_listen {
        let l = crate::net::bind(spec).map_err(|source| ServerError::Bind {
            addr: spec.clone(),
            source,
        })?;
        if let Ok(a) = l.local_addr() {
            bound.plain.push(a);
        }
        listeners.push((l, None));
    }
    if listeners.is_empty() {
        return Err(ServerError::NoListener);
    }
    tracing::info!(tls = ?bound.tls, plain = ?bound.plain, mode = %cfg.mode, data = %cfg.data_dir.display(), "d4 server listening");
    Ok((bound, listeners))
}

/// Accepts connections on `listener` (TLS when `tls` is set) while connection permits
/// last, each served by its own task, until the server stops.
pub(crate) async fn accept_loop(
    server: Arc<Server>,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => return,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (tcp, addr) = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let peer = crate::net::canonical_ip(addr);
        let Some(ticket) = server.preauth.admit(peer) else {
            let r = Refusal {
                reason: Reason::TooManyConnections,
                uuid: None,
                authenticated: false,
            };
            on_refusal(&server, &r, peer, Uuid::nil());
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let server = server.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        server.active.fetch_add(1, Ordering::AcqRel);
        let kind = if tls.is_some() {
            Listener::Tls
        } else {
            Listener::Plain
        };
        server.metrics.connection_opened(kind);
        tokio::spawn(async move {
            let start = Instant::now();
            match tls {
                Some(acc) => {
                    let deadline = start + Duration::from_secs(server.cfg.header_timeout_secs);
                    match tokio::time::timeout_at(deadline, acc.accept(tcp)).await {
                        Ok(Ok(s)) => Connection::serve(&server, s, peer, ticket, start, stop).await,
                        Ok(Err(e)) => {
                            server.metrics.tls_handshake_failed(false);
                            tracing::debug!(%peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => {
                            server.metrics.tls_handshake_failed(true);
                            tracing::debug!(%peer, "TLS handshake timed out")
                        }
                    }
                }
                None => Connection::serve(&server, tcp, peer, ticket, start, stop).await,
            }
            server.metrics.connection_closed(kind);
            drop(permit);
            if server.active.fetch_sub(1, Ordering::AcqRel) == 1 {
                server.idle.notify_waiters();
            }
        });
    }
}

/// Counts a refusal, logs it and records it as the sensor's last error (once per key and
/// period before authentication), and stores the IP block a refusal asks for.
pub(crate) fn on_refusal(server: &Server, r: &Refusal, peer: IpAddr, session: Uuid) {
    server.metrics.refused(&r.reason);
    // Before authentication anyone can cause a refusal: one warning and one last-error
    // write per (sensor, IP, reason) and minute; the metrics count every one.
    let noted = r.authenticated
        || server
            .refusals
            .allow(&(r.uuid, peer, r.reason.code()), now());
    let who = r.uuid.map(|u| u.simple().to_string()).unwrap_or_default();
    match r.reason {
        Reason::IpBlocked(_) => {
            tracing::debug!(%peer, %session, sensor = %who, "refused: {r}")
        }
        _ if !noted => tracing::debug!(%peer, %session, sensor = %who, "refused: {r}"),
        _ => tracing::warn!(%peer, %session, sensor = %who, "refused: {r}"),
    }
    // worker errors are recorded by the pipeline itself
    if let (Some(uuid), false, true) = (r.uuid, matches!(r.reason, Reason::Worker(_)), noted) {
        let sensors = server.sensors.clone();
        let msg = format!("{} [{}] from {peer}", r.reason, r.reason.code());
        let metrics = server.metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = sensors.record_sensor_error(uuid, now(), msg).await {
                metrics.store_failure("record-error");
                tracing::warn!(error = %e, "could not record the sensor's error");
            }
        });
    }
    if let (Reason::IpBlockedByUuid(ip), Some(uuid)) = (&r.reason, r.uuid) {
        let policy = server.policy.clone();
        let block = Block {
            target: BlockTarget::Ip(ipnet::IpNet::from(*ip)),
            reason: format!("presented uuid {}", uuid.simple()),
            created: now(),
            expires: None,
        };
        let metrics = server.metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = policy.add_block(block).await {
                metrics.store_failure("auto-block");
                tracing::warn!(sensor = %uuid.simple(), error = %e, "could not store the automatic IP block");
            }
        });
    }
}
