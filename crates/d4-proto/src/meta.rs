//! The type-2 meta header: JSON describing the type-254 data of a connection.
//!
//! A sensor sends its meta header as one or more type-2 frames whose payloads,
//! concatenated, form one JSON object with at least a string field `type` naming the
//! extended type (`ja3-jl`, `maltrail`, ...). [`MetaHeaderBuilder`] assembles and checks it.

use serde_json::{Map, Value};
use thiserror::Error;

/// Default bound on the assembled meta header (100 KiB).
pub const DEFAULT_MAX_META_LEN: usize = 100 * 1024;
/// Longest accepted extended type name.
pub const MAX_EXT_TYPE_LEN: usize = 64;

/// Why a meta header was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetaError {
    #[error("meta header is over the limit of {max} bytes")]
    TooLarge { max: usize },
    #[error("meta header is empty")]
    Empty,
    #[error("meta header is not valid JSON: {0}")]
    NotJson(String),
    #[error("meta header is JSON but not an object")]
    NotObject,
    #[error("meta header has no \"type\" field")]
    MissingType,
    #[error("meta header field \"type\" is not a string")]
    TypeNotString,
    /// The extended type is used in file paths and queue names, so it is restricted to
    /// 1 to 64 characters of `A-Z a-z 0-9 - _ .`, not starting with a dot.
    #[error("meta header type {0:?} is not a valid extended type name")]
    InvalidType(String),
}

/// A checked meta header.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaHeader {
    ext_type: String,
    fields: Map<String, Value>,
}

impl MetaHeader {
    /// Parses and checks a whole meta header.
    pub fn parse(bytes: &[u8]) -> Result<MetaHeader, MetaError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(MetaError::Empty);
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| MetaError::NotJson(e.to_string()))?;
        let Value::Object(fields) = value else {
            return Err(MetaError::NotObject);
        };
        let ext_type = match fields.get("type") {
            None => return Err(MetaError::MissingType),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(MetaError::TypeNotString),
        };
        if !valid_ext_type(&ext_type) {
            return Err(MetaError::InvalidType(ext_type));
        }
        Ok(MetaHeader { ext_type, fields })
    }

    /// The extended type the following type-254 data holds.
    pub fn ext_type(&self) -> &str {
        &self.ext_type
    }

    /// Any field of the header.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// A string field of the header.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// All fields, `type` included.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// The header as compact JSON.
    pub fn to_json(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }
}

/// Whether `s` may be used as an extended type name (see [`MetaError::InvalidType`]).
pub fn valid_ext_type(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_EXT_TYPE_LEN
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Assembles the payloads of type-2 frames into one bounded meta header.
#[derive(Debug, Clone)]
pub struct MetaHeaderBuilder {
    buf: Vec<u8>,
    max: usize,
}

impl Default for MetaHeaderBuilder {
    fn default() -> Self {
        MetaHeaderBuilder::new()
    }
}

impl MetaHeaderBuilder {
    /// A builder bounded to [`DEFAULT_MAX_META_LEN`].
    pub fn new() -> MetaHeaderBuilder {
        MetaHeaderBuilder::with_max(DEFAULT_MAX_META_LEN)
    }

    /// A builder bounded to `max` bytes.
    pub fn with_max(max: usize) -> MetaHeaderBuilder {
        MetaHeaderBuilder {
            buf: Vec::new(),
            max,
        }
    }

    /// Appends one type-2 payload; an error when the total would pass the bound (nothing
    /// is buffered past it).
    pub fn push(&mut self, payload: &[u8]) -> Result<(), MetaError> {
        if self.buf.len() + payload.len() > self.max {
            return Err(MetaError::TooLarge { max: self.max });
        }
        self.buf.extend_from_slice(payload);
        Ok(())
    }

    /// Bytes received so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The raw bytes received so far (saved as-is by the server).
    pub fn raw(&self) -> &[u8] {
        &self.buf
    }

    /// Parses and checks what was received.
    pub fn finish(&self) -> Result<MetaHeader, MetaError> {
        MetaHeader::parse(&self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_split_payloads() {
        let mut b = MetaHeaderBuilder::new();
        b.push(br#"{"type": "ja3-jl", "encoding""#).unwrap();
        b.push(br#": "utf-8", "tags": ["tlp:white"]}"#).unwrap();
        let m = b.finish().unwrap();
        assert_eq!(m.ext_type(), "ja3-jl");
        assert_eq!(m.get_str("encoding"), Some("utf-8"));
    }

    #[test]
    fn typed_errors() {
        let p = |s: &str| MetaHeader::parse(s.as_bytes()).unwrap_err();
        assert_eq!(p(""), MetaError::Empty);
        assert!(matches!(p("{\"type\":"), MetaError::NotJson(_)));
        assert_eq!(p("[1]"), MetaError::NotObject);
        assert_eq!(p("{\"a\":1}"), MetaError::MissingType);
        assert_eq!(p("{\"type\":1}"), MetaError::TypeNotString);
        assert_eq!(
            p("{\"type\":\"../x\"}"),
            MetaError::InvalidType("../x".into())
        );
        assert_eq!(p("{\"type\":\"\"}"), MetaError::InvalidType("".into()));
        let mut b = MetaHeaderBuilder::with_max(4);
        b.push(b"{}").unwrap();
        assert_eq!(b.push(b"abc"), Err(MetaError::TooLarge { max: 4 }));
        assert_eq!(b.len(), 2);
    }
}
