//! `d4-store`: the shared state of d4-rs — sensors, blocklists, accepted types, per-day
//! stats, session leases, kicks, analyzer queues and web users — used alike by the
//! collector server, the admin CLI, the web UI and the analyzers.
//!
//! The operations are grouped in role traits: [`Sensors`], [`Policy`] (blocklists and
//! types), [`Leases`] (the exclusive slot of a live D4 session), [`Queues`] and
//! [`Accounts`] (web users and logins), [`Forwarding`] (rules sharing frames with partner
//! servers, and their counters), on a [`Base`] (backend name, events). [`Store`] is
//! all of them; a caller takes only the role it needs. They are written once, in the
//! operations list of [`ops`], which also generates the socket RPC ([`Request`]) and
//! [`RemoteStore`]. Every input check lives in [`validate`]: every backend calls it in its
//! write operations, and the front ends (web UI, CLI) call the same functions so that they
//! accept and refuse the same inputs.
//! `use d4_store::prelude::*;` brings the traits into scope. Analyzers read their queue
//! with [`QueueConsumer`] (at least once: lease, process, acknowledge).
//!
//! Backends: [`EmbeddedStore`] (redb file `<data>/d4.redb`, crash-safe, default) and, for
//! processes that cannot open the file because the server holds it, [`RemoteStore`], which
//! speaks JSON lines over the server's Unix socket `<data>/d4.sock` ([`serve_socket`]).
//! [`RedisStore`] keeps everything in Redis with d4-core's key layout (d4-core analyzers
//! keep working; several servers can share it). [`open`] picks.
//!
//! This crate must never depend on the server, the workers or the UI: it is plain state,
//! no D4 framing, no TLS, no HTTP. Of the protocol crate it uses only the type table
//! (`d4_proto::types`), so that D4 type numbers are never copied as literals.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::broadcast;

pub mod consumer;
mod embedded;
mod forward_prep;
pub mod model;
pub mod ops;
pub mod private;
/// The Redis backend (folder `redis/`; the module keeps its former name so that it never
/// shadows the `redis` crate).
#[path = "redis/mod.rs"]
pub mod redis_backend;
mod remote;
mod rpc;
#[cfg(feature = "testsuite")]
pub mod testsuite;
pub mod validate;

pub use consumer::{ConsumerConfig, QueueBatch, QueueConsumer};
pub use embedded::EmbeddedStore;
pub use model::*;
pub use ops::{Accounts, Forwarding, Leases, Policy, Queues, Request, Sensors};
pub use redis_backend::{RedisStore, RedisUrls};
pub use remote::RemoteStore;
pub use rpc::{serve_socket, SocketServer};

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

/// What every role trait shares: the backend's name and the event stream.
/// Implementations are cheap to share (`Arc<dyn Store>`), safe to call from many tasks,
/// and keep each call atomic.
pub trait Base: Send + Sync + std::fmt::Debug {
    /// Backend name for logs: "embedded", "remote", "redis".
    fn backend(&self) -> &'static str;

    /// Events (kicks, blocklist/sensor/type/queue changes) from every holder of the store.
    fn subscribe(&self) -> broadcast::Receiver<StoreEvent>;
}

/// Everything the server, the UI and the analyzers share: every role. Implemented for
/// every type that implements all the roles; callers that need one role take it alone
/// (`&dyn Queues`, `Arc<dyn Policy>`...).
///
/// Hot path: a server calls [`Sensors::record_activity`] with aggregated deltas (not once
/// per frame) and [`Queues::push_batch`] once per batch of lines.
pub trait Store: Sensors + Policy + Leases + Queues + Accounts + Forwarding {}

impl<T: Sensors + Policy + Leases + Queues + Accounts + Forwarding + ?Sized> Store for T {}

/// The store traits, for method calls on `dyn Store` and on the role traits:
/// `use d4_store::prelude::*;`.
pub mod prelude {
    pub use crate::{Accounts, Base, Forwarding, Leases, Policy, Queues, Sensors, Store};
}

/// `bytes` random bytes from the operating system's generator, as lowercase hex (HMAC keys
/// and privacy keys of forwarding rules).
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|e| StoreError::Backend(format!("the OS random generator failed: {e}")))?;
    Ok(hex::encode(buf))
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
