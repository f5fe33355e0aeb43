//! What the Passive SSL search box was given: an address or network, a certificate or key
//! hash, a JA3/JA3S digest, a JA4 fingerprint, or a name / subject text. Pure: text in, a
//! [`Search`] out; the page maps each kind to the passive SSL API's endpoints.

use std::net::IpAddr;

/// Longest accepted search text (characters); longer is refused on the page.
pub const MAX_QUERY_CHARS: usize = 512;

/// A classified search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// Nothing typed.
    Empty,
    /// One address (`/v2pssl/query/<ip>`).
    Ip(IpAddr),
    /// A network, reduced to its network address (`/v2pssl/query/<ip>/<len>`).
    Cidr(IpAddr, u8),
    /// 40 hex, lowercase: a certificate's SHA-1.
    Sha1(String),
    /// 64 hex, lowercase: a certificate's SHA-256, else a public key's SPKI SHA-256.
    Sha256(String),
    /// 32 hex, lowercase: a JA3 or JA3S digest.
    Md5(String),
    /// A JA4 fingerprint, lowercase (`t13d1516h2_8daaf6152771_e5627efa2ab1`).
    Ja4(String),
    /// Anything else: a server name or subject text (trimmed).
    Text(String),
    /// Longer than [`MAX_QUERY_CHARS`].
    TooLong,
}

/// Classifies the search box's text (surrounding white space ignored; hashes in any
/// case, and fingerprints written with colons, `AB:CD:...`, are accepted).
pub fn classify(input: &str) -> Search {
    let q = input.trim();
    if q.is_empty() {
        return Search::Empty;
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Search::TooLong;
    }
    if let Ok(ip) = q.parse::<IpAddr>() {
        return Search::Ip(ip.to_canonical());
    }
    if let Ok(net) = q.parse::<ipnet::IpNet>() {
        let net = net.trunc();
        return Search::Cidr(net.network(), net.prefix_len());
    }
    let hex = hex_digits(q);
    if let Some(h) = hex {
        match h.len() {
            40 => return Search::Sha1(h),
            64 => return Search::Sha256(h),
            32 => return Search::Md5(h),
            _ => {}
        }
    }
    let lower = q.to_ascii_lowercase();
    if is_ja4(&lower) {
        return Search::Ja4(lower);
    }
    Search::Text(q.to_string())
}

/// `q` as lowercase hex digits when it is only hex digits, or hex byte pairs separated by
/// colons (`ab:cd:ef`).
fn hex_digits(q: &str) -> Option<String> {
    let is_hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex(q) {
        return Some(q.to_ascii_lowercase());
    }
    if q.contains(':') && q.split(':').all(|p| p.len() == 2 && is_hex(p)) {
        return Some(q.replace(':', "").to_ascii_lowercase());
    }
    None
}

/// `[tq]\d\d[di]\d{4}[a-z0-9]{2}_[0-9a-f]{12}_[0-9a-f]{12}` (the JA4 of a TLS or QUIC
/// client hello).
pub fn is_ja4(s: &str) -> bool {
    let mut parts = s.split('_');
    let (Some(a), Some(b), Some(c), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let a = a.as_bytes();
    let lower_hex12 =
        |p: &str| p.len() == 12 && p.bytes().all(|x| matches!(x, b'0'..=b'9' | b'a'..=b'f'));
    a.len() == 10
        && matches!(a[0], b't' | b'q')
        && a[1..3].iter().all(u8::is_ascii_digit)
        && matches!(a[3], b'd' | b'i')
        && a[4..8].iter().all(u8::is_ascii_digit)
        && a[8..10]
            .iter()
            .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit())
        && lower_hex12(b)
        && lower_hex12(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_networks() {
        assert_eq!(
            classify(" 192.0.2.1 "),
            Search::Ip("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            classify("2001:db8::1"),
            Search::Ip("2001:db8::1".parse().unwrap())
        );
        // An IPv4-mapped IPv6 address is the IPv4 address.
        assert_eq!(
            classify("::ffff:192.0.2.7"),
            Search::Ip("192.0.2.7".parse().unwrap())
        );
        assert_eq!(
            classify("192.0.2.77/24"),
            Search::Cidr("192.0.2.0".parse().unwrap(), 24)
        );
        assert_eq!(
            classify("2001:db8:1:2::5/64"),
            Search::Cidr("2001:db8:1:2::".parse().unwrap(), 64)
        );
        // Not a prefix length: text.
        assert_eq!(
            classify("192.0.2.1/33"),
            Search::Text("192.0.2.1/33".into())
        );
    }

    #[test]
    fn hashes_by_length() {
        let sha1 = "A94A8FE5CCB19BA61C4C0873D391E987982FBBD3";
        assert_eq!(classify(sha1), Search::Sha1(sha1.to_ascii_lowercase()));
        let colons: Vec<String> = (0..20).map(|i| format!("{:02X}", i * 7)).collect();
        let plain: String = (0..20).map(|i| format!("{:02x}", i * 7)).collect();
        assert_eq!(classify(&colons.join(":")), Search::Sha1(plain));
        let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(classify(sha256), Search::Sha256(sha256.into()));
        let md5 = "D41D8CD98F00B204E9800998ECF8427E";
        assert_eq!(classify(md5), Search::Md5(md5.to_ascii_lowercase()));
        // 39 hex digits: neither.
        let odd = &sha1[..39];
        assert_eq!(classify(odd), Search::Text(odd.into()));
        // A colon list of odd groups is not a fingerprint.
        assert_eq!(classify("abc:de"), Search::Text("abc:de".into()));
    }

    #[test]
    fn ja4_shape() {
        let ja4 = "t13d1516h2_8daaf6152771_e5627efa2ab1";
        assert_eq!(classify(ja4), Search::Ja4(ja4.into()));
        assert_eq!(
            classify("Q13I0310H3_55B375C5D22E_CD85D2D88918"),
            Search::Ja4("q13i0310h3_55b375c5d22e_cd85d2d88918".into())
        );
        for bad in [
            "x13d1516h2_8daaf6152771_e5627efa2ab1", // not t/q
            "t13x1516h2_8daaf6152771_e5627efa2ab1", // not d/i
            "t13d15a6h2_8daaf6152771_e5627efa2ab1", // cipher count not digits
            "t13d1516h2_8daaf615277_e5627efa2ab1",  // 11 hex
            "t13d1516h2_8daaf6152771_e5627efa2ab1_00",
            "t13d1516h2_8daaf615277g_e5627efa2ab1",
            "t13d1516h-_8daaf6152771_e5627efa2ab1",
        ] {
            assert!(!is_ja4(bad), "{bad}");
            assert!(matches!(classify(bad), Search::Text(_)), "{bad}");
        }
    }

    #[test]
    fn text_empty_and_too_long() {
        assert_eq!(classify("   "), Search::Empty);
        assert_eq!(
            classify(" www.example.com "),
            Search::Text("www.example.com".into())
        );
        assert_eq!(
            classify("<script>alert(1)</script>"),
            Search::Text("<script>alert(1)</script>".into())
        );
        assert_eq!(
            classify(&"a".repeat(MAX_QUERY_CHARS)),
            Search::Text("a".repeat(512))
        );
        assert_eq!(classify(&"é".repeat(MAX_QUERY_CHARS + 1)), Search::TooLong);
    }
}
