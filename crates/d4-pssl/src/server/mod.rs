//! The passive SSL lookup server (axum) behind `d4 pssl serve`: the CIRCL Passive SSL API
//! v2 as PyPSSL calls it (`/v2pssl/query`, `/v2pssl/cquery`, `/v2pssl/cfetch`),
//! lookup-d4-passivessl's `/ja3` and `/ja3s`, and d4-rs's pivots (`/ja4`, `/sessions`,
//! `/certificate`, `/sni`, `/subject`, `/key`, `/fingerprint`, `/info`, `/openapi.json`).
//! The contract: docs/pssl.md (`## Serve`).
//!
//! Every answer is JSON, errors included (`{"error": ...}`). Store calls run in
//! `spawn_blocking` (both backends are synchronous), at most `max_concurrent` at once
//! ([`d4_http::Gate`]); the `Host` check, the rate limit and the wrong-credential limit are
//! d4-http's [`d4_http::Guard`], shared with `d4 pdns serve`. Paging: `limit`/`cursor`
//! query parameters or the `dribble-paginate-count`/`dribble-paginate-cursor` headers; the
//! next page's cursor comes back in `x-dribble-cursor` (and in `next` for item lists).
//!
//! * [`auth`]: credentials (raw token, `Bearer`, HTTP Basic).
//! * [`answer`]: the JSON shapes, built from store values without I/O.
//! * `handlers`: request parsing and the store calls; [`openapi`]: the OpenAPI document.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use d4_http::{json_error, Gate, Guard, GuardConfig};

pub use d4_http::Limits;

use crate::store::{PsslError, PsslStore};

pub mod answer;
/// The credentials (shared with `d4 pibs serve`: they live in `d4-http`).
pub use d4_http::auth;
mod handlers;
mod input;
pub mod openapi;

pub use auth::Credentials;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Accepted tokens and Basic user/password pairs; empty: no authentication.
    pub credentials: Credentials,
    /// Requests per minute and client IP; `None`: no limit. Over it: 429.
    pub rate_limit_per_min: Option<u32>,
    /// Lookups running at once; more wait up to 2 s, then 429.
    pub max_concurrent: usize,
    /// Wrong or missing credentials per minute and client IP before 429.
    pub max_auth_failures: u32,
    /// Accepted `Host` names (`*`: any); IP literals always pass.
    pub allowed_hosts: Vec<String>,
    /// Widest IPv4 network `/v2pssl/query` answers (prefix length); wider: 422.
    pub min_prefix_v4: u8,
    /// Widest IPv6 network `/v2pssl/query` answers (prefix length); wider: 422.
    pub min_prefix_v6: u8,
    /// `embedded` or `postgres`, for `/info`.
    pub backend: String,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            credentials: Credentials::default(),
            rate_limit_per_min: None,
            max_concurrent: 4,
            max_auth_failures: 10,
            allowed_hosts: vec!["localhost".into()],
            min_prefix_v4: 23,
            min_prefix_v6: 64,
            backend: "embedded".into(),
        }
    }
}

/// Connection bounds used when none are given (as `d4 pdns serve`'s).
pub fn default_limits() -> Limits {
    Limits {
        max_connections: 256,
        max_connections_per_ip: 32,
        exempt: Vec::new(),
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
    }
}

pub(crate) struct AppState {
    pub(crate) store: Arc<dyn PsslStore>,
    pub(crate) cfg: ServeConfig,
    guard: Guard,
    gate: Gate,
}

/// The router; the client address (`ConnectInfo<SocketAddr>`, set by [`serve`]) feeds the
/// per-IP limits.
pub fn router(store: Arc<dyn PsslStore>, cfg: ServeConfig) -> Router {
    let guard = Guard::new(GuardConfig {
        name: "pssl",
        allowed_hosts: cfg.allowed_hosts.clone(),
        rate_limit_per_min: cfg.rate_limit_per_min,
        max_auth_failures: cfg.max_auth_failures,
    });
    let state = Arc::new(AppState {
        gate: Gate::new(cfg.max_concurrent),
        store,
        cfg,
        guard,
    });
    handlers::routes()
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "not found") })
        .layer(middleware::from_fn_with_state(state.clone(), check_request))
        .with_state(state)
}

/// Serves the router on `listener` through d4-http (connection caps, head and idle
/// deadlines) until `shutdown` completes, then drains the requests in flight (10 s).
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<dyn PsslStore>,
    cfg: ServeConfig,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let opts = d4_http::Options {
        name: "pssl",
        limits: Limits {
            max_connections_per_ip: limits.max_connections_per_ip.max(1),
            ..limits
        },
        nodelay: false,
        drain: Some(Duration::from_secs(10)),
    };
    d4_http::serve(listener, router(store, cfg), opts, d4_http::plain, shutdown).await
}

/// The 401 answer's message and challenge.
pub const UNAUTHORIZED: &str = "authentication required";
const CHALLENGE: &str = "Basic realm=\"d4 pssl\"";

async fn check_request(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let checked = {
        let creds = &st.cfg.credentials;
        let check = |h: &HeaderMap| {
            creds.accepts(h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()))
        };
        let auth = (!creds.is_empty()).then_some(&check as &dyn Fn(&HeaderMap) -> bool);
        st.guard.check(&req, auth)
    };
    if let Err(refused) = checked {
        return refused.response(UNAUTHORIZED, Some(CHALLENGE));
    }
    next.run(req).await
}

/// A store error as an answer: bad input or cursor 400, too broad 422, else 500 (logged).
pub(crate) fn store_error(e: PsslError) -> Response {
    match e {
        PsslError::Invalid { .. } | PsslError::Cursor => json_error(StatusCode::BAD_REQUEST, e),
        PsslError::TooManyExamined(_) => json_error(StatusCode::UNPROCESSABLE_ENTITY, e),
        e => {
            tracing::error!(error = %e, "pssl: store error");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "store error")
        }
    }
}

/// Runs store work in `spawn_blocking`, inside the concurrency gate.
pub(crate) async fn blocking<T, F>(st: &AppState, f: F) -> Result<T, Response>
where
    T: Send + 'static,
    F: FnOnce(&dyn PsslStore) -> Result<T, PsslError> + Send + 'static,
{
    let permit = st.gate.enter().await?;
    let store = st.store.clone();
    // The permit goes with the work: a request dropped mid-way keeps its slot until the
    // store call ends, so dropped requests cannot pile work past `max_concurrent`.
    let work = move || {
        let r = f(store.as_ref());
        drop(permit);
        r
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(store_error(e)),
        Err(e) => {
            tracing::error!(error = %e, "pssl: lookup task failed");
            Err(json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "lookup failed",
            ))
        }
    }
}

/// A 200 JSON answer from its text, with `x-dribble-cursor` when a next page exists.
pub(crate) fn json_text(body: String, next: Option<&str>) -> Response {
    let mut r = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Some(v) = next.and_then(|n| HeaderValue::from_str(n).ok()) {
        r.headers_mut().insert("x-dribble-cursor", v);
    }
    r
}

/// A 200 JSON answer, with `x-dribble-cursor` when a next page exists.
pub(crate) fn json_value(v: &serde_json::Value, next: Option<&str>) -> Response {
    json_text(v.to_string(), next)
}
