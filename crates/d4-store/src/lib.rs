//! `d4-store`: the shared state of d4-rs behind one async [`Store`] trait — sensors,
//! blocklists, accepted types, per-day stats, active sessions, kicks, analyzer queues and
//! web users — used alike by the collector server, the admin CLI, the web UI and the
//! analyzers.
//!
//! Backends: [`EmbeddedStore`] (redb file `<data>/d4.redb`, crash-safe, default) and, for
//! processes that cannot open the file because the server holds it, [`RemoteStore`], which
//! speaks JSON lines over the server's Unix socket `<data>/d4.sock` ([`serve_socket`]).
//! [`RedisStore`] keeps everything in Redis with d4-core's key layout (d4-core analyzers
//! keep working; several servers can share it). [`open`] picks.
//!
//! This crate must never depend on the server, the workers, the UI or the network
//! protocol crate: it is plain state, no D4 framing, no TLS, no HTTP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use uuid::Uuid;

mod embedded;
pub mod model;
pub mod private;
pub mod redis_backend;
mod remote;
mod rpc;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use embedded::EmbeddedStore;
pub use model::*;
pub use redis_backend::{RedisStore, RedisUrls};
pub use remote::RemoteStore;
pub use rpc::{serve_socket, Request, SocketServer};

/// File name of the embedded database inside the data dir.
pub const DB_FILE: &str = "d4.redb";
/// File name of the store's Unix socket inside the data dir.
pub const SOCKET_FILE: &str = "d4.sock";

/// Errors of every store operation. Serializable: the RPC carries them unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "error", content = "detail")]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("not implemented: {0}")]
    NotImplemented(String),
    #[error(
        "the store is locked by another process and no server socket answers at {socket} \
         (database {db}); start `d4 server` or stop the process holding the database"
    )]
    Locked { db: String, socket: String },
    #[error("store backend error: {0}")]
    Backend(String),
    #[error("store connection error: {0}")]
    Connection(String),
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything the server, the UI and the analyzers share. Implementations are cheap to
/// share (`Arc<dyn Store>`), safe to call from many tasks, and keep each call atomic.
///
/// Hot path: a server calls [`Store::record_activity`] with aggregated deltas (not once
/// per frame) and [`Store::push_entries`] once per batch of lines.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Backend name for logs: "embedded", "remote", "redis".
    fn backend(&self) -> &'static str;

    /// Events (kicks, blocklist/sensor/type/queue changes) from every holder of the store.
    fn subscribe(&self) -> broadcast::Receiver<StoreEvent>;

    // ---- sensors ----
    /// Register a sensor (pending unless `approve`). `AlreadyExists` when it is already
    /// pending or approved; an `Unregistered` record (seen before) is upgraded.
    async fn register_sensor(&self, reg: SensorRegistration) -> Result<Sensor>;
    /// Approve a pending (or unregistered) sensor. `NotFound` if unknown.
    async fn approve_sensor(&self, uuid: Uuid) -> Result<Sensor>;
    /// Delete a sensor's record (reject a pending registration). Returns whether it existed.
    async fn delete_sensor(&self, uuid: Uuid) -> Result<bool>;
    async fn get_sensor(&self, uuid: Uuid) -> Result<Option<Sensor>>;
    /// Every known sensor, ordered by uuid.
    async fn list_sensors(&self) -> Result<Vec<Sensor>>;
    /// Change settings; creates an `Unregistered` record when unknown.
    async fn update_sensor(&self, uuid: Uuid, update: SensorUpdate) -> Result<Sensor>;
    /// Record the sensor's last error (creates the record when unknown).
    async fn record_sensor_error(&self, uuid: Uuid, time: u64, message: String) -> Result<()>;
    /// Flush aggregated stats and last-seen updates (one transaction).
    async fn record_activity(&self, batch: ActivityBatch) -> Result<()>;
    /// Every aggregate of one day (`YYYYMMDD`).
    async fn day_stats(&self, day: u32) -> Result<DayStats>;

    // ---- blocklists ----
    /// Add (or replace) a block.
    async fn add_block(&self, block: Block) -> Result<()>;
    /// Remove a block; returns whether it existed.
    async fn remove_block(&self, target: BlockTarget) -> Result<bool>;
    /// Blocks in force at `now` (expired ones are left out).
    async fn list_blocks(&self, now: u64) -> Result<Vec<Block>>;
    /// The first block in force at `now` matching this IP (prefix match) or UUID
    /// (`Uuid` then `IpsOfUuid`), if any.
    async fn check_blocked(
        &self,
        ip: std::net::IpAddr,
        uuid: Option<Uuid>,
        now: u64,
    ) -> Result<Option<Block>>;
    /// Kick a sensor: a temporary UUID block of [`KICK_BLOCK_SECS`] and a
    /// [`StoreEvent::Kick`] delivered at once to every subscriber.
    async fn request_kick(&self, uuid: Uuid, now: u64) -> Result<()>;

    // ---- accepted types ----
    async fn accepted_types(&self) -> Result<Vec<u8>>;
    async fn set_type_accepted(&self, d4_type: u8, accepted: bool) -> Result<()>;
    async fn accepted_ext_types(&self) -> Result<Vec<String>>;
    async fn set_ext_type_accepted(&self, ext: String, accepted: bool) -> Result<()>;

    // ---- active sessions ----
    /// Claim the (uuid, type) slot: `false` when another live session holds it. Types in
    /// [`SESSION_EXEMPT_TYPES`] always succeed (and are still listed).
    async fn try_claim_session(&self, claim: SessionClaim, now: u64) -> Result<bool>;
    /// Extend the leases of every session of `server_id` to `now + lease_secs`.
    async fn renew_sessions(&self, server_id: String, lease_secs: u64, now: u64) -> Result<u64>;
    /// Release one session (no-op if it does not hold the slot any more).
    async fn release_session(&self, uuid: Uuid, d4_type: u8, session_id: Uuid) -> Result<()>;
    /// Live sessions (leases not expired at `now`).
    async fn list_sessions(&self, now: u64) -> Result<Vec<ActiveSession>>;
    /// Drop every session of `server_id` (at server start); returns how many.
    async fn clear_sessions(&self, server_id: String) -> Result<u64>;

    // ---- analyzer queues ----
    /// `AlreadyExists` if the uuid is taken; `Invalid` on max_size 0 or a bad ext name.
    async fn create_queue(&self, config: QueueConfig, now: u64) -> Result<Queue>;
    async fn list_queues(&self) -> Result<Vec<Queue>>;
    async fn get_queue(&self, uuid: Uuid) -> Result<Option<Queue>>;
    /// Replace the settings (entries kept; trimmed at once if the new max is lower).
    async fn update_queue(&self, config: QueueConfig, now: u64) -> Result<Queue>;
    /// Delete the queue and its entries; returns whether it existed.
    async fn delete_queue(&self, uuid: Uuid) -> Result<bool>;
    /// Uuids of the queues that take data of this kind from this sensor.
    async fn queues_for(&self, kind: QueueKind, sensor: Uuid) -> Result<Vec<Uuid>>;
    /// Append entries (in order) to each of these queues, in one transaction. Unknown
    /// queues are skipped. Full queues drop their oldest entries and count them.
    async fn push_entries(
        &self,
        queues: Vec<Uuid>,
        entries: Vec<QueueEntry>,
        now: u64,
    ) -> Result<PushOutcome>;
    /// [`Store::push_entries`] at most once per position of a journal: in the same
    /// transaction as the push, the store records `position` as the last one pushed for
    /// `journal`; a call whose `position` is not greater than the recorded one pushes
    /// nothing and returns `None` (the server replaying a journal after a crash).
    async fn push_entries_once(
        &self,
        journal: Uuid,
        position: u64,
        queues: Vec<Uuid>,
        entries: Vec<QueueEntry>,
        now: u64,
    ) -> Result<Option<PushOutcome>>;
    /// The last position recorded by [`Store::push_entries_once`] for `journal`.
    async fn journal_position(&self, journal: Uuid) -> Result<Option<u64>>;
    /// Drops the journal's recorded position (the journal is retired).
    async fn forget_journal(&self, journal: Uuid) -> Result<()>;
    /// Take up to `max` oldest entries (FIFO); empty when none. `NotFound` if no queue.
    async fn pop_entries(&self, queue: Uuid, max: usize) -> Result<Vec<QueueEntry>>;
    /// Like `pop_entries`, but waits up to `timeout` for at least one entry.
    async fn pop_entries_blocking(
        &self,
        queue: Uuid,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<QueueEntry>>;
    async fn queue_len(&self, queue: Uuid) -> Result<u64>;
    /// The latest `n` entries, newest first, without removing them.
    async fn queue_sample(&self, queue: Uuid, n: usize) -> Result<Vec<QueueEntry>>;
    /// Remove every entry; returns how many.
    async fn empty_queue(&self, queue: Uuid) -> Result<u64>;

    // ---- users (web UI / REST API) ----
    async fn create_user(&self, user: User) -> Result<()>;
    async fn get_user(&self, name: String) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    /// Replace a user's record (role, password hash, token hash...). `NotFound` if unknown.
    async fn update_user(&self, user: User) -> Result<()>;
    async fn delete_user(&self, name: String) -> Result<bool>;
    /// The user whose API token hashes to `token_hash` ([`hash_secret`]).
    async fn user_by_token_hash(&self, token_hash: String) -> Result<Option<User>>;
    async fn create_web_session(&self, session: WebSession) -> Result<()>;
    /// The session if it exists and has not expired at `now`.
    async fn get_web_session(&self, id_hash: String, now: u64) -> Result<Option<WebSession>>;
    async fn delete_web_session(&self, id_hash: String) -> Result<bool>;
    /// Delete expired web sessions (and other expired entries: blocks, sessions); returns
    /// how many web sessions were removed.
    async fn purge_expired(&self, now: u64) -> Result<u64>;
}

/// SHA-256 hex of a secret (API token, web session id): what the store keeps.
pub fn hash_secret(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// How to reach the store.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// The data dir (`d4.redb` and `d4.sock` live there).
    pub data_dir: PathBuf,
    /// Redis URL: use the Redis backend (d4-core key layout, `docs/redis-layout.md`).
    pub redis_url: Option<String>,
    /// Optional separate Redis URL for the analyzer queues (default: `redis_url`).
    pub redis_queue_url: Option<String>,
    /// Optional separate Redis URL for the metadata (default: `redis_url`).
    pub redis_metadata_url: Option<String>,
    /// Only the embedded backend (the server process): never fall back to the socket.
    pub embedded_only: bool,
    /// Redis backend: perform the kicks d4-core's UI requests (`server:sensor_to_kick`),
    /// polled every second (the collector sets it; see `RedisStore::with_core_kicks`).
    pub core_kicks: bool,
}

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            data_dir: data_dir.into(),
            redis_url: None,
            redis_queue_url: None,
            redis_metadata_url: None,
            embedded_only: false,
            core_kicks: false,
        }
    }
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(DB_FILE)
    }
    pub fn socket_path(&self) -> PathBuf {
        self.data_dir.join(SOCKET_FILE)
    }
}

/// Open the store: the Redis backend when `redis_url` is set, else
/// the embedded database when it can be opened (created if missing, with the data dir),
/// else the server's socket when it answers, else [`StoreError::Locked`].
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>> {
    if let Some(url) = &config.redis_url {
        let urls = RedisUrls {
            main: url.clone(),
            metadata: config.redis_metadata_url.clone(),
            queues: config.redis_queue_url.clone(),
        };
        let store = RedisStore::connect(&urls).await?;
        if config.core_kicks {
            return Ok(Arc::new(store.with_core_kicks()));
        }
        return Ok(Arc::new(store));
    }
    match EmbeddedStore::open(&config.data_dir) {
        Ok(store) => Ok(Arc::new(store)),
        Err(EmbeddedOpenError::Locked) if !config.embedded_only => {
            let socket = config.socket_path();
            match RemoteStore::connect(&socket).await {
                Ok(remote) => Ok(Arc::new(remote)),
                Err(e) => {
                    tracing::debug!(error = %e, "store socket does not answer");
                    Err(StoreError::Locked {
                        db: config.db_path().display().to_string(),
                        socket: socket.display().to_string(),
                    })
                }
            }
        }
        Err(EmbeddedOpenError::Locked) => Err(StoreError::Locked {
            db: config.db_path().display().to_string(),
            socket: config.socket_path().display().to_string(),
        }),
        Err(EmbeddedOpenError::Other(e)) => Err(e),
    }
}

/// Why the embedded database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedOpenError {
    #[error("the database is open in another process")]
    Locked,
    #[error(transparent)]
    Other(#[from] StoreError),
}

/// Path helper for callers: `<data>/d4.sock`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// Serialize bytes as a JSON string when they are UTF-8, else as `{"hex": "..."}`.
pub(crate) mod bytes_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Hex { hex: String },
    }

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(data) {
            Ok(text) => s.serialize_str(text),
            Err(_) => Repr::Hex {
                hex: hex::encode(data),
            }
            .serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Text(t) => Ok(t.into_bytes()),
            Repr::Hex { hex } => hex::decode(hex).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_bytes_roundtrip() {
        for data in [b"line one".to_vec(), vec![0xff, 0x00, 0x80], Vec::new()] {
            let e = QueueEntry::new(data.clone());
            let json = serde_json::to_string(&e).unwrap();
            let back: QueueEntry = serde_json::from_str(&json).unwrap();
            assert_eq!(back.data, data, "{json}");
        }
    }
}
