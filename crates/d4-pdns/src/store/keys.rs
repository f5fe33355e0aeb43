//! The byte keys of the store's tables: the `records` key (reversed owner name, type,
//! rdata), the `rdata` reverse index key (by value, or by address for A/AAAA) and the
//! label reversal both rely on. The layout itself is described in the [`super`] module doc.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Writes `name` with its labels reversed.
pub fn reverse_labels(name: &str, out: &mut Vec<u8>) {
    let mut first = true;
    for label in name.rsplit('.') {
        if !first {
            out.push(b'.');
        }
        first = false;
        out.extend_from_slice(label.as_bytes());
    }
}

pub(super) fn record_key(rrname: &str, rrtype: u16, rdata: &str, out: &mut Vec<u8>) {
    out.clear();
    reverse_labels(rrname, out);
    out.push(0);
    out.extend_from_slice(&rrtype.to_be_bytes());
    out.extend_from_slice(rdata.as_bytes());
}

/// The `records` key of an already reversed name (what the `rdata` index holds).
pub(super) fn record_key_rev(rev: &[u8], rrtype: u16, rdata: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(rev);
    out.push(0);
    out.extend_from_slice(&rrtype.to_be_bytes());
    out.extend_from_slice(rdata);
}

/// (revname, type, rdata) of a `records` key.
pub(crate) fn split_record_key(k: &[u8]) -> Option<(&[u8], u16, &[u8])> {
    let z = memchr::memchr(0, k)?;
    let t = k.get(z + 1..z + 3)?;
    Some((&k[..z], u16::from_be_bytes([t[0], t[1]]), &k[z + 3..]))
}

/// Appends `name` (bytes) with its labels reversed.
pub(super) fn reverse_labels_bytes(name: &[u8], out: &mut Vec<u8>) {
    let mut first = true;
    for label in name.rsplit(|b| *b == b'.') {
        if !first {
            out.push(b'.');
        }
        first = false;
        out.extend_from_slice(label);
    }
}

pub(crate) fn unreverse(rev: &[u8]) -> String {
    let mut out = Vec::with_capacity(rev.len());
    reverse_labels_bytes(rev, &mut out);
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// The address of an A/AAAA rdata (those are indexed by address).
fn ip_of(rrtype: u16, rdata: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(rdata).ok()?;
    match rrtype {
        crate::rrtype::A => s.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        crate::rrtype::AAAA => s.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        _ => None,
    }
}

/// The `rdata` (reverse) index key of a record.
pub(super) fn rdata_index_key(rev: &[u8], rrtype: u16, rdata: &[u8], out: &mut Vec<u8>) {
    out.clear();
    match ip_of(rrtype, rdata) {
        Some(ip) => {
            out.push(0);
            out.extend_from_slice(&ip16(ip));
        }
        None => {
            out.extend_from_slice(rdata);
            out.push(0);
        }
    }
    out.extend_from_slice(&rrtype.to_be_bytes());
    out.extend_from_slice(rev);
}

/// The text form of an indexed address, as the parser stores it.
pub(super) fn ip_text(rrtype: u16, a16: [u8; 16]) -> String {
    let v6 = Ipv6Addr::from(a16);
    match (rrtype, v6.to_ipv4_mapped()) {
        (crate::rrtype::A, Some(v4)) => v4.to_string(),
        _ => v6.to_string(),
    }
}

pub(super) fn ip16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}
