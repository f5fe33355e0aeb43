//! Distinguished names the way Go's `crypto/x509/pkix` sees them: the attribute list
//! (`Name.Names`), the named fields (`FillFromRDNSequence`), and `Name.String()` (Go 1.15 and
//! later: the parsed standard fields in `ToRDNSequence` order, preceded by the non-standard
//! attributes, then printed in reverse with RFC 2253-like escaping). Also Go's `%q`
//! (`strconv.Quote`), which the reference applies to those strings for its TLSH input.

use x509_parser::asn1_rs::{Class, Tag};
use x509_parser::prelude::X509Name;

/// One attribute of a name, in certificate order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAttr {
    /// Dotted object identifier, e.g. `2.5.4.3`.
    pub oid: String,
    /// The value as Go decodes it into a string; `None` when Go would not hold a string.
    pub value: Option<String>,
}

/// A parsed name: attributes in order plus the fields Go fills from them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoName {
    /// Every attribute, RDN by RDN (Go's `Names`).
    pub names: Vec<NameAttr>,
}

/// The nine attributes Go names (`attributeTypeNames`), in `ToRDNSequence` order.
const TO_RDN_ORDER: [(&str, &str); 9] = [
    ("2.5.4.6", "C"),
    ("2.5.4.8", "ST"),
    ("2.5.4.7", "L"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.17", "POSTALCODE"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
];

fn type_name(oid: &str) -> Option<&'static str> {
    TO_RDN_ORDER
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, n)| *n)
}

/// Decode an attribute value as Go's x509 parser does (`parseASN1String`): the universal
/// string types become text, anything else is not a string.
fn decode_value(tag: Tag, class: Class, data: &[u8]) -> Option<String> {
    if class != Class::Universal {
        return None;
    }
    match tag {
        // UTF8String, NumericString, PrintableString, T61String, IA5String
        Tag(12) | Tag(18) | Tag(19) | Tag(20) | Tag(22) => {
            Some(String::from_utf8_lossy(data).into_owned())
        }
        // BMPString: UTF-16 big-endian
        Tag(30) => {
            if data.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    }
}

impl GoName {
    /// Collect the attributes of a parsed name.
    pub fn from_x509(name: &X509Name<'_>) -> Self {
        let mut names = Vec::new();
        for rdn in name.iter() {
            for atv in rdn.iter() {
                let v = atv.attr_value();
                names.push(NameAttr {
                    oid: atv.attr_type().to_id_string(),
                    value: decode_value(v.header.tag(), v.header.class(), v.data),
                });
            }
        }
        GoName { names }
    }

    /// String values of one standard attribute, in order (Go's `Country`, `Organization`...).
    pub fn values(&self, oid: &str) -> Vec<&str> {
        self.names
            .iter()
            .filter(|a| a.oid == oid)
            .filter_map(|a| a.value.as_deref())
            .collect()
    }

    /// Go's single-valued fields (`CommonName`, `SerialNumber`): the last value wins.
    pub fn last(&self, oid: &str) -> &str {
        self.values(oid).last().copied().unwrap_or("")
    }

    /// Go's `pkix.Name.String()` for a parsed name (ExtraNames empty).
    pub fn go_string(&self) -> String {
        // RDNSequence as Go builds it: non-standard attributes first (one per RDN), then
        // one multi-valued RDN per standard field with values. Printed in reverse.
        let mut rdns: Vec<Vec<Atv<'_>>> = Vec::new();
        for a in &self.names {
            if type_name(&a.oid).is_some() {
                continue;
            }
            rdns.push(vec![(a.oid.clone(), None, a.value.as_deref())]);
        }
        for (oid, tn) in TO_RDN_ORDER {
            let vals = if oid == "2.5.4.3" || oid == "2.5.4.5" {
                let v = self.last(oid);
                if v.is_empty() {
                    Vec::new()
                } else {
                    vec![v]
                }
            } else {
                self.values(oid)
            };
            if vals.is_empty() {
                continue;
            }
            rdns.push(
                vals.into_iter()
                    .map(|v| (oid.to_owned(), Some(tn), Some(v)))
                    .collect(),
            );
        }
        let mut s = String::new();
        for (i, rdn) in rdns.iter().rev().enumerate() {
            if i > 0 {
                s.push(',');
            }
            for (j, (oid, tn, value)) in rdn.iter().enumerate() {
                if j > 0 {
                    s.push('+');
                }
                match tn {
                    Some(tn) => {
                        s.push_str(tn);
                        s.push('=');
                        escape_value(&mut s, value.unwrap_or(""));
                    }
                    None => match value {
                        // Go re-marshals the value (a Go string) and prints `oid=#hex`.
                        Some(v) => {
                            s.push_str(oid);
                            s.push_str("=#");
                            s.push_str(&hex::encode(marshal_go_string(v)));
                        }
                        // Not a string in Go: it marshals whatever it decoded; we print
                        // the OID alone (documented approximation for non-string values).
                        None => {
                            s.push_str(oid);
                            s.push('=');
                        }
                    },
                }
            }
        }
        s
    }
}

/// One attribute while printing: OID, Go's short type name, value.
type Atv<'a> = (String, Option<&'static str>, Option<&'a str>);

/// Go's escaping of a value in `RDNSequence.String()`.
fn escape_value(out: &mut String, v: &str) {
    let last = v.len().saturating_sub(1);
    for (k, c) in v.char_indices() {
        let escape = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => k == 0 || k == last,
            '#' => k == 0,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
}

/// `asn1.Marshal` of a Go string: PrintableString when every character is printable in
/// that set (no `*` or `&`), else UTF8String.
fn marshal_go_string(v: &str) -> Vec<u8> {
    let printable = v.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b' ' | b'\'' | b'(' | b')' | b'+' | b',' | b'-' | b'.' | b'/' | b':' | b'=' | b'?'
            )
    });
    let tag = if printable { 0x13 } else { 0x0c };
    let mut out = vec![tag];
    let len = v.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let be = (len as u64).to_be_bytes();
        let start = be.iter().position(|&b| b != 0).unwrap_or(7);
        out.push(0x80 | (8 - start) as u8);
        out.extend_from_slice(&be[start..]);
    }
    out.extend_from_slice(v.as_bytes());
    out
}

/// Go's `strconv.Quote` (what `fmt`'s `%q` prints for a string).
///
/// Printable characters are kept; `\a \b \f \n \r \t \v`, `\\` and `\"` get short
/// escapes; other ASCII control bytes `\xNN`; non-printable Unicode `\uNNNN`/`\UNNNNNNNN`.
/// Go's `IsPrint` tables are approximated by Rust's control/whitespace classes plus the
/// common format characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if !go_is_print(c) => {
                let v = c as u32;
                if v < 0x10000 {
                    out.push_str(&format!("\\u{v:04x}"));
                } else {
                    out.push_str(&format!("\\U{v:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn go_is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    let v = c as u32;
    !(c.is_control()
        || c.is_whitespace()
        || v == 0xad
        || (0x200b..=0x200f).contains(&v)
        || (0x202a..=0x202e).contains(&v)
        || (0x2060..=0x206f).contains(&v)
        || v == 0xfeff
        || (0xfff9..=0xfffb).contains(&v)
        || (0xe000..=0xf8ff).contains(&v)
        || v >= 0xf0000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(attrs: &[(&str, &str)]) -> GoName {
        GoName {
            names: attrs
                .iter()
                .map(|(o, v)| NameAttr {
                    oid: (*o).to_owned(),
                    value: Some((*v).to_owned()),
                })
                .collect(),
        }
    }

    #[test]
    fn order_is_go_field_order_reversed() {
        // Certificate order C, O, CN prints as CN, O, C; Go's field order decides, not the
        // certificate's: an L placed after the CN still prints after it.
        let n = name(&[
            ("2.5.4.6", "LU"),
            ("2.5.4.10", "CIRCL"),
            ("2.5.4.3", "x"),
            ("2.5.4.7", "Lux"),
        ]);
        assert_eq!(n.go_string(), "CN=x,O=CIRCL,L=Lux,C=LU");
    }

    #[test]
    fn multi_values_and_extra_attributes() {
        let n = name(&[
            ("2.5.4.11", "a"),
            ("2.5.4.11", "b"),
            ("1.2.840.113549.1.9.1", "me@example.com"),
            ("2.5.4.3", "c"),
        ]);
        // email re-marshalled as UTF8String (0x0c): '@' is not PrintableString
        assert_eq!(
            n.go_string(),
            "CN=c,OU=a+OU=b,1.2.840.113549.1.9.1=#0c0e6d65406578616d706c652e636f6d"
        );
        let dc = name(&[("0.9.2342.19200300.100.1.25", "com"), ("2.5.4.3", "c")]);
        assert_eq!(
            dc.go_string(),
            "CN=c,0.9.2342.19200300.100.1.25=#1303636f6d"
        );
    }

    #[test]
    fn escaping() {
        let n = name(&[("2.5.4.3", "#a, b+c\"d\\e<f>;g ")]);
        assert_eq!(n.go_string(), "CN=\\#a\\, b\\+c\\\"d\\\\e\\<f\\>\\;g\\ ");
        let n = name(&[("2.5.4.3", " x#y")]);
        assert_eq!(n.go_string(), "CN=\\ x#y");
    }

    #[test]
    fn quote() {
        assert_eq!(go_quote("CN=a\\,b"), "\"CN=a\\\\,b\"");
        assert_eq!(go_quote("é\u{1}\n\u{200b}"), "\"é\\x01\\n\\u200b\"");
    }
}
