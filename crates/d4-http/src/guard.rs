//! The request guard shared by the lookup servers (`d4 pdns serve`, `d4 pssl serve`): the
//! `Host` check (DNS rebinding), a limit of wrong credentials per client IP and minute
//! (checked before the credentials, so a guessing client stops costing comparisons), a
//! request rate limit per client IP and minute, and a gate bounding the lookups running
//! at once. What a server accepts as credentials stays its own: it hands [`Guard::check`]
//! a function that answers whether a request's headers carry them. Refusals are JSON
//! `{"error": ...}` answers ([`json_error`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::host::host_allowed;

/// `{"error": msg}` with `status`.
pub fn json_error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({ "error": msg.to_string() }).to_string();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// 429 with a JSON error and `Retry-After: secs`.
pub fn too_many(msg: impl std::fmt::Display, secs: u64) -> Response {
    let mut r = json_error(StatusCode::TOO_MANY_REQUESTS, msg);
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Equality whose time does not depend on where the bytes differ (credentials).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Counters in a one-minute window per client: an IPv4 address, or the /64 of an IPv6
/// address (one host usually holds a whole /64: counting per address would let it rotate
/// addresses past every limit).
#[derive(Debug, Default)]
pub struct Windows(Mutex<WindowMap>);

#[derive(Debug, Default)]
struct WindowMap {
    map: HashMap<IpAddr, (Instant, u32)>,
    /// When expired windows were last swept (at most once a second).
    swept: Option<Instant>,
}

/// The key a client is counted under: IPv4 (or IPv4-mapped) as is, IPv6 by its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Clients a [`Windows`] tracks at most; past it, new clients share one overflow counter.
const MAX_CLIENTS: usize = 100_000;

impl Windows {
    pub fn new() -> Windows {
        Windows::default()
    }

    /// `Some(seconds left in the window)` once `limit` is passed (`add`: count this call;
    /// without it, reaching `limit` is enough).
    pub fn over(&self, ip: IpAddr, limit: u32, add: bool) -> Option<u64> {
        let now = Instant::now();
        let mut guard = match self.0.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        let w = &mut *guard;
        if w.map.len() >= MAX_CLIENTS
            && w.swept
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            w.swept = Some(now);
            w.map
                .retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let mut key = client_key(ip);
        if w.map.len() >= MAX_CLIENTS && !w.map.contains_key(&key) {
            // Full of live clients: the newcomers share one counter (unspecified address).
            key = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        }
        let e = w.map.entry(key).or_insert((now, 0));
        if now.duration_since(e.0) >= Duration::from_secs(60) {
            *e = (now, 0);
        }
        if add {
            e.1 = e.1.saturating_add(1);
        }
        (e.1 > limit || (!add && e.1 >= limit)).then(|| {
            60u64
                .saturating_sub(now.duration_since(e.0).as_secs())
                .max(1)
        })
    }
}

/// The guard's settings.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Prefix of the log messages (`"pdns"`).
    pub name: &'static str,
    /// Accepted `Host` names (`*`: any); IP literals always pass.
    pub allowed_hosts: Vec<String>,
    /// Requests per minute and client IP; `None`: no limit.
    pub rate_limit_per_min: Option<u32>,
    /// Wrong or missing credentials per minute and client IP before 429 (at least 1).
    pub max_auth_failures: u32,
}

/// Why a request was refused before its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The `Host` header names none of the allowed hosts (421).
    Host,
    /// Wrong or missing credentials (401).
    Unauthorized,
    /// Too many wrong credentials from this IP in the minute (429).
    AuthFailures { limit: u32, retry_after: u64 },
    /// Over the request rate limit (429).
    Rate { limit: u32, retry_after: u64 },
}

impl Refusal {
    /// The JSON answer; `unauthorized` is the 401 message and `challenge` its
    /// `WWW-Authenticate` value, if any.
    pub fn response(&self, unauthorized: &str, challenge: Option<&'static str>) -> Response {
        match self {
            Refusal::Host => json_error(StatusCode::MISDIRECTED_REQUEST, "unknown Host"),
            Refusal::Unauthorized => {
                let mut r = json_error(StatusCode::UNAUTHORIZED, unauthorized);
                if let Some(c) = challenge {
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
                }
                r
            }
            Refusal::AuthFailures { limit, retry_after } => too_many(
                format!("more than {limit} wrong tokens in a minute: retry later"),
                *retry_after,
            ),
            Refusal::Rate { limit, retry_after } => too_many(
                format!("rate limit of {limit} requests per minute exceeded"),
                *retry_after,
            ),
        }
    }
}

/// The per-request checks and their per-IP counters.
#[derive(Debug)]
pub struct Guard {
    cfg: GuardConfig,
    rate: Windows,
    auth_failures: Windows,
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Guard {
        Guard {
            cfg,
            rate: Windows::new(),
            auth_failures: Windows::new(),
        }
    }

    pub fn config(&self) -> &GuardConfig {
        &self.cfg
    }

    /// Checks `Host`, then (when `authorized` is given: credentials are configured) the
    /// failure limit and the credentials, then the rate limit. The client address comes
    /// from `ConnectInfo<SocketAddr>` (without it, the per-IP limits do not apply).
    pub fn check(
        &self,
        req: &Request,
        authorized: Option<&dyn Fn(&HeaderMap) -> bool>,
    ) -> Result<(), Refusal> {
        let host = match req.headers().get(header::HOST) {
            Some(h) => h.to_str().ok().map(str::to_string),
            None => req.uri().authority().map(|a| a.as_str().to_string()),
        };
        let host_ok = match (&host, req.headers().contains_key(header::HOST)) {
            (Some(h), _) => host_allowed(h, &self.cfg.allowed_hosts),
            (None, true) => false, // not text
            (None, false) => true, // HTTP/1.0 without Host: not a browser
        };
        if !host_ok {
            return Err(Refusal::Host);
        }
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_canonical());
        if let Some(authorized) = authorized {
            let limit = self.cfg.max_auth_failures.max(1);
            if let Some(ip) = peer {
                if let Some(retry_after) = self.auth_failures.over(ip, limit, false) {
                    return Err(Refusal::AuthFailures { limit, retry_after });
                }
            }
            if !authorized(req.headers()) {
                if let Some(ip) = peer {
                    self.auth_failures.over(ip, limit, true);
                    let name = self.cfg.name;
                    tracing::warn!(%ip, path = ?req.uri().path(), "{name}: missing or wrong credentials");
                }
                return Err(Refusal::Unauthorized);
            }
        }
        if let (Some(limit), Some(ip)) = (self.cfg.rate_limit_per_min, peer) {
            if let Some(retry_after) = self.rate.over(ip, limit, true) {
                return Err(Refusal::Rate { limit, retry_after });
            }
        }
        Ok(())
    }
}

/// Bounds the lookups running at once: more wait up to 2 s, then get 429. The permit is
/// owned: move it into the blocking task that does the work, so that a request dropped
/// mid-way (client gone, idle timeout, shutdown) still holds its slot until the work ends.
#[derive(Debug)]
pub struct Gate {
    sem: std::sync::Arc<tokio::sync::Semaphore>,
    max: usize,
}

impl Gate {
    pub fn new(max: usize) -> Gate {
        let max = max.max(1);
        Gate {
            sem: std::sync::Arc::new(tokio::sync::Semaphore::new(max)),
            max,
        }
    }

    /// A permit to run one lookup, or the 429 answer after 2 s of waiting.
    pub async fn enter(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Response> {
        match tokio::time::timeout(Duration::from_secs(2), self.sem.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(too_many(
                format!("{} lookups are running: retry in a moment", self.max),
                1,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_per_ip() {
        let w = Windows::new();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        assert_eq!(w.over(a, 2, true), None);
        assert_eq!(w.over(a, 2, true), None);
        assert!(w.over(a, 2, false).is_some(), "limit reached");
        assert!(w.over(a, 2, true).is_some(), "limit passed");
        assert_eq!(w.over(b, 2, true), None, "another IP has its own window");
        // IPv6: one window per /64, whatever the interface identifier
        let v6 =
            |last: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, last));
        assert_eq!(w.over(v6(1), 2, true), None);
        assert_eq!(w.over(v6(2), 2, true), None);
        assert!(w.over(v6(3), 2, true).is_some(), "same /64: over the limit");
        let other = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert_eq!(w.over(other, 2, true), None, "another /64");
        // IPv4-mapped counts as its IPv4 address
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap_or(a);
        assert!(w.over(mapped, 2, true).is_some(), "the same client as {a}");
    }

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret2"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn guard_order_host_auth_rate() {
        let g = Guard::new(GuardConfig {
            name: "t",
            allowed_hosts: vec!["localhost".into()],
            rate_limit_per_min: Some(1),
            max_auth_failures: 1,
        });
        let req = |host: &str, peer: [u8; 4]| {
            let mut r = axum::http::Request::builder()
                .uri("/x")
                .header(header::HOST, host)
                .body(axum::body::Body::empty())
                .unwrap_or_default();
            r.extensions_mut()
                .insert(ConnectInfo(SocketAddr::from((peer, 1234))));
            r
        };
        let yes = |_: &HeaderMap| true;
        let no = |_: &HeaderMap| false;
        assert_eq!(
            g.check(&req("evil.example", [10, 0, 0, 1]), Some(&yes)),
            Err(Refusal::Host)
        );
        assert_eq!(
            g.check(&req("localhost", [10, 0, 0, 1]), Some(&no)),
            Err(Refusal::Unauthorized)
        );
        assert!(matches!(
            g.check(&req("localhost", [10, 0, 0, 1]), Some(&yes)),
            Err(Refusal::AuthFailures { limit: 1, .. })
        ));
        assert_eq!(
            g.check(&req("127.0.0.1", [10, 0, 0, 2]), Some(&yes)),
            Ok(())
        );
        assert!(matches!(
            g.check(&req("localhost", [10, 0, 0, 2]), None),
            Err(Refusal::Rate { limit: 1, .. })
        ));
    }
}
