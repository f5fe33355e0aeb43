//! The passivedns CSV line parser (sans-IO: bytes in, values out).
//!
//! A line is `timestamp||client||server||class||query||type||answer||ttl||count`. The
//! answer of a TXT record may itself contain `||`, so the line is split 6 fields from the
//! left and 2 from the right; what remains in the middle is the answer. Error lines carry
//! an rcode name (`NXDOMAIN`, ...) as the answer.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use memchr::memmem;

use crate::rrtype::{self, RdataShape};

/// Longest field accepted for a name (presentation form with escapes can exceed 255).
pub const MAX_NAME_LEN: usize = 1024;
/// Longest rdata accepted.
pub const MAX_RDATA_LEN: usize = 65_535;

/// Why a line was rejected. Each variant is one reason counted by the ingester.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("too few fields ({0}, need 9 separated by `||`)")]
    TooFewFields(usize),
    #[error("too many fields ({0}) for an unquoted answer")]
    TooManyFields(usize),
    #[error("line is not UTF-8")]
    NotUtf8,
    #[error("bad timestamp `{0}`")]
    BadTimestamp(String),
    #[error("unknown rrtype `{0}`")]
    UnknownType(String),
    #[error("bad query name `{0}`")]
    BadName(String),
    #[error("bad rdata `{0}` for type {1}")]
    BadRdata(String, u16),
    #[error("bad ttl `{0}`")]
    BadTtl(String),
    #[error("bad count `{0}`")]
    BadCount(String),
}

impl LineError {
    /// A short stable label for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            LineError::TooFewFields(_) => "too_few_fields",
            LineError::TooManyFields(_) => "too_many_fields",
            LineError::NotUtf8 => "not_utf8",
            LineError::BadTimestamp(_) => "bad_timestamp",
            LineError::UnknownType(_) => "unknown_type",
            LineError::BadName(_) => "bad_name",
            LineError::BadRdata(..) => "bad_rdata",
            LineError::BadTtl(_) => "bad_ttl",
            LineError::BadCount(_) => "bad_count",
        }
    }
}

/// The rcode names passivedns writes as the answer of an error line.
pub const RCODES: &[&str] = &[
    "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP", "YXDOMAIN", "YXRRSET", "NXRRSET",
    "NOTAUTH", "NOTZONE", "NODATA",
];

/// One parsed line. Strings borrow from the input when no normalization was needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation<'a> {
    /// Time of the observation, milliseconds since the epoch.
    pub time_ms: u64,
    /// Owner name: lowercased, trailing dot removed (`.` for the root).
    pub rrname: Cow<'a, str>,
    pub rrtype: u16,
    /// Normalized rdata (see [`crate::rrtype::RdataShape`]); for an rcode line, the rcode.
    pub rdata: Cow<'a, str>,
    pub ttl: u32,
    /// The class column as written (`IN`, `CH`...): only counted (`dist:class`).
    pub class: &'a str,
    pub count: u64,
    /// True when the answer was an rcode (`NXDOMAIN`...), not data.
    pub rcode: bool,
}

const SEP: &[u8] = b"||";

/// Parses one line (a trailing `\n` / `\r\n` is ignored).
pub fn parse_line(line: &[u8]) -> Result<Observation<'_>, LineError> {
    let line = trim_eol(line);
    let line = std::str::from_utf8(line).map_err(|_| LineError::NotUtf8)?;
    let b = line.as_bytes();
    // Six separators from the left...
    let mut left = [0usize; 6];
    let mut pos = 0;
    for (i, slot) in left.iter_mut().enumerate() {
        match find_sep(&b[pos..]) {
            Some(off) => {
                *slot = pos + off;
                pos = pos + off + 2;
            }
            None => return Err(LineError::TooFewFields(i + 1)),
        }
    }
    let mid_start = pos;
    // ...and two from the right, not overlapping the left ones.
    let rest = &b[mid_start..];
    let Some(r2) = rfind_sep(rest) else {
        return Err(LineError::TooFewFields(7));
    };
    let Some(r1) = rfind_sep(&rest[..r2]) else {
        return Err(LineError::TooFewFields(8));
    };
    let f = |a: usize, z: usize| &line[a..z];
    let ts = f(0, left[0]);
    let class = f(left[2] + 2, left[3]);
    let qname = f(left[3] + 2, left[4]);
    let qtype = f(left[4] + 2, left[5]);
    let answer = f(mid_start, mid_start + r1);
    let ttl = f(mid_start + r1 + 2, mid_start + r2);
    let count = f(mid_start + r2 + 2, b.len());

    let rrtype = rrtype::parse(qtype).ok_or_else(|| LineError::UnknownType(clip(qtype)))?;
    if find_sep(answer.as_bytes()).is_some() && !is_quoted(answer) {
        let fields = 9 + memmem::find_iter(answer.as_bytes(), SEP).count();
        return Err(LineError::TooManyFields(fields));
    }
    let time_ms = parse_timestamp(ts)?;
    let rrname = normalize_name(qname).ok_or_else(|| LineError::BadName(clip(qname)))?;
    let ttl: u32 = parse_digits(ttl).ok_or_else(|| LineError::BadTtl(clip(ttl)))?;
    let count: u64 = parse_digits(count).ok_or_else(|| LineError::BadCount(clip(count)))?;
    if RCODES.contains(&answer) {
        return Ok(Observation {
            time_ms,
            rrname,
            rrtype,
            rdata: Cow::Borrowed(answer),
            ttl,
            class,
            count,
            rcode: true,
        });
    }
    let rdata =
        normalize_rdata(rrtype, answer).ok_or_else(|| LineError::BadRdata(clip(answer), rrtype))?;
    Ok(Observation {
        time_ms,
        rrname,
        rrtype,
        rdata,
        ttl,
        class,
        count,
        rcode: false,
    })
}

/// The first `||` in `b` (what `memmem::find` returns, without building a finder per line).
fn find_sep(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'|', &b[from..]) {
        let i = from + i;
        if b.get(i + 1) == Some(&b'|') {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// The last `||` in `b` (as `memmem::rfind`).
fn rfind_sep(b: &[u8]) -> Option<usize> {
    let mut end = b.len();
    while let Some(i) = memchr::memrchr(b'|', &b[..end]) {
        if i > 0 && b[i - 1] == b'|' {
            return Some(i - 1);
        }
        end = i;
    }
    None
}

fn trim_eol(mut l: &[u8]) -> &[u8] {
    if let [rest @ .., b'\n'] = l {
        l = rest;
    }
    if let [rest @ .., b'\r'] = l {
        l = rest;
    }
    l
}

fn is_quoted(s: &str) -> bool {
    s.len() >= 2 && s.starts_with('"') && s.ends_with('"')
}

/// At most 80 characters of a bad field, for error messages.
fn clip(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `seconds[.fraction]` → milliseconds. Seconds must fit before year 10000.
pub fn parse_timestamp(s: &str) -> Result<u64, LineError> {
    let bad = || LineError::BadTimestamp(clip(s));
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let secs: u64 = parse_digits(secs).ok_or_else(bad)?;
    if secs >= 253_402_300_800 {
        return Err(bad());
    }
    let mut ms = 0u64;
    if let Some(frac) = frac {
        if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        for (i, d) in frac.bytes().take(3).enumerate() {
            ms += u64::from(d - b'0') * [100, 10, 1][i];
        }
    }
    Ok(secs * 1000 + ms)
}

/// Lowercases a domain name and removes one trailing dot (the root stays `.`). `None` when
/// it is empty, too long, or holds whitespace / control characters.
pub fn normalize_name(s: &str) -> Option<Cow<'_, str>> {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return None;
    }
    if s.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return None;
    }
    let trimmed = if s.len() > 1 {
        s.strip_suffix('.').unwrap_or(s)
    } else {
        s
    };
    // Empty labels: a leading dot, `a..b`, or a name that ended in two dots (`e..`).
    if trimmed != "." && (trimmed.starts_with('.') || trimmed.ends_with('.'))
        || trimmed.contains("..")
    {
        return None;
    }
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(trimmed.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(trimmed))
    }
}

/// Normalizes rdata according to the type's shape. `None` when it does not fit the shape.
pub fn normalize_rdata(rrtype: u16, s: &str) -> Option<Cow<'_, str>> {
    if s.is_empty() || s.len() > MAX_RDATA_LEN || s.contains('\0') {
        return None;
    }
    match rrtype::shape(rrtype) {
        RdataShape::Ipv4 => {
            // The standard parser only accepts the canonical dotted quad (no leading zeros,
            // no shorthand), so what parses is already in canonical form.
            let _: Ipv4Addr = s.parse().ok()?;
            Some(Cow::Borrowed(s))
        }
        RdataShape::Ipv6 => {
            let ip: Ipv6Addr = s.parse().ok()?;
            let canon = ip.to_string();
            Some(if canon == s {
                Cow::Borrowed(s)
            } else {
                Cow::Owned(canon)
            })
        }
        RdataShape::Name => normalize_name(s),
        RdataShape::TrailingName => match s.rsplit_once(' ') {
            None => normalize_name(s),
            Some((head, last)) => {
                let n = normalize_name(last)?;
                if head.bytes().any(|b| b.is_ascii_control()) {
                    return None;
                }
                if matches!(n, Cow::Borrowed(b) if b.len() == last.len()) {
                    Some(Cow::Borrowed(s))
                } else {
                    Some(Cow::Owned(format!("{head} {n}")))
                }
            }
        },
        RdataShape::Soa => {
            let mut parts = s.splitn(3, ' ');
            let (Some(m), Some(r)) = (parts.next(), parts.next()) else {
                return normalize_name(s);
            };
            let m = normalize_name(m)?;
            let r = normalize_name(r)?;
            Some(Cow::Owned(match parts.next() {
                Some(rest) => format!("{m} {r} {rest}"),
                None => format!("{m} {r}"),
            }))
        }
        RdataShape::Exact => {
            if s.bytes().any(|b| b == b'\n' || b == b'\r') {
                return None;
            }
            Some(Cow::Borrowed(s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_match_memmem() {
        for s in [
            "", "|", "||", "a||b", "a|||b", "||||", "a|b||c|", "x|", "|x||",
        ] {
            let b = s.as_bytes();
            assert_eq!(find_sep(b), memmem::find(b, SEP), "{s:?}");
            assert_eq!(rfind_sep(b), memmem::rfind(b, SEP), "{s:?}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1322849924.408856"), Ok(1_322_849_924_408));
        assert_eq!(parse_timestamp("1322849924"), Ok(1_322_849_924_000));
        assert_eq!(parse_timestamp("1.5"), Ok(1500));
        for bad in [
            "",
            "abc",
            "-1",
            "1.",
            ".5",
            "1.2.3",
            "99999999999999999999",
            "1e9",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(
            normalize_name("WWW.Example.COM.").unwrap(),
            "www.example.com"
        );
        assert!(matches!(normalize_name("a.b.").unwrap(), Cow::Borrowed(_)));
        // found by the pdns_csv fuzz target: an empty last label must not survive as `e.`
        assert_eq!(normalize_name("e.."), None);
        assert_eq!(normalize_name(".e"), None);
        assert_eq!(normalize_name("a..b"), None);
        assert_eq!(normalize_name(".").unwrap(), ".");
        assert_eq!(normalize_name(".").unwrap(), ".");
        for bad in ["", "a b.", "a..b.", ".a.", "a\tb"] {
            assert!(normalize_name(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn rdata_shapes() {
        assert_eq!(
            normalize_rdata(28, "2001:DB8:0:0::1").unwrap(),
            "2001:db8::1"
        );
        assert_eq!(normalize_rdata(1, "10.0.0.1").unwrap(), "10.0.0.1");
        assert!(normalize_rdata(1, "010.0.0.1").is_none());
        assert!(normalize_rdata(1, "::1").is_none());
        assert_eq!(
            normalize_rdata(15, "10 MX.Example.com.").unwrap(),
            "10 mx.example.com"
        );
        assert_eq!(
            normalize_rdata(15, "MX.Example.com.").unwrap(),
            "mx.example.com"
        );
        assert_eq!(
            normalize_rdata(33, "0 5 5060 SIP.example.com.").unwrap(),
            "0 5 5060 sip.example.com"
        );
        assert_eq!(
            normalize_rdata(6, "NS1.example.com. Host.example.com. 1 2 3 4 5").unwrap(),
            "ns1.example.com host.example.com 1 2 3 4 5"
        );
        assert_eq!(
            normalize_rdata(16, "\"V=spf1 -ALL\"").unwrap(),
            "\"V=spf1 -ALL\""
        );
    }
}
