//! What `d4 pibs serve` reads from a request, checked without I/O: times (unix seconds,
//! RFC 3339 or `YYYY-MM-DD`), days, addresses, networks, AS numbers, ports, rates and the
//! page size. A refusal carries its status (400) and says what was wrong.

use std::net::IpAddr;

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, SecondsFormat};
use ipnet::IpNet;

/// Items per page at most; the default is [`DEFAULT_LIMIT`].
pub const MAX_LIMIT: usize = 1_000;
pub const DEFAULT_LIMIT: usize = 100;

/// Why an input is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

pub fn bad(message: impl Into<String>) -> Refused {
    Refused {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
    }
}

/// Which end of a day a bare date stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayEnd {
    /// 00:00:00 (for `since`).
    Start,
    /// 23:59:59 (for `until`: the whole day is in).
    End,
}

/// A day's first second (unix), from `YYYY-MM-DD`.
pub fn day_start(s: &str) -> Option<u64> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    let t = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    u64::try_from(t).ok()
}

/// `since=` / `until=`: unix seconds, RFC 3339 (`2026-12-07T10:00:00Z`) or a date.
pub fn time_arg(what: &str, s: &str, end: DayEnd) -> Result<u64, Refused> {
    let s = s.trim();
    if let Ok(v) = s.parse::<u64>() {
        return Ok(v);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return u64::try_from(t.timestamp())
            .map_err(|_| bad(format!("{what}: {s:?} is before 1970")));
    }
    if let Some(d) = day_start(s) {
        return Ok(match end {
            DayEnd::Start => d,
            DayEnd::End => d + 86_399,
        });
    }
    Err(bad(format!(
        "{what}: {s:?} is neither unix seconds, RFC 3339 (2026-12-07T10:00:00Z) nor a date (2026-12-07)"
    )))
}

/// An optional time parameter (empty counts as absent).
pub fn opt_time(what: &str, s: Option<&str>, end: DayEnd) -> Result<Option<u64>, Refused> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => time_arg(what, s, end).map(Some),
        None => Ok(None),
    }
}

/// Unix seconds as RFC 3339 UTC (`2026-12-07T10:00:00Z`).
pub fn iso(t: u64) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Unix seconds as `YYYY-MM-DD` (UTC).
pub fn date(t: u64) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// An address (IPv4-mapped IPv6 addresses become IPv4, as the store keeps them).
pub fn ip_arg(s: &str) -> Result<IpAddr, Refused> {
    s.trim()
        .parse::<IpAddr>()
        .map(|a| a.to_canonical())
        .map_err(|_| bad(format!("not an IP address: {s:?}")))
}

/// A network `addr/len` (host bits cleared) or a single address (as /32 or /128).
pub fn net_arg(s: &str) -> Result<IpNet, Refused> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(a.to_canonical()));
    }
    Err(bad(format!(
        "not a network (192.0.2.0/24, 2001:db8::/32): {s:?}"
    )))
}

/// An AS number: `64500` or `AS64500`.
pub fn asn_arg(s: &str) -> Result<u32, Refused> {
    let t = s.trim();
    let t = t
        .strip_prefix("AS")
        .or_else(|| t.strip_prefix("as"))
        .unwrap_or(t);
    t.parse::<u32>()
        .map_err(|_| bad(format!("not an AS number: {s:?}")))
}

/// A port (0 to 65535).
pub fn port_arg(s: &str) -> Result<u16, Refused> {
    s.trim()
        .parse::<u16>()
        .map_err(|_| bad(format!("port: not a number from 0 to 65535: {s:?}")))
}

/// A packets-per-second floor (finite, not negative).
pub fn pps_arg(s: &str) -> Result<f64, Refused> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(bad(format!("min_pps: not a non-negative number: {s:?}"))),
    }
}

/// `limit=`: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
pub fn limit_arg(s: Option<&str>) -> Result<usize, Refused> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(bad(format!("limit: 1 to {MAX_LIMIT}, not {v:?}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        // 2026-12-07T00:00:00Z: 20,794 days after 1970-01-01 (by hand: 56 years of which
        // 14 leap years -> 56*365+14 = 20,454 days to 2026-01-01, plus 340 days to Dec 7).
        let d = 20_794 * 86_400;
        assert_eq!(day_start("2026-12-07"), Some(d));
        assert_eq!(time_arg("since", "2026-12-07", DayEnd::Start), Ok(d));
        assert_eq!(time_arg("until", "2026-12-07", DayEnd::End), Ok(d + 86_399));
        assert_eq!(
            time_arg("since", "2026-12-07T10:00:00Z", DayEnd::Start),
            Ok(d + 36_000)
        );
        assert_eq!(
            time_arg("since", "2026-12-07T11:00:00+01:00", DayEnd::Start),
            Ok(d + 36_000)
        );
        assert_eq!(time_arg("since", " 1234 ", DayEnd::Start), Ok(1234));
        assert!(time_arg("since", "yesterday", DayEnd::Start).is_err());
        assert!(time_arg("since", "-5", DayEnd::Start).is_err());
        assert!(time_arg("since", "2026-13-01", DayEnd::Start).is_err());
        assert_eq!(opt_time("since", Some(""), DayEnd::Start), Ok(None));
        assert_eq!(iso(d + 36_000), "2026-12-07T10:00:00Z");
        assert_eq!(date(d + 86_399), "2026-12-07");
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn addresses_and_numbers() {
        assert_eq!(ip_arg("::ffff:192.0.2.1"), Ok("192.0.2.1".parse().unwrap()));
        assert!(ip_arg("192.0.2.300").is_err());
        assert_eq!(
            net_arg("192.0.2.77/24"),
            Ok("192.0.2.0/24".parse().unwrap())
        );
        assert_eq!(
            net_arg("2001:db8::1"),
            Ok("2001:db8::1/128".parse().unwrap())
        );
        assert!(net_arg("192.0.2.0/33").is_err());
        assert_eq!(asn_arg("AS64500"), Ok(64500));
        assert_eq!(asn_arg("64500"), Ok(64500));
        assert!(asn_arg("4294967296").is_err());
        assert_eq!(port_arg("443"), Ok(443));
        assert!(port_arg("65536").is_err());
        assert_eq!(pps_arg("2.5"), Ok(2.5));
        assert!(pps_arg("-1").is_err() && pps_arg("NaN").is_err() && pps_arg("inf").is_err());
        assert_eq!(limit_arg(None), Ok(DEFAULT_LIMIT));
        assert_eq!(limit_arg(Some("7")), Ok(7));
        assert!(limit_arg(Some("0")).is_err() && limit_arg(Some("1001")).is_err());
    }
}
