//! Analyzer queues: settings, entries and pushes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
    /// Sensor group: only these sensors' data enters the queue. `None` = every sensor
    /// (unless `groups` is set).
    pub sensors: Option<Vec<Uuid>>,
    /// Named sensor groups ([`crate::SensorGroup`]): their members' data enters the queue
    /// too. When set and `sensors` is `None`, only the groups' members (and not every
    /// sensor) feed the queue. Names of groups that do not exist (yet) select nobody.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl QueueConfig {
    /// Every sensor feeds the queue: neither a sensor list nor groups.
    pub fn is_global(&self) -> bool {
        self.sensors.is_none() && self.groups.is_empty()
    }

    /// Whether a sensor that belongs to `sensor_groups` (names) feeds this queue.
    pub fn selects(&self, sensor: Uuid, sensor_groups: &[String]) -> bool {
        self.is_global()
            || self.sensors.as_ref().is_some_and(|s| s.contains(&sensor))
            || self.groups.iter().any(|g| sensor_groups.contains(g))
    }
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
    /// When the oldest entry still queued was pushed (Unix seconds; to the second), if
    /// the queue holds entries and the store knows it (entries pushed by another program,
    /// e.g. d4-core's server on Redis, carry no time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest: Option<u64>,
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

/// Idempotency key of a push: who produced it and its sequence number (strictly
/// increasing per producer; a server uses its journal's uuid and frame position).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushKey {
    pub producer: Uuid,
    pub seq: u64,
}

/// One push: entries (in order) appended to each of these queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePush {
    pub queues: Vec<Uuid>,
    pub entries: Vec<QueueEntry>,
}

/// An entry leased to a consumer ([`crate::Queues::lease_entries`]): `id` names it in the
/// acknowledgement ([`crate::Queues::ack_entries`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeasedEntry {
    pub id: u64,
    pub entry: QueueEntry,
}

/// What a queue alert is about ([`QueueAlert`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueAlertKind {
    /// The queue holds at least the configured fraction of its max size.
    Fill,
    /// Its oldest entry waits for longer than the configured age.
    Age,
    /// Entries were dropped because it was full (an episode ends after a quiet period).
    Trimmed,
}

impl QueueAlertKind {
    /// Every kind, in the order they are listed.
    pub const ALL: [QueueAlertKind; 3] = [
        QueueAlertKind::Fill,
        QueueAlertKind::Age,
        QueueAlertKind::Trimmed,
    ];

    /// The label: `fill`, `age` or `trimmed`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueAlertKind::Fill => "fill",
            QueueAlertKind::Age => "age",
            QueueAlertKind::Trimmed => "trimmed",
        }
    }
}

/// An alert in force on an analyzer queue: nobody reads it fast enough.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueAlert {
    pub queue: Uuid,
    /// The queue's description, or its kind (`type 8`, `ja3-jl`) when it has none.
    pub name: String,
    pub kind: QueueAlertKind,
    /// When the episode started (Unix seconds).
    pub since: u64,
    /// `fill`: the fill fraction (entries / max size); `age`: the oldest entry's age in
    /// seconds; `trimmed`: entries dropped since the episode started.
    pub value: f64,
    /// The configured level it passed: fraction, seconds, or 0 (any drop) for `trimmed`.
    pub threshold: f64,
}

impl QueueAlert {
    /// What passed which level, in words (the log line and the Monitoring page).
    pub fn describe(&self) -> String {
        match self.kind {
            QueueAlertKind::Fill => format!(
                "{:.0}% full (level {:.0}%)",
                self.value * 100.0,
                self.threshold * 100.0
            ),
            QueueAlertKind::Age => format!(
                "oldest entry waits {} s (level {} s)",
                self.value, self.threshold
            ),
            QueueAlertKind::Trimmed => {
                format!("{} entries dropped: the queue is full", self.value)
            }
        }
    }
}

impl Queue {
    /// The name alerts and pages show: the description, or the kind.
    pub fn display_name(&self) -> String {
        if self.config.description.trim().is_empty() {
            match &self.config.kind {
                QueueKind::Type(t) => format!("type {t}"),
                QueueKind::Ext(e) => e.clone(),
            }
        } else {
            self.config.description.clone()
        }
    }
}
