//! The COF lookup server (axum): `GET /query/<q>`, `GET /fquery/<value>`, `GET /info`.
//!
//! Pagination follows CIRCL's service as PyPDNS uses it: request headers
//! `dribble-paginate-count` (page size) and `dribble-paginate-cursor` (the previous
//! answer's `x-dribble-cursor`: a positive integer, as PyPDNS parses it with `int()`),
//! `dribble-filter-rrtype`; the answer carries `x-dribble-cursor` when more records
//! follow. The cursor encodes the position (the sort key of the last record sent and the
//! store's write watermark, see [`crate::query::Cursor`]), so pages neither skip nor repeat
//! records while others are ingested; a plain small integer is still taken as an offset.
//! Query parameters `rrtype`
//! (comma-separated), `since`, `until` (seconds), `limit` and `cursor` do the same for curl
//! users. `x-d4-total` gives the number of matching records. Nothing is cut silently: a
//! page that does not hold everything always carries a cursor, and a query matching more
//! than `max_matches` records, or reading more than `max_examined` stored records (filtered
//! out or not), is refused (422) with a message.
//!
//! Bounds (docs/security.md): a page is chosen while the records stream by
//! ([`crate::page::PageSelector`]: only the page is kept and sorted, every page request alike);
//! `max_concurrent` lookups run at once (others wait up to 2 s, then 429); with tokens, a
//! client IP with `max_auth_failures` wrong tokens in a minute gets 429 without a check;
//! the `Host` header must be one of `allowed_hosts` (or an IP literal: DNS rebinding).

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use crate::cof::{self, CofOptions};
pub use crate::listen::ListenLimits;
use crate::page::PageSelector;
use crate::query::{self, parse_position, Position};
use crate::rrtype;
use crate::store::{Filter, Lookup, RecordError, RecordStore};
pub use d4_http::host_allowed;
use d4_http::{ct_eq, Gate, Guard, GuardConfig};

/// Server settings.
#[derive(Debug, Clone)]
pub struct LookupConfig {
    pub cof: CofOptions,
    /// Accepted tokens (`Authorization: <token>` or `Authorization: Bearer <token>`);
    /// empty: no authentication.
    pub tokens: Vec<String>,
    /// Requests per minute and client IP; `None`: no limit. Over it: 429.
    pub rate_limit_per_min: Option<u32>,
    /// A query matching more records than this is refused (422) instead of truncated.
    pub max_matches: usize,
    /// A query reading more stored records than this (filtered out or not) is refused (422).
    pub max_examined: usize,
    /// Lookups running at once; more wait up to 2 s, then 429.
    pub max_concurrent: usize,
    /// Wrong or missing tokens per minute and client IP before 429 (no check at all).
    pub max_auth_failures: u32,
    /// Accepted `Host` names (`*`: any); IP literals always pass.
    pub allowed_hosts: Vec<String>,
}

impl Default for LookupConfig {
    fn default() -> Self {
        LookupConfig {
            cof: CofOptions::default(),
            tokens: Vec::new(),
            rate_limit_per_min: None,
            max_matches: 1_000_000,
            max_examined: 1_000_000,
            max_concurrent: 4,
            max_auth_failures: 10,
            allowed_hosts: vec!["localhost".into()],
        }
    }
}

struct AppState {
    store: Arc<dyn RecordStore>,
    cfg: LookupConfig,
    guard: Guard,
    lookups: Gate,
}

/// The router; serve it with `into_make_service_with_connect_info::<SocketAddr>()`
/// (the rate limiter needs the client address).
pub fn router(store: Arc<dyn RecordStore>, cfg: LookupConfig) -> Router {
    let checks = Guard::new(GuardConfig {
        name: "pdns",
        allowed_hosts: cfg.allowed_hosts.clone(),
        rate_limit_per_min: cfg.rate_limit_per_min,
        max_auth_failures: cfg.max_auth_failures,
    });
    let state = Arc::new(AppState {
        lookups: Gate::new(cfg.max_concurrent),
        store,
        cfg,
        guard: checks,
    });
    Router::new()
        .route("/query/{*q}", get(query_handler))
        .route("/fquery/{*q}", get(fquery_handler))
        .route("/info", get(info_handler))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serves until the future `shutdown` completes, with the default [`ListenLimits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<dyn RecordStore>,
    cfg: LookupConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_limits(listener, store, cfg, ListenLimits::default(), shutdown).await
}

/// [`serve`] with explicit connection bounds (caps, head and idle deadlines).
pub async fn serve_with_limits(
    listener: tokio::net::TcpListener,
    store: Arc<dyn RecordStore>,
    cfg: LookupConfig,
    limits: ListenLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::listen::serve(listener, router(store, cfg), limits, shutdown).await
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    d4_http::json_error(status, msg)
}

fn token_ok(tokens: &[String], headers: &HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let v = v.strip_prefix("Bearer ").unwrap_or(v).trim();
    // An empty token never matches (the binary refuses to start with one).
    !v.is_empty()
        && tokens
            .iter()
            .filter(|t| !t.is_empty())
            .fold(false, |ok, t| ok | ct_eq(t.as_bytes(), v.as_bytes()))
}

async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let checked = {
        let tokens = &st.cfg.tokens;
        let check = |h: &HeaderMap| token_ok(tokens, h);
        let auth = (!tokens.is_empty()).then_some(&check as &dyn Fn(&HeaderMap) -> bool);
        st.guard.check(&req, auth)
    };
    if let Err(refused) = checked {
        return refused.response("missing or wrong Authorization token", None);
    }
    next.run(req).await
}

#[derive(Debug, Default, Deserialize)]
struct Params {
    rrtype: Option<String>,
    since: Option<u64>,
    until: Option<u64>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn parse_types(s: &str, out: &mut Vec<u16>) -> Result<(), String> {
    for t in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match rrtype::parse(t) {
            Some(n) => out.push(n),
            None => return Err(format!("unknown rrtype `{t}`")),
        }
    }
    Ok(())
}

async fn run_lookup(
    st: Arc<AppState>,
    raw: &str,
    lookup: Result<Lookup, query::QueryError>,
    params: Params,
    headers: HeaderMap,
) -> Response {
    let lookup = match lookup {
        Ok(l) => l,
        Err(e) => {
            tracing::info!(query = %d4_proto::logsafe::escape(raw), error = %d4_proto::logsafe::escape(&e.to_string()), "pdns: query refused");
            return error(StatusCode::BAD_REQUEST, e);
        }
    };
    let mut filter = Filter {
        rrtypes: Vec::new(),
        since: params.since,
        until: params.until,
    };
    if let Some(t) = &params.rrtype {
        if let Err(e) = parse_types(t, &mut filter.rrtypes) {
            return error(StatusCode::BAD_REQUEST, e);
        }
    }
    if let Some(t) = header_str(&headers, "dribble-filter-rrtype") {
        if let Err(e) = parse_types(t, &mut filter.rrtypes) {
            return error(StatusCode::BAD_REQUEST, e);
        }
    }
    let count = match header_str(&headers, "dribble-paginate-count") {
        Some(c) => match c.parse::<usize>() {
            Ok(c) if c > 0 => Some(c),
            _ => return error(StatusCode::BAD_REQUEST, "bad dribble-paginate-count"),
        },
        None => params.limit.filter(|l| *l > 0),
    };
    let pos = match header_str(&headers, "dribble-paginate-cursor").or(params.cursor.as_deref()) {
        Some(c) => match parse_position(c) {
            Some(p) => p,
            None => return error(StatusCode::BAD_REQUEST, "bad dribble-paginate-cursor"),
        },
        None => Position::Start,
    };
    let permit = match st.lookups.enter().await {
        Ok(p) => p,
        Err(busy) => return busy,
    };
    let (max_matches, max_examined) = (st.cfg.max_matches, st.cfg.max_examined);
    let store = st.store.clone();
    let found = tokio::task::spawn_blocking(move || {
        // The permit goes with the work: a request dropped mid-way keeps its slot until
        // the scan ends.
        let _permit = permit;
        // The watermark first: a record written after it is sent again rather than missed.
        let watermark = store.watermark()?;
        let mut sel = PageSelector::new(pos, count);
        store.scan(&lookup, &filter, max_examined, &mut |r| sel.push(r))?;
        if sel.total() > max_matches {
            return Err(RecordError::TooManyMatches(max_matches));
        }
        Ok::<_, RecordError>(sel.finish(watermark))
    })
    .await;
    let page = match found {
        Ok(Ok(p)) => p,
        Ok(Err(e @ (RecordError::TooManyMatches(_) | RecordError::TooManyExamined(_)))) => {
            tracing::info!(query = %d4_proto::logsafe::escape(raw), error = %d4_proto::logsafe::escape(&e.to_string()), "pdns: query refused");
            return error(StatusCode::UNPROCESSABLE_ENTITY, e);
        }
        Ok(Err(e @ RecordError::Unsupported(_))) => return error(StatusCode::NOT_IMPLEMENTED, e),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "lookup failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "lookup failed");
        }
        Err(e) => {
            tracing::error!(error = %e, "lookup task failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "lookup failed");
        }
    };
    let mut body = String::new();
    if !page.moved.is_empty() {
        body = cof::write_lines(&page.moved, &st.cfg.cof);
    }
    body.push_str(&cof::write_lines(&page.records, &st.cfg.cof));
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(cof::CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(&page.total.to_string()) {
        h.insert("x-d4-total", v);
    }
    if let Some(n) = page.next {
        if let Ok(v) = HeaderValue::from_str(&n.encode()) {
            h.insert("x-dribble-cursor", v);
        }
    }
    resp
}

async fn query_handler(
    State(st): State<Arc<AppState>>,
    Path(q): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    run_lookup(st, &q, query::parse_query(&q), params, headers).await
}

async fn fquery_handler(
    State(st): State<Arc<AppState>>,
    Path(q): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    run_lookup(st, &q, query::parse_fquery(&q), params, headers).await
}

async fn info_handler(State(st): State<Arc<AppState>>) -> Response {
    let store = st.store.clone();
    match tokio::task::spawn_blocking(move || store.info()).await {
        Ok(Ok(info)) => {
            let types: serde_json::Map<String, serde_json::Value> = info
                .rrtypes
                .iter()
                .map(|(t, n)| {
                    let k = rrtype::name(*t)
                        .map(str::to_string)
                        .unwrap_or_else(|| t.to_string());
                    (k, json!(n))
                })
                .collect();
            axum::Json(json!({
                "software": "d4-pdns",
                "version": env!("CARGO_PKG_VERSION"),
                "records": info.records,
                "rcode_records": info.rcode_records,
                "lines_ingested": info.lines_ingested,
                "lines_rejected": info.lines_rejected,
                "rrtypes": types,
                "sensors": info.sensors,
            }))
            .into_response()
        }
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the counters",
        ),
    }
}
