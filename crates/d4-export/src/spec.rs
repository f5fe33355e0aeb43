//! The `--to URL` of `d4 export`, parsed into a [`SinkSpec`] (no I/O: names are resolved
//! when connecting).
//!
//! ```text
//! stdout | -                              one line per entry on standard output
//! tcp://HOST:PORT                         one line per entry
//! tls://HOST:PORT                         one line per entry, server verified (--ca)
//! udp://HOST:PORT                         one datagram per entry
//! unix:///PATH[?type=stream|dgram]        stream (lines) or datagram; detected without type
//! syslog://HOST[:PORT][?proto=udp|tcp]    RFC 5424; UDP by default, port 514
//! syslog+tcp://HOST[:PORT]                RFC 5424 over TCP, RFC 6587 octet counting
//! syslog+udp://HOST[:PORT]                RFC 5424 over UDP
//! ```
//! IPv6 literals go in brackets: `tcp://[::1]:5000`.

use std::fmt;
use std::path::PathBuf;

/// The default syslog port (UDP 514, and the customary TCP port too).
pub const SYSLOG_PORT: u16 = 514;

/// A host (name or address, brackets removed) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// What kind of Unix socket `unix://` connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnixKind {
    /// Try a stream connection; a datagram socket refuses it (`EPROTOTYPE`): use datagrams.
    Detect,
    Stream,
    Datagram,
}

/// Transport of `syslog://`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogProto {
    /// RFC 5426: one message per datagram.
    Udp,
    /// RFC 6587 octet counting: `LEN SP MSG`.
    Tcp,
}

/// Where `d4 export` sends the entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    Stdout,
    Tcp(HostPort),
    Tls(HostPort),
    Udp(HostPort),
    Unix { path: PathBuf, kind: UnixKind },
    Syslog { addr: HostPort, proto: SyslogProto },
}

/// A `--to` value that is not a sink.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("unknown sink scheme `{0}` (expected stdout, tcp://, tls://, udp://, unix://, syslog://, syslog+tcp://, syslog+udp://)")]
    Scheme(String),
    #[error("`{0}`: expected SCHEME://HOST:PORT, unix:///PATH or stdout")]
    Shape(String),
    #[error("`{0}`: a port is required (HOST:PORT)")]
    NoPort(String),
    #[error("`{0}`: bad port (1-65535)")]
    Port(String),
    #[error("`{0}`: empty host")]
    NoHost(String),
    #[error("`{0}`: a unix socket path must be absolute (unix:///run/tool.sock)")]
    UnixPath(String),
    #[error("`{url}`: unknown or bad query parameter `{param}` (this sink takes: {allowed})")]
    Query {
        url: String,
        param: String,
        allowed: &'static str,
    },
}

impl SinkSpec {
    /// Parses a `--to` value (the table in the module doc).
    pub fn parse(s: &str) -> Result<SinkSpec, SpecError> {
        let s = s.trim();
        if s == "stdout" || s == "-" {
            return Ok(SinkSpec::Stdout);
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| SpecError::Shape(s.into()))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let params = parse_query(s, query)?;
        let scheme = scheme.to_ascii_lowercase();
        let only = |allowed: &'static str| -> Result<(), SpecError> {
            match params
                .iter()
                .find(|(k, _)| !allowed.split(", ").any(|a| a == k))
            {
                Some((k, _)) => Err(SpecError::Query {
                    url: s.into(),
                    param: k.clone(),
                    allowed,
                }),
                None => Ok(()),
            }
        };
        match scheme.as_str() {
            "tcp" | "tls" | "udp" => {
                only("none")?;
                let hp = host_port(s, rest, None)?;
                Ok(match scheme.as_str() {
                    "tcp" => SinkSpec::Tcp(hp),
                    "tls" => SinkSpec::Tls(hp),
                    _ => SinkSpec::Udp(hp),
                })
            }
            "unix" => {
                only("type")?;
                if !rest.starts_with('/') {
                    return Err(SpecError::UnixPath(s.into()));
                }
                let kind = match param(&params, "type") {
                    None => UnixKind::Detect,
                    Some("stream") => UnixKind::Stream,
                    Some("dgram" | "datagram") => UnixKind::Datagram,
                    Some(v) => {
                        return Err(SpecError::Query {
                            url: s.into(),
                            param: format!("type={v}"),
                            allowed: "type=stream|dgram",
                        })
                    }
                };
                Ok(SinkSpec::Unix {
                    path: PathBuf::from(rest),
                    kind,
                })
            }
            "syslog" | "syslog+tcp" | "syslog+udp" => {
                only("proto")?;
                let by_scheme = match scheme.as_str() {
                    "syslog+tcp" => Some(SyslogProto::Tcp),
                    "syslog+udp" => Some(SyslogProto::Udp),
                    _ => None,
                };
                let by_query = match param(&params, "proto") {
                    None => None,
                    Some("tcp") => Some(SyslogProto::Tcp),
                    Some("udp") => Some(SyslogProto::Udp),
                    Some(v) => {
                        return Err(SpecError::Query {
                            url: s.into(),
                            param: format!("proto={v}"),
                            allowed: "proto=udp|tcp",
                        })
                    }
                };
                let proto = match (by_scheme, by_query) {
                    (Some(a), Some(b)) if a != b => {
                        return Err(SpecError::Query {
                            url: s.into(),
                            param: "proto (contradicts the scheme)".into(),
                            allowed: "proto=udp|tcp",
                        })
                    }
                    (a, b) => a.or(b).unwrap_or(SyslogProto::Udp),
                };
                Ok(SinkSpec::Syslog {
                    addr: host_port(s, rest, Some(SYSLOG_PORT))?,
                    proto,
                })
            }
            other => Err(SpecError::Scheme(other.into())),
        }
    }

    /// `tls://` (the only sink that takes --ca, --cert, --key, --insecure).
    pub fn is_tls(&self) -> bool {
        matches!(self, SinkSpec::Tls(_))
    }

    /// `syslog://` (the only sink that takes the syslog header options).
    pub fn is_syslog(&self) -> bool {
        matches!(self, SinkSpec::Syslog { .. })
    }
}

impl fmt::Display for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkSpec::Stdout => f.write_str("stdout"),
            SinkSpec::Tcp(a) => write!(f, "tcp://{a}"),
            SinkSpec::Tls(a) => write!(f, "tls://{a}"),
            SinkSpec::Udp(a) => write!(f, "udp://{a}"),
            SinkSpec::Unix { path, kind } => {
                write!(f, "unix://{}", path.display())?;
                match kind {
                    UnixKind::Detect => Ok(()),
                    UnixKind::Stream => f.write_str("?type=stream"),
                    UnixKind::Datagram => f.write_str("?type=dgram"),
                }
            }
            SinkSpec::Syslog { addr, proto } => match proto {
                SyslogProto::Udp => write!(f, "syslog://{addr}"),
                SyslogProto::Tcp => write!(f, "syslog+tcp://{addr}"),
            },
        }
    }
}

fn parse_query(url: &str, query: Option<&str>) -> Result<Vec<(String, String)>, SpecError> {
    let Some(q) = query else {
        return Ok(Vec::new());
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.to_ascii_lowercase(), v.to_ascii_lowercase())),
            None => Err(SpecError::Query {
                url: url.into(),
                param: p.into(),
                allowed: "KEY=VALUE",
            }),
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `HOST:PORT`, `[V6]:PORT`, or (with a default port) `HOST`, `[V6]`; a trailing `/` is
/// allowed, any other path is not.
fn host_port(url: &str, authority: &str, default: Option<u16>) -> Result<HostPort, SpecError> {
    let a = authority.strip_suffix('/').unwrap_or(authority);
    if a.contains('/') || a.contains('@') {
        return Err(SpecError::Shape(url.into()));
    }
    let (host, port) = if let Some(v6) = a.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| SpecError::Shape(url.into()))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| SpecError::Shape(url.into()))?,
                ),
            ),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => return Err(SpecError::Shape(url.into())),
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    if host.is_empty() {
        return Err(SpecError::NoHost(url.into()));
    }
    let port = match (port, default) {
        (Some(p), _) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(SpecError::Port(url.into())),
        },
        (None, Some(d)) => d,
        (None, None) => return Err(SpecError::NoPort(url.into())),
    };
    Ok(HostPort {
        host: host.into(),
        port,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hp(h: &str, p: u16) -> HostPort {
        HostPort {
            host: h.into(),
            port: p,
        }
    }

    #[test]
    fn every_scheme() {
        assert_eq!(SinkSpec::parse("stdout").unwrap(), SinkSpec::Stdout);
        assert_eq!(SinkSpec::parse("-").unwrap(), SinkSpec::Stdout);
        assert_eq!(
            SinkSpec::parse("tcp://127.0.0.1:5000").unwrap(),
            SinkSpec::Tcp(hp("127.0.0.1", 5000))
        );
        assert_eq!(
            SinkSpec::parse("TLS://siem.example.org:6514/").unwrap(),
            SinkSpec::Tls(hp("siem.example.org", 6514))
        );
        assert_eq!(
            SinkSpec::parse("udp://[2001:db8::1]:9999").unwrap(),
            SinkSpec::Udp(hp("2001:db8::1", 9999))
        );
        assert_eq!(
            SinkSpec::parse("unix:///run/a.sock").unwrap(),
            SinkSpec::Unix {
                path: "/run/a.sock".into(),
                kind: UnixKind::Detect
            }
        );
        assert_eq!(
            SinkSpec::parse("unix:///run/a.sock?type=dgram").unwrap(),
            SinkSpec::Unix {
                path: "/run/a.sock".into(),
                kind: UnixKind::Datagram
            }
        );
        assert_eq!(
            SinkSpec::parse("unix:///run/a.sock?type=stream").unwrap(),
            SinkSpec::Unix {
                path: "/run/a.sock".into(),
                kind: UnixKind::Stream
            }
        );
        assert_eq!(
            SinkSpec::parse("syslog://logs.example.org").unwrap(),
            SinkSpec::Syslog {
                addr: hp("logs.example.org", 514),
                proto: SyslogProto::Udp
            }
        );
        assert_eq!(
            SinkSpec::parse("syslog://[::1]?proto=tcp").unwrap(),
            SinkSpec::Syslog {
                addr: hp("::1", 514),
                proto: SyslogProto::Tcp
            }
        );
        assert_eq!(
            SinkSpec::parse("syslog+tcp://10.0.0.1:1514").unwrap(),
            SinkSpec::Syslog {
                addr: hp("10.0.0.1", 1514),
                proto: SyslogProto::Tcp
            }
        );
        assert_eq!(
            SinkSpec::parse("syslog+udp://10.0.0.1:1514").unwrap(),
            SinkSpec::Syslog {
                addr: hp("10.0.0.1", 1514),
                proto: SyslogProto::Udp
            }
        );
    }

    #[test]
    fn bad_urls_say_why() {
        assert!(matches!(
            SinkSpec::parse("http://x:1"),
            Err(SpecError::Scheme(s)) if s == "http"
        ));
        assert!(matches!(
            SinkSpec::parse("127.0.0.1:5000"),
            Err(SpecError::Shape(_))
        ));
        assert!(matches!(
            SinkSpec::parse("tcp://host"),
            Err(SpecError::NoPort(_))
        ));
        assert!(matches!(
            SinkSpec::parse("tcp://host:0"),
            Err(SpecError::Port(_))
        ));
        assert!(matches!(
            SinkSpec::parse("tcp://host:65536"),
            Err(SpecError::Port(_))
        ));
        assert!(matches!(
            SinkSpec::parse("tcp://:5000"),
            Err(SpecError::NoHost(_))
        ));
        assert!(matches!(
            SinkSpec::parse("tcp://::1:5000"),
            Err(SpecError::Shape(_))
        ));
        assert!(matches!(
            SinkSpec::parse("tcp://host:5000/path"),
            Err(SpecError::Shape(_))
        ));
        assert!(matches!(
            SinkSpec::parse("unix://relative.sock"),
            Err(SpecError::UnixPath(_))
        ));
        assert!(matches!(
            SinkSpec::parse("unix:///a.sock?type=seqpacket"),
            Err(SpecError::Query { .. })
        ));
        assert!(matches!(
            SinkSpec::parse("tcp://h:1?type=dgram"),
            Err(SpecError::Query { .. })
        ));
        assert!(matches!(
            SinkSpec::parse("syslog+udp://h?proto=tcp"),
            Err(SpecError::Query { .. })
        ));
        assert!(matches!(
            SinkSpec::parse("syslog://h?proto=sctp"),
            Err(SpecError::Query { .. })
        ));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "stdout",
            "tcp://127.0.0.1:5000",
            "tls://[::1]:6514",
            "udp://h:9",
            "unix:///run/x.sock?type=dgram",
            "syslog://h:514",
            "syslog+tcp://h:601",
        ] {
            let spec = SinkSpec::parse(s).unwrap();
            assert_eq!(spec.to_string(), s);
            assert_eq!(SinkSpec::parse(&spec.to_string()).unwrap(), spec);
        }
    }
}
