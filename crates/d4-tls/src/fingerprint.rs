//! JA3, JA3S and JA4 (client, `t` and `q` forms) and the raw `JA4_r`, as `../shared/TLS.md`
//! §2 and §4 define them.
//!
//! GREASE values (RFC 8701) are removed from every list before it is joined, so a list that
//! ends with a GREASE value gets no trailing separator (the reference sensor's bug is not
//! reproduced). JA4's FoxIO-licensed siblings (JA4S, JA4X, ...) are deliberately absent.

use std::fmt::Write as _;

use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::hello::{is_grease, ClientHello, ServerHello, EXT_ALPN, EXT_SERVER_NAME};

/// The transport a ClientHello came over (JA4's first character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS over TCP: `t`.
    Tcp,
    /// QUIC (the hello from Initial packets' CRYPTO frames): `q`.
    Quic,
}

/// Lowercase hex of `bytes`.
fn hex_lower(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// MD5 of `s`, lowercase hex (the JA3 and JA3S digests).
pub fn md5_hex(s: &str) -> String {
    hex_lower(&Md5::digest(s.as_bytes()))
}

/// The first 12 hex digits of the SHA-256 of `s` (JA4's hashed parts).
fn sha256_12(s: &str) -> String {
    let mut h = hex_lower(&Sha256::digest(s.as_bytes()));
    h.truncate(12);
    h
}

/// Joins the decimal values that are not GREASE with `-`.
fn join_dec<T: Copy + Into<u16>>(values: &[T]) -> String {
    let mut s = String::new();
    for v in values.iter().map(|&v| v.into()).filter(|&v| !is_grease(v)) {
        if !s.is_empty() {
            s.push('-');
        }
        let _ = write!(s, "{v}");
    }
    s
}

/// JA3 string: `SSLVersion,Ciphers,Extensions,EllipticCurves,ECPointFormats`.
pub fn ja3(h: &ClientHello) -> String {
    let exts: Vec<u16> = h.extensions.iter().map(|e| e.typ).collect();
    format!(
        "{},{},{},{},{}",
        h.legacy_version,
        join_dec(&h.ciphers),
        join_dec(&exts),
        join_dec(&h.supported_groups),
        join_dec(&h.ec_point_formats),
    )
}

/// JA3S string: `SSLVersion,Cipher,Extensions`.
pub fn ja3s(h: &ServerHello) -> String {
    let exts: Vec<u16> = h.extensions.iter().map(|e| e.typ).collect();
    format!("{},{},{}", h.legacy_version, h.cipher, join_dec(&exts))
}

/// JA4's two-character version code.
fn version_code(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        _ => "00",
    }
}

/// The two ALPN characters of JA4 part a.
fn alpn_code(h: &ClientHello) -> String {
    let Some(first) = h.alpn.first() else {
        return "00".into();
    };
    let (Some(&a), Some(&z)) = (first.first(), first.last()) else {
        return "00".into();
    };
    if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() {
        format!("{}{}", char::from(a), char::from(z))
    } else {
        let hex = |n: u8| char::from(b"0123456789abcdef"[usize::from(n & 0x0f)]);
        format!("{}{}", hex(a >> 4), hex(z))
    }
}

/// A count as JA4 prints it: two digits, capped at 99.
fn count2(n: usize) -> String {
    format!("{:02}", n.min(99))
}

/// Sorted 4-digit lowercase hex of the values, joined with `,`.
fn sorted_hex(values: impl Iterator<Item = u16>) -> String {
    let mut v: Vec<u16> = values.collect();
    v.sort_unstable();
    hex_list(&v)
}

fn hex_list(values: &[u16]) -> String {
    let mut s = String::with_capacity(values.len() * 5);
    for v in values {
        if !s.is_empty() {
            s.push(',');
        }
        let _ = write!(s, "{v:04x}");
    }
    s
}

/// The three parts of JA4 before hashing: a, sorted ciphers, sorted extensions with the
/// signature algorithms.
fn ja4_parts(h: &ClientHello, transport: Transport) -> (String, String, String) {
    let version = h
        .supported_versions
        .iter()
        .copied()
        .filter(|&v| !is_grease(v))
        .max()
        .unwrap_or(h.legacy_version);
    let sni = if h.extensions.iter().any(|e| e.typ == EXT_SERVER_NAME) {
        'd'
    } else {
        'i'
    };
    let ciphers: Vec<u16> = h
        .ciphers
        .iter()
        .copied()
        .filter(|&v| !is_grease(v))
        .collect();
    let exts: Vec<u16> = h
        .extensions
        .iter()
        .map(|e| e.typ)
        .filter(|&v| !is_grease(v))
        .collect();
    let a = format!(
        "{}{}{}{}{}{}",
        match transport {
            Transport::Tcp => 't',
            Transport::Quic => 'q',
        },
        version_code(version),
        sni,
        count2(ciphers.len()),
        count2(exts.len()),
        alpn_code(h),
    );
    let b = sorted_hex(ciphers.into_iter());
    let mut c = sorted_hex(
        exts.into_iter()
            .filter(|&v| v != EXT_SERVER_NAME && v != EXT_ALPN),
    );
    let sigs: Vec<u16> = h
        .signature_algorithms
        .iter()
        .copied()
        .filter(|&v| !is_grease(v))
        .collect();
    if !sigs.is_empty() {
        c.push('_');
        c.push_str(&hex_list(&sigs));
    }
    (a, b, c)
}

/// JA4 of a ClientHello: `a_b_c`, e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`.
pub fn ja4(h: &ClientHello, transport: Transport) -> String {
    let (a, b, c) = ja4_parts(h, transport);
    let hb = if b.is_empty() {
        "000000000000".into()
    } else {
        sha256_12(&b)
    };
    // No extensions left (besides SNI and ALPN) also means no signature algorithms part.
    let hc = if c.is_empty() || c.starts_with('_') {
        "000000000000".into()
    } else {
        sha256_12(&c)
    };
    format!("{a}_{hb}_{hc}")
}

/// `JA4_r`: JA4 with the sorted lists instead of their hashes.
pub fn ja4_r(h: &ClientHello, transport: Transport) -> String {
    let (a, b, c) = ja4_parts(h, transport);
    format!("{a}_{b}_{c}")
}

#[cfg(test)]
mod tests;
