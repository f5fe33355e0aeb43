//! What happens to the line ends inside an entry (`--newline`), so that one entry stays one
//! record at the receiver. Stream sinks (stdout, TCP, TLS, Unix stream) write each entry
//! followed by `\n`; datagram sinks and syslog send the entry's [`body`] alone.
//!
//! - `escape` (default): the line end that closes the entry (`\n` or `\r\n`) is dropped,
//!   every other LF becomes the two characters `\n` and every CR `\r`. An entry without
//!   line ends (the usual case: the collector queues one line per entry) is unchanged;
//!   backslashes are left alone so JSON entries stay valid JSON.
//! - `strip`: the closing line end is dropped, every other CR or LF becomes a space.
//! - `keep`: the entry is sent as it is; a stream sink adds the `\n` only when the entry
//!   does not already end with one (a multi-line entry reads as several lines).

use std::borrow::Cow;

/// `--newline keep|strip|escape`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Newline {
    Keep,
    Strip,
    #[default]
    Escape,
}

impl std::str::FromStr for Newline {
    type Err = String;
    fn from_str(s: &str) -> Result<Newline, String> {
        match s {
            "keep" => Ok(Newline::Keep),
            "strip" => Ok(Newline::Strip),
            "escape" => Ok(Newline::Escape),
            _ => Err(format!("`{s}`: expected keep, strip or escape")),
        }
    }
}

fn trim_line_end(e: &[u8]) -> &[u8] {
    let e = e.strip_suffix(b"\n").unwrap_or(e);
    e.strip_suffix(b"\r").unwrap_or(e)
}

/// The entry's content under `policy`, without any terminator (the datagram or syslog
/// message body).
pub fn body(policy: Newline, entry: &[u8]) -> Cow<'_, [u8]> {
    if policy == Newline::Keep {
        return Cow::Borrowed(entry);
    }
    let e = trim_line_end(entry);
    if !e.iter().any(|&b| b == b'\n' || b == b'\r') {
        return Cow::Borrowed(e);
    }
    let mut out = Vec::with_capacity(e.len() + 8);
    for &b in e {
        match (policy, b) {
            (Newline::Strip, b'\n' | b'\r') => out.push(b' '),
            (_, b'\n') => out.extend_from_slice(b"\\n"),
            (_, b'\r') => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    Cow::Owned(out)
}

/// Appends the entry as a line of a stream sink: [`body`] then `\n` (with `keep`, no
/// second `\n` after an entry that ends with one).
pub fn push_line(policy: Newline, entry: &[u8], out: &mut Vec<u8>) {
    let b = body(policy, entry);
    out.extend_from_slice(&b);
    if !(policy == Newline::Keep && b.ends_with(b"\n")) {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn line(p: Newline, e: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        push_line(p, e, &mut v);
        v
    }

    #[test]
    fn single_lines_are_untouched_by_every_policy() {
        let json = br#"{"a":"x\"y\\z"}"#;
        for p in [Newline::Keep, Newline::Strip, Newline::Escape] {
            assert_eq!(&*body(p, json), json);
            let mut want = json.to_vec();
            want.push(b'\n');
            assert_eq!(line(p, json), want);
        }
    }

    #[test]
    fn escape() {
        assert_eq!(&*body(Newline::Escape, b"a\nb\r\nc\n"), b"a\\nb\\r\\nc");
        assert_eq!(&*body(Newline::Escape, b"a\r\n"), b"a");
        assert_eq!(line(Newline::Escape, b"x\ny\n"), b"x\\ny\n");
        assert_eq!(&*body(Newline::Escape, b"\n"), b"");
    }

    #[test]
    fn strip() {
        assert_eq!(&*body(Newline::Strip, b"a\nb\r\nc\n"), b"a b  c");
        assert_eq!(line(Newline::Strip, b"x\ny\r\n"), b"x y\n");
    }

    #[test]
    fn keep() {
        assert_eq!(&*body(Newline::Keep, b"a\nb\n"), b"a\nb\n");
        assert_eq!(line(Newline::Keep, b"a\nb\n"), b"a\nb\n");
        assert_eq!(line(Newline::Keep, b"a\nb"), b"a\nb\n");
        assert_eq!(line(Newline::Keep, b""), b"\n");
    }

    #[test]
    fn parses() {
        assert_eq!("keep".parse::<Newline>().unwrap(), Newline::Keep);
        assert_eq!("strip".parse::<Newline>().unwrap(), Newline::Strip);
        assert_eq!("escape".parse::<Newline>().unwrap(), Newline::Escape);
        assert!("lf".parse::<Newline>().is_err());
    }
}
