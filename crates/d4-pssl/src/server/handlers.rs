//! The routes of `d4 pssl serve`: each handler checks its input ([`super::input`]), reads
//! the store once in `spawn_blocking` ([`super::blocking`]) and shapes the answer with
//! [`super::answer`]. Rejections of axum's extractors become JSON 400 answers too.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use d4_http::json_error;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::answer;
use super::input::{self, Refused};
use super::{blocking, json_text, json_value, AppState};
use crate::model::Session;
use crate::store::{
    CertView, Fingerprint, IpCerts, IpSeen, Page, Paged, PsslError, PsslStore, SessionQuery,
    WeakKey,
};

type St = State<Arc<AppState>>;
type P<T> = Result<Path<T>, PathRejection>;
type Q = Result<Query<Params>, QueryRejection>;
type Answer = Result<Response, Response>;

/// Query parameters of every route (each reads those it knows).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    limit: Option<String>,
    cursor: Option<String>,
    ja3: Option<String>,
    ja3s: Option<String>,
    ja4: Option<String>,
    sni: Option<String>,
    ip: Option<String>,
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

fn rejected(message: String) -> Refused {
    Refused {
        status: StatusCode::BAD_REQUEST,
        message,
    }
}

fn path<T>(p: P<T>) -> Result<T, Refused> {
    p.map(|Path(v)| v).map_err(|e| rejected(e.body_text()))
}

fn params(q: Q) -> Result<Params, Refused> {
    q.map(|Query(v)| v).map_err(|e| rejected(e.body_text()))
}

fn page(p: &Params, headers: &HeaderMap, default: usize) -> Result<crate::store::Page, Refused> {
    input::page(p.limit.as_deref(), p.cursor.as_deref(), headers, default)
}

fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "certificate not found")
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2pssl/query/{*q}", get(query))
        .route("/v2pssl/cquery/{sha1}", get(cquery))
        .route("/v2pssl/cfetch/{sha1}", get(cfetch))
        .route("/ja3/{md5}", get(ja3))
        .route("/ja3s/{md5}", get(ja3s))
        .route("/ja4/{ja4}", get(ja4))
        .route("/sessions", get(sessions))
        .route("/certificate/{hash}", get(certificate))
        .route("/certificate/{hash}/ips", get(certificate_ips))
        .route("/sni/{name}", get(sni))
        .route("/subject/{*text}", get(subject))
        .route("/key/{spki}", get(key))
        .route("/fingerprint/{kind}/{value}", get(fingerprint))
        .route("/weak", get(weak))
        .route("/info", get(info))
        .route("/openapi.json", get(openapi))
}

/// The subject of each certificate (SHA-1) the store knows.
fn subjects<'a>(
    s: &dyn PsslStore,
    sha1s: impl Iterator<Item = &'a String>,
) -> Result<HashMap<String, String>, PsslError> {
    let mut out = HashMap::new();
    for h in sha1s {
        if !out.contains_key(h) {
            if let Some(v) = s.certificate(h)? {
                out.insert(h.clone(), v.certificate.subject);
            }
        }
    }
    Ok(out)
}

/// Certificates one `/v2pssl/query` page lists at most (each costs a subject lookup): the
/// page ends at the address where the budget runs out (whole addresses only), and the
/// cursor resumes after it.
const QUERY_CERT_BUDGET: usize = 10_000;

/// Up to `page.limit` addresses of `net`, read in chunks of 100 so the page can end early
/// once [`QUERY_CERT_BUDGET`] certificates are listed.
fn addresses_within_budget(
    s: &dyn PsslStore,
    net: ipnet::IpNet,
    page: &Page,
) -> Result<Paged<IpCerts>, PsslError> {
    let mut out = Paged {
        items: Vec::new(),
        next: None,
    };
    let mut cursor = page.cursor.clone();
    let mut certs = 0;
    loop {
        let want = (page.limit.max(1) - out.items.len()).min(100);
        let got = s.ip_certificates(
            net,
            &Page {
                cursor: cursor.clone(),
                limit: want,
            },
        )?;
        certs += got
            .items
            .iter()
            .map(|i| i.certificates.len())
            .sum::<usize>();
        out.items.extend(got.items);
        out.next = got.next;
        if out.next.is_none() || out.items.len() >= page.limit.max(1) || certs >= QUERY_CERT_BUDGET
        {
            return Ok(out);
        }
        cursor = out.next.clone();
    }
}

async fn query(State(st): St, q: P<String>, p: Q, headers: HeaderMap) -> Answer {
    let q = path(q)?;
    let p = params(p)?;
    let net = input::query_net(&q, st.cfg.min_prefix_v4, st.cfg.min_prefix_v6)?;
    let page = page(&p, &headers, 1000)?;
    let (found, subj) = blocking(&st, move |s| {
        let found = addresses_within_budget(s, net, &page)?;
        let subj = subjects(
            s,
            found
                .items
                .iter()
                .flat_map(|i| i.certificates.iter().map(|c| &c.value)),
        )?;
        Ok((found, subj))
    })
    .await?;
    Ok(json_value(
        &answer::query(&found.items, &subj),
        found.next.as_deref(),
    ))
}

async fn cquery(State(st): St, h: P<String>, p: Q, headers: HeaderMap) -> Answer {
    let sha1 = input::sha1_arg(&path(h)?)?;
    let page = page(&params(p)?, &headers, 10_000)?;
    let key = sha1.clone();
    let (view, ips) = blocking(&st, move |s| {
        let view = s.certificate(&key)?;
        let ips = match &view {
            Some(_) => whole_addresses(s, &key, s.certificate_ips(&key, &page)?)?,
            None => Paged {
                items: Vec::new(),
                next: None,
            },
        };
        Ok((view, ips))
    })
    .await?;
    Ok(json_value(
        &answer::cquery(&sha1, view.as_ref(), &ips.items),
        ips.next.as_deref(),
    ))
}

/// `seen` is paged by address, but the store pages (address, port) links: a page that ends
/// inside an address's ports takes that address's remaining links too (one at a time, at
/// most 65,536: one per port), so no address is cut between pages or shown twice.
fn whole_addresses(
    s: &dyn PsslStore,
    sha1: &str,
    mut got: Paged<IpSeen>,
) -> Result<Paged<IpSeen>, PsslError> {
    let Some(last) = got.items.last().map(|l| l.ip) else {
        return Ok(got);
    };
    for _ in 0..=u16::MAX as usize {
        let Some(cursor) = got.next.clone() else {
            break;
        };
        let more = s.certificate_ips(sha1, &Page::after(cursor, 1))?;
        match more.items.into_iter().next() {
            Some(link) if link.ip == last => {
                got.items.push(link);
                got.next = more.next;
            }
            // the next address starts here: the page ends before it (cursor unchanged)
            Some(_) => break,
            None => {
                got.next = None;
                break;
            }
        }
    }
    Ok(got)
}

async fn cfetch(State(st): St, h: P<String>) -> Answer {
    let sha1 = input::sha1_arg(&path(h)?)?;
    let view = blocking(&st, move |s| with_weakness(s, s.certificate(&sha1)?)).await?;
    match view {
        Some((v, weak)) => Ok(json_value(&answer::cfetch(&v, &weak), None)),
        None => Err(not_found()),
    }
}

/// A certificate view and the weak-key findings on its key.
fn with_weakness(
    s: &dyn PsslStore,
    view: Option<CertView>,
) -> Result<Option<(CertView, Vec<WeakKey>)>, PsslError> {
    let Some(v) = view else { return Ok(None) };
    let weak = match &v.key {
        Some(k) => s.key_weakness(&k.spki_sha256)?,
        None => Vec::new(),
    };
    Ok(Some((v, weak)))
}

/// Certificates listed per `/weak` item (the rest through `/key/<spki>`).
const WEAK_CERTS: usize = 100;

async fn weak(State(st): St, p: Q, headers: HeaderMap) -> Answer {
    let page = page(&params(p)?, &headers, 100)?;
    let (found, certs) = blocking(&st, move |s| {
        let found = s.weak_keys(&page)?;
        let mut certs: HashMap<String, Vec<String>> = HashMap::new();
        for w in &found.items {
            if !certs.contains_key(&w.spki_sha256) {
                let c = s.key_certificates(&w.spki_sha256, &Page::first(WEAK_CERTS))?;
                certs.insert(w.spki_sha256.clone(), c.items);
            }
        }
        Ok((found, certs))
    })
    .await?;
    let items = found
        .items
        .iter()
        .map(|w| {
            let c = certs.get(&w.spki_sha256).map_or(&[][..], Vec::as_slice);
            answer::weak_item(w, c)
        })
        .collect();
    Ok(items_answer(items, found.next))
}

type Certs = HashMap<String, Box<RawValue>>;

/// A page of sessions and the Go certificate objects of their chains.
fn load_sessions(
    s: &dyn PsslStore,
    q: &SessionQuery,
    page: &crate::store::Page,
) -> Result<(Paged<Session>, Certs), PsslError> {
    let found = s.sessions(q, page)?;
    let mut certs = Certs::new();
    for h in found.items.iter().flat_map(|x| x.chain.iter()) {
        if certs.contains_key(h) {
            continue;
        }
        if let Some(v) = s.certificate(h)? {
            if let Ok(raw) = d4_tls::gojson::certificate_json(&v.certificate.der) {
                certs.insert(h.clone(), raw);
            }
        }
    }
    Ok((found, certs))
}

/// `{"Sessions": [...]}` of one fingerprint, the cursor in the header.
async fn sessions_of(st: Arc<AppState>, q: SessionQuery, p: Q, headers: HeaderMap) -> Answer {
    let page = page(&params(p)?, &headers, 100)?;
    let (found, certs) = blocking(&st, move |s| load_sessions(s, &q, &page)).await?;
    let body = serde_json::to_string(&answer::sessions(&found.items, &certs))
        .map_err(|e| json_error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(json_text(body, found.next.as_deref()))
}

async fn ja3(State(st): St, v: P<String>, p: Q, headers: HeaderMap) -> Answer {
    let v = input::md5_arg(&path(v)?)?;
    sessions_of(st, SessionQuery::Ja3(v), p, headers).await
}

async fn ja3s(State(st): St, v: P<String>, p: Q, headers: HeaderMap) -> Answer {
    let v = input::md5_arg(&path(v)?)?;
    sessions_of(st, SessionQuery::Ja3s(v), p, headers).await
}

async fn ja4(State(st): St, v: P<String>, p: Q, headers: HeaderMap) -> Answer {
    let v = input::ja4_arg(&path(v)?)?;
    sessions_of(st, SessionQuery::Ja4(v), p, headers).await
}

/// `/sessions?ja3=|ja3s=|ja4=|sni=|ip=` (exactly one).
fn session_query(p: &Params) -> Result<SessionQuery, Refused> {
    let given = [&p.ja3, &p.ja3s, &p.ja4, &p.sni, &p.ip]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if given != 1 {
        return Err(Refused {
            status: StatusCode::BAD_REQUEST,
            message: "give exactly one of ja3, ja3s, ja4, sni, ip".into(),
        });
    }
    Ok(if let Some(v) = &p.ja3 {
        SessionQuery::Ja3(input::md5_arg(v)?)
    } else if let Some(v) = &p.ja3s {
        SessionQuery::Ja3s(input::md5_arg(v)?)
    } else if let Some(v) = &p.ja4 {
        SessionQuery::Ja4(input::ja4_arg(v)?)
    } else if let Some(v) = &p.sni {
        SessionQuery::Sni(input::text_arg("sni", v, 253)?)
    } else {
        let v = p.ip.as_deref().unwrap_or_default();
        SessionQuery::Ip(v.trim().parse().map_err(|_| Refused {
            status: StatusCode::BAD_REQUEST,
            message: format!("invalid IP address: {v:?}"),
        })?)
    })
}

async fn sessions(State(st): St, p: Q, headers: HeaderMap) -> Answer {
    let p = params(p)?;
    let q = session_query(&p)?;
    let page = page(&p, &headers, 100)?;
    let (found, certs) = blocking(&st, move |s| load_sessions(s, &q, &page)).await?;
    let items = answer::SessionItems {
        items: found
            .items
            .iter()
            .map(|s| answer::session_record(s, &certs))
            .collect(),
        next: found.next.clone(),
    };
    let body = serde_json::to_string(&items)
        .map_err(|e| json_error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(json_text(body, found.next.as_deref()))
}

async fn certificate(State(st): St, h: P<String>) -> Answer {
    let h = input::hex_arg("SHA-1 or SHA-256", &path(h)?, &[40, 64])?;
    match blocking(&st, move |s| with_weakness(s, s.certificate(&h)?)).await? {
        Some((v, weak)) => Ok(json_value(&answer::certificate(&v, &weak), None)),
        None => Err(not_found()),
    }
}

async fn certificate_ips(State(st): St, h: P<String>, p: Q, headers: HeaderMap) -> Answer {
    let h = input::hex_arg("SHA-1 or SHA-256", &path(h)?, &[40, 64])?;
    let page = page(&params(p)?, &headers, 100)?;
    let found = blocking(&st, move |s| match s.certificate(&h)? {
        Some(v) => s.certificate_ips(&v.certificate.sha1, &page).map(Some),
        None => Ok(None),
    })
    .await?
    .ok_or_else(not_found)?;
    let items = found.items.iter().map(answer::ip_seen).collect();
    Ok(items_answer(items, found.next))
}

fn items_answer(items: Vec<Value>, next: Option<String>) -> Response {
    json_value(&answer::items(items, next.as_deref()), next.as_deref())
}

async fn sni(State(st): St, n: P<String>, p: Q, headers: HeaderMap) -> Answer {
    let name = input::text_arg("server name", &path(n)?, 253)?;
    let page = page(&params(p)?, &headers, 100)?;
    let (found, subj) = blocking(&st, move |s| {
        let found = s.sni_certificates(&name, &page)?;
        let subj = subjects(s, found.items.iter().map(|x| &x.value))?;
        Ok((found, subj))
    })
    .await?;
    let items = found
        .items
        .iter()
        .map(|x| answer::sni_item(x, subj.get(&x.value).map(String::as_str)))
        .collect();
    Ok(items_answer(items, found.next))
}

async fn subject(State(st): St, t: P<String>, p: Q, headers: HeaderMap) -> Answer {
    let text = input::text_arg("subject text", path(t)?.trim_start_matches('/'), 256)?;
    let page = page(&params(p)?, &headers, 100)?;
    let (found, subj) = blocking(&st, move |s| {
        let found = s.subject_search(&text, &page)?;
        let subj = subjects(s, found.items.iter())?;
        Ok((found, subj))
    })
    .await?;
    let items = found
        .items
        .iter()
        .map(|h| json!({ "sha1": h, "subject": subj.get(h) }))
        .collect();
    Ok(items_answer(items, found.next))
}

async fn key(State(st): St, k: P<String>, p: Q, headers: HeaderMap) -> Answer {
    let spki = input::hex_arg("SPKI SHA-256", &path(k)?, &[64])?;
    let page = page(&params(p)?, &headers, 100)?;
    let (found, key) = blocking(&st, move |s| {
        let found = s.key_certificates(&spki, &page)?;
        let key = match found.items.first() {
            Some(h) => s.certificate(h)?.and_then(|v| v.key),
            None => None,
        };
        Ok((found, key))
    })
    .await?;
    let body = json!({
        "key": key.as_ref().map_or(Value::Null, answer::key),
        "items": found.items,
        "next": found.next,
    });
    Ok(json_value(&body, found.next.as_deref()))
}

async fn fingerprint(State(st): St, kv: P<(String, String)>, p: Q, headers: HeaderMap) -> Answer {
    let (kind, value) = path(kv)?;
    let fp = match kind.as_str() {
        "ja3" => Fingerprint::Ja3(input::md5_arg(&value)?),
        "ja3s" => Fingerprint::Ja3s(input::md5_arg(&value)?),
        "ja4" => Fingerprint::Ja4(input::ja4_arg(&value)?),
        other => {
            return Err(json_error(
                StatusCode::BAD_REQUEST,
                format!("unknown fingerprint kind {other:?}: ja3, ja3s or ja4"),
            ))
        }
    };
    let page = page(&params(p)?, &headers, 100)?;
    let found = blocking(&st, move |s| s.fingerprint_ips(&fp, &page)).await?;
    let items = found.items.iter().map(answer::ip_seen).collect();
    Ok(items_answer(items, found.next))
}

async fn info(State(st): St) -> Answer {
    let i = blocking(&st, |s| s.info()).await?;
    Ok(json_value(&answer::info(&i, &st.cfg.backend), None))
}

async fn openapi() -> Response {
    json_value(&super::openapi::document(), None)
}
