//! RFC 5424 syslog messages (sans-IO: the time is passed in) and RFC 6587 octet counting.
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG
//! <134>1 2026-12-07T09:55:50.123456Z collector d4 4242 type-8 - 1607334950||192.0.2.1||...
//! ```
//! PRI is facility × 8 + severity. The timestamp is UTC with microseconds. There is no
//! structured data (`-`). MSG is the entry after the `--newline` policy; an entry that is
//! UTF-8 with non-ASCII characters starts with the BOM (RFC 5424 §6.4), any other entry is
//! sent as octets (MSG-ANY). Over TCP each message is framed as `LEN SP MSG` (RFC 6587
//! §3.4.1), over UDP it is one datagram (RFC 5426).

use chrono::{DateTime, SecondsFormat, Utc};

/// Facility names (RFC 5424 table 1, the names of syslog.h) and their codes.
const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("security", 13),
    ("console", 14),
    ("solaris-cron", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Severity names (RFC 5424 table 2; syslog.h and common long forms).
const SEVERITIES: &[(&str, u8)] = &[
    ("emerg", 0),
    ("emergency", 0),
    ("alert", 1),
    ("crit", 2),
    ("critical", 2),
    ("err", 3),
    ("error", 3),
    ("warning", 4),
    ("warn", 4),
    ("notice", 5),
    ("info", 6),
    ("informational", 6),
    ("debug", 7),
];

fn by_name(table: &[(&str, u8)], s: &str, max: u8, what: &str) -> Result<u8, String> {
    let s = s.trim().to_ascii_lowercase();
    if let Ok(n) = s.parse::<u8>() {
        if n <= max {
            return Ok(n);
        }
    }
    table
        .iter()
        .find(|(name, _)| *name == s)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            format!("`{s}`: unknown {what} (0-{max} or {})", names.join(", "))
        })
}

/// `--facility`: a name (`local3`) or a number 0-23.
pub fn parse_facility(s: &str) -> Result<u8, String> {
    by_name(FACILITIES, s, 23, "facility")
}

/// `--severity`: a name (`warning`) or a number 0-7.
pub fn parse_severity(s: &str) -> Result<u8, String> {
    by_name(SEVERITIES, s, 7, "severity")
}

/// A header field that breaks RFC 5424's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syslog {field} `{value}`: 1 to {max} printable ASCII characters without spaces (or - for none)")]
pub struct HeaderError {
    pub field: &'static str,
    pub value: String,
    pub max: usize,
}

/// The fixed part of every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogHeader {
    facility: u8,
    severity: u8,
    hostname: String,
    app_name: String,
    procid: String,
    msgid: String,
}

fn field(name: &'static str, value: &str, max: usize) -> Result<String, HeaderError> {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| (33..=126).contains(&b)) {
        return Err(HeaderError {
            field: name,
            value: value.into(),
            max,
        });
    }
    Ok(value.into())
}

impl SyslogHeader {
    /// Checks every field (RFC 5424 §6: PRINTUSASCII, at most 255 / 48 / 128 / 32
    /// characters for HOSTNAME / APP-NAME / PROCID / MSGID). `facility` ≤ 23,
    /// `severity` ≤ 7 (larger values are capped).
    pub fn new(
        facility: u8,
        severity: u8,
        hostname: &str,
        app_name: &str,
        procid: &str,
        msgid: &str,
    ) -> Result<SyslogHeader, HeaderError> {
        Ok(SyslogHeader {
            facility: facility.min(23),
            severity: severity.min(7),
            hostname: field("hostname", hostname, 255)?,
            app_name: field("app-name", app_name, 48)?,
            procid: field("procid", procid, 128)?,
            msgid: field("msgid", msgid, 32)?,
        })
    }

    /// The PRI value: facility × 8 + severity.
    pub fn pri(&self) -> u8 {
        self.facility * 8 + self.severity
    }

    /// Appends one message with `body` as MSG, stamped `time`.
    pub fn push_message(&self, time: DateTime<Utc>, body: &[u8], out: &mut Vec<u8>) {
        let head = format!(
            "<{}>1 {} {} {} {} {} - ",
            self.pri(),
            time.to_rfc3339_opts(SecondsFormat::Micros, true),
            self.hostname,
            self.app_name,
            self.procid,
            self.msgid
        );
        out.extend_from_slice(head.as_bytes());
        if !body.is_ascii() && std::str::from_utf8(body).is_ok() {
            out.extend_from_slice("\u{feff}".as_bytes());
        }
        out.extend_from_slice(body);
    }
}

/// A name usable as HOSTNAME: `name` with anything outside printable ASCII removed and
/// cut to 255 characters, or `-` (the NILVALUE) when nothing is left.
pub fn sanitize_hostname(name: &str) -> String {
    let h: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if h.is_empty() {
        "-".into()
    } else {
        h
    }
}

/// Appends `msg` framed by octet counting (RFC 6587 §3.4.1): the decimal length, a space,
/// the message.
pub fn push_octet_counted(msg: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(msg.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(msg);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn header() -> SyslogHeader {
        SyslogHeader::new(19, 4, "collector.example", "d4", "4242", "type-8").unwrap()
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_facility("local3"), Ok(19));
        assert_eq!(parse_facility("USER"), Ok(1));
        assert_eq!(parse_facility("23"), Ok(23));
        assert!(parse_facility("24").is_err());
        assert!(parse_facility("local8").is_err());
        assert_eq!(parse_severity("warning"), Ok(4));
        assert_eq!(parse_severity("err"), Ok(3));
        assert_eq!(parse_severity("7"), Ok(7));
        assert!(parse_severity("8").is_err());
    }

    #[test]
    fn message_layout() {
        // 2020-12-07 09:55:50.123456 UTC; PRI local3 (19) * 8 + warning (4) = 156
        let t = Utc.timestamp_opt(1_607_334_950, 123_456_000).unwrap();
        let mut out = Vec::new();
        header().push_message(t, b"hello world", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<156>1 2020-12-07T09:55:50.123456Z collector.example d4 4242 type-8 - hello world"
        );
    }

    #[test]
    fn utf8_gets_the_bom_octets_do_not() {
        let t = Utc.timestamp_opt(0, 0).unwrap();
        let mut a = Vec::new();
        header().push_message(t, "café".as_bytes(), &mut a);
        assert!(a.ends_with(&[0xEF, 0xBB, 0xBF, b'c', b'a', b'f', 0xC3, 0xA9]));
        let mut b = Vec::new();
        header().push_message(t, &[0xff, 0x00, b'x'], &mut b);
        assert!(b.ends_with(b"- \xff\x00x"));
    }

    #[test]
    fn octet_counting() {
        let mut out = Vec::new();
        push_octet_counted(b"<14>1 - - - - - - hi", &mut out);
        push_octet_counted(b"", &mut out);
        assert_eq!(out, b"20 <14>1 - - - - - - hi0 ");
    }

    #[test]
    fn header_fields_are_checked() {
        assert!(SyslogHeader::new(1, 6, "a b", "d4", "1", "-").is_err());
        assert!(SyslogHeader::new(1, 6, "h", &"x".repeat(49), "1", "-").is_err());
        assert!(SyslogHeader::new(1, 6, "h", "d4", "1", &"m".repeat(33)).is_err());
        assert!(SyslogHeader::new(1, 6, "h", "", "1", "-").is_err());
        assert!(SyslogHeader::new(1, 6, "h", "d4", "1", &"m".repeat(32)).is_ok());
        assert_eq!(sanitize_hostname(" host name\n"), "hostname");
        assert_eq!(sanitize_hostname(""), "-");
    }
}
