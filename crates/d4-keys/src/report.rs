//! One key's outcome as `d4 keys check` prints it: badkeys' JSON object (`type`, `bits`,
//! `curve`, `spkisha256`, `results: {check: {subtest, p, q, d, ...}}`, `error`, `where`;
//! p, q, n, e, x, y in lowercase hex without leading zeros, d as a JSON integer) or
//! badkeys' text lines (`check/subtest vulnerability, rsa[2048], where`), and the exit
//! status bits it sets.

use rug::Integer;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::check::Finding;
use crate::key::{Key, KeyData, Parsed};

/// Exit status bit: some input could not be read (unparseable, unsupported, no key).
pub const EXIT_UNSCANNABLE: u8 = 2;
/// Exit status bit: a check fired.
pub const EXIT_VULNERABLE: u8 = 4;

/// The outcome for one key (or one input where no key could be read).
#[derive(Debug, Clone)]
pub struct Report {
    pub place: String,
    pub kind: &'static str,
    pub bits: Option<u32>,
    pub curve: Option<&'static str>,
    pub spkisha256: Option<String>,
    pub error: Option<String>,
    pub numbers: Vec<(&'static str, String)>,
    pub findings: Vec<Finding>,
}

fn hex(v: &Integer) -> String {
    v.to_string_radix(16)
}

impl Report {
    /// A checked key.
    pub fn key(place: String, key: &Key, findings: Vec<Finding>) -> Self {
        let numbers = match &key.data {
            KeyData::Rsa { n, e, .. } => vec![("n", hex(n)), ("e", hex(e))],
            KeyData::Ec { x, y, .. } => {
                let mut v = vec![("x", hex(x))];
                v.extend(y.as_ref().map(|y| ("y", hex(y))));
                v
            }
            KeyData::Dsa { y, .. } | KeyData::Dh { y, .. } => vec![("y", hex(y))],
            KeyData::Raw { bytes, .. } => vec![("pub", hex::encode(bytes))],
        };
        Report {
            place,
            kind: key.type_name(),
            bits: key.bits(),
            curve: key.curve(),
            spkisha256: key.spki_sha256.map(hex::encode),
            error: None,
            numbers,
            findings,
        }
    }

    /// A bare RSA modulus (badkeys' `-m`: e = 65537, no SPKI), named `modulus <hex>`.
    pub fn modulus(n: &Integer, findings: Vec<Finding>) -> Self {
        Report {
            place: format!("modulus {}", hex(n)),
            kind: "rsa",
            bits: Some(n.significant_bits()),
            curve: None,
            spkisha256: None,
            error: None,
            numbers: vec![("n", hex(n)), ("e", "10001".into())],
            findings,
        }
    }

    /// An input that held a key that could not be read or is not supported.
    pub fn not_key(place: String, parsed: &Parsed) -> Self {
        let (kind, error) = match parsed {
            Parsed::Unsupported(e) => ("unsupported", e.clone()),
            Parsed::Unparseable(e) => ("unparseable", e.clone()),
            Parsed::Key(_) => (
                "unparseable",
                "internal: a key reported as not a key".into(),
            ),
        };
        Report::error(place, kind, error)
    }

    /// An input where no key was found.
    pub fn not_found(place: String) -> Self {
        Report::error(place, "notfound", "No key found".into())
    }

    /// An input of the given error kind (`unparseable`, `unsupported`, `notfound`).
    pub fn error(place: String, kind: &'static str, error: String) -> Self {
        Report {
            place,
            kind,
            bits: None,
            curve: None,
            spkisha256: None,
            error: Some(error),
            numbers: Vec::new(),
            findings: Vec::new(),
        }
    }

    /// The exit status bits this report sets.
    pub fn exit_bits(&self) -> u8 {
        let mut bits = 0;
        if self.error.is_some() {
            bits |= EXIT_UNSCANNABLE;
        }
        if !self.findings.is_empty() {
            bits |= EXIT_VULNERABLE;
        }
        bits
    }

    /// badkeys' key name: `rsa[2048]`, `ec[p256]`, `dsa[1024]`, `dh`.
    pub fn key_name(&self) -> String {
        let mut kn = self.kind.to_string();
        if let Some(b) = self.bits {
            kn += &format!("[{b}]");
        }
        if let Some(c) = self.curve {
            kn += &format!("[{c}]");
        }
        kn
    }

    /// badkeys' text output: lines for stdout and warnings for stderr. `all` also prints
    /// clean keys (`key ok`), `verbose` the recovered numbers.
    pub fn text(&self, all: bool, verbose: bool) -> (Vec<String>, Vec<String>) {
        let (mut out, mut warn) = (Vec::new(), Vec::new());
        let place = escape(&self.place);
        match self.kind {
            "unsupported" => warn.push(format!("WARNING: Unsupported key type, {place}")),
            "unparseable" => warn.push(format!("WARNING: Unparseable input, {place}")),
            "notfound" => warn.push(format!("WARNING: No key found, {place}")),
            _ if (all || verbose) && self.findings.is_empty() => {
                out.push(format!("{} key ok, {place}", self.key_name()));
            }
            _ => {}
        }
        for f in &self.findings {
            let sub = f
                .subtest
                .as_ref()
                .map(|s| format!("/{s}"))
                .unwrap_or_default();
            out.push(format!(
                "{}{sub} vulnerability, {}, {place}",
                f.check.name(),
                self.key_name()
            ));
            if verbose {
                if let Some(p) = &f.p {
                    out.push(format!("RSA p {}", hex(p)));
                }
                if let Some(q) = &f.q {
                    out.push(format!("RSA q {}", hex(q)));
                }
                if let Some(d) = &f.d {
                    out.push(format!("RSA d {}", hex(d)));
                }
            }
        }
        (out, warn)
    }

    /// badkeys' JSON object on one line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(&JsonReport(self))
            .unwrap_or_else(|e| format!("{{\"type\":\"error\",\"error\":\"{e}\"}}"))
    }
}

/// Like Python's `repr(s)[1:-1]` for the places badkeys prints: backslashes and control
/// characters escaped, so a file name cannot forge output lines.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

struct JsonReport<'a>(&'a Report);
struct JsonResults<'a>(&'a [Finding]);

#[derive(Serialize)]
struct JsonFinding<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    subtest: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    d: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blid: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lookup: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    biaspct: Option<u32>,
}

impl Serialize for JsonResults<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for f in self.0 {
            let j = JsonFinding {
                subtest: f.subtest.as_deref(),
                p: f.p.as_ref().map(hex),
                q: f.q.as_ref().map(hex),
                // an integer of any size, as Python's json writes it
                d: f.d
                    .as_ref()
                    .and_then(|d| RawValue::from_string(d.to_string()).ok()),
                blid: f.blid,
                lookup: f.lookup.as_deref(),
                biaspct: f.biaspct,
            };
            m.serialize_entry(f.check.name(), &j)?;
        }
        m.end()
    }
}

impl Serialize for JsonReport<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", r.kind)?;
        if let Some(b) = r.bits {
            m.serialize_entry("bits", &b)?;
        }
        if let Some(c) = r.curve {
            m.serialize_entry("curve", c)?;
        }
        for (name, v) in &r.numbers {
            m.serialize_entry(name, v)?;
        }
        if let Some(h) = &r.spkisha256 {
            m.serialize_entry("spkisha256", h)?;
        }
        if let Some(e) = &r.error {
            m.serialize_entry("error", e)?;
        }
        m.serialize_entry("results", &JsonResults(&r.findings))?;
        m.serialize_entry("where", &r.place)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_escaped_like_python_repr() {
        assert_eq!(escape("a b/é.pem"), "a b/é.pem");
        assert_eq!(
            escape("x\nfermat vulnerability"),
            "x\\nfermat vulnerability"
        );
        assert_eq!(escape("a\\b\x07"), "a\\\\b\\x07");
    }

    #[test]
    fn big_d_is_a_json_integer() {
        let mut f = Finding::new(crate::check::Check::SmallD);
        let d = Integer::from(1) << 100u32; // 1267650600228229401496703205376
        f.d = Some(d);
        let mut r = Report::error("x".into(), "rsa", String::new());
        r.error = None;
        r.findings = vec![f];
        let line = r.to_json_line();
        assert!(
            line.contains(r#""smalld":{"d":1267650600228229401496703205376}"#),
            "{line}"
        );
        assert_eq!(r.exit_bits(), EXIT_VULNERABLE);
    }
}
