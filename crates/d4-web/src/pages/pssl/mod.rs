//! The "Passive SSL" page: a search box over `d4 pssl serve`'s HTTP API (the web UI never
//! opens the passive SSL store; see [`crate::pssl_client`]). `GET /pssl?q=` classifies
//! the text ([`classify`]) and asks the matching endpoints; `GET /pssl/cert/<sha1|sha256>`
//! is a certificate's view (details, public key, other certificates of the key, the
//! addresses that served it, PEM), `GET /pssl/key/<spki sha256>` a public key's, and
//! `GET /pssl/weak` the weak keys (`/weak`) with their certificates and addresses.
//! Failures of the API (down, refused, too slow, too large) are messages on the page.
//! The rendering is pure ([`render`], [`cert`], [`weak`]); this module only fetches.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

use super::PageResult;
use crate::extract::{Login, Read};
use crate::pssl_client::{segment, PsslClient};
use crate::view::page;
use crate::WebState;

pub mod cert;
pub mod classify;
pub mod render;
pub mod weak;

use classify::{classify, Search, MAX_QUERY_CHARS};
use render::{api_error, field, next_link, search_form, search_help};
use weak::{CertIps, IPS_PER_CERT};

/// Entries asked per page of a list.
const PAGE: u32 = 100;

/// Weak-key findings asked per page of `/pssl/weak`.
const WEAK_PAGE: u32 = 50;

/// At most this many certificates' addresses are asked per `/pssl/weak` page (one API call
/// each); the others link to their certificate's view.
const WEAK_IP_CALLS: usize = 20;

#[derive(Deserialize, Default)]
pub(crate) struct SearchParams {
    #[serde(default)]
    q: String,
    /// The next page's cursor (from the API).
    #[serde(default)]
    cursor: Option<String>,
    /// With `cursor`: the one section of the answer it pages (`ja3`, `ja3s`, `sni`,
    /// `subject`).
    #[serde(default)]
    part: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct CursorParam {
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /pssl?q=`.
pub(crate) async fn search(
    State(st): State<WebState>,
    Query(p): Query<SearchParams>,
    Login { viewer: v, .. }: Login<Read>,
) -> PageResult {
    let q = p.q.trim();
    let body = match st.pssl() {
        None => not_configured(),
        Some(Err(e)) => unusable(e),
        Some(Ok(c)) => results(c, q, &p).await,
    };
    let body = html! {
        (search_form(q))
        p { a href="/pssl/weak" { "Weak keys" } " seen in certificates, with their addresses." }
        (body)
    };
    Ok(page("Passive SSL", Some(&v), body).into_response())
}

/// `GET /pssl/weak`.
pub(crate) async fn weak_page(
    State(st): State<WebState>,
    Query(p): Query<CursorParam>,
    Login { viewer: v, .. }: Login<Read>,
) -> PageResult {
    let body = match st.pssl() {
        None => not_configured(),
        Some(Err(e)) => unusable(e),
        Some(Ok(c)) => weak_view(c, cursor(&p.cursor)).await,
    };
    let body = html! {
        (search_form(""))
        h2 { "Weak keys" }
        p.muted { "Public keys the weak-key checks of " code { "d4 pssl ingest" }
                  " found breakable (docs/pssl.md), with the certificates holding them and, for the \
                  first " (WEAK_IP_CALLS) " certificates of the page, up to " (IPS_PER_CERT)
                  " addresses that served each." }
        (body)
    };
    Ok(page("Passive SSL weak keys", Some(&v), body).into_response())
}

/// `GET /pssl/cert/{sha}`.
pub(crate) async fn cert_page(
    State(st): State<WebState>,
    Path(sha): Path<String>,
    Query(p): Query<CursorParam>,
    Login { viewer: v, .. }: Login<Read>,
) -> PageResult {
    let (status, body) = match (st.pssl(), classify(&sha)) {
        (None, _) => (StatusCode::OK, not_configured()),
        (Some(Err(e)), _) => (StatusCode::OK, unusable(e)),
        (Some(Ok(c)), Search::Sha1(h) | Search::Sha256(h)) => {
            (StatusCode::OK, cert_view(c, &h, cursor(&p.cursor)).await)
        }
        _ => (
            StatusCode::BAD_REQUEST,
            html! { p.error { "Not a certificate's SHA-1 or SHA-256." } },
        ),
    };
    let body = html! { (search_form(&sha)) (body) };
    Ok((status, page("Passive SSL certificate", Some(&v), body)).into_response())
}

/// `GET /pssl/key/{spki}`.
pub(crate) async fn key_page(
    State(st): State<WebState>,
    Path(spki): Path<String>,
    Query(p): Query<CursorParam>,
    Login { viewer: v, .. }: Login<Read>,
) -> PageResult {
    let (status, body) = match (st.pssl(), classify(&spki)) {
        (None, _) => (StatusCode::OK, not_configured()),
        (Some(Err(e)), _) => (StatusCode::OK, unusable(e)),
        (Some(Ok(c)), Search::Sha256(h)) => {
            (StatusCode::OK, key_view(c, &h, cursor(&p.cursor)).await)
        }
        _ => (
            StatusCode::BAD_REQUEST,
            html! { p.error { "Not an SPKI SHA-256 (64 hex digits)." } },
        ),
    };
    let body = html! { (search_form(&spki)) (body) };
    Ok((status, page("Passive SSL public key", Some(&v), body)).into_response())
}

fn cursor(c: &Option<String>) -> Option<&str> {
    c.as_deref().filter(|s| !s.is_empty())
}

/// The page without `pssl_url`: what to set.
fn not_configured() -> Markup {
    html! {
        p.error {
            "Passive SSL lookups are not configured: this page asks the HTTP API of "
            code { "d4 pssl serve" } ", and the web UI does not know where it is."
        }
        (how_to_configure())
    }
}

fn unusable(e: &str) -> Markup {
    html! {
        p.error { "The passive SSL settings are not usable: " (e) }
        (how_to_configure())
    }
}

fn how_to_configure() -> Markup {
    html! {
        p { "Set its address (and its token, when it asks for one) in " code { "d4.toml" }
            ", then restart " code { "d4 server" } ":" }
        pre {
            "pssl_url = \"http://127.0.0.1:8500\"            # or --pssl-url, D4_WEB_PSSL_URL\n"
            "pssl_token_file = \"/etc/d4/pssl-web.token\"    # or --pssl-token-file, D4_WEB_PSSL_TOKEN_FILE"
        }
        p.muted { "Plain http:// only (a loopback or private address). See docs/web.md." }
    }
}

/// `path` with the page size and the cursor.
fn paged(path: &str, cursor: Option<&str>) -> String {
    paged_by(path, PAGE, cursor)
}

/// `path` with page size `limit` and the cursor.
fn paged_by(path: &str, limit: u32, cursor: Option<&str>) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut s = format!("{path}{sep}limit={limit}");
    if let Some(c) = cursor {
        s.push_str("&cursor=");
        s.push_str(&segment(c));
    }
    s
}

/// `base` (a page address with a query string) + the cursor of its next page.
fn next_href(base: &str, next: Option<String>) -> Option<String> {
    let sep = if base.ends_with('?') { "" } else { "&" };
    next.map(|n| format!("{base}{sep}cursor={}", segment(&n)))
}

async fn results(c: &PsslClient, q: &str, p: &SearchParams) -> Markup {
    let cursor = cursor(&p.cursor);
    let part = p.part.as_deref().filter(|_| cursor.is_some());
    let base = format!("/pssl?q={}", segment(q));
    match classify(q) {
        Search::Empty => search_help(),
        Search::TooLong => {
            html! { p.error { "The search text is too long (at most " (MAX_QUERY_CHARS) " characters)." } }
        }
        Search::Ip(ip) => ip_query(c, &format!("{ip}"), cursor, &base).await,
        Search::Cidr(ip, len) => ip_query(c, &format!("{ip}/{len}"), cursor, &base).await,
        Search::Sha1(h) => cert_view(c, &h, None).await,
        Search::Sha256(h) => match c.get(&format!("/certificate/{h}")).await {
            Ok(a) => cert_body(c, &a.json, &h, None).await,
            Err(e) if e.is_not_found() => key_view(c, &h, None).await,
            Err(e) => api_error("Certificate", &e),
        },
        Search::Md5(h) => {
            let (ja3, ja3s) = tokio::join!(
                section(c, Section::Ja3, &h, part, cursor, &base),
                section(c, Section::Ja3s, &h, part, cursor, &base),
            );
            html! { (ja3) (ja3s) }
        }
        Search::Ja4(h) => section(c, Section::Ja4, &h, part, cursor, &base).await,
        Search::Text(t) => {
            let (sni, subject) = tokio::join!(
                section(c, Section::Sni, &t, part, cursor, &base),
                section(c, Section::Subject, &t, part, cursor, &base),
            );
            html! { (sni) (subject) }
        }
    }
}

/// The list sections of a search: sessions by fingerprint, certificates by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Ja3,
    Ja3s,
    Ja4,
    Sni,
    Subject,
}

impl Section {
    /// Its name in `?part=` and in error messages.
    fn key(self) -> &'static str {
        match self {
            Section::Ja3 => "ja3",
            Section::Ja3s => "ja3s",
            Section::Ja4 => "ja4",
            Section::Sni => "sni",
            Section::Subject => "subject",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Section::Ja3 => "Sessions with this JA3",
            Section::Ja3s => "Sessions with this JA3S",
            Section::Ja4 => "Sessions with this JA4",
            Section::Sni => "Certificates seen with this server name (SNI)",
            Section::Subject => "Certificates whose subject holds this text",
        }
    }

    /// The API path asking for `value` (encoded here).
    fn path(self, value: &str) -> String {
        let v = segment(value);
        match self {
            Section::Ja3 | Section::Ja3s | Section::Ja4 => {
                format!("/sessions?{}={v}", self.key())
            }
            Section::Sni => format!("/sni/{v}"),
            Section::Subject => format!("/subject/{v}"),
        }
    }

    fn render(self, items: &Value) -> Markup {
        match self {
            Section::Ja3 | Section::Ja3s | Section::Ja4 => render::sessions_table(items),
            Section::Sni => render::sni_table(items),
            Section::Subject => render::subject_table(items),
        }
    }
}

/// One list section of a search. With a `part`, only the section it names is shown (at
/// `cursor`).
async fn section(
    c: &PsslClient,
    which: Section,
    value: &str,
    part: Option<&str>,
    cursor: Option<&str>,
    base: &str,
) -> Markup {
    let key = which.key();
    if part.is_some_and(|p| p != key) {
        return html! {};
    }
    let cursor = if part.is_some() { cursor } else { None };
    let title = which.title();
    match c.get(&paged(&which.path(value), cursor)).await {
        Ok(a) => html! {
            h2 { (title) }
            (which.render(field(&a.json, "items")))
            (next_link(next_href(&format!("{base}&part={key}"), a.next)))
        },
        Err(e) => html! { h2 { (title) } (api_error(&key.to_ascii_uppercase(), &e)) },
    }
}

/// `/v2pssl/query/<ip or ip/len>` (the slash unescaped, as PyPSSL sends it).
async fn ip_query(c: &PsslClient, target: &str, cursor: Option<&str>, base: &str) -> Markup {
    // `target` is an address's text (digits, `.`, `:`) and a prefix length: no escaping.
    match c
        .get(&paged(&format!("/v2pssl/query/{target}"), cursor))
        .await
    {
        Ok(a) => html! {
            h2 { "Certificates served by " code { (target) } }
            (render::ip_table(&a.json))
            (next_link(next_href(base, a.next)))
        },
        Err(e) => api_error("Address query", &e),
    }
}

/// A certificate's view, by SHA-1 or SHA-256.
async fn cert_view(c: &PsslClient, sha: &str, cursor: Option<&str>) -> Markup {
    match c.get(&format!("/certificate/{sha}")).await {
        Ok(a) => cert_body(c, &a.json, sha, cursor).await,
        Err(e) if e.is_not_found() => {
            html! { p { "No certificate " code { (sha) } " is known." } }
        }
        Err(e) => api_error("Certificate", &e),
    }
}

/// The view of a fetched certificate `cert`: its details, key, other certificates of the
/// key and addresses (at `cursor`).
async fn cert_body(c: &PsslClient, cert: &Value, sha: &str, cursor: Option<&str>) -> Markup {
    let sha1 = field(cert, "sha1").as_str().unwrap_or(sha).to_string();
    let key = field(cert, "key");
    let spki = field(cert, "spki_sha256")
        .as_str()
        .or_else(|| field(key, "spki_sha256").as_str())
        .map(str::to_string);
    let ips_path = paged(&format!("/certificate/{}/ips", segment(&sha1)), cursor);
    let same_key = async {
        match &spki {
            Some(s) => Some(c.get(&paged(&format!("/key/{}", segment(s)), None)).await),
            None => None,
        }
    };
    let (ips, same) = tokio::join!(c.get(&ips_path), same_key);
    html! {
        (weak::weak_warning(key))
        h2 { "Certificate" }
        (cert::cert_details(cert))
        h2 { "Public key" }
        (cert::key_details(key))
        h2 { "Other certificates with this key" }
        @match &same {
            None => p { "The key is not known." },
            Some(Ok(a)) => {
                (cert::key_certificates(field(&a.json, "items"), Some(&sha1)))
                @if let (Some(s), Some(_)) = (&spki, &a.next) {
                    p { a href={ "/pssl/key/" (segment(s)) } { "All certificates of this key →" } }
                }
            },
            Some(Err(e)) if e.is_not_found() => p { "The key is not known." },
            Some(Err(e)) => (api_error("Key", e)),
        }
        h2 { "Addresses that served it" }
        @match ips {
            Ok(a) => {
                (cert::cert_ips(field(&a.json, "items")))
                (next_link(next_href(&format!("/pssl/cert/{}?", segment(&sha1)), a.next)))
            },
            Err(e) => (api_error("Addresses", &e)),
        }
        (cert::pem(cert))
    }
}

/// The weak keys page's body: a page of `/weak` and the addresses of its first
/// [`WEAK_IP_CALLS`] certificates (asked together).
async fn weak_view(c: &PsslClient, cursor: Option<&str>) -> Markup {
    let a = match c.get(&paged_by("/weak", WEAK_PAGE, cursor)).await {
        Ok(a) => a,
        Err(e) => return api_error("Weak keys", &e),
    };
    let list = field(&a.json, "items");
    let mut shas: Vec<String> = Vec::new();
    for w in render::items(list) {
        for s in render::items(field(w, "certificates"))
            .iter()
            .filter_map(Value::as_str)
        {
            if shas.len() < WEAK_IP_CALLS && !shas.iter().any(|x| x == s) {
                shas.push(s.to_string());
            }
        }
    }
    let mut calls = tokio::task::JoinSet::new();
    for sha in shas {
        let c = c.clone();
        calls.spawn(async move {
            let path = paged_by(
                &format!("/certificate/{}/ips", segment(&sha)),
                IPS_PER_CERT,
                None,
            );
            let seen = match c.get(&path).await {
                Ok(a) => CertIps::Seen(field(&a.json, "items").clone(), a.next.is_some()),
                Err(e) => CertIps::Failed(e.to_string()),
            };
            (sha, seen)
        });
    }
    let mut ips = HashMap::new();
    while let Some(r) = calls.join_next().await {
        if let Ok((sha, seen)) = r {
            ips.insert(sha, seen);
        }
    }
    html! {
        (weak::weak_table(list, &ips))
        (next_link(next_href("/pssl/weak?", a.next)))
    }
}

/// A public key's view (`/key/<spki>`, at `cursor`; its next pages on `/pssl/key/`).
async fn key_view(c: &PsslClient, spki: &str, cursor: Option<&str>) -> Markup {
    let a = match c.get(&paged(&format!("/key/{spki}"), cursor)).await {
        Ok(a) => a,
        Err(e) if e.is_not_found() => {
            return html! {
                p { "Nothing is known of " code { (spki) } ": neither a certificate's SHA-256 \
                     nor a public key's SPKI SHA-256." }
            }
        }
        Err(e) => return api_error("Key", &e),
    };
    let key = field(&a.json, "key");
    let certs = field(&a.json, "items");
    if key.is_null() && render::items(certs).is_empty() {
        return html! { p { "No public key " code { (spki) } " is known." } };
    }
    let next = next_href(&format!("/pssl/key/{spki}?"), a.next);
    html! {
        (key_weakness(c, key, certs).await)
        h2 { "Public key" }
        (cert::key_details(key))
        h2 { "Certificates with this key" }
        (cert::key_certificates(certs, None))
        (next_link(next))
    }
}

/// The "Weak key" warning of a key view: from `key.weak` when the answer has it, else from
/// the `key.weak` of its first certificate's view (`/key/<spki>` does not carry findings).
async fn key_weakness(c: &PsslClient, key: &Value, certs: &Value) -> Markup {
    if field(key, "weak").is_array() {
        return weak::weak_warning(key);
    }
    let Some(first) = render::items(certs).first().and_then(Value::as_str) else {
        return html! {};
    };
    match c.get(&format!("/certificate/{}", segment(first))).await {
        Ok(a) => weak::weak_warning(field(&a.json, "key")),
        Err(e) if e.is_not_found() => html! {},
        Err(e) => api_error("Weak-key findings", &e),
    }
}
