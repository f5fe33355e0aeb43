//! What the server reads from a request, checked without I/O: hashes (any case in,
//! lowercase out), the `/v2pssl/query` address or network with its width limits, JA4
//! values, and the page (`limit`/`cursor` query parameters or the `dribble-paginate-*`
//! headers). A refusal carries its status: 400 for malformed input, 422 for too wide.

use std::net::IpAddr;

use axum::http::{HeaderMap, StatusCode};
use ipnet::{IpNet, Ipv6Net};

use crate::store::Page;

/// Items per page at most.
pub const MAX_LIMIT: usize = 10_000;

/// Why an input is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

fn bad(message: impl Into<String>) -> Refused {
    Refused {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
    }
}

/// Hex of one of the `lens` lengths (characters), lowercased.
pub fn hex_arg(what: &str, s: &str, lens: &[usize]) -> Result<String, Refused> {
    let s = s.trim();
    if lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(bad(format!("invalid {what}: {s:?}")))
    }
}

/// A SHA-1 (40 hex).
pub fn sha1_arg(s: &str) -> Result<String, Refused> {
    hex_arg("SHA-1", s, &[40])
}

/// A JA3 or JA3S digest (32 hex).
pub fn md5_arg(s: &str) -> Result<String, Refused> {
    hex_arg("MD5 digest", s, &[32])
}

/// A JA4 value: 1 to 128 ASCII letters, digits and `_`.
pub fn ja4_arg(s: &str) -> Result<String, Refused> {
    let s = s.trim();
    if (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(s.to_string())
    } else {
        Err(bad(format!("invalid JA4: {s:?}")))
    }
}

/// Free text (SNI, subject): 1 to `max` bytes.
pub fn text_arg(what: &str, s: &str, max: usize) -> Result<String, Refused> {
    if s.is_empty() || s.len() > max {
        Err(bad(format!("{what}: 1 to {max} bytes")))
    } else {
        Ok(s.to_string())
    }
}

/// `/v2pssl/query/<ip>` or `<ip>/<len>`: the network, refused (422) when wider than
/// `/min_v4` (IPv4) or `/min_v6` (IPv6).
/// `::ffff:0:0/96`, where the stores keep IPv4 addresses.
const MAPPED: Ipv6Net = match Ipv6Net::new(std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96)
{
    Ok(n) => n,
    Err(_) => panic!("a /96 is a valid prefix"),
};

pub fn query_net(q: &str, min_v4: u8, min_v6: u8) -> Result<IpNet, Refused> {
    let q = q.trim().trim_start_matches('/');
    let (addr, len) = match q.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (q, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| bad(format!("invalid IP address: {addr:?}")))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(bad(format!("invalid prefix length: {l:?}"))),
        },
    };
    // The stores keep IPv4 addresses as IPv4-mapped IPv6 (`::ffff:a.b.c.d`): a network
    // inside `::ffff:0:0/96` is an IPv4 network (and held to the IPv4 bound), and a wider
    // IPv6 network that covers it would reach every IPv4 address: refused.
    let (ip, len) = match ip {
        IpAddr::V6(v6) if len >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), len - 96),
            None => (ip, len),
        },
        IpAddr::V6(v6) => {
            let net = Ipv6Net::new(v6, len)
                .map_err(|_| bad(format!("invalid network: {q:?}")))?
                .trunc();
            if net.contains(&MAPPED) && min_v4 > 0 {
                return Err(Refused {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    message: format!(
                        "network too large: /{len} covers the IPv4-mapped addresses; query \
                         IPv4 networks as IPv4"
                    ),
                });
            }
            (ip, len)
        }
        IpAddr::V4(_) => (ip, len),
    };
    let min = if ip.is_ipv4() { min_v4 } else { min_v6 };
    if len < min {
        return Err(Refused {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!("network too large: /{len} is wider than /{min}"),
        });
    }
    IpNet::new(ip, len)
        .map(|n| n.trunc())
        .map_err(|_| bad(format!("invalid network: {q:?}")))
}

/// The page asked for: `dribble-paginate-count` or `limit` (default `default`, at most
/// [`MAX_LIMIT`]), `dribble-paginate-cursor` or `cursor`.
pub fn page(
    limit: Option<&str>,
    cursor: Option<&str>,
    headers: &HeaderMap,
    default: usize,
) -> Result<Page, Refused> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let limit = match header("dribble-paginate-count").or(limit.map(str::trim)) {
        None => default,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if n > 0 => n.min(MAX_LIMIT),
            _ => return Err(bad(format!("invalid page size: {l:?}"))),
        },
    };
    let cursor = header("dribble-paginate-cursor")
        .or(cursor.map(str::trim))
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Ok(Page { cursor, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes() {
        assert_eq!(sha1_arg(&"AB".repeat(20)), Ok("ab".repeat(20)));
        assert!(sha1_arg(&"ab".repeat(19)).is_err());
        assert!(sha1_arg(&"zz".repeat(20)).is_err());
        assert_eq!(md5_arg(&"0F".repeat(16)), Ok("0f".repeat(16)));
        assert!(md5_arg("' OR 1=1 --").is_err());
        assert!(hex_arg("x", &"a".repeat(64), &[40, 64]).is_ok());
        assert_eq!(
            ja4_arg("t13d1516h2_8daaf6152771_e5627efa2ab1").map(|s| s.len()),
            Ok(36)
        );
        assert!(ja4_arg("t13d/..").is_err());
        assert!(ja4_arg("").is_err());
    }

    #[test]
    fn networks() {
        let n = query_net("192.0.2.7", 23, 64).unwrap();
        assert_eq!(n.to_string(), "192.0.2.7/32");
        let n = query_net("192.0.2.77/24", 23, 64).unwrap();
        assert_eq!(n.to_string(), "192.0.2.0/24");
        assert_eq!(
            query_net("10.0.0.0/23", 23, 64).map(|n| n.prefix_len()),
            Ok(23)
        );
        let wide = query_net("10.0.0.0/22", 23, 64).unwrap_err();
        assert_eq!(wide.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            query_net("10.0.0.0/8", 8, 64).map(|n| n.prefix_len()),
            Ok(8)
        );
        assert_eq!(
            query_net("2001:db8::1/64", 23, 64).unwrap().to_string(),
            "2001:db8::/64"
        );
        assert_eq!(
            query_net("2001:db8::/48", 23, 64).unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        // IPv4-mapped networks are IPv4 networks, held to the IPv4 bound
        assert_eq!(
            query_net("::ffff:192.0.2.77/120", 23, 64)
                .unwrap()
                .to_string(),
            "192.0.2.0/24"
        );
        for wide in ["::ffff:0.0.0.0/96", "::ffff:10.0.0.0/110", "::/64", "::/0"] {
            assert_eq!(
                query_net(wide, 23, 64).unwrap_err().status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{wide}"
            );
        }
        assert_eq!(
            query_net("::ffff:10.0.0.0/104", 8, 64).unwrap().to_string(),
            "10.0.0.0/8"
        );
        for b in [
            "192.0.2",
            "192.0.2.1/33",
            "192.0.2.1/x",
            "x",
            "",
            "2001:db8::/129",
        ] {
            assert_eq!(
                query_net(b, 23, 64).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{b}"
            );
        }
    }

    #[test]
    fn pages() {
        let none = HeaderMap::new();
        assert_eq!(page(None, None, &none, 100), Ok(Page::first(100)));
        assert_eq!(
            page(Some("5"), Some("abc"), &none, 100),
            Ok(Page::after("abc".into(), 5))
        );
        assert_eq!(
            page(Some("99999"), None, &none, 100).map(|p| p.limit),
            Ok(MAX_LIMIT)
        );
        assert!(page(Some("0"), None, &none, 100).is_err());
        assert!(page(Some("x"), None, &none, 100).is_err());
        let mut h = HeaderMap::new();
        h.insert("dribble-paginate-count", "7".parse().unwrap());
        h.insert("dribble-paginate-cursor", "c0ffee".parse().unwrap());
        assert_eq!(
            page(Some("5"), Some("abc"), &h, 100),
            Ok(Page::after("c0ffee".into(), 7))
        );
    }
}
