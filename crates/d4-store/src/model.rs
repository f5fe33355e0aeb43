//! Plain data types shared by every backend, the RPC protocol and the callers.
//!
//! Times are Unix seconds (`u64`), days are `YYYYMMDD` as `u32` (UTC), sensors are
//! identified by their `Uuid` (printed as 32 lowercase hex digits, `d4_proto::sensor_id`).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// D4 types whose sessions are not exclusive per (uuid, type): the meta header (2) and
/// extended (254) streams, as in the reference.
pub const SESSION_EXEMPT_TYPES: [u8; 2] = [2, 254];

/// Accepted D4 types of a fresh store: 1..=8 and 254 (every type d4-rs has a worker for).
pub const DEFAULT_ACCEPTED_TYPES: [u8; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 254];

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

/// Default per-sensor stream limit (pending entries), as the reference.
pub const DEFAULT_STREAM_LIMIT: u64 = 10_000;

/// How many source IPs are kept per sensor.
pub const LAST_IPS: usize = 16;

/// Duration of the temporary UUID block set by a kick, in seconds.
pub const KICK_BLOCK_SECS: u64 = 30;

/// Registration state of a sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorStatus {
    /// Known only because it connected or was configured (shared-secret mode); not registered.
    Unregistered,
    /// Registered (API or CLI), waiting for an admin's approval.
    Pending,
    /// Approved: may send in registration mode.
    Approved,
}

impl SensorStatus {
    /// Lower-case name, as shown by the CLI and the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            SensorStatus::Unregistered => "unregistered",
            SensorStatus::Pending => "pending",
            SensorStatus::Approved => "approved",
        }
    }
}

/// The last error recorded for a sensor (refusal reason, worker error...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorError {
    pub time: u64,
    pub message: String,
}

/// One source IP of a sensor with the last time it was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpSeen {
    pub ip: IpAddr,
    pub time: u64,
}

/// A type (or extended type for 254) a sensor sent, with first/last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeSeen {
    pub d4_type: u8,
    /// Extended type name, for type 254 when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<String>,
    pub first_seen: u64,
    pub last_seen: u64,
}

/// Everything the store knows about a sensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sensor {
    pub uuid: Uuid,
    pub status: SensorStatus,
    /// Sensor-specific HMAC key; `None` = the server's default key.
    pub hmac_key: Option<String>,
    pub description: String,
    pub mail: Option<String>,
    pub third_party: bool,
    /// When it was registered (None if never registered).
    pub registered_at: Option<u64>,
    pub first_seen: Option<u64>,
    pub last_seen: Option<u64>,
    pub last_error: Option<SensorError>,
    /// Most recent first, at most [`LAST_IPS`], one entry per IP.
    pub last_ips: Vec<IpSeen>,
    /// Per-sensor stream limit; `None` = [`DEFAULT_STREAM_LIMIT`] (or the server's setting).
    pub stream_limit: Option<u64>,
    /// Ordered by (type, ext).
    pub types: Vec<TypeSeen>,
    /// Monitoring: alert when the sensor is silent longer than this many seconds;
    /// `None` = the server's global threshold.
    #[serde(default)]
    pub monitoring_threshold: Option<u64>,
}

impl Sensor {
    /// An empty record for a sensor the store has never seen.
    pub fn new(uuid: Uuid) -> Sensor {
        Sensor {
            uuid,
            status: SensorStatus::Unregistered,
            hmac_key: None,
            description: String::new(),
            mail: None,
            third_party: false,
            registered_at: None,
            first_seen: None,
            last_seen: None,
            last_error: None,
            last_ips: Vec::new(),
            stream_limit: None,
            types: Vec::new(),
            monitoring_threshold: None,
        }
    }
}

/// A registration request (REST API `POST /api/v1/add/sensor/register`, `d4 sensor register`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorRegistration {
    pub uuid: Uuid,
    /// `None` = the server's default key.
    pub hmac_key: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub third_party: bool,
    #[serde(default)]
    pub description: Option<String>,
    /// Approve at once (admin registration) instead of leaving it pending.
    #[serde(default)]
    pub approve: bool,
}

/// A partial update of a sensor's settings: `None` fields are left as they are.
/// Creates an `Unregistered` record when the sensor is unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorUpdate {
    /// `Some(None)` resets to the server default key.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub hmac_key: Option<Option<String>>,
    #[serde(default)]
    pub description: Option<String>,
    /// `Some(None)` resets to the default limit.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_limit: Option<Option<u64>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub mail: Option<Option<String>>,
    #[serde(default)]
    pub third_party: Option<bool>,
    /// Monitoring threshold in seconds (at least 1); `Some(None)` = the global one.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub monitoring_threshold: Option<Option<u64>>,
}

/// `Some(x)` for any present value (including null), so `Some(None)` survives JSON.
fn double_option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

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

/// Frames and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub frames: u64,
    pub bytes: u64,
}

impl Counter {
    pub fn add(&mut self, other: Counter) {
        self.frames = self.frames.saturating_add(other.frames);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// Aggregated activity of one (day, sensor, ip, type): the unit a server flushes.
/// The store derives every per-day aggregate from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsDelta {
    pub day: u32,
    pub uuid: Uuid,
    pub ip: IpAddr,
    pub d4_type: u8,
    pub frames: u64,
    pub bytes: u64,
}

/// Last-seen information of one (sensor, ip, type[, ext]) since the previous flush.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenUpdate {
    pub uuid: Uuid,
    pub ip: IpAddr,
    pub d4_type: u8,
    #[serde(default)]
    pub ext: Option<String>,
    /// Last time seen in this batch.
    pub time: u64,
    /// Connections of this (sensor, ip) that started in this batch: each is one entry
    /// of the sensor's IP history (d4-core's `list_uuid_ip`), whatever the frames.
    #[serde(default)]
    pub connections: u32,
}

/// What a server flushes periodically: aggregated stats and last-seen updates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityBatch {
    pub stats: Vec<StatsDelta>,
    pub seen: Vec<SeenUpdate>,
}

impl ActivityBatch {
    pub fn is_empty(&self) -> bool {
        self.stats.is_empty() && self.seen.is_empty()
    }
}

/// One key of a day's stats.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StatsKey {
    Sensor { uuid: Uuid },
    Ip { ip: IpAddr },
    Type { d4_type: u8 },
    SensorIp { uuid: Uuid, ip: IpAddr },
    SensorType { uuid: Uuid, d4_type: u8 },
}

/// The stats of one day, every aggregate, sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayStats {
    pub day: u32,
    pub entries: Vec<(StatsKey, Counter)>,
}

impl DayStats {
    /// The counter of one key (zero when absent).
    pub fn get(&self, key: &StatsKey) -> Counter {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, c)| *c)
            .unwrap_or_default()
    }
}

/// A claim for the exclusive (uuid, type) slot of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaim {
    pub uuid: Uuid,
    pub d4_type: u8,
    /// The connection's session id (UUIDv4).
    pub session_id: Uuid,
    /// The server process holding the connection (several servers may share a store).
    pub server_id: String,
    pub ip: IpAddr,
    /// Lease length: the claim lapses unless renewed ([`crate::Store::renew_sessions`]).
    pub lease_secs: u64,
}

/// An active session, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveSession {
    pub uuid: Uuid,
    pub d4_type: u8,
    pub session_id: Uuid,
    pub server_id: String,
    pub ip: IpAddr,
    pub started: u64,
    pub expires: u64,
}

/// What an analyzer queue receives: a D4 type, or an extended type (type 254).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum QueueKind {
    Type(u8),
    Ext(String),
}

impl std::fmt::Display for QueueKind {
    /// The d4-core key component: `8` or `ja3-jl`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueKind::Type(t) => write!(f, "{t}"),
            QueueKind::Ext(e) => f.write_str(e),
        }
    }
}

/// Settings of an analyzer queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    pub uuid: Uuid,
    pub kind: QueueKind,
    pub description: String,
    /// Maximum number of entries; over it the OLDEST entries are dropped and counted.
    pub max_size: u64,
    /// Sensor group: only these sensors' data enters the queue. `None` = every sensor.
    pub sensors: Option<Vec<Uuid>>,
}

/// Default max size of a queue (entries).
pub const DEFAULT_QUEUE_MAX_SIZE: u64 = 10_000;

/// An analyzer queue: its settings and counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    pub config: QueueConfig,
    pub created: u64,
    /// Last push (or settings change).
    pub last_updated: u64,
    /// Entries currently queued.
    pub len: u64,
    /// Entries dropped because the queue was full, since creation.
    pub trimmed: u64,
}

/// One queue entry: a line, or the path of a file. `sensor` is the sensor it came from
/// when the producer knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<Uuid>,
    #[serde(with = "crate::bytes_serde")]
    pub data: Vec<u8>,
}

impl QueueEntry {
    pub fn new(data: impl Into<Vec<u8>>) -> QueueEntry {
        QueueEntry {
            sensor: None,
            data: data.into(),
        }
    }
    pub fn from_sensor(sensor: Uuid, data: impl Into<Vec<u8>>) -> QueueEntry {
        QueueEntry {
            sensor: Some(sensor),
            data: data.into(),
        }
    }
    /// The data as text (invalid UTF-8 replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.data)
    }
}

/// Result of a push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushOutcome {
    /// Entries stored (entries × queues that exist).
    pub pushed: u64,
    /// Entries dropped, over all queues, because queues were full.
    pub trimmed: u64,
}

/// Roles of the web UI / REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    User,
    SensorRegister,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::SensorRegister => "sensor_register",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            "sensor_register" | "sensor-register" => Ok(Role::SensorRegister),
            _ => Err(format!("unknown role {s:?} (admin, user, sensor_register)")),
        }
    }
}

/// A user of the web UI / REST API. The store never sees clear-text secrets: the caller
/// stores an argon2 PHC string and token hashes ([`crate::hash_secret`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// argon2 PHC string.
    pub password_hash: String,
    /// The password must be changed at next login (first admin account).
    pub must_change_password: bool,
    /// SHA-256 hex of the user's API token, if any.
    pub api_token_hash: Option<String>,
    pub created: u64,
    /// Web sessions are valid only while their `epoch` equals this: changing it (password
    /// or role change) ends every other session of the user. Random per user, so a user
    /// deleted and created again never inherits old sessions.
    #[serde(default)]
    pub session_epoch: u64,
}

/// A web session (cookie), stored by the hash of its id so a leaked store gives no cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSession {
    /// SHA-256 hex of the session id.
    pub id_hash: String,
    pub user: String,
    pub csrf_token: String,
    pub created: u64,
    pub expires: u64,
    /// The user's [`User::session_epoch`] when the session was created.
    #[serde(default)]
    pub epoch: u64,
}

/// Something other holders of the store must know at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum StoreEvent {
    /// Close every connection of this sensor now (a 30 s UUID block is already set).
    Kick { uuid: Uuid },
    /// Blocklists changed: re-check live connections / refresh caches.
    BlocklistChanged,
    /// A sensor's settings or registration changed (key, approval, limit...).
    SensorChanged { uuid: Uuid },
    /// Accepted types or extended types changed.
    TypesChanged,
    /// Queues were created, changed or deleted.
    QueuesChanged,
}

/// `YYYYMMDD` (UTC) of a Unix time.
pub fn day_of(unix_secs: u64) -> u32 {
    // Civil-from-days (Howard Hinnant's algorithm), no chrono dependency.
    let days = (unix_secs / 86_400) as i64;
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
    (y * 10_000 + m * 100 + d) as u32
}

/// Current Unix time in seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_of_known_dates() {
        assert_eq!(day_of(0), 19700101);
        assert_eq!(day_of(951_782_400), 20000229);
        assert_eq!(day_of(1_700_000_000), 20231114);
        assert_eq!(day_of(1_709_251_199), 20240229);
    }
}
