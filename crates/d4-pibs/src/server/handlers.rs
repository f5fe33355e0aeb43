//! The routes of `d4 pibs serve`: each handler checks its input ([`super::input`]), reads
//! the store in `spawn_blocking` ([`super::blocking`]) and shapes the answer with
//! [`super::answer`]. Rejections of axum's extractors become JSON 400 answers too.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use d4_http::json_error;
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::answer::{self, VictimRow};
use super::input::{self, bad, DayEnd, Refused};
use super::{blocking, json_value, AppState};
use crate::store::{AttackQuery, PibsStore, PibsStoreError};

type St = State<Arc<AppState>>;
type P<T> = Result<Path<T>, PathRejection>;
type Q = Result<Query<Params>, QueryRejection>;
type Answer = Result<Response, Response>;

/// Query parameters of every route (each reads those it knows).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    since: Option<String>,
    until: Option<String>,
    asn: Option<String>,
    prefix: Option<String>,
    port: Option<String>,
    min_pps: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        json_error(self.status, self.message)
    }
}

impl From<Refused> for Response {
    fn from(r: Refused) -> Response {
        r.into_response()
    }
}

fn path<T>(p: P<T>) -> Result<T, Refused> {
    p.map(|Path(v)| v).map_err(|e| bad(e.body_text()))
}

fn params(q: Q) -> Result<Params, Refused> {
    q.map(|Query(v)| v).map_err(|e| bad(e.body_text()))
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/attacks", get(attacks))
        .route("/victim/{ip}", get(victim))
        .route("/daily/{date}", get(daily))
        .route("/asn/{asn}", get(asn))
        .route("/prefix/{*net}", get(prefix))
        .route("/info", get(info))
        .route("/openapi.json", get(openapi))
}

/// The time window of a request (`since`/`until`), checked for order.
fn window(p: &Params) -> Result<(Option<u64>, Option<u64>), Refused> {
    let since = input::opt_time("since", p.since.as_deref(), DayEnd::Start)?;
    let until = input::opt_time("until", p.until.as_deref(), DayEnd::End)?;
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(bad(format!("since ({s}) is after until ({u})")));
        }
    }
    Ok((since, until))
}

/// `asn=` needs the prefix-to-AS table.
fn need_table(st: &AppState) -> Result<(), Refused> {
    match st.pfx() {
        Some(_) => Ok(()),
        None => Err(bad(
            "AS lookups need a prefix-to-AS table: start `d4 pibs serve` with --pfx2as FILE",
        )),
    }
}

/// The victims' networks an AS (and/or a prefix) stands for; `None`: nothing can match.
fn nets_of(st: &AppState, asn: Option<u32>, prefix: Option<IpNet>) -> Option<Vec<IpNet>> {
    match (asn, prefix) {
        (_, Some(p)) => Some(vec![p]),
        (Some(a), None) => {
            let nets: Vec<IpNet> = st.pfx()?.prefixes_of(a).collect();
            (!nets.is_empty()).then_some(nets)
        }
        (None, None) => Some(Vec::new()),
    }
}

async fn attacks(State(st): St, p: Q) -> Answer {
    let p = params(p)?;
    let (since, until) = window(&p)?;
    let asn = nonempty(&p.asn).map(input::asn_arg).transpose()?;
    if asn.is_some() {
        need_table(&st)?;
    }
    let prefix = nonempty(&p.prefix).map(input::net_arg).transpose()?;
    let port = nonempty(&p.port).map(input::port_arg).transpose()?;
    let min_pps = nonempty(&p.min_pps).map(input::pps_arg).transpose()?;
    let limit = input::limit_arg(p.limit.as_deref())?;
    let cursor = nonempty(&p.cursor).map(str::to_string);
    let Some(nets) = nets_of(&st, asn, prefix) else {
        return Ok(json_value(&answer::attacks(&[], None, None), None));
    };
    let q = AttackQuery {
        since,
        until,
        nets,
        port,
        min_pps,
    };
    let mut page = blocking(&st, move |s| s.attacks(&q, cursor.as_deref(), limit)).await?;
    if let (Some(a), Some(t)) = (asn, st.pfx()) {
        // A victim inside the AS's prefix but in a more specific route of another AS is
        // not the AS's: the page may hold fewer than `limit` attacks then.
        page.items.retain(|x| t.originated_by(x.victim, a));
    }
    Ok(json_value(
        &answer::attacks(&page.items, st.pfx(), page.next.as_deref()),
        page.next.as_deref(),
    ))
}

async fn victim(State(st): St, ip: P<String>, p: Q) -> Answer {
    let ip = input::ip_arg(&path(ip)?)?;
    let p = params(p)?;
    let (since, until) = window(&p)?;
    let (since, until) = (since.unwrap_or(0), until.unwrap_or(u64::MAX));
    let max_buckets = st.cfg.max_buckets.max(1);
    let (names, max_names) = (st.pivots.names.clone(), st.cfg.max_names);
    let (list, timeline, names) = blocking(&st, move |s| {
        let (list, timeline) = s.victim(ip, since, until, max_buckets)?;
        let names = names.map(|n| n.names(ip, max_names).map_err(|e| e.to_string()));
        Ok((list, timeline, names))
    })
    .await?;
    let names = match &names {
        None => Ok(&[][..]),
        Some(Ok(n)) => Ok(n.as_slice()),
        Some(Err(e)) => {
            tracing::warn!(error = %e, %ip, "pibs: the passive DNS pivot failed");
            Err(e.as_str())
        }
    };
    let truncated = timeline.len() >= max_buckets;
    Ok(json_value(
        &answer::victim(ip, st.pfx(), names, &list, &timeline, truncated),
        None,
    ))
}

async fn daily(State(st): St, d: P<String>) -> Answer {
    let d = path(d)?;
    let start =
        input::day_start(&d).ok_or_else(|| bad(format!("not a date (YYYY-MM-DD): {d:?}")))?;
    let max = st.cfg.max_scan.max(1);
    let mut list = blocking(&st, move |s| {
        s.attacks_in(start, start + 86_399, max.saturating_add(1))
    })
    .await?;
    let truncated = list.len() > max;
    list.truncate(max);
    Ok(json_value(
        &answer::daily(start, &list, st.pfx(), truncated),
        None,
    ))
}

/// Every victim of the attacks matching `q` (filtered by `asn`), with its counts; fails
/// (422) past `max` attacks.
fn victims_of(
    s: &dyn PibsStore,
    q: &AttackQuery,
    keep: &(dyn Fn(IpAddr) -> bool + Send + Sync),
    max: usize,
) -> Result<Result<BTreeMap<IpAddr, VictimRow>, usize>, PibsStoreError> {
    let mut rows: BTreeMap<IpAddr, VictimRow> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    let mut read = 0usize;
    loop {
        let page = s.attacks(q, cursor.as_deref(), 1_000)?;
        read += page.items.len();
        if read > max {
            return Ok(Err(max));
        }
        for a in &page.items {
            if keep(a.victim) {
                rows.entry(a.victim).or_default().add(a);
            }
        }
        match page.next {
            Some(n) if !page.items.is_empty() => cursor = Some(n),
            _ => return Ok(Ok(rows)),
        }
    }
}

/// The reverse pivot's answer: one page of the victims of `nets` (address order; the
/// cursor is the last address shown).
async fn pivot(
    st: Arc<AppState>,
    p: Params,
    what: Map<String, Value>,
    nets: Vec<IpNet>,
    asn: Option<u32>,
) -> Answer {
    let (since, until) = window(&p)?;
    let limit = input::limit_arg(p.limit.as_deref())?;
    let after = nonempty(&p.cursor)
        .map(|c| input::ip_arg(c).map_err(|_| bad("bad paging cursor")))
        .transpose()?;
    if nets.is_empty() {
        return Ok(json_value(
            &answer::victims(what, &[], st.pfx(), None),
            None,
        ));
    }
    let q = AttackQuery {
        since,
        until,
        nets,
        port: None,
        min_pps: None,
    };
    let table = st.pivots.pfx2as.clone();
    let keep = move |ip: IpAddr| match (asn, &table) {
        (Some(a), Some(t)) => t.originated_by(ip, a),
        _ => true,
    };
    let max = st.cfg.max_scan.max(1);
    let rows = blocking(&st, move |s| victims_of(s, &q, &keep, max)).await?;
    let rows = rows.map_err(|max| {
        json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("more than {max} attacks match: narrow the query with since/until"),
        )
    })?;
    let mut page: Vec<(IpAddr, VictimRow)> = rows
        .into_iter()
        .filter(|(ip, _)| after.is_none_or(|a| *ip > a))
        .take(limit + 1)
        .collect();
    let next = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|(ip, _)| ip.to_string())
    });
    let next = next.flatten();
    Ok(json_value(
        &answer::victims(what, &page, st.pfx(), next.as_deref()),
        next.as_deref(),
    ))
}

async fn asn(State(st): St, a: P<String>, p: Q) -> Answer {
    let a = input::asn_arg(&path(a)?)?;
    let p = params(p)?;
    need_table(&st)?;
    let nets = nets_of(&st, Some(a), None).unwrap_or_default();
    let mut what = Map::new();
    what.insert("asn".into(), json!(a));
    what.insert(
        "prefixes".into(),
        json!(nets.iter().map(ToString::to_string).collect::<Vec<_>>()),
    );
    pivot(st, p, what, nets, Some(a)).await
}

async fn prefix(State(st): St, n: P<String>, p: Q) -> Answer {
    let n = input::net_arg(&path(n)?)?;
    let p = params(p)?;
    let mut what = Map::new();
    what.insert("prefix".into(), json!(n.to_string()));
    pivot(st, p, what, vec![n], None).await
}

async fn info(State(st): St) -> Answer {
    let i = blocking(&st, |s| s.info()).await?;
    let pfx = st.pfx().map(|t| {
        let s = t.stats();
        json!({ "routes": s.routes, "bad_lines": s.bad_lines, "duplicates": s.duplicates,
                "multi_origin": s.multi_origin })
    });
    Ok(json_value(
        &json!({
            "victims": i.victims,
            "buckets": i.buckets,
            "attacks": i.attacks,
            "files": i.files,
            "oldest_bucket": i.oldest_bucket,
            "newest_bucket": i.newest_bucket,
            "oldest_bucket_iso": i.oldest_bucket.map(input::iso),
            "newest_bucket_iso": i.newest_bucket.map(input::iso),
            "attack_gap": i.attack_gap,
            "darknet_size": i.darknet_size,
            "pfx2as": pfx,
            "passive_dns": st.pivots.names.is_some(),
            "version": env!("CARGO_PKG_VERSION"),
        }),
        None,
    ))
}

async fn openapi() -> Response {
    json_value(&super::openapi::document(), None)
}
