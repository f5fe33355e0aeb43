//! From what a user typed to a [`Lookup`]: names, IPs, CIDR networks, `*.suffix` wildcards,
//! `prefix*` searches; deterministic ordering and pagination of the answer.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::parse::normalize_name;
use crate::store::{Lookup, Record};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("empty query")]
    Empty,
    #[error("`{0}` is not a domain name, IP address, CIDR network, `*.suffix` or `prefix*`")]
    Invalid(String),
    #[error("prefix search needs at least {MIN_PREFIX} characters before `*`")]
    PrefixTooShort,
}

/// Shortest prefix accepted for `prefix*` (a one-letter prefix would scan everything).
pub const MIN_PREFIX: usize = 3;

/// `/query/<q>`: an IP → records whose rdata is that address; `a.b.c.d/n` → CIDR search;
/// `*.example.com` → every name under example.com; `www.exa*` → names starting so; else
/// the records of one name.
pub fn parse_query(q: &str) -> Result<Lookup, QueryError> {
    let q = q.trim();
    if q.is_empty() {
        return Err(QueryError::Empty);
    }
    if let Ok(ip) = q.parse::<IpAddr>() {
        return Ok(Lookup::Rdata(vec![ip.to_string()]));
    }
    if q.contains('/') {
        return q
            .parse::<IpNet>()
            .map(|n| Lookup::Cidr(n.trunc()))
            .map_err(|_| QueryError::Invalid(q.to_string()));
    }
    if let Some(suffix) = q.strip_prefix("*.") {
        let n = normalize_name(suffix).ok_or_else(|| QueryError::Invalid(q.to_string()))?;
        return Ok(Lookup::Suffix(n.into_owned()));
    }
    if let Some(prefix) = q.strip_suffix('*') {
        if prefix.len() < MIN_PREFIX {
            return Err(QueryError::PrefixTooShort);
        }
        if prefix.contains('*') || prefix.bytes().any(|b| b <= b' ') {
            return Err(QueryError::Invalid(q.to_string()));
        }
        return Ok(Lookup::Prefix(prefix.to_ascii_lowercase()));
    }
    let n = normalize_name(q).ok_or_else(|| QueryError::Invalid(q.to_string()))?;
    Ok(Lookup::Name(n.into_owned()))
}

/// `/fquery/<value>`: the records whose rdata is exactly `value` — as typed (TXT keeps its
/// case), as a normalized name, and as a canonical IP address.
pub fn parse_fquery(v: &str) -> Result<Lookup, QueryError> {
    if v.is_empty() {
        return Err(QueryError::Empty);
    }
    let mut values = vec![v.to_string()];
    if let Ok(ip) = v.trim().parse::<IpAddr>() {
        values.push(ip.to_string());
    } else if let Some(n) = normalize_name(v.trim()) {
        values.push(n.into_owned());
    }
    Ok(Lookup::Rdata(values))
}

/// The answer order: last seen, newest first; then name, type, rdata (so it is total and
/// pagination by offset is stable while nothing is ingested).
pub fn sort_records(records: &mut [Record]) {
    records.sort_unstable_by(|a, b| {
        b.time_last_ms
            .cmp(&a.time_last_ms)
            .then_with(|| a.rrname.cmp(&b.rrname))
            .then_with(|| a.rrtype.cmp(&b.rrtype))
            .then_with(|| a.rdata.cmp(&b.rdata))
    });
}

/// A page of a sorted answer: `(records, next cursor)`. The cursor is the offset of the
/// next record, always > 0, absent on the last page (PyPDNS's `x-dribble-cursor`).
pub fn page(records: &[Record], cursor: usize, count: Option<usize>) -> (&[Record], Option<usize>) {
    let start = cursor.min(records.len());
    let end = match count {
        Some(c) => start.saturating_add(c).min(records.len()),
        None => records.len(),
    };
    let next = (end < records.len()).then_some(end);
    (&records[start..end], next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_query("WWW.Example.com.").unwrap(),
            Lookup::Name("www.example.com".into())
        );
        assert_eq!(
            parse_query("2001:DB8::0:1").unwrap(),
            Lookup::Rdata(vec!["2001:db8::1".into()])
        );
        assert_eq!(
            parse_query("10.1.2.3/8").unwrap(),
            Lookup::Cidr("10.0.0.0/8".parse().unwrap())
        );
        assert_eq!(
            parse_query("*.Example.com").unwrap(),
            Lookup::Suffix("example.com".into())
        );
        assert_eq!(
            parse_query("www.ex*").unwrap(),
            Lookup::Prefix("www.ex".into())
        );
        assert_eq!(parse_query("w*"), Err(QueryError::PrefixTooShort));
        assert!(parse_query("10.0.0.0/99").is_err());
        assert!(parse_query("a b").is_err());
        assert!(parse_query("").is_err());
    }

    #[test]
    fn paging() {
        let r: Vec<Record> = (0..5)
            .map(|i| Record {
                rrname: format!("n{i}"),
                rrtype: 1,
                rdata: "1.1.1.1".into(),
                time_first_ms: 0,
                time_last_ms: i,
                count: 1,
                sensors: vec![],
            })
            .collect();
        assert_eq!(page(&r, 0, Some(2)).1, Some(2));
        assert_eq!(page(&r, 2, Some(2)).1, Some(4));
        assert_eq!(page(&r, 4, Some(2)), (&r[4..5], None));
        assert_eq!(page(&r, 9, Some(2)), (&r[5..5], None));
        assert_eq!(page(&r, 0, None), (&r[..], None));
    }
}
