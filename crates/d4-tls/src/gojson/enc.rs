//! Go `encoding/json` encodings of the value types an `x509.Certificate` holds: strings
//! (with Go's HTML-safe escaping), `[]byte` (standard base64), `[]string`, object
//! identifiers (`[]int`), `net.IP` (text), `*url.URL` (Go 1.12 struct fields), and a small
//! ordered object builder. Every function returns JSON text.

use std::net::IpAddr;

use base64::Engine as _;

/// A JSON string as Go's `json.Marshal` writes it: `<`, `>`, `&`, U+2028 and U+2029 as
/// `\u` escapes, control characters as `\n`, `\r`, `\t` or `\u00XX`.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `[]byte`: standard padded base64 (`null` for Go's nil slice, i.e. `None`).
pub fn bytes(b: Option<&[u8]>) -> String {
    match b {
        Some(b) => format!(
            "\"{}\"",
            base64::engine::general_purpose::STANDARD.encode(b)
        ),
        None => "null".to_owned(),
    }
}

/// `[]string`: `null` when empty (Go leaves the slice nil).
pub fn strings<S: AsRef<str>>(v: &[S]) -> String {
    if v.is_empty() {
        return "null".to_owned();
    }
    let items: Vec<String> = v.iter().map(|s| string(s.as_ref())).collect();
    format!("[{}]", items.join(","))
}

/// `asn1.ObjectIdentifier` from dotted text: an array of integers.
pub fn oid(dotted: &str) -> String {
    let arcs: Vec<&str> = dotted
        .split('.')
        .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    format!("[{}]", arcs.join(","))
}

/// `[]asn1.ObjectIdentifier`: `null` when empty.
pub fn oids<S: AsRef<str>>(v: &[S]) -> String {
    if v.is_empty() {
        return "null".to_owned();
    }
    let items: Vec<String> = v.iter().map(|o| oid(o.as_ref())).collect();
    format!("[{}]", items.join(","))
}

/// `net.IP` text (`MarshalText`): IPv4 dotted (also for IPv4-mapped IPv6), IPv6 RFC 5952.
pub fn ip_text(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => a.to_string(),
        },
    }
}

/// `[]net.IP`: `null` when empty.
pub fn ips(v: &[IpAddr]) -> String {
    if v.is_empty() {
        return "null".to_owned();
    }
    let items: Vec<String> = v.iter().map(|ip| string(&ip_text(ip))).collect();
    format!("[{}]", items.join(","))
}

/// An object with keys in the given order; values are JSON text.
pub fn object(fields: &[(&str, String)]) -> String {
    let items: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{}", string(k), v))
        .collect();
    format!("{{{}}}", items.join(","))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && s.is_char_boundary(i + 1) && s.is_char_boundary(i + 3)
        {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `*url.URL` as Go 1.12 marshals the struct (`Scheme`, `Opaque`, `User`, `Host`, `Path`,
/// `RawPath`, `ForceQuery`, `RawQuery`, `Fragment`). A simplified `url.Parse`: the path and
/// fragment are percent-decoded, `RawPath` is always `""`, and user info shows as `{}`
/// (Go's `Userinfo` has no exported fields).
pub fn url(u: &str) -> String {
    let (rest, fragment) = match u.split_once('#') {
        Some((a, f)) => (a, percent_decode(f)),
        None => (u, String::new()),
    };
    let mut scheme = String::new();
    let mut rest = rest;
    if let Some(colon) = rest.find(':') {
        let cand = &rest[..colon];
        let ok = cand.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && cand
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if ok {
            scheme = cand.to_ascii_lowercase();
            rest = &rest[colon + 1..];
        }
    }
    let (rest, raw_query, force_query) = match rest.split_once('?') {
        Some((a, q)) => (a, q.to_owned(), q.is_empty()),
        None => (rest, String::new(), false),
    };
    let mut opaque = String::new();
    let mut user = "null".to_owned();
    let mut host = String::new();
    let mut path = String::new();
    if !scheme.is_empty() && !rest.starts_with('/') {
        opaque = rest.to_owned();
    } else if let Some(after) = rest.strip_prefix("//") {
        let end = after.find('/').unwrap_or(after.len());
        let authority = &after[..end];
        host = match authority.rsplit_once('@') {
            Some((_, h)) => {
                user = "{}".to_owned();
                h.to_owned()
            }
            None => authority.to_owned(),
        };
        path = percent_decode(&after[end..]);
    } else {
        path = percent_decode(rest);
    }
    object(&[
        ("Scheme", string(&scheme)),
        ("Opaque", string(&opaque)),
        ("User", user),
        ("Host", string(&host)),
        ("Path", string(&path)),
        ("RawPath", string("")),
        ("ForceQuery", force_query.to_string()),
        ("RawQuery", string(&raw_query)),
        ("Fragment", string(&fragment)),
    ])
}

/// `[]*url.URL`: `null` when empty.
pub fn urls<S: AsRef<str>>(v: &[S]) -> String {
    if v.is_empty() {
        return "null".to_owned();
    }
    let items: Vec<String> = v.iter().map(|u| url(u.as_ref())).collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_string_escapes() {
        assert_eq!(
            string("a<b>&\"\\\n\u{1}é"),
            "\"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\u0001é\""
        );
    }

    #[test]
    fn urls_as_go_structs() {
        assert_eq!(
            url("https://u@example.com/a%20b?x=1#f"),
            "{\"Scheme\":\"https\",\"Opaque\":\"\",\"User\":{},\"Host\":\"example.com\",\
             \"Path\":\"/a b\",\"RawPath\":\"\",\"ForceQuery\":false,\"RawQuery\":\"x=1\",\
             \"Fragment\":\"f\"}"
        );
        assert!(url("urn:x:y").contains("\"Opaque\":\"x:y\""));
    }

    #[test]
    fn small_types() {
        assert_eq!(oid("2.5.4.3"), "[2,5,4,3]");
        assert_eq!(bytes(Some(&[0xff, 0x00])), "\"/wA=\"");
        assert_eq!(bytes(None), "null");
        assert_eq!(strings::<&str>(&[]), "null");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap_or(IpAddr::from([0u8; 4]));
        assert_eq!(ip_text(&mapped), "10.0.0.1");
    }
}
