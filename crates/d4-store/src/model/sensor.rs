//! Sensors: their records, registration and settings changes, and the activity (per-day
//! stats, last seen) a server flushes.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Default per-sensor stream limit (pending entries), as the reference.
pub const DEFAULT_STREAM_LIMIT: u64 = 10_000;

/// How many source IPs are kept per sensor.
pub const LAST_IPS: usize = 16;

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
    /// A human name (empty: none), shown beside the UUID. At most 64 characters.
    #[serde(default)]
    pub name: String,
    /// Free labels (`share`, `honeypot`, `tlp:green`...), sorted, no duplicates; rules and
    /// lists filter on them.
    #[serde(default)]
    pub tags: Vec<String>,
    /// For a partner server's stream (third party): what its last meta header said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<crate::model::PartnerMeta>,
}

/// A named set of sensors, usable wherever a list of sensors is (queues, forwarding rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorGroup {
    /// Unique name, `[A-Za-z0-9_.-]{1,64}`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Members, sorted, no duplicates (sensors the store does not know are allowed: a
    /// group may be filled before its sensors first connect).
    pub sensors: Vec<Uuid>,
}

impl SensorGroup {
    /// Sort the members and drop duplicates (what the store keeps).
    pub fn normalize(&mut self) {
        self.sensors.sort();
        self.sensors.dedup();
    }

    /// Names of the groups (of `groups`) that hold this sensor, sorted.
    pub fn names_holding(groups: &[SensorGroup], sensor: Uuid) -> Vec<String> {
        let mut out: Vec<String> = groups
            .iter()
            .filter(|g| g.sensors.contains(&sensor))
            .map(|g| g.name.clone())
            .collect();
        out.sort();
        out
    }
}

/// Sort tags and drop duplicates (what the store keeps).
pub fn normalize_tags(tags: &mut Vec<String>) {
    tags.sort();
    tags.dedup();
}

impl Sensor {
    /// The name when it has one, else the UUID (32 hex digits): what lists show.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            self.uuid.simple().to_string()
        } else {
            self.name.clone()
        }
    }

    /// Whether the sensor carries this tag.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

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
            name: String::new(),
            tags: Vec::new(),
            partner: None,
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
    /// The human name ([`crate::validate::sensor_name`]); `Some("")` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The whole new set of tags ([`crate::validate::tag`]), replacing the old one; the
    /// store sorts them and drops duplicates. `Some(vec![])` removes every tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// `Some(x)` for any present value (including null), so `Some(None)` survives JSON.
fn double_option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
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
