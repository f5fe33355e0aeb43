//! The `Host` check against DNS rebinding, shared by the HTTP servers' request guards.

use std::net::IpAddr;

/// Whether a `Host` value (name or address, optional port) is one of `allowed` (names,
/// case-insensitive; `*` allows any). IP literals are always allowed: DNS rebinding needs
/// the attacker's own name in `Host`.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or("")
    } else {
        host
    };
    let name = name.trim_end_matches('.');
    if name.parse::<IpAddr>().is_ok() {
        return true;
    }
    allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('.').eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let allowed = vec!["localhost".to_string(), "d4.example.org".to_string()];
        for ok in [
            "localhost",
            "LOCALHOST:7000",
            "d4.example.org.",
            "127.0.0.1:7000",
            "[::1]:7000",
            "::1",
            "192.0.2.7",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7000",
            "localhost.evil.example",
            "",
        ] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
        assert!(host_allowed("anything.example", &["*".to_string()]));
    }
}
