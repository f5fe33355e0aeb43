//! A small HTTP client of the analyzers' lookup APIs: the passive SSL API (`d4 pssl
//! serve`, docs/pssl.md) and the backscatter API (`d4 pibs serve`, docs/pibs.md). The web
//! UI does not open their stores (an embedded file has one owner), it asks the server that
//! owns it, server-side, and renders the JSON answers. [`Service`] names the API in the
//! error messages ([`ApiClient`] and [`ApiError`] are the service-neutral names).
//!
//! Plain HTTP/1.1 only (hyper-util's pooled client); every call is bounded: one deadline
//! for connecting, sending and reading the whole answer, and a cap on the answer's size.
//! The token, when set, goes in `Authorization: <token>` (the API's raw-token form).

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

/// Largest answer read from the API, bytes.
pub const MAX_ANSWER_BYTES: usize = 8 << 20;

/// A secret string whose `Debug` does not show it (the API token in [`crate::WebConfig`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Which API a client calls: its name in messages and the setting holding its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub name: &'static str,
    pub token_setting: &'static str,
}

impl Service {
    /// `d4 pssl serve`.
    pub const PSSL: Service = Service {
        name: "passive SSL",
        token_setting: "pssl_token_file",
    };
    /// `d4 pibs serve`.
    pub const PIBS: Service = Service {
        name: "backscatter",
        token_setting: "pibs_token_file",
    };
}

/// The service-neutral names of the client and its error.
pub type ApiClient = PsslClient;
pub type ApiError = PsslError;

/// Why a call to an analyzer's API gave no answer to show (`service`: [`Service::name`]).
#[derive(Debug, thiserror::Error)]
pub enum PsslError {
    #[error("the {service} URL `{url}` is not usable: {reason}")]
    Url {
        service: &'static str,
        url: String,
        reason: String,
    },
    #[error("the {service} token is not usable in an HTTP header")]
    Token { service: &'static str },
    #[error("the {service} API at {url} cannot be reached: {reason}")]
    Unreachable {
        service: &'static str,
        url: String,
        reason: String,
    },
    #[error("the {service} API did not answer within {secs} s")]
    Timeout { service: &'static str, secs: u64 },
    #[error("the {service} API answered {status}: {message}")]
    Status {
        service: &'static str,
        status: u16,
        message: String,
    },
    #[error("the {service} API's answer is larger than {max} bytes")]
    TooLarge { service: &'static str, max: usize },
    #[error("the {service} API's answer is not valid: {reason}")]
    BadAnswer {
        service: &'static str,
        reason: String,
    },
}

impl PsslError {
    /// The API said 404 (an unknown certificate or key).
    pub fn is_not_found(&self) -> bool {
        matches!(self, PsslError::Status { status: 404, .. })
    }
}

/// One answer: its JSON body and the cursor of the next page, when more follows (the
/// body's `"next"` where the endpoint has one, else the `x-dribble-cursor` header).
#[derive(Debug, Clone)]
pub struct Answer {
    pub json: Value,
    pub next: Option<String>,
}

/// The client of one API (cheap to clone: the connection pool is shared).
#[derive(Clone)]
pub struct PsslClient {
    service: Service,
    base: String,
    token: Option<HeaderValue>,
    timeout: Duration,
    http: Client<HttpConnector, Empty<Bytes>>,
}

impl std::fmt::Debug for PsslClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("service", &self.service.name)
            .field("base", &self.base)
            .field("token", &self.token.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Checks a base URL (`http://host:port`, an optional path prefix, no query) and returns
/// it without its trailing `/` (messages name the passive SSL API: see
/// [`check_service_url`]).
pub fn check_url(url: &str) -> Result<String, PsslError> {
    check_service_url(Service::PSSL, url)
}

/// [`check_url`] for the API of `service`.
pub fn check_service_url(service: Service, url: &str) -> Result<String, PsslError> {
    let bad = |reason: &str| PsslError::Url {
        service: service.name,
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = url.trim().parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(bad("https is not supported: use http:// (a loopback or private address, or a TLS-terminating proxy in front of the web UI's host)")),
        _ => return Err(bad("it must start with http://")),
    }
    if uri.authority().is_none() {
        return Err(bad("no host"));
    }
    if uri.query().is_some() {
        return Err(bad("no query string allowed"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(bad("no user or password in the URL: use the token file"));
    }
    Ok(url.trim().trim_end_matches('/').to_string())
}

impl PsslClient {
    /// A client of the passive SSL API at `url` (see [`check_url`]), sending `token` when
    /// given, each call bounded by `timeout`. Needs a tokio runtime only when called.
    pub fn new(url: &str, token: Option<&str>, timeout: Duration) -> Result<PsslClient, PsslError> {
        PsslClient::for_service(Service::PSSL, url, token, timeout)
    }

    /// A client of the API of `service` at `url` (as [`PsslClient::new`]).
    pub fn for_service(
        service: Service,
        url: &str,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<PsslClient, PsslError> {
        let base = check_service_url(service, url)?;
        let token = match token {
            Some(t) => {
                let mut v = HeaderValue::from_str(t.trim()).map_err(|_| PsslError::Token {
                    service: service.name,
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(timeout));
        conn.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build(conn);
        Ok(PsslClient {
            service,
            base,
            token,
            timeout,
            http,
        })
    }

    /// The base URL (no trailing `/`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET <base><path_and_query>`: the JSON answer of a 2xx, else the API's error.
    /// `path_and_query` must be encoded already (see [`segment`]).
    pub async fn get(&self, path_and_query: &str) -> Result<Answer, PsslError> {
        let secs = self.timeout.as_secs().max(1);
        match tokio::time::timeout(self.timeout, self.get_unbounded(path_and_query)).await {
            Ok(r) => r,
            Err(_) => Err(PsslError::Timeout {
                service: self.service.name,
                secs,
            }),
        }
    }

    async fn get_unbounded(&self, path_and_query: &str) -> Result<Answer, PsslError> {
        let service = self.service.name;
        let url = format!("{}{}", self.base, path_and_query);
        let uri: Uri = url.parse().map_err(|_| PsslError::Url {
            service,
            url: url.clone(),
            reason: "not a URL".into(),
        })?;
        let mut req = Request::get(uri).header(ACCEPT, "application/json");
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, t.clone());
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| PsslError::BadAnswer {
                service,
                reason: e.to_string(),
            })?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| PsslError::Unreachable {
                service,
                url: self.base.clone(),
                reason: error_chain(&e),
            })?;
        let status = resp.status();
        let header_cursor = resp
            .headers()
            .get("x-dribble-cursor")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let body = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    PsslError::TooLarge {
                        service,
                        max: MAX_ANSWER_BYTES,
                    }
                } else {
                    PsslError::Unreachable {
                        service,
                        url: self.base.clone(),
                        reason: format!("reading the answer: {e}"),
                    }
                }
            })?
            .to_bytes();
        let json: Result<Value, _> = serde_json::from_slice(&body);
        if !status.is_success() {
            return Err(status_error(self.service, status, json.ok().as_ref()));
        }
        let json = json.map_err(|e| PsslError::BadAnswer {
            service,
            reason: format!("not JSON: {e}"),
        })?;
        let next = match json.get("next") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => None,
            None => header_cursor,
        };
        Ok(Answer { json, next })
    }
}

/// The error of a non-2xx answer: the API's `{"error": ...}` text (cut at 300 characters),
/// with a hint for a refused token.
fn status_error(service: Service, status: StatusCode, body: Option<&Value>) -> PsslError {
    let said = body
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str)
        .map(|s| s.chars().take(300).collect::<String>());
    let mut message = said.unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("unexpected status")
            .to_string()
    });
    if status == StatusCode::UNAUTHORIZED {
        message.push_str(&format!(" (check the web UI's {})", service.token_setting));
    }
    PsslError::Status {
        service: service.name,
        status: status.as_u16(),
        message,
    }
}

/// An error and its sources, `a: b: c` (hyper's "client error (Connect)" says little alone).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// Percent-encodes one path segment or query value: everything but `A-Z a-z 0-9 - . _ ~`
/// (so a `/`, `?` or `#` in a searched name stays inside its segment), and the dots of a
/// value made of dots only (`..` must not climb the API's path).
pub fn segment(s: &str) -> String {
    // `.` and `..` alone would be dot segments of the path.
    if !s.is_empty() && s.bytes().all(|b| b == b'.') {
        return "%2E".repeat(s.len());
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            check_url("http://127.0.0.1:8500/").unwrap(),
            "http://127.0.0.1:8500"
        );
        assert_eq!(
            check_url(" http://pssl.internal/api ").unwrap(),
            "http://pssl.internal/api"
        );
        for bad in [
            "https://127.0.0.1:8500",
            "127.0.0.1:8500",
            "ftp://x",
            "http://a/?x=1",
            "http://u:p@host:1",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segments_keep_slashes_inside() {
        assert_eq!(segment("a.example"), "a.example");
        assert_eq!(segment("CN=a/b c?#%"), "CN%3Da%2Fb%20c%3F%23%25");
        assert_eq!(segment("é"), "%C3%A9");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("a..b"), "a..b");
    }

    #[test]
    fn status_errors_carry_the_api_text() {
        let e = status_error(
            Service::PSSL,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&serde_json::json!({"error": "prefix too wide"})),
        );
        assert_eq!(
            e.to_string(),
            "the passive SSL API answered 422: prefix too wide"
        );
        let e = status_error(Service::PSSL, StatusCode::BAD_GATEWAY, None);
        assert_eq!(
            e.to_string(),
            "the passive SSL API answered 502: Bad Gateway"
        );
        assert!(status_error(Service::PSSL, StatusCode::NOT_FOUND, None).is_not_found());
        let e = status_error(Service::PSSL, StatusCode::UNAUTHORIZED, None);
        assert!(e.to_string().contains("pssl_token_file"), "{e}");
        let e = status_error(Service::PIBS, StatusCode::UNAUTHORIZED, None);
        assert_eq!(
            e.to_string(),
            "the backscatter API answered 401: Unauthorized (check the web UI's pibs_token_file)"
        );
    }

    #[test]
    fn secrets_do_not_show() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "Secret(…)");
        let c = PsslClient::new("http://127.0.0.1:1", Some("tok"), Duration::from_secs(1)).unwrap();
        assert!(!format!("{c:?}").contains("tok\""), "{c:?}");
        assert!(
            PsslClient::new("http://127.0.0.1:1", Some("a\nb"), Duration::from_secs(1)).is_err()
        );
    }
}
