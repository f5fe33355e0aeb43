//! The parts of a `ja3-jl` line (sensor-d4-tls-fingerprinting JSON) that the handler
//! keeps: the `Raw` strings of `Certificates[]`, borrowed from the line when they have no
//! escapes. Everything else is skipped without being built (a `serde_json::Value` tree of
//! a 16 MiB line could take many times its size).

use std::borrow::Cow;

/// The parts of a `ja3-jl` line that are kept: the `Raw` strings of `Certificates[]`
/// (other fields are skipped without being built).
#[derive(serde::Deserialize)]
pub(crate) struct Ja3Line<'a> {
    #[serde(rename = "Certificates", default, borrow)]
    pub(crate) certificates: RawCerts<'a>,
}

/// `Certificates[].Raw` strings; anything else in (or instead of) the array is skipped.
/// Borrowed from the line when the string has no escapes (base64 has none).
#[derive(Default)]
pub(crate) struct RawCerts<'a>(pub(crate) Vec<Cow<'a, str>>);

/// A JSON string borrowed from the input when it can be.
struct RawStr<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for RawStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawStr<'de>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<RawStr<'de>, E> {
                Ok(RawStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawStr<'de>, E> {
                Ok(RawStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<RawStr<'de>, E> {
                Ok(RawStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawCerts<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawCerts<'a>, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct Cert<'a>(Option<Cow<'a, str>>);
        impl<'de> serde::Deserialize<'de> for Cert<'de> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cert<'de>, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Cert<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a certificate")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Cert<'de>, A::Error> {
                        let mut raw = None;
                        while let Some(k) = m.next_key::<RawStr<'de>>()? {
                            if k.0 == "Raw" && raw.is_none() {
                                raw = m
                                    .next_value::<Option<RawStr<'de>>>()
                                    .ok()
                                    .flatten()
                                    .map(|r| r.0);
                            } else {
                                m.next_value::<IgnoredAny>()?;
                            }
                        }
                        Ok(Cert(raw))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Cert<'de>, A::Error> {
                        while s.next_element::<IgnoredAny>()?.is_some() {}
                        Ok(Cert(None))
                    }
                    fn visit_str<E>(self, _: &str) -> Result<Cert<'de>, E> {
                        Ok(Cert(None))
                    }
                    fn visit_bool<E>(self, _: bool) -> Result<Cert<'de>, E> {
                        Ok(Cert(None))
                    }
                    fn visit_i64<E>(self, _: i64) -> Result<Cert<'de>, E> {
                        Ok(Cert(None))
                    }
                    fn visit_u64<E>(self, _: u64) -> Result<Cert<'de>, E> {
                        Ok(Cert(None))
                    }
                    fn visit_f64<E>(self, _: f64) -> Result<Cert<'de>, E> {
                        Ok(Cert(None))
                    }
                    fn visit_unit<E>(self) -> Result<Cert<'de>, E> {
                        Ok(Cert(None))
                    }
                }
                d.deserialize_any(V)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawCerts<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of certificates")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<RawCerts<'de>, A::Error> {
                let mut v = Vec::new();
                while let Some(Cert(c)) = s.next_element::<Cert<'de>>()? {
                    v.extend(c);
                }
                Ok(RawCerts(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<RawCerts<'de>, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(RawCerts::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<RawCerts<'de>, E> {
                Ok(RawCerts::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<RawCerts<'de>, E> {
                Ok(RawCerts::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<RawCerts<'de>, E> {
                Ok(RawCerts::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<RawCerts<'de>, E> {
                Ok(RawCerts::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<RawCerts<'de>, E> {
                Ok(RawCerts::default())
            }
            fn visit_unit<E>(self) -> Result<RawCerts<'de>, E> {
                Ok(RawCerts::default())
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certs(line: &str) -> Option<Vec<String>> {
        match line.trim_ascii_start().as_bytes().first() {
            Some(b'{') => serde_json::from_str::<Ja3Line>(line).ok().map(|l| {
                l.certificates
                    .0
                    .into_iter()
                    .map(|c| {
                        // borrowed from the line unless it has escapes
                        assert_eq!(matches!(c, Cow::Borrowed(_)), !line.contains("\\/"));
                        c.into_owned()
                    })
                    .collect()
            }),
            _ => None,
        }
    }

    #[test]
    fn ja3_lines_keep_only_raw_certificates() {
        assert_eq!(
            certs(
                r#"{"a": [1, {"b": 2}], "Certificates": [{"Raw": "QUJD", "x": [1]}, {"Raw": 5}, 7, [], {"y": 1}, {"Raw": "REVG"}]}"#
            ),
            Some(vec!["QUJD".to_string(), "REVG".to_string()])
        );
        assert_eq!(
            certs(r#"{"Certificates": [{"Raw": "QU\/D"}]}"#),
            Some(vec!["QU/D".to_string()])
        );
        assert_eq!(certs(r#"{"Certificates": "none"}"#), Some(vec![]));
        assert_eq!(certs(r#"{"Certificates": null, "z": {}}"#), Some(vec![]));
        assert_eq!(certs(r#"{}"#), Some(vec![]));
        assert_eq!(certs(r#"[{"Raw": "QUJD"}]"#), None, "not an object");
        assert_eq!(
            certs(r#"{"Certificates": [{"Raw": "QUJD"}"#),
            None,
            "truncated"
        );
    }
}
