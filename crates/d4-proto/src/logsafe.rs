//! Log-safe text: user-controlled values (login names, rejected input lines, request
//! paths...) written into logs with their control characters escaped, so that a newline
//! cannot forge a log line and a terminal escape cannot rewrite an operator's screen.
//!
//! Shared by every crate that logs what a peer sent (`d4-web`, `d4-pdns`, the server, the
//! client): `tracing::warn!(user = %d4_proto::logsafe::escape(name), ...)`.

use std::borrow::Cow;
use std::fmt::Write;

/// Longest value kept (characters); longer ones end with `…`.
pub const MAX_CHARS: usize = 256;

/// `s` with every control character (C0, DEL, C1: newline, carriage return, ESC...) and
/// the backslash written as a Rust-style escape (`\n`, `\r`, `\t`, `\\`, `\u{1b}`), cut to
/// [`MAX_CHARS`] characters. Borrowed when nothing needed changing.
pub fn escape(s: &str) -> Cow<'_, str> {
    let needs = s.chars().count() > MAX_CHARS || s.chars().any(|c| c.is_control() || c == '\\');
    if !needs {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(4 * MAX_CHARS) + 8);
    for (i, c) in s.chars().enumerate() {
        if i == MAX_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape`] of bytes that may not be UTF-8 (invalid sequences become U+FFFD).
pub fn escape_bytes(b: &[u8]) -> String {
    escape(&String::from_utf8_lossy(b)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped() {
        assert!(matches!(escape("admin"), Cow::Borrowed("admin")));
        assert_eq!(
            escape("x\nINFO forged\r\x1b[2J\\\u{85}"),
            "x\\nINFO forged\\r\\u{1b}[2J\\\\\\u{85}"
        );
        let long = "é".repeat(MAX_CHARS + 5);
        let e = escape(&long);
        assert_eq!(e.chars().count(), MAX_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(escape_bytes(b"a\xff\n"), "a\u{fffd}\\n");
    }
}
