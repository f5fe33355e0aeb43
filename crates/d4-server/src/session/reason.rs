//! Why a connection was refused or closed, and the stable code of each reason.

use std::net::IpAddr;

/// Why a connection was refused or closed. Each is final for the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("source IP {0} is blocklisted")]
    IpBlocked(IpAddr),
    #[error("uuid is blocklisted")]
    UuidBlocked,
    #[error("uuid blocklists the IPs presenting it: {0} blocked")]
    IpBlockedByUuid(IpAddr),
    #[error("uuid is not a version-4 UUID")]
    InvalidUuid,
    #[error("uuid changed within the connection (was {was}, now {now})")]
    UuidChanged { was: String, now: String },
    #[error("sensor is not registered/approved (registration mode)")]
    NotRegistered,
    #[error("bad HMAC")]
    BadHmac,
    #[error("type {0} is not accepted")]
    TypeNotAccepted(u8),
    #[error("extended type {0:?} is not accepted")]
    ExtTypeNotAccepted(String),
    #[error("invalid meta header: {0}")]
    BadMetaHeader(String),
    #[error("connection starts with type 254 (a type-2 meta header must come first)")]
    Type254First,
    #[error("type changed from {from} to {to} (only 2 -> 254 is allowed)")]
    TypeChanged { from: u8, to: u8 },
    #[error("another connection already streams (uuid, type {0})")]
    Duplicate(u8),
    #[error("the sensor already has {0} extended-type (2 -> 254) connections")]
    TooManyExtSessions(usize),
    #[error("declared payload size {declared} is over the limit of {max} bytes")]
    Oversize { declared: u32, max: u32 },
    #[error("unsupported header version {0}")]
    BadVersion(u8),
    #[error("framing error: {0}")]
    Framing(String),
    #[error("no valid header within {0} s")]
    HeaderTimeout(u64),
    #[error("idle for {0} s")]
    IdleTimeout(u64),
    #[error("kicked by an admin")]
    Kicked,
    #[error("stream limit reached ({0} pending entries), connection dropped (--on-limit drop)")]
    StreamLimit(u64),
    #[error("worker error: {0}")]
    Worker(String),
    #[error("too many unauthenticated connections from this IP")]
    TooManyConnections,
    #[error("unauthenticated connections hold too much memory (pre-authentication budget)")]
    PreAuthMemory,
}

impl Reason {
    /// A short stable code for logs and the sensor's last-error record.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::IpBlocked(_) => "ip-blocked",
            Reason::UuidBlocked => "uuid-blocked",
            Reason::IpBlockedByUuid(_) => "ip-blocked-by-uuid",
            Reason::InvalidUuid => "invalid-uuid",
            Reason::UuidChanged { .. } => "uuid-changed",
            Reason::NotRegistered => "not-registered",
            Reason::BadHmac => "bad-hmac",
            Reason::TypeNotAccepted(_) => "type-not-accepted",
            Reason::ExtTypeNotAccepted(_) => "ext-type-not-accepted",
            Reason::BadMetaHeader(_) => "bad-meta-header",
            Reason::Type254First => "type-254-first",
            Reason::TypeChanged { .. } => "type-changed",
            Reason::Duplicate(_) => "duplicate",
            Reason::TooManyExtSessions(_) => "ext-sessions-limit",
            Reason::Oversize { .. } => "oversize",
            Reason::BadVersion(_) => "bad-version",
            Reason::Framing(_) => "framing",
            Reason::HeaderTimeout(_) => "header-timeout",
            Reason::IdleTimeout(_) => "idle-timeout",
            Reason::Kicked => "kicked",
            Reason::StreamLimit(_) => "stream-limit",
            Reason::Worker(_) => "worker",
            Reason::TooManyConnections => "too-many-connections",
            Reason::PreAuthMemory => "preauth-memory",
        }
    }
}
