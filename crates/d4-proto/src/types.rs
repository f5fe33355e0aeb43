//! The D4 type table: what a frame's payload holds.

/// 0: reserved, never valid on the wire.
pub const RESERVED: u8 = 0;
/// 1: a pcap stream (libpcap 2.4: global header, then records).
pub const PCAP: u8 = 1;
/// 2: meta header, one JSON object describing the type-254 data that follows.
pub const META_HEADER: u8 = 2;
/// 3: generic log lines.
pub const GENERIC_LOG: u8 = 3;
/// 4: dnscap output.
pub const DNSCAP: u8 = 4;
/// 5: pcapng (diagnostic).
pub const PCAPNG: u8 = 5;
/// 6: NDJSON / JSON Lines.
pub const NDJSON: u8 = 6;
/// 7: YAF (Yet Another Flowmeter).
pub const YAF: u8 = 7;
/// 8: passivedns CSV lines.
pub const PASSIVEDNS: u8 = 8;
/// 254: data of the extended type named by the meta header.
pub const EXTENDED: u8 = 254;

/// One row of the type table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeInfo {
    pub id: u8,
    /// Short name used in logs, paths and command lines.
    pub name: &'static str,
    pub description: &'static str,
}

/// Every type defined by the protocol.
pub const TABLE: [TypeInfo; 10] = [
    TypeInfo {
        id: RESERVED,
        name: "reserved",
        description: "reserved",
    },
    TypeInfo {
        id: PCAP,
        name: "pcap",
        description: "pcap stream (libpcap 2.4)",
    },
    TypeInfo {
        id: META_HEADER,
        name: "meta-header",
        description: "meta header (JSON) for type 254",
    },
    TypeInfo {
        id: GENERIC_LOG,
        name: "generic-log",
        description: "generic log lines",
    },
    TypeInfo {
        id: DNSCAP,
        name: "dnscap",
        description: "dnscap output",
    },
    TypeInfo {
        id: PCAPNG,
        name: "pcapng",
        description: "pcapng (diagnostic)",
    },
    TypeInfo {
        id: NDJSON,
        name: "ndjson",
        description: "NDJSON / JSON Lines",
    },
    TypeInfo {
        id: YAF,
        name: "yaf",
        description: "YAF (Yet Another Flowmeter)",
    },
    TypeInfo {
        id: PASSIVEDNS,
        name: "passivedns",
        description: "passivedns CSV lines",
    },
    TypeInfo {
        id: EXTENDED,
        name: "extended",
        description: "extended type named by the meta header",
    },
];

/// The table row of `id`, if the type is defined.
pub fn info(id: u8) -> Option<&'static TypeInfo> {
    TABLE.iter().find(|t| t.id == id)
}

/// The short name of `id`, if the type is defined.
pub fn name(id: u8) -> Option<&'static str> {
    info(id).map(|t| t.name)
}

/// The type named `s`: a number (`"8"`) or a short name (`"passivedns"`).
pub fn parse(s: &str) -> Option<u8> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u8>() {
        return Some(n);
    }
    TABLE
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(s))
        .map(|t| t.id)
}

/// Whether `id` is a defined type that may carry data on the wire (not 0).
pub fn is_data_type(id: u8) -> bool {
    id != RESERVED && info(id).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in TABLE {
            assert_eq!(parse(t.name), Some(t.id));
            assert_eq!(name(t.id), Some(t.name));
        }
        assert_eq!(parse("8"), Some(8));
        assert_eq!(parse("nope"), None);
        assert_eq!(name(9), None);
        assert!(!is_data_type(0));
        assert!(is_data_type(254));
    }
}
