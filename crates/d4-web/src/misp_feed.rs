//! The MISP feed directory served read-only at `/misp/` (`misp_feed_dir`), for a MISP
//! instance to pull as a feed of type "MISP Feed". Its own token (`misp_feed_token_file`),
//! never an account's: MISP sends it as a custom header `Authorization: <token>`; raw,
//! `Bearer <token>` and HTTP Basic with the token as password are accepted, compared in
//! constant time; too many wrong tokens from one IP in a minute get 429.
//!
//! Only the files of a feed are served: `manifest.json`, `hashes.csv` and `<uuid>.json`
//! (an event), regular files directly in the directory (no symbolic link, no listing, no
//! other name: a path that is not one of these is a 404, checked by name before the file
//! system is touched, so `..`, `%2F` or absolute paths never reach it). Errors are JSON
//! `{"error": "..."}` (`d4_http::json_error`, like the lookup servers).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use d4_http::{ct_eq, json_error, too_many, Windows};

use crate::WebState;

/// Wrong tokens per minute and client IP before 429.
const MAX_FAILURES_PER_MIN: u32 = 10;

/// The feed's settings and its wrong-token counter.
pub(crate) struct Feed {
    pub dir: PathBuf,
    pub token: String,
    pub failures: Windows,
}

/// What a feed file name is, if it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FeedFile {
    Manifest,
    Hashes,
    Event,
}

impl FeedFile {
    /// The kind of a requested name: only the names a MISP feed holds.
    fn of(name: &str) -> Option<FeedFile> {
        match name {
            "manifest.json" => Some(FeedFile::Manifest),
            "hashes.csv" => Some(FeedFile::Hashes),
            _ => {
                let stem = name.strip_suffix(".json")?;
                // 36 characters, hyphenated: what MISP asks for (`<event uuid>.json`).
                (stem.len() == 36 && uuid::Uuid::try_parse(stem).is_ok()).then_some(FeedFile::Event)
            }
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            FeedFile::Manifest | FeedFile::Event => "application/json",
            FeedFile::Hashes => "text/csv; charset=utf-8",
        }
    }
}

/// Whether `Authorization` carries the feed token: raw, `Bearer <token>` (as the lookup
/// servers' [`d4_http::auth::Credentials`] take a token), or Basic with the token as the
/// password of any user name.
pub(crate) fn token_ok(token: &str, headers: &HeaderMap) -> bool {
    let v = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let as_token = d4_http::auth::Credentials {
        tokens: vec![token.to_string()],
        basic: Vec::new(),
    };
    let as_password = v
        .and_then(d4_http::auth::basic_pair)
        .is_some_and(|(_, password)| {
            !token.is_empty() && ct_eq(token.as_bytes(), password.as_bytes())
        });
    as_token.accepts(v) | as_password
}

fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "no such feed file")
}

/// Checks the token: `None` when it is right, else the answer (401, or 429 after too many
/// wrong tokens).
fn refusal(feed: &Feed, headers: &HeaderMap, ip: Option<IpAddr>) -> Option<Response> {
    if let Some(ip) = ip {
        if let Some(retry) = feed.failures.over(ip, MAX_FAILURES_PER_MIN, false) {
            return Some(too_many(
                format!("more than {MAX_FAILURES_PER_MIN} wrong tokens in a minute: retry later"),
                retry,
            ));
        }
    }
    if token_ok(&feed.token, headers) {
        return None;
    }
    if let Some(ip) = ip {
        feed.failures.over(ip, MAX_FAILURES_PER_MIN, true);
        tracing::warn!(%ip, "misp feed: missing or wrong token");
    }
    Some(json_error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong feed token (Authorization: <token>)",
    ))
}

/// The client's IP (through the trusted proxies), if the connection's address is known.
fn client(st: &WebState, headers: &HeaderMap, ext: &axum::http::Extensions) -> Option<IpAddr> {
    ext.get::<ConnectInfo<SocketAddr>>()?;
    Some(crate::client_ip(st.config(), headers, ext))
}

/// `GET /misp/{name}`.
pub(crate) async fn file(
    State(st): State<WebState>,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let Some(feed) = st.inner.misp_feed.as_ref() else {
        return json_error(StatusCode::NOT_FOUND, "no MISP feed is configured");
    };
    if let Some(r) = refusal(feed, &headers, client(&st, &headers, &ext)) {
        return r;
    }
    let Some(kind) = FeedFile::of(&name) else {
        return not_found();
    };
    match read_regular(&feed.dir, &name).await {
        Ok(Some(bytes)) => {
            let mut r = bytes.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(kind.content_type()),
            );
            r
        }
        Ok(None) => not_found(),
        Err(e) => {
            tracing::warn!(dir = %feed.dir.display(), %name, error = %e, "misp feed: read failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the feed file",
            )
        }
    }
}

/// `GET /misp/` and `/misp`: no listing.
pub(crate) async fn index(
    State(st): State<WebState>,
    ext: axum::http::Extensions,
    headers: HeaderMap,
) -> Response {
    let Some(feed) = st.inner.misp_feed.as_ref() else {
        return json_error(StatusCode::NOT_FOUND, "no MISP feed is configured");
    };
    if let Some(r) = refusal(feed, &headers, client(&st, &headers, &ext)) {
        return r;
    }
    json_error(
        StatusCode::NOT_FOUND,
        "no listing: ask for manifest.json, hashes.csv or <event uuid>.json",
    )
}

/// The bytes of `dir/name` when it is a regular file (not a link, not a directory).
async fn read_regular(dir: &Path, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    let path = dir.join(name);
    match tokio::fs::symlink_metadata(&path).await {
        Ok(m) if m.file_type().is_file() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    match tokio::fs::read(&path).await {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The Monitoring page's line about the feed: its URL (from this request's `Host`) when
/// one is served, nothing otherwise.
pub(crate) fn page_line(st: &WebState, headers: &HeaderMap) -> maud::Markup {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("HOST");
    let scheme = if st.config().secure_cookies {
        "https"
    } else {
        "http"
    };
    maud::html! {
        @if st.inner.misp_feed.is_some() {
            h2 { "MISP feed" }
            p {
                "Served at " code { (scheme) "://" (host) "/misp/" }
                ": in MISP, add a feed of type \"MISP Feed\" with this URL and the header "
                code { "Authorization: <token>" } " (the token of " code { "misp_feed_token_file" } ")."
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn only_feed_names() {
        assert_eq!(FeedFile::of("manifest.json"), Some(FeedFile::Manifest));
        assert_eq!(FeedFile::of("hashes.csv"), Some(FeedFile::Hashes));
        assert_eq!(
            FeedFile::of("5f1a9c3e-2b4d-4e6f-8a0b-1c2d3e4f5a6b.json"),
            Some(FeedFile::Event)
        );
        for bad in [
            "",
            ".",
            "..",
            "../manifest.json",
            "/etc/passwd",
            "5f1a9c3e2b4d4e6f8a0b1c2d3e4f5a6b.json",
            "5f1a9c3e-2b4d-4e6f-8a0b-1c2d3e4f5a6b.json/",
            "5f1a9c3e-2b4d-4e6f-8a0b-1c2d3e4f5a6b",
            "{5f1a9c3e-2b4d-4e6f-8a0b-1c2d3e4f5a6}.json",
            "manifest.json.bak",
            "MANIFEST.JSON",
        ] {
            assert_eq!(FeedFile::of(bad), None, "{bad:?}");
        }
    }

    fn auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn token_forms() {
        let t = "feed-t0ken";
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(token_ok(t, &auth("feed-t0ken")));
        assert!(token_ok(t, &auth("Bearer feed-t0ken")));
        assert!(token_ok(t, &auth("bearer  feed-t0ken")));
        assert!(token_ok(
            t,
            &auth(&format!("Basic {}", b64("misp:feed-t0ken")))
        ));
        assert!(!token_ok(t, &auth(&format!("Basic {}", b64("feed-t0ken"))))); // no user:password
        assert!(!token_ok(t, &auth("feed-t0ke")));
        assert!(!token_ok(t, &auth("Bearer feed-t0kenX")));
        assert!(!token_ok(t, &auth(&format!("Basic {}", b64("misp:wrong")))));
        assert!(!token_ok(t, &HeaderMap::new()));
        assert!(!token_ok("", &auth("x")), "an empty token never matches");
    }
}
