//! The Redis backend of [`Store`], with d4-core's key layout where d4-core has one, so
//! that existing d4-core analyzers (`RPOP analyzer:<type>:<queue uuid>`) keep working, and
//! several `d4 server` processes can share one Redis. The whole mapping is documented in
//! `docs/redis-layout.md`; keep that file in sync with the key functions below.
//!
//! Three logical connections, as d4-core used separate databases: `main` (sessions,
//! kicks, events), `meta` (sensors, blocklists, types, stats, queue settings, users) and
//! `queues` (the analyzer lists). By default all three use the same URL.
//!
//! Multi-key updates that must be atomic, or must not cost one round trip per key, run as
//! Lua scripts or pipelines: `record_activity` is one round trip, `push_entries` two
//! (three when the queues live in another database than the metadata).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, RedisError};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::embedded::{check_ext_name, check_queue_config, check_user};
use crate::model::*;
use crate::{Result, Store, StoreError};

/// Pub/sub channel carrying [`StoreEvent`]s (JSON) between every holder of the store.
pub const EVENTS_CHANNEL: &str = "d4rs:events";

/// URLs of the Redis backend: one for everything, or separate ones for the analyzer
/// queues and for the metadata (as d4-core's separate databases).
#[derive(Debug, Clone)]
pub struct RedisUrls {
    /// Sessions, kicks, events; and everything else when the others are not set.
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

/// A [`Store`] on Redis.
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

// ---- keys (see docs/redis-layout.md) ----
mod keys {
    use super::*;

    pub fn metadata_uuid(u: &Uuid) -> String {
        format!("metadata_uuid:{}", sid(u))
    }
    pub const REGISTERED: &str = "registered_uuid";
    pub const PENDING: &str = "sensor_pending_registration";
    pub const STREAM_MAX: &str = "stream_max_size_by_uuid";
    /// d4-core's monitoring settings: the set of monitored sensors, and per sensor a hash
    /// with `delta_time` (seconds), plus the time of the last change.
    pub const TO_MONITOR: &str = "to_monitor:sensors";
    pub fn to_monitor(u: &Uuid) -> String {
        format!("to_monitor:sensor:{}", sid(u))
    }
    pub const MONITORING_UPDATED: &str = "sensors_monitoring:last_updated";
    pub const MONITORING_ERRORS: &str = "sensors_monitoring:sensors_error";
    pub fn list_uuid_ip(u: &Uuid) -> String {
        format!("list_uuid_ip:{}", sid(u))
    }
    pub const SENSORS: &str = "d4rs:sensors";
    pub fn d4rs_sensor(u: &Uuid) -> String {
        format!("d4rs:sensor:{}", sid(u))
    }
    pub fn sensor_ips(u: &Uuid) -> String {
        format!("d4rs:sensor_ips:{}", sid(u))
    }
    pub fn type_seen(u: &Uuid) -> String {
        format!("d4rs:type_seen:{}", sid(u))
    }
    pub fn all_types_by_uuid(u: &Uuid) -> String {
        format!("all_types_by_uuid:{}", sid(u))
    }
    pub fn all_extended_types_by_uuid(u: &Uuid) -> String {
        format!("all_extended_types_by_uuid:{}", sid(u))
    }
    pub fn metadata_extended_type(u: &Uuid, ext: &str) -> String {
        format!("metadata_extended_type_by_uuid:{}:{ext}", sid(u))
    }

    pub const BLOCKS: &str = "d4rs:blocks";
    pub const BLACKLIST_IP: &str = "blacklist_ip";
    pub const BLACKLIST_UUID: &str = "blacklist_uuid";
    pub const BLACKLIST_IP_BY_UUID: &str = "blacklist_ip_by_uuid";
    /// d4-core's UI kick requests (a set in the stream database = d4-rs's main).
    pub const SENSOR_TO_KICK: &str = "server:sensor_to_kick";
    pub fn temp_blacklist_uuid(u: &Uuid) -> String {
        format!("temp_blacklist_uuid:{}", sid(u))
    }

    pub const ACCEPTED_TYPES: &str = "server:accepted_type";
    pub const ACCEPTED_EXT: &str = "server:accepted_extended_type";
    pub const INITIALIZED: &str = "d4rs:initialized";

    pub fn session(u: &Uuid, t: u8, session: &Uuid) -> String {
        if SESSION_EXEMPT_TYPES.contains(&t) {
            format!("d4rs:session:{}:{}:{}", sid(u), t, session.simple())
        } else {
            format!("d4rs:session:{}:{}", sid(u), t)
        }
    }
    pub const SESSIONS: &str = "d4rs:sessions";
    pub fn server_sessions(server: &str) -> String {
        format!("d4rs:server_sessions:{server}")
    }

    pub fn queue_meta(q: &Uuid) -> String {
        format!("analyzer:{}", qid(q))
    }
    pub fn d4rs_journal(j: &Uuid) -> String {
        format!("d4rs:journal:{}", j.simple())
    }
    pub fn d4rs_queue(q: &Uuid) -> String {
        format!("d4rs:queue:{}", qid(q))
    }
    pub fn queue_list(kind: &QueueKind, q: &Uuid) -> String {
        format!("analyzer:{kind}:{}", qid(q))
    }
    /// `analyzer:<type>` / `analyzer:254:<ext>` (global queues) or the
    /// `analyzer_uuid_group:` equivalent (queues of a sensor group).
    pub fn queues_of_kind(kind: &QueueKind, group: bool) -> String {
        let prefix = if group {
            "analyzer_uuid_group"
        } else {
            "analyzer"
        };
        match kind {
            QueueKind::Type(t) => format!("{prefix}:{t}"),
            QueueKind::Ext(e) => format!("{prefix}:254:{e}"),
        }
    }
    pub fn sensor_queues(kind: &QueueKind, sensor: &Uuid) -> String {
        format!("sensor:queues:{kind}:{}", sid(sensor))
    }
    pub fn queue_group(q: &Uuid) -> String {
        format!("analyzer_sensor_group:{}", qid(q))
    }
    pub const ALL_QUEUES: &str = "all_analyzer_queues";

    pub fn user(name: &str) -> String {
        format!("d4rs:user:{name}")
    }
    pub const USERS: &str = "d4rs:users";
    pub fn user_token(hash: &str) -> String {
        format!("d4rs:user_token:{hash}")
    }
    pub fn web_session(id_hash: &str) -> String {
        format!("d4rs:web_session:{id_hash}")
    }
    pub const WEB_SESSIONS: &str = "d4rs:web_sessions";
    pub fn user_sessions(name: &str) -> String {
        format!("d4rs:user_sessions:{name}")
    }
}

/// Canonical field of a block in `d4rs:blocks`.
fn block_field(target: &BlockTarget) -> String {
    target.to_string()
}

fn normalize_target(target: BlockTarget) -> BlockTarget {
    match target {
        BlockTarget::Ip(net) => BlockTarget::Ip(net.trunc()),
        other => other,
    }
}

/// The d4-core set mirroring a permanent block, with its member.
fn block_mirror(target: &BlockTarget) -> Option<(&'static str, String)> {
    match target {
        BlockTarget::Ip(net) if net.prefix_len() == net.max_prefix_len() => {
            Some((keys::BLACKLIST_IP, net.addr().to_string()))
        }
        BlockTarget::Ip(_) => None,
        BlockTarget::Uuid(u) => Some((keys::BLACKLIST_UUID, sid(u))),
        BlockTarget::IpsOfUuid(u) => Some((keys::BLACKLIST_IP_BY_UUID, sid(u))),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encode: {e}")))
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

/// Type key of a (type, ext) pair: `8` or `254:ja3-jl`.
fn type_key(t: u8, ext: &Option<String>) -> String {
    match ext {
        Some(e) => format!("{t}:{e}"),
        None => t.to_string(),
    }
}

fn format_stamp(unix: u64) -> String {
    let day = day_of(unix);
    let s = unix % 86_400;
    format!("{day}{:02}{:02}{:02}", s / 3600, (s / 60) % 60, s % 60)
}

// ---- Lua scripts ----

/// Fresh store: default accepted types, unless d4-core already set them.
const INIT_SCRIPT: &str = r#"
if redis.call('SETNX', KEYS[1], '1') == 1 then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    for i = 2, 1 + tonumber(ARGV[1]) do redis.call('SADD', KEYS[2], ARGV[i]) end
  end
  if redis.call('EXISTS', KEYS[3]) == 0 then
    for i = 2 + tonumber(ARGV[1]), #ARGV do redis.call('SADD', KEYS[3], ARGV[i]) end
  end
end
return 1
"#;

/// Last-seen updates. ARGV: groups of 7 (uuid32, ip, type, typekey, time, stamp, connections):
/// the IP history (`list_uuid_ip`) gets one entry per connection, not one per update.
const SEEN_SCRIPT: &str = r#"
local function setmin(key, field, v)
  local cur = redis.call('HGET', key, field)
  if (not cur) or tonumber(cur) > v then redis.call('HSET', key, field, v) end
end
local function setmax(key, field, v)
  local cur = redis.call('HGET', key, field)
  if (not cur) or tonumber(cur) < v then redis.call('HSET', key, field, v) end
end
for i = 1, #ARGV, 7 do
  local u, ip, t, tk, time, stamp = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], tonumber(ARGV[i+4]), ARGV[i+5]
  local conns = tonumber(ARGV[i+6])
  local mk = 'metadata_uuid:' .. u
  setmin(mk, 'first_seen', time)
  setmax(mk, 'last_seen', time)
  local tm = 'metadata_type_by_uuid:' .. u .. ':' .. t
  setmin(tm, 'first_seen', time)
  setmax(tm, 'last_seen', time)
  local ts = 'd4rs:type_seen:' .. u
  setmin(ts, tk .. '/first', time)
  setmax(ts, tk .. '/last', time)
  redis.call('SADD', 'all_types_by_uuid:' .. u, t)
  local colon = string.find(tk, ':', 1, true)
  if colon then
    -- d4-core's type-2 worker: the sensor's extended types and their first/last seen.
    local ext = string.sub(tk, colon + 1)
    redis.call('SADD', 'all_extended_types_by_uuid:' .. u, ext)
    local em = 'metadata_extended_type_by_uuid:' .. u .. ':' .. ext
    setmin(em, 'first_seen', time)
    setmax(em, 'last_seen', time)
  end
  redis.call('SADD', 'd4rs:sensors', u)
  local zk = 'd4rs:sensor_ips:' .. u
  redis.call('ZADD', zk, 'GT', time, ip)
  redis.call('ZREMRANGEBYRANK', zk, 0, -17)
  if conns > 0 then
    local lk = 'list_uuid_ip:' .. u
    for _ = 1, math.min(conns, 16) do redis.call('LPUSH', lk, ip .. '-' .. stamp) end
    redis.call('LTRIM', lk, 0, 15)
  end
end
return 1
"#;

/// Claim a session slot. KEYS: slot, server set, all sessions.
/// ARGV: session id, server id, ip, now, expires, ttl ms, exempt (0/1), uuid32, type.
const CLAIM_SCRIPT: &str = r#"
if ARGV[7] == '0' then
  local cur = redis.call('HMGET', KEYS[1], 'session_id', 'expires', 'server_id')
  if cur[1] then
    if cur[1] ~= ARGV[1] and tonumber(cur[2]) > tonumber(ARGV[4]) then return 0 end
    if cur[3] and cur[3] ~= ARGV[2] then
      redis.call('SREM', 'd4rs:server_sessions:' .. cur[3], KEYS[1])
    end
    if cur[1] ~= ARGV[1] then redis.call('DEL', KEYS[1]) end
  end
end
if redis.call('HEXISTS', KEYS[1], 'started') == 0 then
  redis.call('HSET', KEYS[1], 'started', ARGV[4])
end
redis.call('HSET', KEYS[1], 'uuid', ARGV[8], 'type', ARGV[9], 'session_id', ARGV[1],
  'server_id', ARGV[2], 'ip', ARGV[3], 'expires', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('SADD', KEYS[3], KEYS[1])
return 1
"#;

/// Renew a server's leases. KEYS: server set. ARGV: server id, expires, ttl ms.
const RENEW_SCRIPT: &str = r#"
local n = 0
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local owner = redis.call('HGET', k, 'server_id')
  if owner == ARGV[1] then
    redis.call('HSET', k, 'expires', ARGV[2])
    redis.call('PEXPIRE', k, ARGV[3])
    n = n + 1
  else
    redis.call('SREM', KEYS[1], k)
  end
end
return n
"#;

/// Release a session. KEYS: slot, all sessions. ARGV: session id.
const RELEASE_SCRIPT: &str = r#"
local cur = redis.call('HMGET', KEYS[1], 'session_id', 'server_id')
if cur[1] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], KEYS[1])
  if cur[2] then redis.call('SREM', 'd4rs:server_sessions:' .. cur[2], KEYS[1]) end
  return 1
end
return 0
"#;

/// Drop every session of a server. KEYS: server set, all sessions. ARGV: server id.
const CLEAR_SCRIPT: &str = r#"
local n = 0
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('HGET', k, 'server_id') == ARGV[1] then
    redis.call('DEL', k)
    n = n + 1
  end
  redis.call('SREM', KEYS[2], k)
end
redis.call('DEL', KEYS[1])
return n
"#;

/// Push entries to queues, LPUSH then LTRIM to max (keeping exactly max), counting what
/// was trimmed. KEYS: nq lists [, nq `analyzer:<q>` hashes, nq `d4rs:queue:<q>` hashes].
/// ARGV: nq, with-meta (0/1), now, nq max sizes, entries...
/// Body of the push scripts. KEYS: lists (then queue metas and d4rs queue hashes when
/// ARGV[2] is '1'). ARGV: nq, meta flag, now, max sizes, then the entries up to `argn`.
macro_rules! push_body {
    () => {
        r#"
local nq = tonumber(ARGV[1])
local meta = ARGV[2] == '1'
local first = 4 + nq
local out = {}
for i = 1, nq do
  local max = tonumber(ARGV[3 + i])
  local n = redis.call('LLEN', KEYS[i])
  local j = first
  while j <= argn do
    local last = math.min(j + 999, argn)
    n = redis.call('LPUSH', KEYS[i], unpack(ARGV, j, last))
    j = last + 1
  end
  local over = n - max
  if over > 0 then redis.call('LTRIM', KEYS[i], 0, max - 1) else over = 0 end
  if meta then
    redis.call('HSET', KEYS[nq + i], 'last_updated', ARGV[3])
    if over > 0 then redis.call('HINCRBY', KEYS[2 * nq + i], 'trimmed', over) end
  end
  out[i] = over
end
return out
"#
    };
}

const PUSH_SCRIPT: &str = concat!("local argn = #ARGV\n", push_body!());

/// The push at most once per journal position: the last KEY is the journal's marker
/// (`d4rs:journal:<uuid>`), the last ARGV the position as 20 decimal digits (compared as
/// strings: Lua numbers are doubles). Returns nil when the position was pushed already.
const PUSH_ONCE_SCRIPT: &str = concat!(
    "local argn = #ARGV - 1\n",
    "local mark = KEYS[#KEYS]\n",
    "local last = redis.call('GET', mark)\n",
    "if last and last >= ARGV[#ARGV] then return false end\n",
    "redis.call('SET', mark, ARGV[#ARGV])\n",
    push_body!()
);

/// Trim a list to max; returns how many were dropped. KEYS: list. ARGV: max.
const TRIM_SCRIPT: &str = r#"
local n = redis.call('LLEN', KEYS[1])
local over = n - tonumber(ARGV[1])
if over > 0 then redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[1]) - 1) return over end
return 0
"#;

fn eval(script: &str) -> redis::Cmd {
    let mut c = redis::cmd("EVAL");
    c.arg(script);
    c
}

impl RedisStore {
    /// `push_entries`, or with `once` = (journal, position) `push_entries_once` (the
    /// marker is checked and set in the same script as the push).
    async fn push_impl(
        &self,
        queues: Vec<Uuid>,
        entries: Vec<QueueEntry>,
        now: u64,
        once: Option<(Uuid, u64)>,
    ) -> Result<Option<PushOutcome>> {
        let mut uniq = Vec::new();
        for q in queues {
            if !uniq.contains(&q) {
                uniq.push(q);
            }
        }
        if uniq.is_empty() || entries.is_empty() {
            return Ok(Some(PushOutcome::default()));
        }
        // Round trip 1: kinds and max sizes.
        let mut pipe = redis::pipe();
        for q in &uniq {
            pipe.cmd("HMGET")
                .arg(keys::queue_meta(q))
                .arg("type")
                .arg("metatype")
                .arg("max_size");
        }
        let mut c = self.meta.clone();
        let metas: Vec<(Option<String>, Option<String>, Option<String>)> =
            pipe.query_async(&mut c).await.map_err(be)?;
        let mut targets = Vec::new();
        for (q, (t, m, max)) in uniq.iter().zip(metas) {
            let mut md = HashMap::new();
            if let Some(t) = t {
                md.insert("type".to_string(), t);
            }
            if let Some(m) = m {
                md.insert("metatype".to_string(), m);
            }
            let Some(kind) = kind_of(&md) else { continue };
            let max = max
                .and_then(|m| m.parse::<u64>().ok())
                .unwrap_or(DEFAULT_QUEUE_MAX_SIZE)
                .max(1);
            targets.push((*q, kind, max));
        }
        if targets.is_empty() {
            return Ok(Some(PushOutcome::default()));
        }
        // Round trip 2: push and trim (and the metadata when it lives in the same db).
        let nq = targets.len();
        let with_meta = self.same_queue_db;
        let mut cmd = eval(if once.is_some() {
            PUSH_ONCE_SCRIPT
        } else {
            PUSH_SCRIPT
        });
        cmd.arg(if with_meta { nq * 3 } else { nq } + usize::from(once.is_some()));
        for (q, kind, _) in &targets {
            cmd.arg(keys::queue_list(kind, q));
        }
        if with_meta {
            for (q, _, _) in &targets {
                cmd.arg(keys::queue_meta(q));
            }
            for (q, _, _) in &targets {
                cmd.arg(keys::d4rs_queue(q));
            }
        }
        if let Some((journal, _)) = &once {
            cmd.arg(keys::d4rs_journal(journal));
        }
        cmd.arg(nq).arg(if with_meta { "1" } else { "0" }).arg(now);
        for (_, _, max) in &targets {
            cmd.arg(*max);
        }
        for e in &entries {
            cmd.arg(e.data.as_slice());
        }
        if let Some((_, position)) = &once {
            cmd.arg(format!("{position:020}"));
        }
        let mut qc = self.queues.clone();
        let overs: Option<Vec<u64>> = cmd.query_async(&mut qc).await.map_err(be)?;
        let Some(overs) = overs else {
            return Ok(None);
        };
        let trimmed: u64 = overs.iter().sum();
        if !with_meta {
            // Round trip 3 (separate databases only).
            let mut pipe = redis::pipe();
            for ((q, _, _), over) in targets.iter().zip(&overs) {
                pipe.hset(keys::queue_meta(q), "last_updated", now).ignore();
                if *over > 0 {
                    pipe.hincr(keys::d4rs_queue(q), "trimmed", *over).ignore();
                }
            }
            let () = pipe.query_async(&mut c).await.map_err(be)?;
        }
        Ok(Some(PushOutcome {
            pushed: (nq * entries.len()) as u64,
            trimmed,
        }))
    }

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

        let mut init = eval(INIT_SCRIPT);
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
        let listener = spawn_listener(main_client, events.clone()).await?;
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

    /// Performs the kicks d4-core's UI requested: its kick button does
    /// `SADD server:sensor_to_kick <sensor>` in the stream database (d4-rs's main one).
    /// Each member is taken (`SPOP`: with several servers, one of them takes it) and
    /// becomes [`Store::request_kick`]: the 30 s block and the `kick` event every server
    /// acts on. Members that are not uuids are dropped with a warning. Returns the kicks.
    pub async fn take_core_kicks(&self, now: u64) -> Result<usize> {
        let mut c = self.main.clone();
        let members: Vec<String> = redis::cmd("SPOP")
            .arg(keys::SENSOR_TO_KICK)
            .arg(100)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut kicked = 0;
        for m in members {
            match Uuid::parse_str(m.trim()) {
                Ok(uuid) => {
                    tracing::info!(sensor = %uuid.simple(), "kick requested through server:sensor_to_kick");
                    self.request_kick(uuid, now).await?;
                    kicked += 1;
                }
                Err(_) => tracing::warn!(member = %m, "not a sensor uuid in server:sensor_to_kick"),
            }
        }
        Ok(kicked)
    }

    /// This store with a background task that performs d4-core's UI kicks
    /// ([`RedisStore::take_core_kicks`]) every second, for as long as a clone of the
    /// returned store lives. What the collector opens (`StoreConfig::core_kicks`): d4-core
    /// looked at the set only when some sensor sent data; this looks every second.
    pub fn with_core_kicks(mut self) -> RedisStore {
        let worker = self.clone(); // without the task's handle: no cycle
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = worker.take_core_kicks(now()).await {
                    tracing::warn!(error = %e, "reading server:sensor_to_kick failed");
                }
            }
        });
        self._core_kicks = Some(Arc::new(AbortOnDrop(task)));
        self
    }

    async fn publish(&self, ev: StoreEvent) -> Result<()> {
        let json = to_json(&ev)?;
        let mut c = self.main.clone();
        let _: i64 = redis::cmd("PUBLISH")
            .arg(EVENTS_CHANNEL)
            .arg(json)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        Ok(())
    }

    /// Read many sensors in one round trip; `None` for unknown ones.
    async fn fetch_sensors(&self, uuids: &[Uuid]) -> Result<Vec<Option<Sensor>>> {
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for u in uuids {
            let s = sid(u);
            pipe.sismember(keys::SENSORS, &s)
                .hgetall(keys::metadata_uuid(u))
                .hgetall(keys::d4rs_sensor(u))
                .sismember(keys::REGISTERED, &s)
                .sismember(keys::PENDING, &s)
                .hget(keys::STREAM_MAX, &s)
                .zrevrange_withscores(keys::sensor_ips(u), 0, -1)
                .hgetall(keys::type_seen(u))
                .hget(keys::to_monitor(u), "delta_time");
        }
        let mut c = self.meta.clone();
        let vals: Vec<redis::Value> = pipe.query_async(&mut c).await.map_err(be)?;
        if vals.len() != uuids.len() * 9 {
            return Err(bad("pipeline length", vals.len()));
        }
        let mut out = Vec::with_capacity(uuids.len());
        let mut it = vals.into_iter();
        for u in uuids {
            let mut next = || it.next().unwrap_or(redis::Value::Nil);
            let known: bool = from_value(next())?;
            let md: HashMap<String, String> = from_value(next())?;
            let ext: HashMap<String, String> = from_value(next())?;
            let registered: bool = from_value(next())?;
            let pending: bool = from_value(next())?;
            let limit: Option<String> = from_value(next())?;
            let ips: Vec<(String, f64)> = from_value(next())?;
            let types: HashMap<String, String> = from_value(next())?;
            let delta: Option<String> = from_value(next())?;
            if !(known || registered || pending || !md.is_empty()) {
                out.push(None);
                continue;
            }
            let mut s = Sensor::new(*u);
            s.status = if registered {
                SensorStatus::Approved
            } else if pending {
                SensorStatus::Pending
            } else {
                SensorStatus::Unregistered
            };
            s.hmac_key = md.get("hmac_key").cloned();
            s.description = md.get("description").cloned().unwrap_or_default();
            s.mail = md.get("user_mail").cloned();
            s.third_party = md
                .get("third_party")
                .is_some_and(|v| matches!(v.as_str(), "True" | "true" | "1"));
            s.registered_at = num(ext.get("registered_at"));
            s.first_seen = num(md.get("first_seen"));
            s.last_seen = num(md.get("last_seen"));
            s.last_error = md.get("Error").map(|m| SensorError {
                time: num(ext.get("error_time")).unwrap_or(0),
                message: m.clone(),
            });
            s.last_ips = ips
                .into_iter()
                .filter_map(|(ip, t)| ip.parse().ok().map(|ip| IpSeen { ip, time: t as u64 }))
                .take(LAST_IPS)
                .collect();
            s.stream_limit = limit.as_ref().and_then(|l| l.parse().ok());
            s.monitoring_threshold = delta.as_ref().and_then(|d| d.parse().ok());
            let mut seen: BTreeMap<(u8, Option<String>), TypeSeen> = BTreeMap::new();
            for (field, v) in &types {
                let Some((tk, which)) = field.rsplit_once('/') else {
                    continue;
                };
                let (t, e) = match tk.split_once(':') {
                    Some((t, e)) => (t, Some(e.to_string())),
                    None => (tk, None),
                };
                let (Ok(t), Some(v)) = (t.parse::<u8>(), num(Some(v))) else {
                    continue;
                };
                let entry = seen.entry((t, e.clone())).or_insert(TypeSeen {
                    d4_type: t,
                    ext: e,
                    first_seen: v,
                    last_seen: v,
                });
                match which {
                    "first" => entry.first_seen = v,
                    _ => entry.last_seen = v,
                }
            }
            s.types = seen.into_values().collect();
            out.push(Some(s));
        }
        Ok(out)
    }

    async fn sensor_or_err(&self, uuid: Uuid) -> Result<Sensor> {
        self.get_sensor(uuid)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("sensor {}", sid(&uuid))))
    }

    /// Settings and counters of queues (None for unknown ones).
    async fn fetch_queues(&self, uuids: &[Uuid]) -> Result<Vec<Option<Queue>>> {
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for q in uuids {
            pipe.hgetall(keys::queue_meta(q))
                .hgetall(keys::d4rs_queue(q))
                .smembers(keys::queue_group(q));
        }
        let mut c = self.meta.clone();
        let vals: Vec<redis::Value> = pipe.query_async(&mut c).await.map_err(be)?;
        let mut it = vals.into_iter();
        let mut partial = Vec::new();
        for q in uuids {
            let md: HashMap<String, String> = from_value(it.next().unwrap_or_default())?;
            let ext: HashMap<String, String> = from_value(it.next().unwrap_or_default())?;
            let group: Vec<String> = from_value(it.next().unwrap_or_default())?;
            let Some(kind) = kind_of(&md) else {
                partial.push(None);
                continue;
            };
            // The group in the order it was given (d4-rs), else d4-core's set.
            let sensors = match ext.get("group").map(String::as_str) {
                Some("0") => None,
                Some(json) if json != "1" => Some(from_json::<Vec<Uuid>>(json)?),
                _ if !group.is_empty() || ext.contains_key("group") => {
                    let mut g: Vec<Uuid> = group.iter().filter_map(|s| s.parse().ok()).collect();
                    g.sort();
                    Some(g)
                }
                _ => None,
            };
            partial.push(Some(Queue {
                config: QueueConfig {
                    uuid: *q,
                    kind,
                    description: md.get("description").cloned().unwrap_or_default(),
                    max_size: num(md.get("max_size")).unwrap_or(DEFAULT_QUEUE_MAX_SIZE),
                    sensors,
                },
                created: num(ext.get("created")).unwrap_or(0),
                last_updated: num(md.get("last_updated")).unwrap_or(0),
                len: 0,
                trimmed: num(ext.get("trimmed")).unwrap_or(0),
            }));
        }
        let mut pipe = redis::pipe();
        let mut any = false;
        for q in partial.iter().flatten() {
            pipe.llen(keys::queue_list(&q.config.kind, &q.config.uuid));
            any = true;
        }
        if any {
            let mut c = self.queues.clone();
            let lens: Vec<u64> = pipe.query_async(&mut c).await.map_err(be)?;
            let mut lens = lens.into_iter();
            for q in partial.iter_mut().flatten() {
                q.len = lens.next().unwrap_or(0);
            }
        }
        Ok(partial)
    }

    async fn queue_or_err(&self, uuid: Uuid) -> Result<Queue> {
        self.fetch_queues(&[uuid])
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| StoreError::NotFound(format!("queue {}", qid(&uuid))))
    }

    /// The list key of a queue, `NotFound` if it does not exist.
    async fn list_key(&self, uuid: Uuid) -> Result<String> {
        let mut c = self.meta.clone();
        let md: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys::queue_meta(&uuid))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let kind =
            kind_of(&md).ok_or_else(|| StoreError::NotFound(format!("queue {}", qid(&uuid))))?;
        Ok(keys::queue_list(&kind, &uuid))
    }

    /// Write a queue's settings and its set memberships (create or update).
    fn queue_settings_pipe(pipe: &mut redis::Pipeline, c: &QueueConfig, now: u64) {
        let q = &c.uuid;
        let (t, meta) = match &c.kind {
            QueueKind::Type(t) => (*t, None),
            QueueKind::Ext(e) => (254u8, Some(e.clone())),
        };
        pipe.hset(keys::queue_meta(q), "type", t).ignore();
        match meta {
            Some(m) => pipe.hset(keys::queue_meta(q), "metatype", m).ignore(),
            None => pipe.hdel(keys::queue_meta(q), "metatype").ignore(),
        };
        pipe.hset(keys::queue_meta(q), "description", &c.description)
            .ignore()
            .hset(keys::queue_meta(q), "max_size", c.max_size)
            .ignore()
            .hset(keys::queue_meta(q), "last_updated", now)
            .ignore()
            .sadd(keys::ALL_QUEUES, qid(q))
            .ignore();
        match &c.sensors {
            Some(group) => {
                pipe.hset(
                    keys::d4rs_queue(q),
                    "group",
                    serde_json::to_string(group).unwrap_or_else(|_| "1".into()),
                )
                .ignore()
                .sadd(keys::queues_of_kind(&c.kind, true), qid(q))
                .ignore();
                for s in group {
                    pipe.sadd(keys::queue_group(q), sid(s))
                        .ignore()
                        .sadd(keys::sensor_queues(&c.kind, s), qid(q))
                        .ignore();
                }
            }
            None => {
                pipe.hset(keys::d4rs_queue(q), "group", "0")
                    .ignore()
                    .sadd(keys::queues_of_kind(&c.kind, false), qid(q))
                    .ignore();
            }
        }
    }

    /// Remove a queue's set memberships (before an update or a delete).
    fn queue_unlink_pipe(pipe: &mut redis::Pipeline, q: &Queue) {
        let c = &q.config;
        let id = qid(&c.uuid);
        pipe.srem(keys::queues_of_kind(&c.kind, false), &id)
            .ignore()
            .srem(keys::queues_of_kind(&c.kind, true), &id)
            .ignore()
            .del(keys::queue_group(&c.uuid))
            .ignore();
        for s in c.sensors.iter().flatten() {
            pipe.srem(keys::sensor_queues(&c.kind, s), &id).ignore();
        }
    }

    async fn blocking_pop_one(&self, key: &str, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(timeout + Duration::from_secs(5)));
        let mut c = self
            .queue_client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(be)?;
        let secs = timeout.as_secs_f64().max(0.001);
        let got: Option<(String, Vec<u8>)> = redis::cmd("BRPOP")
            .arg(key)
            .arg(format!("{secs:.3}"))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        Ok(got.map(|(_, v)| v))
    }
}

fn from_value<T: redis::FromRedisValue>(v: redis::Value) -> Result<T> {
    redis::from_redis_value(v).map_err(|e| StoreError::Backend(format!("redis: {e}")))
}

fn kind_of(md: &HashMap<String, String>) -> Option<QueueKind> {
    let t: u8 = md.get("type")?.parse().ok()?;
    match (t, md.get("metatype")) {
        (254, Some(m)) => Some(QueueKind::Ext(m.clone())),
        (t, _) => Some(QueueKind::Type(t)),
    }
}

/// Subscribe to the events channel (waiting for the first subscription), then forward
/// every event to `tx`, re-subscribing after connection losses.
async fn spawn_listener(
    client: redis::Client,
    tx: broadcast::Sender<StoreEvent>,
) -> Result<tokio::task::JoinHandle<()>> {
    use futures_util::StreamExt;
    let mut first = Some(
        client
            .get_async_pubsub()
            .await
            .map_err(|e| StoreError::Connection(format!("redis pub/sub: {e}")))?,
    );
    if let Some(ps) = first.as_mut() {
        ps.subscribe(EVENTS_CHANNEL)
            .await
            .map_err(|e| StoreError::Connection(format!("redis subscribe: {e}")))?;
    }
    Ok(tokio::spawn(async move {
        loop {
            let ps = match first.take() {
                Some(ps) => Some(ps),
                None => match client.get_async_pubsub().await {
                    Ok(mut ps) => match ps.subscribe(EVENTS_CHANNEL).await {
                        Ok(()) => {
                            tracing::info!("redis events subscription restored");
                            Some(ps)
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "redis subscribe failed");
                            None
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "redis pub/sub connection failed");
                        None
                    }
                },
            };
            if let Some(ps) = ps {
                let mut stream = ps.into_on_message();
                while let Some(msg) = stream.next().await {
                    match serde_json::from_slice::<StoreEvent>(msg.get_payload_bytes()) {
                        Ok(ev) => {
                            let _ = tx.send(ev);
                        }
                        Err(e) => tracing::warn!(error = %e, "bad event on {EVENTS_CHANNEL}"),
                    }
                }
                tracing::warn!("redis events subscription lost; reconnecting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }))
}

#[async_trait]
impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    // ---- sensors ----
    async fn register_sensor(&self, reg: SensorRegistration) -> Result<Sensor> {
        let u = reg.uuid;
        let s = sid(&u);
        let mut c = self.meta.clone();
        let (registered, pending): (bool, bool) = redis::pipe()
            .sismember(keys::REGISTERED, &s)
            .sismember(keys::PENDING, &s)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        if registered || pending {
            return Err(StoreError::AlreadyExists(format!("sensor {s}")));
        }
        let md = keys::metadata_uuid(&u);
        let mut pipe = redis::pipe();
        pipe.atomic();
        match &reg.hmac_key {
            Some(k) => pipe.hset(&md, "hmac_key", k).ignore(),
            None => pipe.hdel(&md, "hmac_key").ignore(),
        };
        if let Some(m) = &reg.mail {
            pipe.hset(&md, "user_mail", m).ignore();
        }
        if let Some(d) = &reg.description {
            pipe.hset(&md, "description", d).ignore();
        }
        if reg.third_party {
            pipe.hset(&md, "third_party", "True").ignore();
        } else {
            pipe.hdel(&md, "third_party").ignore();
        }
        pipe.hset(keys::d4rs_sensor(&u), "registered_at", now())
            .ignore()
            .sadd(keys::SENSORS, &s)
            .ignore();
        if reg.approve {
            pipe.sadd(keys::REGISTERED, &s).ignore();
        } else {
            pipe.sadd(keys::PENDING, &s).ignore();
        }
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        self.publish(StoreEvent::SensorChanged { uuid: u }).await?;
        self.sensor_or_err(u).await
    }

    async fn approve_sensor(&self, uuid: Uuid) -> Result<Sensor> {
        let mut s = self.sensor_or_err(uuid).await?;
        let id = sid(&uuid);
        let mut c = self.meta.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .srem(keys::PENDING, &id)
            .ignore()
            .sadd(keys::REGISTERED, &id)
            .ignore()
            .sadd(keys::SENSORS, &id)
            .ignore();
        if s.registered_at.is_none() {
            let t = now();
            pipe.hset(keys::d4rs_sensor(&uuid), "registered_at", t)
                .ignore();
            s.registered_at = Some(t);
        }
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        s.status = SensorStatus::Approved;
        self.publish(StoreEvent::SensorChanged { uuid }).await?;
        Ok(s)
    }

    async fn delete_sensor(&self, uuid: Uuid) -> Result<bool> {
        let Some(s) = self.get_sensor(uuid).await? else {
            return Ok(false);
        };
        let id = sid(&uuid);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(keys::metadata_uuid(&uuid))
            .ignore()
            .del(keys::d4rs_sensor(&uuid))
            .ignore()
            .del(keys::sensor_ips(&uuid))
            .ignore()
            .del(keys::type_seen(&uuid))
            .ignore()
            .del(keys::list_uuid_ip(&uuid))
            .ignore()
            .del(keys::all_types_by_uuid(&uuid))
            .ignore()
            .del(keys::all_extended_types_by_uuid(&uuid))
            .ignore()
            .srem(keys::SENSORS, &id)
            .ignore()
            .srem(keys::REGISTERED, &id)
            .ignore()
            .srem(keys::PENDING, &id)
            .ignore()
            .hdel(keys::STREAM_MAX, &id)
            .ignore()
            .srem(keys::TO_MONITOR, &id)
            .ignore()
            .del(keys::to_monitor(&uuid))
            .ignore()
            .srem(keys::MONITORING_ERRORS, &id)
            .ignore();
        for t in &s.types {
            pipe.del(format!("metadata_type_by_uuid:{id}:{}", t.d4_type))
                .ignore();
            if let Some(ext) = &t.ext {
                pipe.del(keys::metadata_extended_type(&uuid, ext)).ignore();
            }
        }
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        self.publish(StoreEvent::SensorChanged { uuid }).await?;
        Ok(true)
    }

    async fn get_sensor(&self, uuid: Uuid) -> Result<Option<Sensor>> {
        Ok(self.fetch_sensors(&[uuid]).await?.pop().flatten())
    }

    async fn list_sensors(&self) -> Result<Vec<Sensor>> {
        let mut c = self.meta.clone();
        let ids: Vec<String> = redis::cmd("SUNION")
            .arg(keys::SENSORS)
            .arg(keys::REGISTERED)
            .arg(keys::PENDING)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut uuids: Vec<Uuid> = ids.iter().filter_map(|s| s.parse().ok()).collect();
        uuids.sort();
        uuids.dedup();
        Ok(self
            .fetch_sensors(&uuids)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    async fn update_sensor(&self, uuid: Uuid, update: SensorUpdate) -> Result<Sensor> {
        if update.monitoring_threshold == Some(Some(0)) {
            return Err(StoreError::Invalid("monitoring threshold 0".into()));
        }
        let id = sid(&uuid);
        let md = keys::metadata_uuid(&uuid);
        let mut pipe = redis::pipe();
        pipe.atomic().sadd(keys::SENSORS, &id).ignore();
        match &update.hmac_key {
            Some(Some(k)) => {
                pipe.hset(&md, "hmac_key", k).ignore();
            }
            Some(None) => {
                pipe.hdel(&md, "hmac_key").ignore();
            }
            None => {}
        }
        if let Some(d) = &update.description {
            pipe.hset(&md, "description", d).ignore();
        }
        match update.stream_limit {
            Some(Some(l)) => {
                pipe.hset(keys::STREAM_MAX, &id, l).ignore();
            }
            Some(None) => {
                pipe.hdel(keys::STREAM_MAX, &id).ignore();
            }
            None => {}
        }
        match update.monitoring_threshold {
            Some(Some(d)) => {
                pipe.sadd(keys::TO_MONITOR, &id)
                    .ignore()
                    .hset(keys::to_monitor(&uuid), "delta_time", d)
                    .ignore()
                    .set(keys::MONITORING_UPDATED, crate::now())
                    .ignore();
            }
            Some(None) => {
                pipe.srem(keys::TO_MONITOR, &id)
                    .ignore()
                    .del(keys::to_monitor(&uuid))
                    .ignore()
                    .srem(keys::MONITORING_ERRORS, &id)
                    .ignore()
                    .set(keys::MONITORING_UPDATED, crate::now())
                    .ignore();
            }
            None => {}
        }
        match &update.mail {
            Some(Some(m)) => {
                pipe.hset(&md, "user_mail", m).ignore();
            }
            Some(None) => {
                pipe.hdel(&md, "user_mail").ignore();
            }
            None => {}
        }
        match update.third_party {
            Some(true) => {
                pipe.hset(&md, "third_party", "True").ignore();
            }
            Some(false) => {
                pipe.hdel(&md, "third_party").ignore();
            }
            None => {}
        }
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        self.publish(StoreEvent::SensorChanged { uuid }).await?;
        self.sensor_or_err(uuid).await
    }

    async fn record_sensor_error(&self, uuid: Uuid, time: u64, message: String) -> Result<()> {
        let mut c = self.meta.clone();
        let () = redis::pipe()
            .atomic()
            .hset(keys::metadata_uuid(&uuid), "Error", message)
            .ignore()
            .hset(keys::d4rs_sensor(&uuid), "error_time", time)
            .ignore()
            .sadd(keys::SENSORS, sid(&uuid))
            .ignore()
            .query_async(&mut c)
            .await
            .map_err(be)?;
        Ok(())
    }

    async fn record_activity(&self, batch: ActivityBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for d in &batch.stats {
            let day = d.day;
            let u = sid(&d.uuid);
            let ip = d.ip.to_string();
            let t = d.d4_type;
            let (f, b) = (d.frames, d.bytes);
            for (key, member) in [
                (format!("daily_uuid:{day}"), u.clone()),
                (format!("daily_ip:{day}"), ip.clone()),
                (format!("daily_type:{day}"), t.to_string()),
                (format!("stat_uuid_ip:{day}:{u}"), ip.clone()),
                (format!("stat_uuid_type:{day}:{u}"), t.to_string()),
            ] {
                pipe.zincr(&key, &member, f)
                    .ignore()
                    .zincr(format!("d4rs:bytes:{key}"), &member, b)
                    .ignore();
            }
            pipe.zincr(format!("stat_ip_uuid:{day}:{ip}"), &u, f)
                .ignore()
                .zincr(format!("stat_type_uuid:{day}:{t}"), &u, f)
                .ignore();
        }
        if !batch.seen.is_empty() {
            let mut cmd = eval(SEEN_SCRIPT);
            cmd.arg(0);
            for s in &batch.seen {
                cmd.arg(sid(&s.uuid))
                    .arg(s.ip.to_string())
                    .arg(s.d4_type)
                    .arg(type_key(s.d4_type, &s.ext))
                    .arg(s.time)
                    .arg(format_stamp(s.time))
                    .arg(s.connections);
            }
            pipe.add_command(cmd).ignore();
        }
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        Ok(())
    }

    async fn day_stats(&self, day: u32) -> Result<DayStats> {
        type Z = Vec<(String, f64)>;
        let mut c = self.meta.clone();
        let mut pipe = redis::pipe();
        for k in ["daily_uuid", "daily_ip", "daily_type"] {
            pipe.zrange_withscores(format!("{k}:{day}"), 0, -1)
                .zrange_withscores(format!("d4rs:bytes:{k}:{day}"), 0, -1);
        }
        let (uf, ub, ipf, ipb, tf, tb): (Z, Z, Z, Z, Z, Z) =
            pipe.query_async(&mut c).await.map_err(be)?;
        let mut map: BTreeMap<StatsKey, Counter> = BTreeMap::new();
        fn add(
            map: &mut BTreeMap<StatsKey, Counter>,
            f: Z,
            b: Z,
            key: impl Fn(&str) -> Option<StatsKey>,
        ) {
            for (m, s) in f {
                if let Some(k) = key(&m) {
                    map.entry(k).or_default().frames += s as u64;
                }
            }
            for (m, s) in b {
                if let Some(k) = key(&m) {
                    map.entry(k).or_default().bytes += s as u64;
                }
            }
        }
        let sensors: Vec<Uuid> = uf.iter().filter_map(|(m, _)| m.parse().ok()).collect();
        add(&mut map, uf, ub, |m| {
            m.parse().ok().map(|uuid| StatsKey::Sensor { uuid })
        });
        add(&mut map, ipf, ipb, |m| {
            m.parse().ok().map(|ip| StatsKey::Ip { ip })
        });
        add(&mut map, tf, tb, |m| {
            m.parse().ok().map(|d4_type| StatsKey::Type { d4_type })
        });
        if !sensors.is_empty() {
            let mut pipe = redis::pipe();
            for u in &sensors {
                let id = sid(u);
                pipe.zrange_withscores(format!("stat_uuid_ip:{day}:{id}"), 0, -1)
                    .zrange_withscores(format!("d4rs:bytes:stat_uuid_ip:{day}:{id}"), 0, -1)
                    .zrange_withscores(format!("stat_uuid_type:{day}:{id}"), 0, -1)
                    .zrange_withscores(format!("d4rs:bytes:stat_uuid_type:{day}:{id}"), 0, -1);
            }
            let vals: Vec<Z> = pipe.query_async(&mut c).await.map_err(be)?;
            let mut it = vals.into_iter();
            for u in sensors {
                let (ipf, ipb, tf, tb) = (
                    it.next().unwrap_or_default(),
                    it.next().unwrap_or_default(),
                    it.next().unwrap_or_default(),
                    it.next().unwrap_or_default(),
                );
                add(&mut map, ipf, ipb, |m| {
                    m.parse().ok().map(|ip| StatsKey::SensorIp { uuid: u, ip })
                });
                add(&mut map, tf, tb, |m| {
                    m.parse()
                        .ok()
                        .map(|d4_type| StatsKey::SensorType { uuid: u, d4_type })
                });
            }
        }
        Ok(DayStats {
            day,
            entries: map.into_iter().collect(),
        })
    }

    // ---- blocklists ----
    async fn add_block(&self, block: Block) -> Result<()> {
        let mut block = block;
        block.target = normalize_target(block.target);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(keys::BLOCKS, block_field(&block.target), to_json(&block)?)
            .ignore();
        if let Some((set, member)) = block_mirror(&block.target) {
            if block.expires.is_none() {
                pipe.sadd(set, member).ignore();
            } else {
                pipe.srem(set, member).ignore();
            }
        }
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        self.publish(StoreEvent::BlocklistChanged).await
    }

    async fn remove_block(&self, target: BlockTarget) -> Result<bool> {
        let target = normalize_target(target);
        let mut pipe = redis::pipe();
        pipe.atomic().hdel(keys::BLOCKS, block_field(&target));
        let mirror = block_mirror(&target);
        if let Some((set, member)) = &mirror {
            pipe.srem(*set, member);
        }
        let mut c = self.meta.clone();
        let vals: Vec<i64> = pipe.query_async(&mut c).await.map_err(be)?;
        let existed = vals.iter().any(|&n| n > 0);
        if existed {
            self.publish(StoreEvent::BlocklistChanged).await?;
        }
        Ok(existed)
    }

    async fn list_blocks(&self, now: u64) -> Result<Vec<Block>> {
        let mut c = self.meta.clone();
        let (all, ips, uuids, ips_by_uuid): (
            HashMap<String, String>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
        ) = redis::pipe()
            .hgetall(keys::BLOCKS)
            .smembers(keys::BLACKLIST_IP)
            .smembers(keys::BLACKLIST_UUID)
            .smembers(keys::BLACKLIST_IP_BY_UUID)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut out: Vec<Block> = Vec::new();
        let mut seen = HashSet::new();
        for v in all.values() {
            let b: Block = from_json(v)?;
            seen.insert(b.target.clone());
            if b.active_at(now) {
                out.push(b);
            }
        }
        // Entries that d4-core's tools added to its sets directly.
        let external = ips
            .iter()
            .filter_map(|s| {
                s.parse::<IpAddr>()
                    .ok()
                    .map(|ip| BlockTarget::Ip(IpNet::from(ip)))
            })
            .chain(
                uuids
                    .iter()
                    .filter_map(|s| s.parse().ok().map(BlockTarget::Uuid)),
            )
            .chain(
                ips_by_uuid
                    .iter()
                    .filter_map(|s| s.parse().ok().map(BlockTarget::IpsOfUuid)),
            );
        for target in external {
            if seen.insert(target.clone()) {
                out.push(external_block(target));
            }
        }
        out.sort_by(|a, b| a.target.cmp(&b.target));
        Ok(out)
    }

    async fn check_blocked(
        &self,
        ip: IpAddr,
        uuid: Option<Uuid>,
        now: u64,
    ) -> Result<Option<Block>> {
        let mut fields: Vec<BlockTarget> = Vec::new();
        if let Some(u) = uuid {
            fields.push(BlockTarget::Uuid(u));
            fields.push(BlockTarget::IpsOfUuid(u));
        }
        let max = if ip.is_ipv4() { 32 } else { 128 };
        for len in (0..=max).rev() {
            if let Ok(net) = IpNet::new(ip, len) {
                fields.push(BlockTarget::Ip(net.trunc()));
            }
        }
        let mut pipe = redis::pipe();
        let names: Vec<String> = fields.iter().map(block_field).collect();
        pipe.cmd("HMGET").arg(keys::BLOCKS).arg(&names);
        let id = uuid.map(|u| sid(&u)).unwrap_or_default();
        pipe.sismember(keys::BLACKLIST_UUID, &id)
            .sismember(keys::BLACKLIST_IP_BY_UUID, &id)
            .sismember(keys::BLACKLIST_IP, ip.to_string());
        let mut c = self.meta.clone();
        let (found, by_uuid, ips_of_uuid, by_ip): (Vec<Option<String>>, bool, bool, bool) =
            pipe.query_async(&mut c).await.map_err(be)?;
        for (target, v) in fields.iter().zip(found) {
            if let Some(v) = v {
                let b: Block = from_json(&v)?;
                if b.active_at(now) {
                    return Ok(Some(b));
                }
            }
            // A d4-core set entry without a d4-rs record (added by d4-core's tools).
            let external = match target {
                BlockTarget::Uuid(_) => by_uuid,
                BlockTarget::IpsOfUuid(_) => ips_of_uuid,
                BlockTarget::Ip(net) => net.prefix_len() == max && by_ip,
            };
            if external {
                return Ok(Some(external_block(target.clone())));
            }
        }
        Ok(None)
    }

    async fn request_kick(&self, uuid: Uuid, now: u64) -> Result<()> {
        let target = BlockTarget::Uuid(uuid);
        let until = now + KICK_BLOCK_SECS;
        let mut c = self.meta.clone();
        let existing: Option<String> = redis::cmd("HGET")
            .arg(keys::BLOCKS)
            .arg(block_field(&target))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let keep = match existing {
            Some(v) => from_json::<Block>(&v)?.active_at(until),
            None => false,
        };
        if !keep {
            let block = Block {
                target: target.clone(),
                reason: "kick".into(),
                created: now,
                expires: Some(until),
            };
            let () = redis::cmd("HSET")
                .arg(keys::BLOCKS)
                .arg(block_field(&target))
                .arg(to_json(&block)?)
                .query_async(&mut c)
                .await
                .map_err(be)?;
        }
        // d4-core's own temporary block (its servers check it).
        let mut m = self.main.clone();
        let () = redis::cmd("SET")
            .arg(keys::temp_blacklist_uuid(&uuid))
            .arg("kick")
            .arg("EX")
            .arg(KICK_BLOCK_SECS)
            .query_async(&mut m)
            .await
            .map_err(be)?;
        self.publish(StoreEvent::BlocklistChanged).await?;
        self.publish(StoreEvent::Kick { uuid }).await
    }

    // ---- accepted types ----
    async fn accepted_types(&self) -> Result<Vec<u8>> {
        let mut c = self.meta.clone();
        let v: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::ACCEPTED_TYPES)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut t: Vec<u8> = v.iter().filter_map(|s| s.parse().ok()).collect();
        t.sort_unstable();
        t.dedup();
        Ok(t)
    }

    async fn set_type_accepted(&self, d4_type: u8, accepted: bool) -> Result<()> {
        let mut c = self.meta.clone();
        let cmd = if accepted { "SADD" } else { "SREM" };
        let _: i64 = redis::cmd(cmd)
            .arg(keys::ACCEPTED_TYPES)
            .arg(d4_type)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        self.publish(StoreEvent::TypesChanged).await
    }

    async fn accepted_ext_types(&self) -> Result<Vec<String>> {
        let mut c = self.meta.clone();
        let mut v: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::ACCEPTED_EXT)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        v.sort();
        Ok(v)
    }

    async fn set_ext_type_accepted(&self, ext: String, accepted: bool) -> Result<()> {
        check_ext_name(&ext)?;
        let mut c = self.meta.clone();
        let cmd = if accepted { "SADD" } else { "SREM" };
        let _: i64 = redis::cmd(cmd)
            .arg(keys::ACCEPTED_EXT)
            .arg(&ext)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        self.publish(StoreEvent::TypesChanged).await
    }

    // ---- active sessions ----
    async fn try_claim_session(&self, claim: SessionClaim, now: u64) -> Result<bool> {
        let key = keys::session(&claim.uuid, claim.d4_type, &claim.session_id);
        let exempt = SESSION_EXEMPT_TYPES.contains(&claim.d4_type);
        let ttl_ms = claim.lease_secs.max(1).saturating_mul(1000);
        let mut cmd = eval(CLAIM_SCRIPT);
        cmd.arg(3)
            .arg(&key)
            .arg(keys::server_sessions(&claim.server_id))
            .arg(keys::SESSIONS)
            .arg(claim.session_id.to_string())
            .arg(&claim.server_id)
            .arg(claim.ip.to_string())
            .arg(now)
            .arg(now + claim.lease_secs)
            .arg(ttl_ms)
            .arg(if exempt { "1" } else { "0" })
            .arg(sid(&claim.uuid))
            .arg(claim.d4_type);
        let mut c = self.main.clone();
        let ok: i64 = cmd.query_async(&mut c).await.map_err(be)?;
        Ok(ok == 1)
    }

    async fn renew_sessions(&self, server_id: String, lease_secs: u64, now: u64) -> Result<u64> {
        let mut cmd = eval(RENEW_SCRIPT);
        cmd.arg(1)
            .arg(keys::server_sessions(&server_id))
            .arg(&server_id)
            .arg(now + lease_secs)
            .arg(lease_secs.max(1).saturating_mul(1000));
        let mut c = self.main.clone();
        let n: u64 = cmd.query_async(&mut c).await.map_err(be)?;
        Ok(n)
    }

    async fn release_session(&self, uuid: Uuid, d4_type: u8, session_id: Uuid) -> Result<()> {
        let mut cmd = eval(RELEASE_SCRIPT);
        cmd.arg(2)
            .arg(keys::session(&uuid, d4_type, &session_id))
            .arg(keys::SESSIONS)
            .arg(session_id.to_string());
        let mut c = self.main.clone();
        let _: i64 = cmd.query_async(&mut c).await.map_err(be)?;
        Ok(())
    }

    async fn list_sessions(&self, now: u64) -> Result<Vec<ActiveSession>> {
        let mut c = self.main.clone();
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::SESSIONS)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for k in &members {
            pipe.hgetall(k);
        }
        let vals: Vec<HashMap<String, String>> = pipe.query_async(&mut c).await.map_err(be)?;
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (k, h) in members.iter().zip(vals) {
            let parsed = (|| {
                Some(ActiveSession {
                    uuid: h.get("uuid")?.parse().ok()?,
                    d4_type: h.get("type")?.parse().ok()?,
                    session_id: h.get("session_id")?.parse().ok()?,
                    server_id: h.get("server_id")?.clone(),
                    ip: h.get("ip")?.parse().ok()?,
                    started: num(h.get("started"))?,
                    expires: num(h.get("expires"))?,
                })
            })();
            match parsed {
                Some(s) if s.expires > now => out.push(s),
                Some(_) => {}
                None => gone.push(k.clone()),
            }
        }
        if !gone.is_empty() {
            let _: i64 = redis::cmd("SREM")
                .arg(keys::SESSIONS)
                .arg(&gone)
                .query_async(&mut c)
                .await
                .map_err(be)?;
        }
        out.sort_by_key(|s| (s.uuid, s.d4_type, s.session_id));
        Ok(out)
    }

    async fn clear_sessions(&self, server_id: String) -> Result<u64> {
        let mut cmd = eval(CLEAR_SCRIPT);
        cmd.arg(2)
            .arg(keys::server_sessions(&server_id))
            .arg(keys::SESSIONS)
            .arg(&server_id);
        let mut c = self.main.clone();
        let n: u64 = cmd.query_async(&mut c).await.map_err(be)?;
        Ok(n)
    }

    // ---- analyzer queues ----
    async fn create_queue(&self, config: QueueConfig, now: u64) -> Result<Queue> {
        check_queue_config(&config)?;
        let mut c = self.meta.clone();
        // Claim the uuid atomically: the `type` field marks existence (as d4-core).
        let t = match &config.kind {
            QueueKind::Type(t) => *t,
            QueueKind::Ext(_) => 254,
        };
        let fresh: bool = redis::cmd("HSETNX")
            .arg(keys::queue_meta(&config.uuid))
            .arg("type")
            .arg(t)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        if !fresh {
            return Err(StoreError::AlreadyExists(format!(
                "queue {}",
                qid(&config.uuid)
            )));
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        Self::queue_settings_pipe(&mut pipe, &config, now);
        pipe.hset(keys::d4rs_queue(&config.uuid), "created", now)
            .ignore()
            .hset(keys::d4rs_queue(&config.uuid), "trimmed", 0)
            .ignore();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        self.publish(StoreEvent::QueuesChanged).await?;
        self.queue_or_err(config.uuid).await
    }

    async fn list_queues(&self) -> Result<Vec<Queue>> {
        let mut c = self.meta.clone();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::ALL_QUEUES)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut uuids: Vec<Uuid> = ids.iter().filter_map(|s| s.parse().ok()).collect();
        uuids.sort();
        Ok(self
            .fetch_queues(&uuids)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    async fn get_queue(&self, uuid: Uuid) -> Result<Option<Queue>> {
        Ok(self.fetch_queues(&[uuid]).await?.pop().flatten())
    }

    async fn update_queue(&self, config: QueueConfig, now: u64) -> Result<Queue> {
        check_queue_config(&config)?;
        let old = self.queue_or_err(config.uuid).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        Self::queue_unlink_pipe(&mut pipe, &old);
        Self::queue_settings_pipe(&mut pipe, &config, now);
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        let old_key = keys::queue_list(&old.config.kind, &config.uuid);
        let new_key = keys::queue_list(&config.kind, &config.uuid);
        let mut qc = self.queues.clone();
        if old_key != new_key {
            let exists: bool = redis::cmd("EXISTS")
                .arg(&old_key)
                .query_async(&mut qc)
                .await
                .map_err(be)?;
            if exists {
                let () = redis::cmd("RENAME")
                    .arg(&old_key)
                    .arg(&new_key)
                    .query_async(&mut qc)
                    .await
                    .map_err(be)?;
            }
        }
        let mut trim = eval(TRIM_SCRIPT);
        trim.arg(1).arg(&new_key).arg(config.max_size);
        let over: u64 = trim.query_async(&mut qc).await.map_err(be)?;
        if over > 0 {
            let _: i64 = redis::cmd("HINCRBY")
                .arg(keys::d4rs_queue(&config.uuid))
                .arg("trimmed")
                .arg(over)
                .query_async(&mut c)
                .await
                .map_err(be)?;
        }
        self.publish(StoreEvent::QueuesChanged).await?;
        self.queue_or_err(config.uuid).await
    }

    async fn delete_queue(&self, uuid: Uuid) -> Result<bool> {
        let Some(old) = self.get_queue(uuid).await? else {
            return Ok(false);
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        Self::queue_unlink_pipe(&mut pipe, &old);
        pipe.srem(keys::ALL_QUEUES, qid(&uuid))
            .ignore()
            .del(keys::queue_meta(&uuid))
            .ignore()
            .del(keys::d4rs_queue(&uuid))
            .ignore();
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        let mut qc = self.queues.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(keys::queue_list(&old.config.kind, &uuid))
            .query_async(&mut qc)
            .await
            .map_err(be)?;
        self.publish(StoreEvent::QueuesChanged).await?;
        Ok(true)
    }

    async fn queues_for(&self, kind: QueueKind, sensor: Uuid) -> Result<Vec<Uuid>> {
        let mut c = self.meta.clone();
        let (global, group): (Vec<String>, Vec<String>) = redis::pipe()
            .smembers(keys::queues_of_kind(&kind, false))
            .smembers(keys::sensor_queues(&kind, &sensor))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut out: Vec<Uuid> = global
            .iter()
            .chain(group.iter())
            .filter_map(|s| s.parse().ok())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn push_entries(
        &self,
        queues: Vec<Uuid>,
        entries: Vec<QueueEntry>,
        now: u64,
    ) -> Result<PushOutcome> {
        Ok(self
            .push_impl(queues, entries, now, None)
            .await?
            .unwrap_or_default())
    }

    async fn push_entries_once(
        &self,
        journal: Uuid,
        position: u64,
        queues: Vec<Uuid>,
        entries: Vec<QueueEntry>,
        now: u64,
    ) -> Result<Option<PushOutcome>> {
        self.push_impl(queues, entries, now, Some((journal, position)))
            .await
    }

    async fn journal_position(&self, journal: Uuid) -> Result<Option<u64>> {
        let mut qc = self.queues.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(keys::d4rs_journal(&journal))
            .query_async(&mut qc)
            .await
            .map_err(be)?;
        Ok(v.and_then(|v| v.parse().ok()))
    }

    async fn forget_journal(&self, journal: Uuid) -> Result<()> {
        let mut qc = self.queues.clone();
        let () = redis::cmd("DEL")
            .arg(keys::d4rs_journal(&journal))
            .query_async(&mut qc)
            .await
            .map_err(be)?;
        Ok(())
    }

    async fn pop_entries(&self, queue: Uuid, max: usize) -> Result<Vec<QueueEntry>> {
        let key = self.list_key(queue).await?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut qc = self.queues.clone();
        let got: Option<Vec<Vec<u8>>> = redis::cmd("RPOP")
            .arg(&key)
            .arg(max)
            .query_async(&mut qc)
            .await
            .map_err(be)?;
        Ok(got
            .unwrap_or_default()
            .into_iter()
            .map(QueueEntry::new)
            .collect())
    }

    async fn pop_entries_blocking(
        &self,
        queue: Uuid,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<QueueEntry>> {
        let got = self.pop_entries(queue, max).await?;
        if !got.is_empty() || max == 0 {
            return Ok(got);
        }
        let key = self.list_key(queue).await?;
        let Some(first) = self.blocking_pop_one(&key, timeout).await? else {
            return Ok(Vec::new());
        };
        let mut out = vec![QueueEntry::new(first)];
        if max > 1 {
            let mut qc = self.queues.clone();
            let more: Option<Vec<Vec<u8>>> = redis::cmd("RPOP")
                .arg(&key)
                .arg(max - 1)
                .query_async(&mut qc)
                .await
                .map_err(be)?;
            out.extend(more.unwrap_or_default().into_iter().map(QueueEntry::new));
        }
        Ok(out)
    }

    async fn queue_len(&self, queue: Uuid) -> Result<u64> {
        let key = self.list_key(queue).await?;
        let mut qc = self.queues.clone();
        redis::cmd("LLEN")
            .arg(key)
            .query_async(&mut qc)
            .await
            .map_err(be)
    }

    async fn queue_sample(&self, queue: Uuid, n: usize) -> Result<Vec<QueueEntry>> {
        let key = self.list_key(queue).await?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut qc = self.queues.clone();
        let got: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(n as i64 - 1)
            .query_async(&mut qc)
            .await
            .map_err(be)?;
        Ok(got.into_iter().map(QueueEntry::new).collect())
    }

    async fn empty_queue(&self, queue: Uuid) -> Result<u64> {
        let key = self.list_key(queue).await?;
        let mut qc = self.queues.clone();
        let (n, _): (u64, i64) = redis::pipe()
            .atomic()
            .llen(&key)
            .del(&key)
            .query_async(&mut qc)
            .await
            .map_err(be)?;
        Ok(n)
    }

    // ---- users ----
    async fn create_user(&self, user: User) -> Result<()> {
        check_user(&user)?;
        let mut c = self.meta.clone();
        let created: bool = redis::cmd("SET")
            .arg(keys::user(&user.name))
            .arg(to_json(&user)?)
            .arg("NX")
            .query_async::<Option<String>>(&mut c)
            .await
            .map_err(be)?
            .is_some();
        if !created {
            return Err(StoreError::AlreadyExists(format!("user {}", user.name)));
        }
        let mut pipe = redis::pipe();
        pipe.sadd(keys::USERS, &user.name).ignore();
        if let Some(h) = &user.api_token_hash {
            pipe.set(keys::user_token(h), &user.name).ignore();
        }
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        Ok(())
    }

    async fn get_user(&self, name: String) -> Result<Option<User>> {
        let mut c = self.meta.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(keys::user(&name))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        v.map(|v| from_json(&v)).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let mut c = self.meta.clone();
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::USERS)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        names.sort();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = names.iter().map(|n| keys::user(n)).collect();
        let vals: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        vals.into_iter().flatten().map(|v| from_json(&v)).collect()
    }

    async fn update_user(&self, user: User) -> Result<()> {
        let old = self
            .get_user(user.name.clone())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {}", user.name)))?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set(keys::user(&user.name), to_json(&user)?)
            .ignore();
        if old.api_token_hash != user.api_token_hash {
            if let Some(h) = &old.api_token_hash {
                pipe.del(keys::user_token(h)).ignore();
            }
            if let Some(h) = &user.api_token_hash {
                pipe.set(keys::user_token(h), &user.name).ignore();
            }
        }
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        Ok(())
    }

    async fn delete_user(&self, name: String) -> Result<bool> {
        let Some(old) = self.get_user(name.clone()).await? else {
            return Ok(false);
        };
        let mut c = self.meta.clone();
        let sessions: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::user_sessions(&name))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(keys::user(&name))
            .ignore()
            .srem(keys::USERS, &name)
            .ignore()
            .del(keys::user_sessions(&name))
            .ignore();
        if let Some(h) = &old.api_token_hash {
            pipe.del(keys::user_token(h)).ignore();
        }
        for s in &sessions {
            pipe.del(keys::web_session(s))
                .ignore()
                .srem(keys::WEB_SESSIONS, s)
                .ignore();
        }
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        Ok(true)
    }

    async fn user_by_token_hash(&self, token_hash: String) -> Result<Option<User>> {
        let mut c = self.meta.clone();
        let name: Option<String> = redis::cmd("GET")
            .arg(keys::user_token(&token_hash))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let Some(name) = name else { return Ok(None) };
        Ok(self
            .get_user(name)
            .await?
            .filter(|u| u.api_token_hash.as_deref() == Some(token_hash.as_str())))
    }

    async fn create_web_session(&self, session: WebSession) -> Result<()> {
        let mut pipe = redis::pipe();
        let key = keys::web_session(&session.id_hash);
        pipe.atomic()
            .set(&key, to_json(&session)?)
            .ignore()
            .sadd(keys::WEB_SESSIONS, &session.id_hash)
            .ignore()
            .sadd(keys::user_sessions(&session.user), &session.id_hash)
            .ignore();
        // A real expiry as a safety net (purge_expired does the exact cleanup).
        if session.expires > now() {
            pipe.cmd("EXPIREAT")
                .arg(&key)
                .arg(session.expires + 60)
                .ignore();
        }
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        Ok(())
    }

    async fn get_web_session(&self, id_hash: String, now: u64) -> Result<Option<WebSession>> {
        let mut c = self.meta.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(keys::web_session(&id_hash))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let Some(v) = v else { return Ok(None) };
        let s: WebSession = from_json(&v)?;
        Ok((s.expires > now).then_some(s))
    }

    async fn delete_web_session(&self, id_hash: String) -> Result<bool> {
        let mut c = self.meta.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(keys::web_session(&id_hash))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let Some(v) = v else { return Ok(false) };
        let s: WebSession = from_json(&v)?;
        let () = redis::pipe()
            .atomic()
            .del(keys::web_session(&id_hash))
            .ignore()
            .srem(keys::WEB_SESSIONS, &id_hash)
            .ignore()
            .srem(keys::user_sessions(&s.user), &id_hash)
            .ignore()
            .query_async(&mut c)
            .await
            .map_err(be)?;
        Ok(true)
    }

    async fn purge_expired(&self, now: u64) -> Result<u64> {
        let mut c = self.meta.clone();
        // Blocks.
        let all: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys::BLOCKS)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let expired: Vec<&String> = all
            .iter()
            .filter(|(_, v)| from_json::<Block>(v).is_ok_and(|b| !b.active_at(now)))
            .map(|(k, _)| k)
            .collect();
        if !expired.is_empty() {
            let _: i64 = redis::cmd("HDEL")
                .arg(keys::BLOCKS)
                .arg(&expired)
                .query_async(&mut c)
                .await
                .map_err(be)?;
        }
        // Sessions: listing drops the records whose lease key is gone.
        let _ = self.list_sessions(now).await?;
        // Web sessions.
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::WEB_SESSIONS)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        if ids.is_empty() {
            return Ok(0);
        }
        let ks: Vec<String> = ids.iter().map(|i| keys::web_session(i)).collect();
        let vals: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&ks)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut pipe = redis::pipe();
        let mut n = 0;
        for (id, v) in ids.iter().zip(vals) {
            let session = v.and_then(|v| from_json::<WebSession>(&v).ok());
            match session {
                Some(s) if s.expires > now => {}
                Some(s) => {
                    n += 1;
                    pipe.del(keys::web_session(id))
                        .ignore()
                        .srem(keys::WEB_SESSIONS, id)
                        .ignore()
                        .srem(keys::user_sessions(&s.user), id)
                        .ignore();
                }
                None => {
                    pipe.srem(keys::WEB_SESSIONS, id).ignore();
                }
            }
        }
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        Ok(n)
    }
}

/// A block found only in d4-core's sets (added by d4-core's own tools).
fn external_block(target: BlockTarget) -> Block {
    Block {
        target,
        reason: "d4-core blocklist".into(),
        created: 0,
        expires: None,
    }
}
