//! Big integers as text: big-endian bytes to decimal (repeated division by 10^9), DER
//! INTEGER contents (two's complement) to signed decimal, and RFC 3339 UTC times from Unix
//! seconds. What Go prints for `*big.Int` and `time.Time` in JSON.

/// Decimal text of an unsigned big-endian integer (`"0"` for no bytes or all zeros).
pub fn be_to_decimal(bytes: &[u8]) -> String {
    // Little-endian limbs of 32 bits, most significant first in `limbs` processing order.
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let bytes = &bytes[start..];
    if bytes.is_empty() {
        return "0".to_owned();
    }
    // Big-endian u32 limbs.
    let mut limbs: Vec<u32> = Vec::with_capacity(bytes.len() / 4 + 1);
    let head = bytes.len() % 4;
    if head > 0 {
        limbs.push(
            bytes[..head]
                .iter()
                .fold(0u32, |a, &b| (a << 8) | u32::from(b)),
        );
    }
    for chunk in bytes[head..].chunks(4) {
        limbs.push(chunk.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)));
    }
    const BASE: u64 = 1_000_000_000;
    let mut groups: Vec<u32> = Vec::new(); // base 10^9 digits, least significant first
    let mut first = 0;
    while first < limbs.len() {
        let mut rem: u64 = 0;
        for limb in limbs.iter_mut().skip(first) {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = u32::try_from(cur / BASE).unwrap_or(u32::MAX);
            rem = cur % BASE;
        }
        groups.push(u32::try_from(rem).unwrap_or(0));
        while first < limbs.len() && limbs[first] == 0 {
            first += 1;
        }
    }
    let mut out = String::with_capacity(groups.len() * 9);
    for (i, g) in groups.iter().rev().enumerate() {
        if i == 0 {
            out.push_str(&g.to_string());
        } else {
            out.push_str(&format!("{g:09}"));
        }
    }
    out
}

/// The value of DER INTEGER contents (two's complement, big-endian): sign and magnitude.
pub fn der_int_magnitude(content: &[u8]) -> (bool, Vec<u8>) {
    let negative = content.first().is_some_and(|b| b & 0x80 != 0);
    if !negative {
        let start = content
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(content.len());
        return (false, content[start..].to_vec());
    }
    // Magnitude of a negative number: invert and add one.
    let mut mag: Vec<u8> = content.iter().map(|b| !b).collect();
    for b in mag.iter_mut().rev() {
        let (v, carry) = b.overflowing_add(1);
        *b = v;
        if !carry {
            break;
        }
    }
    let start = mag.iter().position(|&b| b != 0).unwrap_or(mag.len());
    (true, mag[start..].to_vec())
}

/// Signed decimal text of DER INTEGER contents (Go's `big.Int` text).
pub fn der_int_decimal(content: &[u8]) -> String {
    let (negative, mag) = der_int_magnitude(content);
    let dec = be_to_decimal(&mag);
    if negative && dec != "0" {
        format!("-{dec}")
    } else {
        dec
    }
}

/// Lowercase hex of DER INTEGER contents' value, no leading zeros (`-` for negatives).
pub fn der_int_hex(content: &[u8]) -> String {
    let (negative, mag) = der_int_magnitude(content);
    let mut h = hex::encode(&mag);
    let trimmed = h.trim_start_matches('0').len();
    h.drain(..h.len() - trimmed);
    if h.is_empty() {
        h.push('0');
    }
    if negative {
        format!("-{h}")
    } else {
        h
    }
}

/// RFC 3339 in UTC with `Z` (`2019-06-12T10:00:00Z`) for Unix seconds, as Go's
/// `time.Time.MarshalJSON` prints a certificate time (no fraction in DER times).
pub fn rfc3339_utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_of_known_values() {
        assert_eq!(be_to_decimal(&[]), "0");
        assert_eq!(be_to_decimal(&[0, 0]), "0");
        assert_eq!(be_to_decimal(&[1, 0, 1]), "65537");
        // 2^64 = 18446744073709551616
        assert_eq!(
            be_to_decimal(&[1, 0, 0, 0, 0, 0, 0, 0, 0]),
            "18446744073709551616"
        );
        // 2^128 - 1
        assert_eq!(
            be_to_decimal(&[0xff; 16]),
            "340282366920938463463374607431768211455"
        );
        for v in [
            0u128,
            9,
            10,
            999_999_999,
            1_000_000_000,
            u128::from(u64::MAX) * 977,
        ] {
            assert_eq!(be_to_decimal(&v.to_be_bytes()), v.to_string());
        }
    }

    #[test]
    fn signed_integers() {
        assert_eq!(der_int_decimal(&[0xff]), "-1");
        assert_eq!(der_int_decimal(&[0x80]), "-128");
        assert_eq!(der_int_decimal(&[0x00, 0x80]), "128");
        assert_eq!(der_int_hex(&[0x00, 0x80]), "80");
        assert_eq!(der_int_hex(&[0x01, 0x02]), "102");
        assert_eq!(der_int_hex(&[0xff, 0x00]), "-100");
        assert_eq!(der_int_hex(&[]), "0");
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_560_333_600), "2019-06-12T10:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339_utc(253_402_300_799), "9999-12-31T23:59:59Z");
    }
}
