//! DNS resource record types: mnemonic <-> number, and which types carry domain names in
//! their rdata (those are normalized like owner names).

/// IANA mnemonics known to d4-pdns. A type outside this table is still stored and served:
/// COF output then carries it as a JSON number.
const TABLE: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("MD", 3),
    ("MF", 4),
    ("CNAME", 5),
    ("SOA", 6),
    ("MB", 7),
    ("MG", 8),
    ("MR", 9),
    ("NULL", 10),
    ("WKS", 11),
    ("PTR", 12),
    ("HINFO", 13),
    ("MINFO", 14),
    ("MX", 15),
    ("TXT", 16),
    ("RP", 17),
    ("AFSDB", 18),
    ("X25", 19),
    ("ISDN", 20),
    ("RT", 21),
    ("NSAP", 22),
    ("NSAP-PTR", 23),
    ("SIG", 24),
    ("KEY", 25),
    ("PX", 26),
    ("GPOS", 27),
    ("AAAA", 28),
    ("LOC", 29),
    ("NXT", 30),
    ("SRV", 33),
    ("NAPTR", 35),
    ("KX", 36),
    ("CERT", 37),
    ("A6", 38),
    ("DNAME", 39),
    ("OPT", 41),
    ("APL", 42),
    ("DS", 43),
    ("SSHFP", 44),
    ("IPSECKEY", 45),
    ("RRSIG", 46),
    ("NSEC", 47),
    ("DNSKEY", 48),
    ("DHCID", 49),
    ("NSEC3", 50),
    ("NSEC3PARAM", 51),
    ("TLSA", 52),
    ("SMIMEA", 53),
    ("HIP", 55),
    ("NINFO", 56),
    ("RKEY", 57),
    ("TALINK", 58),
    ("CDS", 59),
    ("CDNSKEY", 60),
    ("OPENPGPKEY", 61),
    ("CSYNC", 62),
    ("ZONEMD", 63),
    ("SVCB", 64),
    ("HTTPS", 65),
    ("SPF", 99),
    ("UINFO", 100),
    ("UID", 101),
    ("GID", 102),
    ("UNSPEC", 103),
    ("NID", 104),
    ("L32", 105),
    ("L64", 106),
    ("LP", 107),
    ("EUI48", 108),
    ("EUI64", 109),
    ("TKEY", 249),
    ("TSIG", 250),
    ("IXFR", 251),
    ("AXFR", 252),
    ("MAILB", 253),
    ("MAILA", 254),
    ("ANY", 255),
    ("URI", 256),
    ("CAA", 257),
    ("AVC", 258),
    ("DOA", 259),
    ("AMTRELAY", 260),
    ("TA", 32768),
    ("DLV", 32769),
];

pub const A: u16 = 1;
pub const NS: u16 = 2;
pub const CNAME: u16 = 5;
pub const SOA: u16 = 6;
pub const PTR: u16 = 12;
pub const MX: u16 = 15;
pub const TXT: u16 = 16;
pub const AAAA: u16 = 28;
pub const SRV: u16 = 33;
pub const DNAME: u16 = 39;
pub const SPF: u16 = 99;

/// The mnemonic of a type, if d4-pdns knows one.
pub fn name(t: u16) -> Option<&'static str> {
    TABLE.iter().find(|(_, v)| *v == t).map(|(n, _)| *n)
}

/// Parses a type as passivedns (or a user) writes it: a mnemonic (any case), a decimal
/// number, or the RFC 3597 form `TYPE<n>`. `None` for an unknown mnemonic.
pub fn parse(s: &str) -> Option<u16> {
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    if let Some(rest) = s
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("TYPE"))
        .and_then(|_| s.get(4..))
    {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return rest.parse().ok();
        }
    }
    TABLE
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(s))
        .map(|(_, v)| *v)
}

/// How the rdata of a type is normalized for storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RdataShape {
    /// An IPv4 address (A).
    Ipv4,
    /// An IPv6 address (AAAA), stored in RFC 5952 form.
    Ipv6,
    /// One domain name (CNAME, NS, PTR, DNAME, MB, MD, MF, MG, MR, NSAP-PTR).
    Name,
    /// Fields separated by spaces whose LAST one is a domain name (MX, SRV, AFSDB, RT, KX:
    /// `10 mail.example.com.`); a lone name is accepted too.
    TrailingName,
    /// SOA: the first two fields are names (mname, rname).
    Soa,
    /// Anything else: kept byte for byte (TXT keeps its case and quotes).
    Exact,
}

pub fn shape(t: u16) -> RdataShape {
    match t {
        A => RdataShape::Ipv4,
        AAAA => RdataShape::Ipv6,
        2..=5 | 7..=9 | PTR | 23 | DNAME => RdataShape::Name,
        MX | 18 | 21 | SRV | 36 => RdataShape::TrailingName,
        SOA => RdataShape::Soa,
        _ => RdataShape::Exact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnemonics_numbers_and_type_form() {
        assert_eq!(parse("A"), Some(1));
        assert_eq!(parse("aaaa"), Some(28));
        assert_eq!(parse("28"), Some(28));
        assert_eq!(parse("TYPE65280"), Some(65280));
        assert_eq!(parse("type64"), Some(64));
        assert_eq!(parse("65536"), None);
        assert_eq!(parse("BOGUS"), None);
        assert_eq!(parse(""), None);
        assert_eq!(name(16), Some("TXT"));
        assert_eq!(name(65280), None);
        for (n, v) in TABLE {
            assert_eq!(parse(n), Some(*v));
            assert_eq!(name(*v), Some(*n));
        }
    }
}
