//! The reference sensor's `TLSH` field: a TLSH digest over JA3, JA3S and the certificates'
//! issuer and subject names.
//!
//! The reference (sensor-d4-tls-fingerprinting, `d4tls.go`, `d4fg`) builds
//! `JA3 + JA3S + for each certificate: %q(Issuer) + %q(Subject)` with Go's `fmt` (`%q` of a
//! `pkix.Name` quotes its `String()`), removes every `-`, `,` and `"`, and hashes it with
//! `github.com/glaslos/tlsh` v0.2.0: the original 128-bucket, 1-byte-checksum TLSH, printed
//! as 70 lowercase hex digits without the `T1` version prefix. We compute the same with the
//! `tlsh2` crate (`Tlsh128_1`) and print it the same way.
//!
//! One difference on degenerate input: glaslos v0.2.0 has no minimum length and hashes
//! anything (a meaningless digest for a few bytes); TLSH proper, and we, give no digest
//! below 50 bytes, when the third quartile is 0, or when too few buckets are filled. The
//! record's field is then `""`.

use crate::cert::{go_quote, CertInfo};

/// The reference's TLSH input for one session.
pub fn reference_input(ja3: &str, ja3s: &str, certs: &[CertInfo]) -> String {
    let mut buf = String::with_capacity(ja3.len() + ja3s.len() + certs.len() * 128);
    buf.push_str(ja3);
    buf.push_str(ja3s);
    for c in certs {
        buf.push_str(&go_quote(&c.issuer));
        buf.push_str(&go_quote(&c.subject));
    }
    buf.retain(|ch| !matches!(ch, '-' | ',' | '"'));
    buf
}

/// TLSH (128 buckets, 1-byte checksum) of `input` as 70 lowercase hex digits without a
/// version prefix; `None` when the input is too short or too uniform for TLSH.
pub fn digest(input: &[u8]) -> Option<String> {
    let t = tlsh2::TlshBuilder128_1::build_from(input)?;
    let h = t.hash();
    // `hash()` is `T1` + 70 uppercase hex digits.
    let hex = h.get(2..)?;
    let s = std::str::from_utf8(hex).ok()?;
    Some(s.to_ascii_lowercase())
}

/// The `TLSH` field of a record: the digest of [`reference_input`], or `""`.
pub fn field(ja3: &str, ja3s: &str, certs: &[CertInfo]) -> String {
    digest(reference_input(ja3, ja3s, certs).as_bytes()).unwrap_or_default()
}
