//! Sharing with partner organisations: forwarding rules, their privacy settings and the
//! counters a forwarding server reports per rule.
//!
//! A rule says which accepted frames (by D4 type, extended type, sensor, tag or group) are
//! re-sent to a partner D4 server, under which identity (the UUID and HMAC key this server
//! uses there), over which TLS trust (the partner's CA or a pinned certificate), and which
//! privacy transforms are applied first. The store keeps the rules so that every server on
//! one Redis shares them; `d4-forward` applies them. This module is data only: the
//! transforms live in `d4-forward`, the input checks in [`crate::validate`].

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Default bound of a rule's on-disk spool (bytes of re-encapsulated frames waiting for the
/// partner): 1 GiB. At the bound the rule stops reading and holds its journal position.
pub const DEFAULT_FORWARD_SPOOL_LIMIT: u64 = 1 << 30;

/// One forwarding rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardRule {
    /// Unique name, `[A-Za-z0-9_.-]{1,64}`: the key of the rule everywhere (CLI, API, UI,
    /// metrics labels, spool folder).
    pub name: String,
    /// A disabled rule reads and sends nothing and holds no journal data: frames accepted
    /// while it is disabled are not forwarded; its spool is kept and sent once enabled.
    pub enabled: bool,
    #[serde(default)]
    pub description: String,
    /// The partner's D4 server, `host:port` (a name, an IPv4 address or `[IPv6]`).
    pub destination: String,
    /// How the partner's certificate is checked.
    pub tls: ForwardTls,
    /// The sensor UUID this server uses at the partner (a v4 UUID the partner registered).
    pub uuid: Uuid,
    /// The HMAC key of that UUID at the partner.
    pub hmac_key: String,
    /// Which accepted frames the rule takes.
    pub filter: ForwardFilter,
    /// Tags sent in the type-2 meta header of extended types (e.g. `tlp:green`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Privacy transforms applied before anything leaves the server.
    #[serde(default)]
    pub privacy: Privacy,
    /// Bound of the rule's spool in bytes; 0 = [`DEFAULT_FORWARD_SPOOL_LIMIT`].
    #[serde(default)]
    pub spool_limit: u64,
    /// Unix seconds.
    pub created: u64,
    pub updated: u64,
}

impl ForwardRule {
    /// The spool bound in force.
    pub fn spool_limit_bytes(&self) -> u64 {
        if self.spool_limit == 0 {
            DEFAULT_FORWARD_SPOOL_LIMIT
        } else {
            self.spool_limit
        }
    }
}

/// Trust in the partner's TLS certificate. Exactly one of `ca_pem` and `pin_sha256` is set,
/// unless `plain` (no TLS at all: a partner behind a TLS terminator on a trusted network,
/// or a test).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardTls {
    /// PEM text of the CA certificate(s) the partner's certificate must chain to (the
    /// partner's self-signed `server.crt` works as its own CA). The server name checked is
    /// the destination's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// SHA-256 (64 lowercase hex digits) of the partner's end-entity certificate (DER); the
    /// chain and the name are not checked, only this fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_sha256: Option<String>,
    /// Plain TCP, no TLS.
    #[serde(default)]
    pub plain: bool,
}

/// Which frames a rule takes. A frame matches when its type is in `types` (empty: every
/// type), its extended type (type 254) is in `ext_types` (empty: every extended type), and
/// its sensor is selected: listed in `sensors`, carrying one of `tags`, or member of one of
/// `groups` (all three empty: every sensor).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardFilter {
    #[serde(default)]
    pub types: Vec<u8>,
    #[serde(default)]
    pub ext_types: Vec<String>,
    #[serde(default)]
    pub sensors: Vec<Uuid>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

impl ForwardFilter {
    /// Whether a sensor with these tags and groups is selected.
    pub fn selects_sensor(&self, uuid: Uuid, tags: &[String], groups: &[String]) -> bool {
        if self.sensors.is_empty() && self.tags.is_empty() && self.groups.is_empty() {
            return true;
        }
        self.sensors.contains(&uuid)
            || tags.iter().any(|t| self.tags.contains(t))
            || groups.iter().any(|g| self.groups.contains(g))
    }

    /// Whether frames of this D4 type (and extended type, for 254) are taken.
    pub fn selects_type(&self, d4_type: u8, ext: Option<&str>) -> bool {
        if !self.types.is_empty() && !self.types.contains(&d4_type) {
            return false;
        }
        match ext {
            Some(e) if !self.ext_types.is_empty() => self.ext_types.iter().any(|x| x == e),
            _ => true,
        }
    }
}

/// The privacy transforms of a rule. Every part is optional; an absent part leaves that
/// kind of data as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privacy {
    /// The rule's secret for keyed pseudonyms and Crypto-PAn: 64 hex digits (32 bytes).
    /// Generated when the rule is created without one; the same key gives the same
    /// pseudonyms (keep it to correlate across restarts, change it to unlink).
    #[serde(default)]
    pub key: String,
    /// Passive DNS (type 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdns: Option<PdnsPrivacy>,
    /// pcap (type 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcap: Option<PcapPrivacy>,
    /// JSON lines (type 6 and the extended types `ja3-jl`, `filewatcherjson`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonPrivacy>,
    /// Log lines (type 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogPrivacy>,
}

/// What becomes of an address field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressAction {
    #[default]
    Keep,
    /// A keyed pseudonym of the same family (prefix-preserving, Crypto-PAn).
    Pseudonymise,
    /// Removed (an empty field).
    Drop,
}

/// Passive DNS lines (`timestamp||client||server||class||query||type||answer||ttl||count`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdnsPrivacy {
    #[serde(default)]
    pub client_ip: AddressAction,
    /// Round timestamps down to a multiple of this many seconds (0 or absent: keep).
    #[serde(default)]
    pub round_secs: u64,
    /// Aggregate identical (query, type, answer) lines over windows of this many seconds
    /// into one line with the summed count (0 or absent: no aggregation).
    #[serde(default)]
    pub aggregate_secs: u64,
}

/// pcap streams.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcapPrivacy {
    /// Addresses inside these prefixes (IPv4 and IPv6, e.g. `10.0.0.0/8`) are replaced by
    /// their prefix-preserving pseudonym (Crypto-PAn with the rule's key); checksums are
    /// recomputed.
    #[serde(default)]
    pub prefixes: Vec<ipnet::IpNet>,
    /// Cut each packet after its transport header (no payload leaves).
    #[serde(default)]
    pub truncate_payload: bool,
}

/// JSON lines: fields by name (a top-level key, or a dotted path `a.b.c`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonPrivacy {
    #[serde(default)]
    pub drop: Vec<String>,
    /// String values replaced by a keyed pseudonym (an IP address stays an address of its
    /// family; other strings become hex of a keyed hash).
    #[serde(default)]
    pub pseudonymise: Vec<String>,
}

/// Log lines: every match of each regular expression is replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPrivacy {
    #[serde(default)]
    pub redact: Vec<String>,
    /// Replacement text; empty means `[REDACTED]`.
    #[serde(default)]
    pub replacement: String,
}

/// What one server did for one rule (counters since the rule was created on that server;
/// they survive restarts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardStats {
    /// Frames and payload bytes the partner's connection accepted (written to the socket
    /// and removed from the spool).
    pub frames_forwarded: u64,
    pub bytes_forwarded: u64,
    /// Frames and bytes waiting in the spool now.
    pub frames_spooled: u64,
    pub bytes_spooled: u64,
    /// Frames read from the journal that the filter did not take.
    pub frames_filtered: u64,
    /// Frames sent again after a restart (sent before it, not known to have arrived).
    pub duplicates: u64,
    /// Lines or packets a transform removed or could not handle (counted, not sent).
    pub dropped: u64,
    /// Spool writes that failed (disk full ...) since the server started; the rule reads
    /// the same frames again once a write succeeds.
    #[serde(default)]
    pub spool_errors: u64,
    /// Seconds between the newest accepted frame the rule has read and now; 0 when caught up.
    pub lag_secs: u64,
    /// Whether the partner is connected now.
    pub connected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_time: Option<u64>,
    /// When the partner last accepted a frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_forward_time: Option<u64>,
}

/// A rule's counters on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardServerStats {
    pub server_id: String,
    /// When the server reported them.
    pub time: u64,
    pub stats: ForwardStats,
}

/// What a partner server told us about a stream it forwards to us, from the stream's meta
/// header (`tags`, `misp:org`): kept on the (third-party) sensor record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerMeta {
    /// `misp:org` of the last meta header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The extended type that header announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_type: Option<String>,
    /// When it was received.
    pub time: u64,
    /// The source address it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
}
