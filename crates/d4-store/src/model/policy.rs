//! Policy: blocklists and the accepted D4 types and extended types.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use d4_proto::types;

/// Accepted D4 types of a fresh store: every data type of d4-proto's table (1..=8 and
/// 254: every type d4-rs has a worker for).
pub const DEFAULT_ACCEPTED_TYPES: [u8; 9] = [
    types::PCAP,
    types::META_HEADER,
    types::GENERIC_LOG,
    types::DNSCAP,
    types::PCAPNG,
    types::NDJSON,
    types::YAF,
    types::PASSIVEDNS,
    types::EXTENDED,
];

/// Accepted extended types (type 254) of a fresh store. The reference accepted only
/// `ja3-jl`; d4-rs accepts every extended type it has a worker for, since only
/// authenticated sensors can send them. Refuse any of them with `d4 types refuse`.
pub const DEFAULT_ACCEPTED_EXT_TYPES: [&str; 5] = [
    "default",
    "ja3-jl",
    "filewatcher",
    "filewatcherjson",
    "maltrail",
];

/// Duration of the temporary UUID block set by a kick, in seconds.
pub const KICK_BLOCK_SECS: u64 = 30;
/// What a block applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum BlockTarget {
    /// An IP prefix (a single address is a /32 or /128). Matches every address inside.
    Ip(IpNet),
    /// Every connection presenting this UUID.
    Uuid(Uuid),
    /// Every IP that presents this UUID (the connection is refused and its IP should be
    /// added to the IP blocklist by the caller).
    IpsOfUuid(Uuid),
}

impl std::fmt::Display for BlockTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockTarget::Ip(net) => write!(f, "ip {net}"),
            BlockTarget::Uuid(u) => write!(f, "uuid {}", u.simple()),
            BlockTarget::IpsOfUuid(u) => write!(f, "ips-of-uuid {}", u.simple()),
        }
    }
}

/// A blocklist entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub target: BlockTarget,
    /// Free text (e.g. "kick", "admin").
    pub reason: String,
    pub created: u64,
    /// `None` = permanent; otherwise the block is ignored (and purged) after this time.
    pub expires: Option<u64>,
}

impl Block {
    /// Whether the block is in force at `now`.
    pub fn active_at(&self, now: u64) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}
