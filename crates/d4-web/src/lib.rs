//! `d4-web`: the web management UI and REST API of d4-rs (axum). Operators manage sensors,
//! registrations, blocklists, accepted types, analyzer queues and users from a browser
//! (server-rendered pages, readable without JavaScript) and automate the same over a JSON
//! API under `/api/v1` (token auth). It also serves `/metrics` (Prometheus text).
//!
//! The "Passive SSL" and "Backscatter" pages are the exceptions: they ask the HTTP APIs of
//! `d4 pssl serve` and `d4 pibs serve` ([`pssl_client`]), which own the analyzers' stores.
//!
//! Everything else goes through the [`d4_store::Store`] trait, so it works on every backend.
//! This crate must never depend on the collector server (`d4-server`), the workers or the
//! D4 framing: the server embeds it with [`router`] / [`serve`] and feeds extra metrics
//! through [`MetricsSource`].

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use d4_store::{Store, StoreError};

mod actions;
mod api;
pub mod auth;
mod extract;
mod failure;
mod labels;
mod metrics;
mod misp_feed;
mod openapi;
mod pages;
pub mod pssl_client;
mod queue_alerts;
mod serve;
mod view;

pub use auth::{ensure_admin, ADMIN_PASSWORD_FILE};
pub use d4_http::host_allowed;
pub use metrics::MetricsSource;
pub use pssl_client::{ApiClient, ApiError, PsslClient, PsslError, Service};
pub use queue_alerts::{AlertsFuture, QueueAlertSource};
pub use serve::ServeLimits;

/// Settings of the web UI.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The data dir: the first-start admin password file is written there.
    pub data_dir: PathBuf,
    /// Mark cookies `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// Lifetime of a web session, seconds.
    pub session_ttl_secs: u64,
    /// A sensor is listed by monitoring when silent longer than this, seconds.
    pub monitoring_threshold_secs: u64,
    /// Serve `/metrics` without a token (default: a token of role user or admin).
    pub metrics_public: bool,
    /// Login failures per (user name, client IP) before the lockout.
    pub lockout_failures: u32,
    /// Lockout duration, seconds.
    pub lockout_secs: u64,
    /// Password verifications (argon2, ~19 MiB each) running at once; a login waiting
    /// longer than 3 s for one gets 429.
    pub max_login_checks: usize,
    /// Peers whose `X-Forwarded-For` gives the client IP (the reverse proxies).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Accepted `Host` names (DNS rebinding); `*` accepts any. IP literals always pass.
    pub allowed_hosts: Vec<String>,
    /// Largest body of `POST /login`, bytes.
    pub login_body_limit: usize,
    /// Largest body of a request without a valid session or token, bytes.
    pub preauth_body_limit: usize,
    /// Largest body of an authenticated request, bytes.
    pub body_limit: usize,
    /// Deadline for reading a request body, seconds.
    pub body_timeout_secs: u64,
    /// Base URL of the passive SSL API (`d4 pssl serve`, e.g. `http://127.0.0.1:8500`)
    /// the "Passive SSL" page asks; `None`: the page says how to set it.
    pub pssl_url: Option<String>,
    /// Token sent to it as `Authorization: <token>`.
    pub pssl_token: Option<pssl_client::Secret>,
    /// Deadline of one call to it (connect, send, whole answer), seconds.
    pub pssl_timeout_secs: u64,
    /// A MISP feed directory (`d4 misp feed` writes it) served read-only at `/misp/`;
    /// `None`: not served. Needs `misp_feed_token`.
    pub misp_feed_dir: Option<PathBuf>,
    /// The feed's own token (`Authorization: <token>`, `Bearer` or Basic password); a feed
    /// without a token is not served.
    pub misp_feed_token: Option<pssl_client::Secret>,
    /// Base URL of the backscatter API (`d4 pibs serve`, e.g. `http://127.0.0.1:8600`)
    /// the "Backscatter" page asks; `None`: the page says how to set it. Calls are bounded
    /// by `pssl_timeout_secs` too.
    pub pibs_url: Option<String>,
    /// Token sent to it as `Authorization: <token>`.
    pub pibs_token: Option<pssl_client::Secret>,
}

impl WebConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> WebConfig {
        WebConfig {
            data_dir: data_dir.into(),
            secure_cookies: false,
            session_ttl_secs: 12 * 3600,
            monitoring_threshold_secs: 3600,
            metrics_public: false,
            lockout_failures: 5,
            lockout_secs: 300,
            max_login_checks: 4,
            trusted_proxies: Vec::new(),
            allowed_hosts: vec!["localhost".into()],
            login_body_limit: 4096,
            preauth_body_limit: 16 * 1024,
            body_limit: 1 << 20,
            body_timeout_secs: 10,
            pssl_url: None,
            pssl_token: None,
            pssl_timeout_secs: 10,
            misp_feed_dir: None,
            misp_feed_token: None,
            pibs_url: None,
            pibs_token: None,
        }
    }
}

/// Shared state of every handler: cheap to clone.
#[derive(Clone)]
pub struct WebState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub config: WebConfig,
    pub lockout: Mutex<auth::Lockout>,
    pub login_checks: tokio::sync::Semaphore,
    pub checkers: auth::Checkers,
    pub metrics: RwLock<Vec<Arc<dyn MetricsSource>>>,
    /// The queue alerts (the server's monitor); unset: the pages say so.
    pub queue_alerts: OnceLock<Arc<dyn QueueAlertSource>>,
    /// The passive SSL API's client: `None` when `pssl_url` is unset, an error text when
    /// its settings are unusable (the page shows it).
    pub pssl: Option<Result<PsslClient, String>>,
    /// The MISP feed served at `/misp/`, when a directory and a token are configured.
    pub misp_feed: Option<misp_feed::Feed>,
    /// The backscatter API's client, likewise (`pibs_url`).
    pub pibs: Option<Result<ApiClient, String>>,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("store", &self.inner.store.backend())
            .field("config", &self.inner.config)
            .finish()
    }
}

impl WebState {
    pub fn new(store: Arc<dyn Store>, config: WebConfig) -> WebState {
        let lockout = auth::Lockout::new(config.lockout_failures, config.lockout_secs);
        let login_checks = tokio::sync::Semaphore::new(config.max_login_checks.max(1));
        let checkers = auth::Checkers::new(config.max_login_checks);
        let pssl = config.pssl_url.as_deref().map(|url| {
            PsslClient::new(
                url,
                config.pssl_token.as_ref().map(|t| t.0.as_str()),
                std::time::Duration::from_secs(config.pssl_timeout_secs.max(1)),
            )
            .map_err(|e| e.to_string())
        });
        let misp_feed = match (&config.misp_feed_dir, &config.misp_feed_token) {
            (Some(dir), Some(token)) if !token.0.is_empty() => Some(misp_feed::Feed {
                dir: dir.clone(),
                token: token.0.clone(),
                failures: d4_http::Windows::new(),
            }),
            _ => None,
        };
        let pibs = config.pibs_url.as_deref().map(|url| {
            ApiClient::for_service(
                Service::PIBS,
                url,
                config.pibs_token.as_ref().map(|t| t.0.as_str()),
                std::time::Duration::from_secs(config.pssl_timeout_secs.max(1)),
            )
            .map_err(|e| e.to_string())
        });
        WebState {
            inner: Arc::new(Inner {
                store,
                config,
                lockout: Mutex::new(lockout),
                login_checks,
                checkers,
                metrics: RwLock::new(Vec::new()),
                queue_alerts: OnceLock::new(),
                pssl,
                misp_feed,
                pibs,
            }),
        }
    }

    /// Add a source of extra `/metrics` lines (the server's connection counters...).
    pub fn add_metrics_source(&self, source: Arc<dyn MetricsSource>) {
        if let Ok(mut list) = self.inner.metrics.write() {
            list.push(source);
        }
    }

    /// Set where the queue alerts come from (once; later calls are ignored).
    pub fn set_queue_alert_source(&self, source: Arc<dyn QueueAlertSource>) {
        let _ = self.inner.queue_alerts.set(source);
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub(crate) fn config(&self) -> &WebConfig {
        &self.inner.config
    }

    /// The passive SSL API client (see [`Inner::pssl`]).
    pub(crate) fn pssl(&self) -> Option<Result<&PsslClient, &str>> {
        self.inner
            .pssl
            .as_ref()
            .map(|r| r.as_ref().map_err(String::as_str))
    }

    /// The backscatter API client (see [`Inner::pibs`]).
    pub(crate) fn pibs(&self) -> Option<Result<&ApiClient, &str>> {
        self.inner
            .pibs
            .as_ref()
            .map(|r| r.as_ref().map_err(String::as_str))
    }
}

/// Errors of the web layer's setup and serving.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// The whole application: pages, `/api/v1`, `/metrics`.
pub fn router(state: WebState) -> Router {
    let hsts = state.config().secure_cookies;
    Router::new()
        .merge(pages::routes())
        .nest("/api/v1", api::routes())
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/misp", get(misp_feed::index))
        .route("/misp/", get(misp_feed::index))
        .route("/misp/{name}", get(misp_feed::file))
        .route("/static/style.css", get(view::style))
        .fallback(|| async { view::not_found() })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            serve::guard,
        ))
        .layer(axum::middleware::map_response(move |r| {
            security_headers(r, hsts)
        }))
        .with_state(state)
}

/// Headers on every response: no framing (clickjacking), no sniffing, no caching of pages
/// that may show secrets, a strict CSP (the UI uses no script at all); HSTS over HTTPS
/// (`hsts`: the cookies are `Secure`, i.e. served over TLS).
async fn security_headers(mut resp: Response, hsts: bool) -> Response {
    use axum::http::header::{self, HeaderValue};
    let h = resp.headers_mut();
    if hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Serve `router` on `listener` until `shutdown` resolves: plain HTTP when `tls` is `None`,
/// else HTTPS (HTTP/1.1), with the default [`ServeLimits`]. The client address reaches the
/// handlers as `ConnectInfo<SocketAddr>` (used by the login lockout).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    serve::serve(listener, router, tls, ServeLimits::default(), shutdown).await
}

/// [`serve`] with explicit connection bounds.
pub async fn serve_with_limits(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    serve::serve(listener, router, tls, limits, shutdown).await
}

/// The client IP of a request: the TCP peer, or, when the peer is one of the trusted
/// proxies, the right-most `X-Forwarded-For` address that is not a trusted proxy.
pub(crate) fn client_ip(
    cfg: &WebConfig,
    headers: &HeaderMap,
    ext: &axum::http::Extensions,
) -> IpAddr {
    let peer = ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    forwarded_client(peer, &cfg.trusted_proxies, headers)
}

/// See [`client_ip`].
pub fn forwarded_client(peer: IpAddr, trusted: &[ipnet::IpNet], headers: &HeaderMap) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        let Ok(v) = v.to_str() else { return peer };
        for part in v.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip.to_canonical()),
                // Garbage in the chain: trust nothing of it.
                Err(_) => return peer,
            }
        }
    }
    let mut client = peer;
    for ip in hops.into_iter().rev() {
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// A cookie's value from the request headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    for value in headers.get_all(axum::http::header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for part in text.split(';') {
            if let Some((k, v)) = part.trim().split_once('=') {
                if k == name {
                    return Some(v.to_string());
                }
            }
        }
    }
    None
}

/// Form fields (first value wins).
#[derive(Debug, Default)]
pub(crate) struct Fields(pub HashMap<String, String>);

impl Fields {
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Fields {
        let mut map = HashMap::new();
        for (k, v) in pairs {
            map.entry(k).or_insert(v);
        }
        Fields(map)
    }
    pub fn get(&self, k: &str) -> &str {
        self.0.get(k).map(|s| s.as_str()).unwrap_or("")
    }
    pub fn has(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }
}

/// Constant-time string comparison (CSRF tokens).
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    ct_eq_bytes(a.as_bytes(), b.as_bytes())
}

/// Constant-time comparison of bytes (equal lengths are not secret).
pub(crate) fn ct_eq_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A plain-text response with a status.
pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, body.into()).into_response()
}
