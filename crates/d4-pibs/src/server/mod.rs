//! The backscatter lookup server (axum) behind `d4 pibs serve`: `/attacks` (filtered,
//! paged), `/victim/<ip>` (attacks, bucket timeline, names, route), `/daily/<date>` (the
//! day's counts and tops), the reverse pivots `/asn/<asn>` and `/prefix/<net>`, `/info`
//! and `/openapi.json`. The contract: docs/pibs.md (`## Serve`).
//!
//! Every answer is JSON, errors included (`{"error": ...}`). Store calls run in
//! `spawn_blocking` (the store is synchronous), at most `max_concurrent` at once
//! ([`d4_http::Gate`]); the `Host` check, the rate limit and the wrong-credential limit are
//! d4-http's [`d4_http::Guard`], the credentials (raw token, `Bearer`, Basic) d4-http's
//! [`Credentials`], as for `d4 pssl serve`.
//!
//! The pivots come from outside the store: the prefix-to-AS table ([`crate::pfx2as`]) and
//! the passive DNS names of an address, through the small [`Names`] trait (the binary
//! adapts `d4-pdns`'s record store to it: this crate does not depend on d4-pdns).
//!
//! * [`input`]: request parameters, checked without I/O.
//! * [`answer`]: the JSON shapes, built without I/O.
//! * `handlers`: the routes; [`openapi`]: the OpenAPI document.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use d4_http::{json_error, Gate, Guard, GuardConfig};

pub use d4_http::auth::parse_user_password;
pub use d4_http::{Credentials, Limits};

use crate::pfx2as::Pfx2As;
use crate::store::{PibsStore, PibsStoreError};

pub mod answer;
mod handlers;
pub mod input;
pub mod openapi;

/// Why the names of an address could not be read (the passive DNS store failed).
#[derive(Debug, thiserror::Error)]
#[error("passive DNS: {0}")]
pub struct NamesError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The passive DNS pivot: the names whose A/AAAA records point at an address (at most
/// `max`, sorted). Implemented in the binary over `d4-pdns`.
pub trait Names: Send + Sync {
    fn names(&self, ip: IpAddr, max: usize) -> Result<Vec<String>, NamesError>;
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Accepted tokens and Basic user/password pairs; empty: no authentication.
    pub credentials: Credentials,
    /// Requests per minute and client IP; `None`: no limit. Over it: 429.
    pub rate_limit_per_min: Option<u32>,
    /// Store lookups running at once; more wait up to 2 s, then 429.
    pub max_concurrent: usize,
    /// Wrong or missing credentials per minute and client IP before 429.
    pub max_auth_failures: u32,
    /// Accepted `Host` names (`*`: any); IP literals always pass.
    pub allowed_hosts: Vec<String>,
    /// Most names `/victim` lists.
    pub max_names: usize,
    /// Most buckets of a `/victim` timeline.
    pub max_buckets: usize,
    /// Most attacks `/daily` and the reverse pivots read per request (beyond: `/daily`
    /// says `truncated`, the pivots answer 422).
    pub max_scan: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            credentials: Credentials::default(),
            rate_limit_per_min: None,
            max_concurrent: 4,
            max_auth_failures: 10,
            allowed_hosts: vec!["localhost".into()],
            max_names: 1_000,
            max_buckets: 10_000,
            max_scan: 200_000,
        }
    }
}

/// Connection bounds used when none are given (as `d4 pssl serve`'s).
pub fn default_limits() -> Limits {
    Limits {
        max_connections: 256,
        max_connections_per_ip: 32,
        exempt: Vec::new(),
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
    }
}

/// What the routes read besides the store.
#[derive(Clone, Default)]
pub struct Pivots {
    /// The prefix-to-AS table, when one was loaded.
    pub pfx2as: Option<Arc<Pfx2As>>,
    /// The passive DNS pivot, when a passive DNS store is configured.
    pub names: Option<Arc<dyn Names>>,
}

pub(crate) struct AppState {
    pub(crate) store: Arc<dyn PibsStore>,
    pub(crate) pivots: Pivots,
    pub(crate) cfg: ServeConfig,
    guard: Guard,
    gate: Gate,
}

impl AppState {
    pub(crate) fn pfx(&self) -> Option<&Pfx2As> {
        self.pivots.pfx2as.as_deref()
    }
}

/// The router; the client address (`ConnectInfo<SocketAddr>`, set by [`serve`]) feeds the
/// per-IP limits (without it, as in tests through `tower::ServiceExt`, they do not apply).
pub fn router(store: Arc<dyn PibsStore>, pivots: Pivots, cfg: ServeConfig) -> Router {
    let guard = Guard::new(GuardConfig {
        name: "pibs",
        allowed_hosts: cfg.allowed_hosts.clone(),
        rate_limit_per_min: cfg.rate_limit_per_min,
        max_auth_failures: cfg.max_auth_failures,
    });
    let state = Arc::new(AppState {
        gate: Gate::new(cfg.max_concurrent),
        store,
        pivots,
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
    store: Arc<dyn PibsStore>,
    pivots: Pivots,
    cfg: ServeConfig,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let opts = d4_http::Options {
        name: "pibs",
        limits: Limits {
            max_connections_per_ip: limits.max_connections_per_ip.max(1),
            ..limits
        },
        nodelay: false,
        drain: Some(Duration::from_secs(10)),
    };
    let app = router(store, pivots, cfg);
    d4_http::serve(listener, app, opts, d4_http::plain, shutdown).await
}

/// The 401 answer's message and challenge.
pub const UNAUTHORIZED: &str = "authentication required";
const CHALLENGE: &str = "Basic realm=\"d4 pibs\"";

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

/// A store error as an answer: bad input or cursor 400, else 500 (logged).
pub(crate) fn store_error(e: PibsStoreError) -> Response {
    match e {
        PibsStoreError::Invalid { .. } | PibsStoreError::Cursor => {
            json_error(StatusCode::BAD_REQUEST, e)
        }
        e => {
            tracing::error!(error = %e, "pibs: store error");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "store error")
        }
    }
}

/// Runs store work in `spawn_blocking`, inside the concurrency gate.
pub(crate) async fn blocking<T, F>(st: &AppState, f: F) -> Result<T, Response>
where
    T: Send + 'static,
    F: FnOnce(&dyn PibsStore) -> Result<T, PibsStoreError> + Send + 'static,
{
    let permit = st.gate.enter().await?;
    let store = st.store.clone();
    // The permit goes with the work: a request dropped mid-way keeps its slot until the
    // store call ends.
    let work = move || {
        let r = f(store.as_ref());
        drop(permit);
        r
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(store_error(e)),
        Err(e) => {
            tracing::error!(error = %e, "pibs: lookup task failed");
            Err(json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "lookup failed",
            ))
        }
    }
}

/// A 200 JSON answer, with `x-dribble-cursor` when a next page exists.
pub(crate) fn json_value(v: &serde_json::Value, next: Option<&str>) -> Response {
    let mut r = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        v.to_string(),
    )
        .into_response();
    if let Some(v) = next.and_then(|n| HeaderValue::from_str(n).ok()) {
        r.headers_mut().insert("x-dribble-cursor", v);
    }
    r
}
