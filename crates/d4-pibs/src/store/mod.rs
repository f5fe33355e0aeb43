//! The backscatter store: per victim and 5-minute bucket, what its backscatter looked like
//! ([`BucketStats`]), and the attacks (runs of buckets of one victim, [`Attack`]) built
//! from them, behind the narrow [`PibsStore`] trait (read side for `d4 pibs serve`, write
//! side for `d4 pibs ingest`). The embedded backend on redb is [`EmbeddedPibsStore`]
//! (`<data-dir>/pibs.redb`, [`open_embedded`]).

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

pub use crate::aggregate::{Batch, FileProgress};
pub use embedded::{open_embedded, EmbeddedPibsStore};

pub mod attacks;
mod codec;
mod direct;
pub mod embedded;

/// Width of a bucket in seconds: a bucket starts at `ts - ts % BUCKET_SECS`.
pub const BUCKET_SECS: u64 = 300;

/// Default attack gap (seconds): buckets of one victim closer than this form one attack.
pub const DEFAULT_ATTACK_GAP: u64 = 900;

/// One victim, one 5-minute bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketStats {
    /// Bucket start, unix seconds.
    pub start: u64,
    pub packets: u64,
    /// Distinct darknet (destination) addresses hit: exact up to 64, a HyperLogLog
    /// estimate (256 registers, about 6.5 % standard error) beyond.
    pub darknet_addrs: u64,
    /// Reply kind ("syn-ack", "rst", "rst-ack", "icmp-unreach", ...) -> packets.
    pub kinds: BTreeMap<String, u64>,
    /// Victim (attacked) port -> packets.
    pub ports: BTreeMap<u16, u64>,
    /// Protocol attacked ("tcp", "udp", "icmp", ...; from the quoted header for ICMP) -> packets.
    pub protocols: BTreeMap<String, u64>,
    /// Unix seconds.
    pub first_seen: u64,
    pub last_seen: u64,
    /// Sensor UUIDs (or names) that saw it.
    pub sensors: BTreeSet<String>,
}

/// A run of buckets of one victim with gaps shorter than the attack gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attack {
    /// Stable: "<victim>-<start>" (victim as text, start unix seconds).
    pub id: String,
    pub victim: IpAddr,
    /// First seen of the first bucket, last seen of the last bucket (unix seconds).
    pub start: u64,
    pub end: u64,
    pub packets: u64,
    /// Max over the buckets of packets / 300.
    pub peak_pps: f64,
    /// `peak_pps * 2^32 / darknet_size` (IPv4 victims) when the darknet size is known.
    pub est_attack_pps: Option<f64>,
    pub ports: BTreeMap<u16, u64>,
    pub protocols: BTreeMap<String, u64>,
    pub kinds: BTreeMap<String, u64>,
    pub sensors: BTreeSet<String>,
    pub buckets: u64,
}

/// Which attacks to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttackQuery {
    /// The attack overlaps [since, until].
    pub since: Option<u64>,
    pub until: Option<u64>,
    /// Victim within any of these (empty = all).
    pub nets: Vec<IpNet>,
    pub port: Option<u16>,
    pub min_pps: Option<f64>,
}

/// One page of a list; `next` is an opaque cursor (`None`: last page).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// What the store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreInfo {
    pub victims: u64,
    pub buckets: u64,
    pub attacks: u64,
    /// Capture files ingested (or being ingested).
    pub files: u64,
    /// Start of the oldest and newest bucket.
    pub oldest_bucket: Option<u64>,
    pub newest_bucket: Option<u64>,
    pub attack_gap: u64,
    pub darknet_size: Option<u64>,
}

/// Settings kept in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    /// Seconds: two buckets of a victim belong to one attack when the second's first
    /// packet came less than this after the first's last packet.
    pub attack_gap: u64,
    /// How many addresses the sensors watch (for [`Attack::est_attack_pps`]).
    pub darknet_size: Option<u64>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            attack_gap: DEFAULT_ATTACK_GAP,
            darknet_size: None,
        }
    }
}

/// A capture file's ingest state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// Records (packets) of the file whose backscatter is in the store.
    pub records: u64,
    /// The whole file is in.
    pub done: bool,
    pub path: String,
    pub sensor: String,
}

/// What a commit changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CommitStats {
    pub new_buckets: u64,
    pub updated_buckets: u64,
    pub attacks_written: u64,
}

/// What an expiry removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExpireStats {
    pub buckets: u64,
    pub attacks: u64,
}

/// A store error.
#[derive(Debug, thiserror::Error)]
pub enum PibsStoreError {
    #[error("the backscatter database {path} is already open in another process")]
    Locked { path: String },
    #[error("{path} was written with another layout of the backscatter store (found {found}, want {want})")]
    Layout { path: String, found: u64, want: u64 },
    #[error("database error: {0}")]
    Db(String),
    #[error("invalid {what}: {value:?}")]
    Invalid { what: &'static str, value: String },
    #[error("bad paging cursor")]
    Cursor,
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// The backscatter store.
pub trait PibsStore: Send + Sync {
    /// Attacks matching `q`, newest first (by start) or, with `q.nets`, by victim address.
    fn attacks(
        &self,
        q: &AttackQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Attack>, PibsStoreError>;
    /// A victim's attacks and bucket timeline in [since, until] (bounded: at most `max_buckets`).
    fn victim(
        &self,
        ip: IpAddr,
        since: u64,
        until: u64,
        max_buckets: usize,
    ) -> Result<(Vec<Attack>, Vec<BucketStats>), PibsStoreError>;
    /// Every attack overlapping [since, until] (at most `max`).
    fn attacks_in(&self, since: u64, until: u64, max: usize)
        -> Result<Vec<Attack>, PibsStoreError>;
    /// Victims, buckets, attacks, files, oldest/newest bucket.
    fn info(&self) -> Result<StoreInfo, PibsStoreError>;

    // The write side (`d4 pibs ingest`).

    /// A capture file's state, by its identity ([`crate::aggregate::FileProgress::id`]).
    fn file(&self, id: &[u8; 32]) -> Result<Option<FileState>, PibsStoreError>;
    /// Merges a batch's buckets, updates the attacks and records the file's progress, in
    /// one durable transaction (all or nothing).
    fn commit(&self, batch: &Batch) -> Result<CommitStats, PibsStoreError>;
    /// Removes buckets starting before `cutoff` and attacks that ended before it.
    fn expire(&self, cutoff: u64) -> Result<ExpireStats, PibsStoreError>;
    fn config(&self) -> Result<StoreConfig, PibsStoreError>;
    /// Changes the settings; a new attack gap rebuilds every attack from the buckets.
    fn set_config(&self, cfg: &StoreConfig) -> Result<(), PibsStoreError>;
}
