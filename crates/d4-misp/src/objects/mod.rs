//! The findings of each analyzer as plain values, and the MISP objects built from them:
//! [`dns`] (`passive-dns`), [`ddos`] (`ddos`, backscatter), [`tls`] (`x509`, `ip-port`,
//! `ja3`, `ja3s`, `ja4-plus`), [`weak`] (`x509` related to `crypto-material`). Each module
//! groups findings into one [`EventBuilder`](crate::build::EventBuilder) per UTC day and
//! bounds the objects per event; the inputs are sorted first, so the same findings always
//! give the same event.

pub mod ddos;
pub mod dns;
pub mod tls;
pub mod weak;

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::build::{Analyzer, EventBuilder, EventSettings};
use crate::model::Event;

/// Per-day event builders of one analyzer, created on first use.
pub(crate) struct Days<'a> {
    settings: &'a EventSettings,
    analyzer: Analyzer,
    pub(crate) days: BTreeMap<NaiveDate, EventBuilder>,
}

impl<'a> Days<'a> {
    pub(crate) fn new(settings: &'a EventSettings, analyzer: Analyzer) -> Days<'a> {
        Days {
            settings,
            analyzer,
            days: BTreeMap::new(),
        }
    }

    pub(crate) fn day(&mut self, day: NaiveDate) -> &mut EventBuilder {
        let (s, a) = (self.settings, self.analyzer);
        self.days
            .entry(day)
            .or_insert_with(|| EventBuilder::new(s, a, day))
    }

    pub(crate) fn finish(self) -> Vec<Event> {
        self.days
            .into_values()
            .filter_map(EventBuilder::finish)
            .collect()
    }
}

/// Decimal digits (a big integer) as lowercase hex without leading zeros (`None` when the
/// text is not a decimal number): RSA moduli are stored in decimal, MISP wants hex.
pub fn decimal_to_hex(decimal: &str) -> Option<String> {
    let decimal = decimal.trim();
    if decimal.is_empty() || !decimal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Big-endian base-256 digits, multiplied by 10 and added to per decimal digit.
    let mut bytes: Vec<u8> = vec![0];
    for d in decimal.bytes() {
        let mut carry = u32::from(d - b'0');
        for b in bytes.iter_mut().rev() {
            let v = u32::from(*b) * 10 + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            bytes.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let h = hex::encode(bytes);
    let t = h.trim_start_matches('0');
    Some(if t.is_empty() { "0".into() } else { t.into() })
}

/// A name MISP takes as a `domain`/`hostname` value: letters, digits, `-`, `_`, dots
/// between labels, at least one dot.
pub(crate) fn is_domain(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_to_hex_by_hand() {
        assert_eq!(decimal_to_hex("0").as_deref(), Some("0"));
        assert_eq!(decimal_to_hex("255").as_deref(), Some("ff"));
        assert_eq!(decimal_to_hex("256").as_deref(), Some("100"));
        assert_eq!(decimal_to_hex("3233").as_deref(), Some("ca1"));
        // 2^64 + 1
        assert_eq!(
            decimal_to_hex("18446744073709551617").as_deref(),
            Some("10000000000000001")
        );
        assert_eq!(decimal_to_hex("12a"), None);
        assert_eq!(decimal_to_hex(""), None);
    }

    #[test]
    fn domains() {
        assert!(is_domain("www.example.com"));
        assert!(!is_domain("localhost"));
        assert!(!is_domain("a..b"));
        assert!(!is_domain("a b.c"));
    }
}
