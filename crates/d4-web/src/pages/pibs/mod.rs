//! The "Backscatter" page: DDoS victims seen from the darknet, over `d4 pibs serve`'s HTTP
//! API (the web UI never opens the backscatter store; see [`crate::pssl_client`]).
//! `GET /pibs` shows today's summary and attacks; `GET /pibs?q=` searches a victim's
//! address (its view), a prefix or an AS (the victims in it, then their attacks), or a day
//! (`YYYY-MM-DD`); `GET /pibs/victim/<ip>` is a victim's view: route, passive DNS names,
//! timeline chart (inline SVG) and attacks. Failures of the API are messages on the page.
//! The rendering is pure ([`render`]); this module only fetches.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use maud::{html, Markup};
use serde::Deserialize;

use super::PageResult;
use crate::extract::{Login, Read};
use crate::pages::pssl::render::{api_error, field, next_link};
use crate::pssl_client::{segment, ApiClient};
use crate::view::page;
use crate::WebState;

pub mod render;

use render::{classify, search_form, Search};

/// Items asked per page of a list.
const PAGE: u32 = 100;

#[derive(Deserialize, Default)]
pub(crate) struct SearchParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    cursor: Option<String>,
}

/// Today (UTC) as `YYYY-MM-DD`.
fn today() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let d = d4_store::day_of(now);
    format!("{:04}-{:02}-{:02}", d / 10_000, d / 100 % 100, d % 100)
}

fn cursor(c: &Option<String>) -> Option<&str> {
    c.as_deref().filter(|s| !s.is_empty())
}

/// `path` (with a query string or not) + page size + cursor.
fn paged(path: &str, cursor: Option<&str>) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut s = format!("{path}{sep}limit={PAGE}");
    if let Some(c) = cursor {
        s.push_str("&cursor=");
        s.push_str(&segment(c));
    }
    s
}

/// The link to the next page of the search `q`.
fn next_href(q: &str, next: Option<String>) -> Option<String> {
    next.map(|n| format!("/pibs?q={}&cursor={}", segment(q), segment(&n)))
}

/// `GET /pibs?q=`.
pub(crate) async fn search(
    State(st): State<WebState>,
    Query(p): Query<SearchParams>,
    Login { viewer: v, .. }: Login<Read>,
) -> PageResult {
    let q = p.q.trim();
    let (status, body) = match st.pibs() {
        None => (StatusCode::OK, not_configured()),
        Some(Err(e)) => (StatusCode::OK, unusable(e)),
        Some(Ok(c)) => results(c, q, cursor(&p.cursor)).await,
    };
    let body = html! { (search_form(q)) (body) };
    Ok((status, page("Backscatter", Some(&v), body)).into_response())
}

/// `GET /pibs/victim/{ip}`.
pub(crate) async fn victim_page(
    State(st): State<WebState>,
    Path(ip): Path<String>,
    Login { viewer: v, .. }: Login<Read>,
) -> PageResult {
    let (status, body) = match (st.pibs(), classify(&ip)) {
        (None, _) => (StatusCode::OK, not_configured()),
        (Some(Err(e)), _) => (StatusCode::OK, unusable(e)),
        (Some(Ok(c)), Search::Ip(a)) => (StatusCode::OK, victim_view(c, &a.to_string()).await),
        _ => (
            StatusCode::BAD_REQUEST,
            html! { p.error { "Not an IP address." } },
        ),
    };
    let body = html! { (search_form(&ip)) (body) };
    Ok((status, page("Backscatter victim", Some(&v), body)).into_response())
}

async fn results(c: &ApiClient, q: &str, cursor: Option<&str>) -> (StatusCode, Markup) {
    let ok = |m| (StatusCode::OK, m);
    match classify(q) {
        Search::Empty => ok(day_view(c, &today(), q, cursor, "Today").await),
        Search::Day(d) => ok(day_view(c, &d, q, cursor, &d).await),
        Search::Ip(ip) => ok(victim_view(c, &ip.to_string()).await),
        Search::Net(n) => {
            let net = n.to_string();
            // the network's text (digits, `.`, `:`, `/`) goes unescaped, as /prefix/{*net} wants
            ok(pivot(
                c,
                &format!("/prefix/{net}"),
                q,
                cursor,
                &format!("Victims in {net}"),
            )
            .await)
        }
        Search::Asn(a) => ok(pivot(
            c,
            &format!("/asn/{a}"),
            q,
            cursor,
            &format!("Victims in AS{a}"),
        )
        .await),
        Search::Unknown => (
            StatusCode::BAD_REQUEST,
            html! { p.error { "Search a victim's IP address, a prefix (192.0.2.0/24), an AS (AS64500) or a day (2026-12-07)." } },
        ),
    }
}

/// A day's summary and its attacks (the summary on the first page only).
async fn day_view(c: &ApiClient, day: &str, q: &str, cursor: Option<&str>, title: &str) -> Markup {
    let since = segment(day);
    let attacks_path = paged(&format!("/attacks?since={since}&until={since}"), cursor);
    let summary = async {
        match cursor {
            None => Some(c.get(&format!("/daily/{since}")).await),
            Some(_) => None,
        }
    };
    let (summary, attacks) = tokio::join!(summary, c.get(&attacks_path));
    html! {
        h2 { (title) " (" (day) ", UTC)" }
        @match summary {
            Some(Ok(a)) => (render::daily(&a.json)),
            Some(Err(e)) => (api_error("Daily summary", &e)),
            None => {},
        }
        h2 { "Attacks" }
        @match attacks {
            Ok(a) => {
                (render::attacks_table(field(&a.json, "attacks")))
                (next_link(next_href(q, a.next)))
            },
            Err(e) => (api_error("Attacks", &e)),
        }
    }
}

/// A victim's view.
async fn victim_view(c: &ApiClient, ip: &str) -> Markup {
    match c.get(&format!("/victim/{}", segment(ip))).await {
        Ok(a) => {
            let v = &a.json;
            html! {
                (render::victim_header(v))
                h2 { "Timeline" }
                (render::timeline_chart(field(v, "timeline")))
                @if field(v, "timeline_truncated").as_bool() == Some(true) {
                    p.muted { "The timeline is cut at the API's bucket limit." }
                }
                h2 { "Attacks" }
                (render::attacks_table(field(v, "attacks")))
            }
        }
        Err(e) => api_error("Victim", &e),
    }
}

/// The reverse pivot: the victims of an AS or a prefix.
async fn pivot(c: &ApiClient, path: &str, q: &str, cursor: Option<&str>, title: &str) -> Markup {
    match c.get(&paged(path, cursor)).await {
        Ok(a) => html! {
            h2 { (title) }
            (render::victims_table(field(&a.json, "victims")))
            (next_link(next_href(q, a.next)))
        },
        Err(e) => html! { h2 { (title) } (api_error("Victims", &e)) },
    }
}

/// The page without `pibs_url`: what to set.
fn not_configured() -> Markup {
    html! {
        p.error {
            "Backscatter lookups are not configured: this page asks the HTTP API of "
            code { "d4 pibs serve" } ", and the web UI does not know where it is."
        }
        (how_to_configure())
    }
}

fn unusable(e: &str) -> Markup {
    html! {
        p.error { "The backscatter settings are not usable: " (e) }
        (how_to_configure())
    }
}

fn how_to_configure() -> Markup {
    html! {
        p { "Set its address (and its token, when it asks for one) in " code { "d4.toml" }
            ", then restart " code { "d4 server" } ":" }
        pre {
            "pibs_url = \"http://127.0.0.1:8600\"            # or --pibs-url, D4_WEB_PIBS_URL\n"
            "pibs_token_file = \"/etc/d4/pibs-web.token\"    # or --pibs-token-file, D4_WEB_PIBS_TOKEN_FILE"
        }
        p.muted { "Plain http:// only (a loopback or private address). See docs/web.md." }
    }
}
