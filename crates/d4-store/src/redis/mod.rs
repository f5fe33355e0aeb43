//! The Redis backend: every store role on Redis, with d4-core's key layout where d4-core
//! has one, so that existing d4-core analyzers (`RPOP analyzer:<type>:<queue uuid>`) keep
//! working, and several `d4 server` processes can share one Redis. The whole mapping is
//! documented in `docs/redis-layout.md`; keep that file in sync with `keys.rs`.
//!
//! Three logical connections, as d4-core used separate databases: `main` (leases, kicks,
//! events), `meta` (sensors, blocklists, types, stats, queue settings, users) and `queues`
//! (the analyzer lists). By default all three use the same URL.
//!
//! Multi-key updates that must be atomic, or must not cost one round trip per key, run as
//! Lua scripts (`scripts/*.lua`) or pipelines: `register_sensor` is one script,
//! `record_activity` one round trip, `push_batch` two (three when the queues live in
//! another database than the metadata).
//!
//! One file per role (`sensors`, `policy`, `leases`, `queues`, `accounts`, `forward`), plus `groups`
//! (sensor groups, of the sensors role), `consume`
//! (leased consumption of the queues: the reliable-queue pattern) and `events` (pub/sub and
//! d4-core's kick requests).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisError;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::model::*;
use crate::{Base, Result, StoreError};

mod accounts;
mod consume;
mod events;
mod forward;
mod groups;
mod keys;
mod leases;
mod policy;
mod push;
mod queues;
mod sensors;

/// Pub/sub channel carrying [`StoreEvent`]s (JSON) between every holder of the store.
pub const EVENTS_CHANNEL: &str = "d4rs:events";

/// The Lua scripts, loaded from `scripts/`.
mod scripts {
    pub const INIT: &str = include_str!("scripts/init.lua");
    pub const SEEN: &str = include_str!("scripts/seen.lua");
    pub const REGISTER: &str = include_str!("scripts/register.lua");
    pub const CLAIM: &str = include_str!("scripts/claim.lua");
    pub const RENEW: &str = include_str!("scripts/renew.lua");
    pub const RELEASE: &str = include_str!("scripts/release.lua");
    pub const CLEAR: &str = include_str!("scripts/clear.lua");
    pub const PUSH: &str = include_str!("scripts/push.lua");
    pub const TRIM: &str = include_str!("scripts/trim.lua");
    pub const OLDEST: &str = include_str!("scripts/oldest.lua");
    pub const LEASE: &str = include_str!("scripts/lease.lua");
    pub const ACK: &str = include_str!("scripts/ack.lua");
    pub const FORWARD_PUT: &str = include_str!("scripts/forward_put.lua");
    pub const FORWARD_STATS: &str = include_str!("scripts/forward_stats.lua");
}

/// URLs of the Redis backend: one for everything, or separate ones for the analyzer
/// queues and for the metadata (as d4-core's separate databases).
#[derive(Debug, Clone)]
pub struct RedisUrls {
    /// Leases, kicks, events; and everything else when the others are not set.
    pub main: String,
    /// Sensors, blocklists, types, stats, queue settings, users.
    pub metadata: Option<String>,
    /// The analyzer lists `analyzer:<type|ext>:<queue uuid>`.
    pub queues: Option<String>,
}

impl RedisUrls {
    pub fn single(url: impl Into<String>) -> RedisUrls {
        RedisUrls {
            main: url.into(),
            metadata: None,
            queues: None,
        }
    }
}

/// Aborts the pub/sub listener when the last clone of the store is dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A [`crate::Store`] on Redis.
#[derive(Clone)]
pub struct RedisStore {
    main: ConnectionManager,
    meta: ConnectionManager,
    queues: ConnectionManager,
    queue_client: redis::Client,
    /// Metadata and queues are in the same database: the push script updates both.
    same_queue_db: bool,
    events: broadcast::Sender<StoreEvent>,
    _listener: Arc<AbortOnDrop>,
    /// The task turning d4-core's UI kicks into kicks ([`RedisStore::with_core_kicks`]).
    _core_kicks: Option<Arc<AbortOnDrop>>,
    urls: Arc<String>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("urls", &self.urls)
            .finish()
    }
}

fn be(e: RedisError) -> StoreError {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        StoreError::Connection(format!("redis: {e}"))
    } else {
        StoreError::Backend(format!("redis: {e}"))
    }
}

fn bad(what: &str, v: impl std::fmt::Debug) -> StoreError {
    StoreError::Backend(format!("redis: unexpected {what}: {v:?}"))
}

/// Sensor ids in keys: 32 lowercase hex digits (as d4-core).
fn sid(u: &Uuid) -> String {
    u.simple().to_string()
}

/// Queue ids in keys: hyphenated (as d4-core's `str(uuid.uuid4())`).
fn qid(u: &Uuid) -> String {
    u.hyphenated().to_string()
}

/// Redact the password of a URL for logs and errors.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

/// Writes `value` (JSON) at `key` unless the key exists; whether it was written.
async fn set_json_new<T: serde::Serialize>(
    c: &mut redis::aio::ConnectionManager,
    key: String,
    value: &T,
) -> Result<bool> {
    Ok(redis::cmd("SET")
        .arg(key)
        .arg(to_json(value)?)
        .arg("NX")
        .query_async::<Option<String>>(c)
        .await
        .map_err(be)?
        .is_some())
}

/// The JSON record at `key` (`None`: no such key).
async fn get_json<T: serde::de::DeserializeOwned>(
    c: &mut redis::aio::ConnectionManager,
    key: String,
) -> Result<Option<T>> {
    let v: Option<String> = redis::cmd("GET")
        .arg(key)
        .query_async(c)
        .await
        .map_err(be)?;
    v.map(|v| from_json(&v)).transpose()
}

/// The JSON records at `keys`, in their order (keys that do not exist left out).
async fn mget_json<T: serde::de::DeserializeOwned>(
    c: &mut redis::aio::ConnectionManager,
    keys: &[String],
) -> Result<Vec<T>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let vals: Vec<Option<String>> = redis::cmd("MGET")
        .arg(keys)
        .query_async(c)
        .await
        .map_err(be)?;
    vals.into_iter().flatten().map(|v| from_json(&v)).collect()
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Backend(format!("redis: bad record: {e}")))
}

fn num(s: Option<&String>) -> Option<u64> {
    s.and_then(|v| {
        v.parse::<u64>()
            .ok()
            .or_else(|| v.parse::<f64>().ok().map(|f| f as u64))
    })
}

fn eval(script: &str) -> redis::Cmd {
    let mut c = redis::cmd("EVAL");
    c.arg(script);
    c
}

fn from_value<T: redis::FromRedisValue>(v: redis::Value) -> Result<T> {
    redis::from_redis_value(v).map_err(|e| StoreError::Backend(format!("redis: {e}")))
}

impl RedisStore {
    /// Connect (every URL), check the server version, initialize a fresh database's
    /// defaults and subscribe to the events channel.
    pub async fn connect(urls: &RedisUrls) -> Result<RedisStore> {
        let meta_url = urls.metadata.clone().unwrap_or_else(|| urls.main.clone());
        let queue_url = urls.queues.clone().unwrap_or_else(|| urls.main.clone());
        let describe = format!(
            "main {}, metadata {}, queues {}",
            redact(&urls.main),
            redact(&meta_url),
            redact(&queue_url)
        );
        let client = |url: &str| {
            redis::Client::open(url)
                .map_err(|e| StoreError::Invalid(format!("redis URL {}: {e}", redact(url))))
        };
        let main_client = client(&urls.main)?;
        let meta_client = client(&meta_url)?;
        let queue_client = client(&queue_url)?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let manager = |c: redis::Client, url: String| {
            let cfg = cfg.clone();
            async move {
                c.get_connection_manager_with_config(cfg)
                    .await
                    .map_err(|e| {
                        StoreError::Connection(format!(
                            "cannot connect to redis {}: {e}",
                            redact(&url)
                        ))
                    })
            }
        };
        let main = manager(main_client.clone(), urls.main.clone()).await?;
        let mut meta = manager(meta_client, meta_url.clone()).await?;
        let queues = manager(queue_client.clone(), queue_url.clone()).await?;

        // RPOP with a count and ZADD GT need Redis 6.2.
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut meta)
            .await
            .map_err(be)?;
        if let Some(v) = info.lines().find_map(|l| l.strip_prefix("redis_version:")) {
            let mut parts = v.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            if (major, minor) < (6, 2) {
                return Err(StoreError::Invalid(format!(
                    "redis {v} is too old: d4 needs Redis 6.2 or later"
                )));
            }
        }

        let mut init = eval(scripts::INIT);
        init.arg(3)
            .arg(keys::INITIALIZED)
            .arg(keys::ACCEPTED_TYPES)
            .arg(keys::ACCEPTED_EXT)
            .arg(DEFAULT_ACCEPTED_TYPES.len());
        for t in DEFAULT_ACCEPTED_TYPES {
            init.arg(t);
        }
        for e in DEFAULT_ACCEPTED_EXT_TYPES {
            init.arg(e);
        }
        let _: i64 = init.query_async(&mut meta).await.map_err(be)?;

        let (events, _) = broadcast::channel(1024);
        let listener = events::spawn_listener(main_client, events.clone()).await?;
        tracing::info!(redis = %describe, "redis store connected");
        Ok(RedisStore {
            main,
            meta,
            queues,
            queue_client,
            same_queue_db: meta_url == queue_url,
            events,
            _listener: Arc::new(AbortOnDrop(listener)),
            _core_kicks: None,
            urls: Arc::new(describe),
        })
    }
}

impl Base for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }
}
