//! [`EmbeddedStore`]: the `Store` trait on a redb file (`<data>/d4.redb`).
//!
//! Tables (keys → values; JSON values unless said otherwise):
//! - `sensors`: uuid (32 hex) → [`Sensor`]
//! - `blocks`: target (`ip 10.0.0.0/8`, `uuid <hex>`, `ips-of-uuid <hex>`) → [`Block`]
//! - `settings`: name (`accepted_types`, `accepted_ext_types`) → JSON list
//! - `stats`: (day, JSON [`StatsKey`]) → (frames, bytes)
//! - `sessions`: `<uuid>:<type>` (exclusive) or `<uuid>:<type>:<session>` (types 2/254)
//!   → [`ActiveSession`]
//! - `queues`: queue uuid (u128) → queue meta (settings, head, tail, trimmed)
//! - `queue_entries`: (queue uuid, sequence) → entry (binary: flag, sensor uuid, data)
//! - `users`: name → [`User`]; `tokens`: token hash → user name;
//!   `web_sessions`: id hash → [`WebSession`]
//!
//! Every call is one redb transaction (committed with fsync: crash-safe), run on the
//! blocking thread pool. A queue is a window `head..tail` of sequence numbers: push
//! appends at `tail`, pop and trim remove at `head`, so both are O(entries moved).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, Notify};
use uuid::Uuid;

use crate::model::*;
use crate::{EmbeddedOpenError, Result, Store, StoreError};

const SENSORS: TableDefinition<&str, &[u8]> = TableDefinition::new("sensors");
const BLOCKS: TableDefinition<&str, &[u8]> = TableDefinition::new("blocks");
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
const STATS: TableDefinition<(u32, &str), (u64, u64)> = TableDefinition::new("stats");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const QUEUES: TableDefinition<u128, &[u8]> = TableDefinition::new("queues");
const QUEUE_ENTRIES: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("queue_entries");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");
const WEB_SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("web_sessions");
/// Last position pushed by `push_entries_once`, per server journal.
const JOURNALS: TableDefinition<u128, u64> = TableDefinition::new("journals");

const ACCEPTED_TYPES: &str = "accepted_types";
const ACCEPTED_EXT_TYPES: &str = "accepted_ext_types";

/// Stored metadata of a queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct QueueMeta {
    config: QueueConfig,
    created: u64,
    last_updated: u64,
    head: u64,
    tail: u64,
    trimmed: u64,
}

impl QueueMeta {
    fn len(&self) -> u64 {
        self.tail - self.head
    }
    fn public(&self) -> Queue {
        Queue {
            config: self.config.clone(),
            created: self.created,
            last_updated: self.last_updated,
            len: self.len(),
            trimmed: self.trimmed,
        }
    }
}

/// The embedded backend. One process at a time may open the file.
pub struct EmbeddedStore {
    db: Arc<redb::Database>,
    events: broadcast::Sender<StoreEvent>,
    /// Wakes blocking pops of a queue.
    notifiers: Arc<Mutex<HashMap<Uuid, Arc<Notify>>>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish()
    }
}

fn be(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| StoreError::Backend(format!("corrupt record: {e}")))
}

fn key_of(uuid: Uuid) -> String {
    uuid.simple().to_string()
}

fn encode_entry(e: &QueueEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + e.data.len());
    match e.sensor {
        Some(u) => {
            out.push(1);
            out.extend_from_slice(u.as_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&e.data);
    out
}

fn decode_entry(b: &[u8]) -> Result<QueueEntry> {
    match b.split_first() {
        Some((0, data)) => Ok(QueueEntry {
            sensor: None,
            data: data.to_vec(),
        }),
        Some((1, rest)) if rest.len() >= 16 => {
            let (u, data) = rest.split_at(16);
            let uuid = Uuid::from_slice(u).map_err(be)?;
            Ok(QueueEntry {
                sensor: Some(uuid),
                data: data.to_vec(),
            })
        }
        _ => Err(StoreError::Backend("corrupt queue entry".into())),
    }
}

/// A normalized block target (IP prefixes truncated to their network address).
fn normalize(target: BlockTarget) -> BlockTarget {
    match target {
        BlockTarget::Ip(net) => BlockTarget::Ip(net.trunc()),
        t => t,
    }
}

/// Extended type names: `[A-Za-z0-9._-]{1,64}`, not starting with '.'.
pub(crate) fn check_ext_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "extended type name {name:?}: 1 to 64 characters of A-Z a-z 0-9 . _ -, not starting with '.'"
        )))
    }
}

pub(crate) fn check_queue_config(c: &QueueConfig) -> Result<()> {
    if c.max_size == 0 {
        return Err(StoreError::Invalid(
            "queue max size must be at least 1".into(),
        ));
    }
    if let QueueKind::Ext(name) = &c.kind {
        check_ext_name(name)?;
    }
    Ok(())
}

fn write<T>(db: &redb::Database, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
    let txn = db.begin_write().map_err(be)?;
    let out = f(&txn)?;
    txn.commit().map_err(be)?;
    Ok(out)
}

fn get_json<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>> {
    match table.get(key).map_err(be)? {
        Some(g) => Ok(Some(from_json(g.value())?)),
        None => Ok(None),
    }
}

fn all_json<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for item in table.iter().map_err(be)? {
        let (_, v) = item.map_err(be)?;
        out.push(from_json(v.value())?);
    }
    Ok(out)
}

/// Appends `entries` to each of `queues` (sorted, deduplicated) inside `txn`.
fn push_in(
    txn: &WriteTransaction,
    queues: &[Uuid],
    entries: &[QueueEntry],
    now: u64,
) -> Result<PushOutcome> {
    let mut qt = txn.open_table(QUEUES).map_err(be)?;
    let mut et = txn.open_table(QUEUE_ENTRIES).map_err(be)?;
    let encoded: Vec<Vec<u8>> = entries.iter().map(encode_entry).collect();
    let mut out = PushOutcome::default();
    for &quuid in queues {
        let Some(mut meta) = get_queue_meta(&qt, quuid)? else {
            continue;
        };
        let q = quuid.as_u128();
        // Entries that would be trimmed at once are not written at all.
        let keep = (encoded.len() as u64).min(meta.config.max_size) as usize;
        let skipped = (encoded.len() - keep) as u64;
        // (their sequence numbers are reserved and trimmed below, so they
        // count as trimmed, like every entry older than the kept ones).
        meta.tail += skipped;
        for e in &encoded[encoded.len() - keep..] {
            et.insert((q, meta.tail), e.as_slice()).map_err(be)?;
            meta.tail += 1;
        }
        out.pushed += encoded.len() as u64;
        let trimmed = trim_queue(&mut et, &mut meta)?;
        out.trimmed += trimmed;
        meta.last_updated = now;
        qt.insert(q, to_json(&meta)?.as_slice()).map_err(be)?;
    }
    Ok(out)
}

fn get_queue_meta(
    table: &impl ReadableTable<u128, &'static [u8]>,
    q: Uuid,
) -> Result<Option<QueueMeta>> {
    match table.get(q.as_u128()).map_err(be)? {
        Some(g) => Ok(Some(from_json(g.value())?)),
        None => Ok(None),
    }
}

/// Whether every table and default setting exists (then opening needs no write, which
/// keeps short admin commands fast: a write transaction costs fsyncs).
fn initialized(db: &redb::Database) -> bool {
    let Ok(txn) = db.begin_read() else {
        return false;
    };
    let ok = txn.open_table(SENSORS).is_ok()
        && txn.open_table(BLOCKS).is_ok()
        && txn.open_table(STATS).is_ok()
        && txn.open_table(SESSIONS).is_ok()
        && txn.open_table(QUEUES).is_ok()
        && txn.open_table(QUEUE_ENTRIES).is_ok()
        && txn.open_table(USERS).is_ok()
        && txn.open_table(TOKENS).is_ok()
        && txn.open_table(WEB_SESSIONS).is_ok()
        && txn.open_table(JOURNALS).is_ok();
    ok && txn.open_table(SETTINGS).is_ok_and(|t| {
        matches!(t.get(ACCEPTED_TYPES), Ok(Some(_)))
            && matches!(t.get(ACCEPTED_EXT_TYPES), Ok(Some(_)))
    })
}

/// Create the tables and the default settings.
fn init_tables(db: &redb::Database) -> Result<()> {
    write(db, |txn| {
        txn.open_table(SENSORS).map_err(be)?;
        txn.open_table(BLOCKS).map_err(be)?;
        txn.open_table(STATS).map_err(be)?;
        txn.open_table(SESSIONS).map_err(be)?;
        txn.open_table(QUEUES).map_err(be)?;
        txn.open_table(QUEUE_ENTRIES).map_err(be)?;
        txn.open_table(USERS).map_err(be)?;
        txn.open_table(TOKENS).map_err(be)?;
        txn.open_table(WEB_SESSIONS).map_err(be)?;
        txn.open_table(JOURNALS).map_err(be)?;
        let mut settings = txn.open_table(SETTINGS).map_err(be)?;
        if settings.get(ACCEPTED_TYPES).map_err(be)?.is_none() {
            settings
                .insert(
                    ACCEPTED_TYPES,
                    to_json(&DEFAULT_ACCEPTED_TYPES.to_vec())?.as_slice(),
                )
                .map_err(be)?;
        }
        if settings.get(ACCEPTED_EXT_TYPES).map_err(be)?.is_none() {
            let ext: Vec<String> = DEFAULT_ACCEPTED_EXT_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect();
            settings
                .insert(ACCEPTED_EXT_TYPES, to_json(&ext)?.as_slice())
                .map_err(be)?;
        }
        Ok(())
    })
}

/// Drop the oldest entries of a queue while it holds more than its max size.
fn trim_queue(entries: &mut redb::Table<(u128, u64), &[u8]>, meta: &mut QueueMeta) -> Result<u64> {
    let q = meta.config.uuid.as_u128();
    let over = meta.len().saturating_sub(meta.config.max_size);
    if over > 0 {
        let new_head = meta.head + over;
        entries
            .retain_in((q, meta.head)..(q, new_head), |_, _| false)
            .map_err(be)?;
        meta.head = new_head;
        meta.trimmed += over;
    }
    Ok(over)
}

impl EmbeddedStore {
    /// Open (or create) `<data_dir>/d4.redb`, creating the data dir when missing.
    /// A fresh database gets the default accepted types and extended types.
    pub fn open(data_dir: &Path) -> Result<EmbeddedStore, EmbeddedOpenError> {
        crate::private::create_private_dir(data_dir).map_err(|e| {
            StoreError::Backend(format!("create data dir {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join(crate::DB_FILE);
        // Sensors' keys and password hashes: 0600 from the start, whatever the umask
        // (redb initializes an empty file and keeps its mode).
        crate::private::precreate_private_file(&path)
            .map_err(|e| StoreError::Backend(format!("create {}: {e}", path.display())))?;
        let db = match redb::Database::create(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(EmbeddedOpenError::Locked),
            Err(e) => {
                return Err(StoreError::Backend(format!("open {}: {e}", path.display())).into())
            }
        };
        if !initialized(&db) {
            init_tables(&db)?;
        }
        let (events, _) = broadcast::channel(1024);
        Ok(EmbeddedStore {
            db: Arc::new(db),
            events,
            notifiers: Arc::default(),
        })
    }

    /// Like [`EmbeddedStore::open`], but while another process (e.g. a short admin
    /// command) holds the file, retry for up to `wait`.
    pub async fn open_with_retry(
        data_dir: &Path,
        wait: Duration,
    ) -> Result<EmbeddedStore, EmbeddedOpenError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match EmbeddedStore::open(data_dir) {
                Err(EmbeddedOpenError::Locked) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// Run `f` on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    fn emit(&self, ev: StoreEvent) {
        let _ = self.events.send(ev);
    }

    fn notifier(&self, q: Uuid) -> Arc<Notify> {
        match self.notifiers.lock() {
            Ok(mut map) => map.entry(q).or_default().clone(),
            Err(_) => Arc::new(Notify::new()),
        }
    }

    fn wake(&self, queues: &[Uuid]) {
        if let Ok(map) = self.notifiers.lock() {
            for q in queues {
                if let Some(n) = map.get(q) {
                    n.notify_waiters();
                }
            }
        }
    }

    async fn settings_list<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        name: &'static str,
    ) -> Result<Vec<T>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(SETTINGS).map_err(be)?;
            Ok(get_json::<Vec<T>>(&t, name)?.unwrap_or_default())
        })
        .await
    }

    async fn settings_toggle<T>(&self, name: &'static str, item: T, on: bool) -> Result<()>
    where
        T: Serialize + serde::de::DeserializeOwned + Ord + Send + 'static,
    {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(SETTINGS).map_err(be)?;
                let mut list: Vec<T> = get_json(&t, name)?.unwrap_or_default();
                list.retain(|x| *x != item);
                if on {
                    list.push(item);
                }
                list.sort();
                t.insert(name, to_json(&list)?.as_slice()).map_err(be)?;
                Ok(())
            })
        })
        .await?;
        self.emit(StoreEvent::TypesChanged);
        Ok(())
    }

    /// Read-modify-write of one sensor record (created when missing if `create`).
    async fn modify_sensor(
        &self,
        uuid: Uuid,
        create: bool,
        f: impl FnOnce(&mut Sensor) -> Result<()> + Send + 'static,
    ) -> Result<Sensor> {
        let s = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(SENSORS).map_err(be)?;
                    let key = key_of(uuid);
                    let mut s: Sensor = match get_json(&t, &key)? {
                        Some(s) => s,
                        None if create => Sensor::new(uuid),
                        None => return Err(StoreError::NotFound(format!("sensor {key}"))),
                    };
                    f(&mut s)?;
                    t.insert(key.as_str(), to_json(&s)?.as_slice())
                        .map_err(be)?;
                    Ok(s)
                })
            })
            .await?;
        self.emit(StoreEvent::SensorChanged { uuid });
        Ok(s)
    }

    /// Pop without an await point.
    fn pop_inline(&self, queue: Uuid, max: usize) -> Result<Vec<QueueEntry>> {
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi {
            tokio::task::block_in_place(|| Self::pop_now(&self.db, queue, max))
        } else {
            Self::pop_now(&self.db, queue, max)
        }
    }

    fn pop_now(db: &redb::Database, queue: Uuid, max: usize) -> Result<Vec<QueueEntry>> {
        write(db, |txn| {
            let mut qt = txn.open_table(QUEUES).map_err(be)?;
            let mut meta = get_queue_meta(&qt, queue)?
                .ok_or_else(|| StoreError::NotFound(format!("queue {queue}")))?;
            let n = (max as u64).min(meta.len());
            if n == 0 {
                return Ok(Vec::new());
            }
            let q = queue.as_u128();
            let mut et = txn.open_table(QUEUE_ENTRIES).map_err(be)?;
            let mut out = Vec::with_capacity(n as usize);
            for item in et.range((q, meta.head)..(q, meta.head + n)).map_err(be)? {
                let (_, v) = item.map_err(be)?;
                out.push(decode_entry(v.value())?);
            }
            et.retain_in((q, meta.head)..(q, meta.head + n), |_, _| false)
                .map_err(be)?;
            meta.head += n;
            qt.insert(q, to_json(&meta)?.as_slice()).map_err(be)?;
            Ok(out)
        })
    }
}

/// Apply last-seen updates to a sensor record.
fn apply_seen(s: &mut Sensor, u: &SeenUpdate) {
    let t = u.time;
    s.first_seen = Some(s.first_seen.map_or(t, |f| f.min(t)));
    s.last_seen = Some(s.last_seen.map_or(t, |l| l.max(t)));
    match s.last_ips.iter().position(|x| x.ip == u.ip) {
        Some(i) => {
            let mut e = s.last_ips.remove(i);
            e.time = e.time.max(t);
            s.last_ips.push(e);
        }
        None => s.last_ips.push(IpSeen { ip: u.ip, time: t }),
    }
    s.last_ips.sort_by_key(|x| std::cmp::Reverse(x.time));
    s.last_ips.truncate(LAST_IPS);
    match s
        .types
        .iter_mut()
        .find(|x| x.d4_type == u.d4_type && x.ext == u.ext)
    {
        Some(ts) => {
            ts.first_seen = ts.first_seen.min(t);
            ts.last_seen = ts.last_seen.max(t);
        }
        None => {
            s.types.push(TypeSeen {
                d4_type: u.d4_type,
                ext: u.ext.clone(),
                first_seen: t,
                last_seen: t,
            });
            s.types
                .sort_by(|a, b| (a.d4_type, &a.ext).cmp(&(b.d4_type, &b.ext)));
        }
    }
}

fn stats_keys(d: &StatsDelta) -> [StatsKey; 5] {
    [
        StatsKey::Sensor { uuid: d.uuid },
        StatsKey::Ip { ip: d.ip },
        StatsKey::Type { d4_type: d.d4_type },
        StatsKey::SensorIp {
            uuid: d.uuid,
            ip: d.ip,
        },
        StatsKey::SensorType {
            uuid: d.uuid,
            d4_type: d.d4_type,
        },
    ]
}

fn session_key(uuid: Uuid, d4_type: u8, session: Uuid) -> String {
    if SESSION_EXEMPT_TYPES.contains(&d4_type) {
        format!("{}:{d4_type}:{}", uuid.simple(), session.simple())
    } else {
        format!("{}:{d4_type}", uuid.simple())
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    async fn register_sensor(&self, reg: SensorRegistration) -> Result<Sensor> {
        let uuid = reg.uuid;
        self.modify_sensor(uuid, true, move |s| {
            if s.status != SensorStatus::Unregistered {
                return Err(StoreError::AlreadyExists(format!(
                    "sensor {} is already registered ({})",
                    uuid.simple(),
                    s.status.as_str()
                )));
            }
            s.status = if reg.approve {
                SensorStatus::Approved
            } else {
                SensorStatus::Pending
            };
            s.hmac_key = reg.hmac_key;
            s.mail = reg.mail;
            s.third_party = reg.third_party;
            if let Some(d) = reg.description {
                s.description = d;
            }
            s.registered_at = Some(now());
            Ok(())
        })
        .await
    }

    async fn approve_sensor(&self, uuid: Uuid) -> Result<Sensor> {
        self.modify_sensor(uuid, false, |s| {
            s.status = SensorStatus::Approved;
            if s.registered_at.is_none() {
                s.registered_at = Some(now());
            }
            Ok(())
        })
        .await
    }

    async fn delete_sensor(&self, uuid: Uuid) -> Result<bool> {
        let existed = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(SENSORS).map_err(be)?;
                    let existed = t.remove(key_of(uuid).as_str()).map_err(be)?.is_some();
                    Ok(existed)
                })
            })
            .await?;
        if existed {
            self.emit(StoreEvent::SensorChanged { uuid });
        }
        Ok(existed)
    }

    async fn get_sensor(&self, uuid: Uuid) -> Result<Option<Sensor>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(SENSORS).map_err(be)?;
            get_json(&t, &key_of(uuid))
        })
        .await
    }

    async fn list_sensors(&self) -> Result<Vec<Sensor>> {
        self.run(|db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(SENSORS).map_err(be)?;
            all_json(&t)
        })
        .await
    }

    async fn update_sensor(&self, uuid: Uuid, update: SensorUpdate) -> Result<Sensor> {
        self.modify_sensor(uuid, true, move |s| {
            if let Some(k) = update.hmac_key {
                s.hmac_key = k;
            }
            if let Some(d) = update.description {
                s.description = d;
            }
            if let Some(l) = update.stream_limit {
                s.stream_limit = l;
            }
            if let Some(m) = update.mail {
                s.mail = m;
            }
            if let Some(t) = update.third_party {
                s.third_party = t;
            }
            if let Some(m) = update.monitoring_threshold {
                if m == Some(0) {
                    return Err(StoreError::Invalid("monitoring threshold 0".into()));
                }
                s.monitoring_threshold = m;
            }
            Ok(())
        })
        .await
    }

    async fn record_sensor_error(&self, uuid: Uuid, time: u64, message: String) -> Result<()> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(SENSORS).map_err(be)?;
                let key = key_of(uuid);
                let mut s: Sensor = get_json(&t, &key)?.unwrap_or_else(|| Sensor::new(uuid));
                s.last_error = Some(SensorError { time, message });
                t.insert(key.as_str(), to_json(&s)?.as_slice())
                    .map_err(be)?;
                Ok(())
            })
        })
        .await
    }

    async fn record_activity(&self, batch: ActivityBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.run(move |db| {
            write(db, |txn| {
                // Stats: aggregate in memory first, then one read-modify-write per key.
                let mut sums: BTreeMap<(u32, String), Counter> = BTreeMap::new();
                for d in &batch.stats {
                    let c = Counter {
                        frames: d.frames,
                        bytes: d.bytes,
                    };
                    for k in stats_keys(d) {
                        sums.entry((d.day, to_json_string(&k)?)).or_default().add(c);
                    }
                }
                let mut st = txn.open_table(STATS).map_err(be)?;
                for ((day, key), c) in sums {
                    let old = st
                        .get((day, key.as_str()))
                        .map_err(be)?
                        .map(|g| g.value())
                        .unwrap_or((0, 0));
                    let new = (
                        old.0.saturating_add(c.frames),
                        old.1.saturating_add(c.bytes),
                    );
                    st.insert((day, key.as_str()), new).map_err(be)?;
                }
                // Last seen: one read-modify-write per sensor.
                let mut by_sensor: BTreeMap<Uuid, Vec<&SeenUpdate>> = BTreeMap::new();
                for u in &batch.seen {
                    by_sensor.entry(u.uuid).or_default().push(u);
                }
                let mut t = txn.open_table(SENSORS).map_err(be)?;
                for (uuid, updates) in by_sensor {
                    let key = key_of(uuid);
                    let mut s: Sensor = get_json(&t, &key)?.unwrap_or_else(|| Sensor::new(uuid));
                    for u in updates {
                        apply_seen(&mut s, u);
                    }
                    t.insert(key.as_str(), to_json(&s)?.as_slice())
                        .map_err(be)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn day_stats(&self, day: u32) -> Result<DayStats> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(STATS).map_err(be)?;
            let mut entries = Vec::new();
            for item in t.range((day, "")..(day + 1, "")).map_err(be)? {
                let (k, v) = item.map_err(be)?;
                let (_, key) = k.value();
                let key: StatsKey = from_json(key.as_bytes())?;
                let (frames, bytes) = v.value();
                entries.push((key, Counter { frames, bytes }));
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(DayStats { day, entries })
        })
        .await
    }

    async fn add_block(&self, block: Block) -> Result<()> {
        let block = Block {
            target: normalize(block.target),
            ..block
        };
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(BLOCKS).map_err(be)?;
                t.insert(
                    block.target.to_string().as_str(),
                    to_json(&block)?.as_slice(),
                )
                .map_err(be)?;
                Ok(())
            })
        })
        .await?;
        self.emit(StoreEvent::BlocklistChanged);
        Ok(())
    }

    async fn remove_block(&self, target: BlockTarget) -> Result<bool> {
        let target = normalize(target);
        let existed = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(BLOCKS).map_err(be)?;
                    let existed = t.remove(target.to_string().as_str()).map_err(be)?.is_some();
                    Ok(existed)
                })
            })
            .await?;
        if existed {
            self.emit(StoreEvent::BlocklistChanged);
        }
        Ok(existed)
    }

    async fn list_blocks(&self, now: u64) -> Result<Vec<Block>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(BLOCKS).map_err(be)?;
            let mut blocks: Vec<Block> = all_json(&t)?;
            blocks.retain(|b| b.active_at(now));
            blocks.sort_by(|a, b| a.target.cmp(&b.target));
            Ok(blocks)
        })
        .await
    }

    async fn check_blocked(
        &self,
        ip: std::net::IpAddr,
        uuid: Option<Uuid>,
        now: u64,
    ) -> Result<Option<Block>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(BLOCKS).map_err(be)?;
            if let Some(u) = uuid {
                for target in [BlockTarget::Uuid(u), BlockTarget::IpsOfUuid(u)] {
                    if let Some(b) = get_json::<Block>(&t, &target.to_string())? {
                        if b.active_at(now) {
                            return Ok(Some(b));
                        }
                    }
                }
            }
            // IP prefixes: scan the `ip ` keys (blocklists are small; callers cache).
            for item in t.range("ip ".."ip!").map_err(be)? {
                let (_, v) = item.map_err(be)?;
                let b: Block = from_json(v.value())?;
                if let BlockTarget::Ip(net) = &b.target {
                    if net.contains(&ip) && b.active_at(now) {
                        return Ok(Some(b));
                    }
                }
            }
            Ok(None)
        })
        .await
    }

    async fn request_kick(&self, uuid: Uuid, now: u64) -> Result<()> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(BLOCKS).map_err(be)?;
                let target = BlockTarget::Uuid(uuid);
                let key = target.to_string();
                let existing: Option<Block> = get_json(&t, &key)?;
                // Never shorten a longer (or permanent) block.
                let until = now + KICK_BLOCK_SECS;
                if existing.as_ref().is_some_and(|b| b.active_at(until)) {
                    return Ok(());
                }
                let block = Block {
                    target,
                    reason: "kick".into(),
                    created: now,
                    expires: Some(until),
                };
                t.insert(key.as_str(), to_json(&block)?.as_slice())
                    .map_err(be)?;
                Ok(())
            })
        })
        .await?;
        self.emit(StoreEvent::BlocklistChanged);
        self.emit(StoreEvent::Kick { uuid });
        Ok(())
    }

    async fn accepted_types(&self) -> Result<Vec<u8>> {
        self.settings_list(ACCEPTED_TYPES).await
    }

    async fn set_type_accepted(&self, d4_type: u8, accepted: bool) -> Result<()> {
        self.settings_toggle(ACCEPTED_TYPES, d4_type, accepted)
            .await
    }

    async fn accepted_ext_types(&self) -> Result<Vec<String>> {
        self.settings_list(ACCEPTED_EXT_TYPES).await
    }

    async fn set_ext_type_accepted(&self, ext: String, accepted: bool) -> Result<()> {
        check_ext_name(&ext)?;
        self.settings_toggle(ACCEPTED_EXT_TYPES, ext, accepted)
            .await
    }

    async fn try_claim_session(&self, claim: SessionClaim, now: u64) -> Result<bool> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(SESSIONS).map_err(be)?;
                let key = session_key(claim.uuid, claim.d4_type, claim.session_id);
                let mut started = now;
                if let Some(cur) = get_json::<ActiveSession>(&t, &key)? {
                    if cur.expires > now && cur.session_id != claim.session_id {
                        return Ok(false);
                    }
                    if cur.session_id == claim.session_id {
                        started = cur.started;
                    }
                }
                let s = ActiveSession {
                    uuid: claim.uuid,
                    d4_type: claim.d4_type,
                    session_id: claim.session_id,
                    server_id: claim.server_id,
                    ip: claim.ip,
                    started,
                    expires: now.saturating_add(claim.lease_secs),
                };
                t.insert(key.as_str(), to_json(&s)?.as_slice())
                    .map_err(be)?;
                Ok(true)
            })
        })
        .await
    }

    async fn renew_sessions(&self, server_id: String, lease_secs: u64, now: u64) -> Result<u64> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(SESSIONS).map_err(be)?;
                let mut mine = Vec::new();
                for item in t.iter().map_err(be)? {
                    let (k, v) = item.map_err(be)?;
                    let s: ActiveSession = from_json(v.value())?;
                    if s.server_id == server_id {
                        mine.push((k.value().to_string(), s));
                    }
                }
                let n = mine.len() as u64;
                for (k, mut s) in mine {
                    s.expires = now.saturating_add(lease_secs);
                    t.insert(k.as_str(), to_json(&s)?.as_slice()).map_err(be)?;
                }
                Ok(n)
            })
        })
        .await
    }

    async fn release_session(&self, uuid: Uuid, d4_type: u8, session_id: Uuid) -> Result<()> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(SESSIONS).map_err(be)?;
                let key = session_key(uuid, d4_type, session_id);
                let holds = get_json::<ActiveSession>(&t, &key)?
                    .is_some_and(|s| s.session_id == session_id);
                if holds {
                    t.remove(key.as_str()).map_err(be)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn list_sessions(&self, now: u64) -> Result<Vec<ActiveSession>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(SESSIONS).map_err(be)?;
            let mut v: Vec<ActiveSession> = all_json(&t)?;
            v.retain(|s| s.expires > now);
            Ok(v)
        })
        .await
    }

    async fn clear_sessions(&self, server_id: String) -> Result<u64> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(SESSIONS).map_err(be)?;
                let mut n = 0u64;
                t.retain(|_, v| {
                    let mine = serde_json::from_slice::<ActiveSession>(v)
                        .map(|s| s.server_id == server_id)
                        .unwrap_or(false);
                    if mine {
                        n += 1;
                    }
                    !mine
                })
                .map_err(be)?;
                Ok(n)
            })
        })
        .await
    }

    async fn create_queue(&self, config: QueueConfig, now: u64) -> Result<Queue> {
        check_queue_config(&config)?;
        let q = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(QUEUES).map_err(be)?;
                    if get_queue_meta(&t, config.uuid)?.is_some() {
                        return Err(StoreError::AlreadyExists(format!("queue {}", config.uuid)));
                    }
                    let meta = QueueMeta {
                        config,
                        created: now,
                        last_updated: now,
                        head: 0,
                        tail: 0,
                        trimmed: 0,
                    };
                    t.insert(meta.config.uuid.as_u128(), to_json(&meta)?.as_slice())
                        .map_err(be)?;
                    Ok(meta.public())
                })
            })
            .await?;
        self.emit(StoreEvent::QueuesChanged);
        Ok(q)
    }

    async fn list_queues(&self) -> Result<Vec<Queue>> {
        self.run(|db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(QUEUES).map_err(be)?;
            let mut out = Vec::new();
            for item in t.iter().map_err(be)? {
                let (_, v) = item.map_err(be)?;
                out.push(from_json::<QueueMeta>(v.value())?.public());
            }
            Ok(out)
        })
        .await
    }

    async fn get_queue(&self, uuid: Uuid) -> Result<Option<Queue>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(QUEUES).map_err(be)?;
            Ok(get_queue_meta(&t, uuid)?.map(|m| m.public()))
        })
        .await
    }

    async fn update_queue(&self, config: QueueConfig, now: u64) -> Result<Queue> {
        check_queue_config(&config)?;
        let q = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(QUEUES).map_err(be)?;
                    let mut meta = get_queue_meta(&t, config.uuid)?
                        .ok_or_else(|| StoreError::NotFound(format!("queue {}", config.uuid)))?;
                    meta.config = config;
                    meta.last_updated = now;
                    let mut et = txn.open_table(QUEUE_ENTRIES).map_err(be)?;
                    trim_queue(&mut et, &mut meta)?;
                    t.insert(meta.config.uuid.as_u128(), to_json(&meta)?.as_slice())
                        .map_err(be)?;
                    Ok(meta.public())
                })
            })
            .await?;
        self.emit(StoreEvent::QueuesChanged);
        Ok(q)
    }

    async fn delete_queue(&self, uuid: Uuid) -> Result<bool> {
        let existed = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(QUEUES).map_err(be)?;
                    let Some(meta) = get_queue_meta(&t, uuid)? else {
                        return Ok(false);
                    };
                    let q = uuid.as_u128();
                    let mut et = txn.open_table(QUEUE_ENTRIES).map_err(be)?;
                    et.retain_in((q, meta.head)..(q, meta.tail), |_, _| false)
                        .map_err(be)?;
                    t.remove(q).map_err(be)?;
                    Ok(true)
                })
            })
            .await?;
        if existed {
            if let Ok(mut map) = self.notifiers.lock() {
                if let Some(n) = map.remove(&uuid) {
                    n.notify_waiters();
                }
            }
            self.emit(StoreEvent::QueuesChanged);
        }
        Ok(existed)
    }

    async fn queues_for(&self, kind: QueueKind, sensor: Uuid) -> Result<Vec<Uuid>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(QUEUES).map_err(be)?;
            let mut out = Vec::new();
            for item in t.iter().map_err(be)? {
                let (_, v) = item.map_err(be)?;
                let m: QueueMeta = from_json(v.value())?;
                let in_group = m
                    .config
                    .sensors
                    .as_ref()
                    .is_none_or(|g| g.contains(&sensor));
                if m.config.kind == kind && in_group {
                    out.push(m.config.uuid);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn push_entries(
        &self,
        queues: Vec<Uuid>,
        entries: Vec<QueueEntry>,
        now: u64,
    ) -> Result<PushOutcome> {
        let mut queues = queues;
        queues.sort();
        queues.dedup();
        if queues.is_empty() || entries.is_empty() {
            return Ok(PushOutcome::default());
        }
        let woken = queues.clone();
        let out = self
            .run(move |db| write(db, |txn| push_in(txn, &queues, &entries, now)))
            .await?;
        self.wake(&woken);
        Ok(out)
    }

    async fn push_entries_once(
        &self,
        journal: Uuid,
        position: u64,
        queues: Vec<Uuid>,
        entries: Vec<QueueEntry>,
        now: u64,
    ) -> Result<Option<PushOutcome>> {
        let mut queues = queues;
        queues.sort();
        queues.dedup();
        if queues.is_empty() || entries.is_empty() {
            return Ok(Some(PushOutcome::default()));
        }
        let woken = queues.clone();
        let out = self
            .run(move |db| {
                write(db, |txn| {
                    let mut jt = txn.open_table(JOURNALS).map_err(be)?;
                    let j = journal.as_u128();
                    let last = jt.get(j).map_err(be)?.map(|g| g.value());
                    if last.is_some_and(|l| l >= position) {
                        return Ok(None);
                    }
                    jt.insert(j, position).map_err(be)?;
                    push_in(txn, &queues, &entries, now).map(Some)
                })
            })
            .await?;
        if out.is_some() {
            self.wake(&woken);
        }
        Ok(out)
    }

    async fn journal_position(&self, journal: Uuid) -> Result<Option<u64>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let jt = txn.open_table(JOURNALS).map_err(be)?;
            let v = jt.get(journal.as_u128()).map_err(be)?.map(|g| g.value());
            Ok(v)
        })
        .await
    }

    async fn forget_journal(&self, journal: Uuid) -> Result<()> {
        self.run(move |db| {
            write(db, |txn| {
                let mut jt = txn.open_table(JOURNALS).map_err(be)?;
                jt.remove(journal.as_u128()).map_err(be)?;
                Ok(())
            })
        })
        .await
    }

    async fn pop_entries(&self, queue: Uuid, max: usize) -> Result<Vec<QueueEntry>> {
        self.run(move |db| Self::pop_now(db, queue, max)).await
    }

    async fn pop_entries_blocking(
        &self,
        queue: Uuid,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<QueueEntry>> {
        // Cancel-safe: the pop itself runs without an await point (block_in_place on a
        // multi-thread runtime), so a dropped future has either popped and returned, or
        // popped nothing. Only the wait is cancelled.
        let deadline = tokio::time::Instant::now() + timeout;
        let notify = self.notifier(queue);
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self.pop_inline(queue, max)?;
            if !got.is_empty() {
                return Ok(got);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn queue_len(&self, queue: Uuid) -> Result<u64> {
        self.get_queue(queue)
            .await?
            .map(|q| q.len)
            .ok_or_else(|| StoreError::NotFound(format!("queue {queue}")))
    }

    async fn queue_sample(&self, queue: Uuid, n: usize) -> Result<Vec<QueueEntry>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let qt = txn.open_table(QUEUES).map_err(be)?;
            let meta = get_queue_meta(&qt, queue)?
                .ok_or_else(|| StoreError::NotFound(format!("queue {queue}")))?;
            let q = queue.as_u128();
            let et = txn.open_table(QUEUE_ENTRIES).map_err(be)?;
            let mut out = Vec::new();
            for item in et
                .range((q, meta.head)..(q, meta.tail))
                .map_err(be)?
                .rev()
                .take(n)
            {
                let (_, v) = item.map_err(be)?;
                out.push(decode_entry(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn empty_queue(&self, queue: Uuid) -> Result<u64> {
        self.run(move |db| {
            write(db, |txn| {
                let mut qt = txn.open_table(QUEUES).map_err(be)?;
                let mut meta = get_queue_meta(&qt, queue)?
                    .ok_or_else(|| StoreError::NotFound(format!("queue {queue}")))?;
                let q = queue.as_u128();
                let n = meta.len();
                let mut et = txn.open_table(QUEUE_ENTRIES).map_err(be)?;
                et.retain_in((q, meta.head)..(q, meta.tail), |_, _| false)
                    .map_err(be)?;
                meta.head = meta.tail;
                qt.insert(q, to_json(&meta)?.as_slice()).map_err(be)?;
                Ok(n)
            })
        })
        .await
    }

    async fn create_user(&self, user: User) -> Result<()> {
        check_user(&user)?;
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(USERS).map_err(be)?;
                if get_json::<User>(&t, &user.name)?.is_some() {
                    return Err(StoreError::AlreadyExists(format!("user {}", user.name)));
                }
                t.insert(user.name.as_str(), to_json(&user)?.as_slice())
                    .map_err(be)?;
                if let Some(h) = &user.api_token_hash {
                    txn.open_table(TOKENS)
                        .map_err(be)?
                        .insert(h.as_str(), user.name.as_str())
                        .map_err(be)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn get_user(&self, name: String) -> Result<Option<User>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(USERS).map_err(be)?;
            get_json(&t, &name)
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.run(|db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(USERS).map_err(be)?;
            all_json(&t)
        })
        .await
    }

    async fn update_user(&self, user: User) -> Result<()> {
        check_user(&user)?;
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(USERS).map_err(be)?;
                let old: User = get_json(&t, &user.name)?
                    .ok_or_else(|| StoreError::NotFound(format!("user {}", user.name)))?;
                let mut tokens = txn.open_table(TOKENS).map_err(be)?;
                if let Some(h) = &old.api_token_hash {
                    tokens.remove(h.as_str()).map_err(be)?;
                }
                if let Some(h) = &user.api_token_hash {
                    tokens.insert(h.as_str(), user.name.as_str()).map_err(be)?;
                }
                t.insert(user.name.as_str(), to_json(&user)?.as_slice())
                    .map_err(be)?;
                Ok(())
            })
        })
        .await
    }

    async fn delete_user(&self, name: String) -> Result<bool> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(USERS).map_err(be)?;
                let Some(old) = get_json::<User>(&t, &name)? else {
                    return Ok(false);
                };
                t.remove(name.as_str()).map_err(be)?;
                if let Some(h) = &old.api_token_hash {
                    txn.open_table(TOKENS)
                        .map_err(be)?
                        .remove(h.as_str())
                        .map_err(be)?;
                }
                let mut ws = txn.open_table(WEB_SESSIONS).map_err(be)?;
                ws.retain(|_, v| {
                    serde_json::from_slice::<WebSession>(v)
                        .map(|s| s.user != name)
                        .unwrap_or(false)
                })
                .map_err(be)?;
                Ok(true)
            })
        })
        .await
    }

    async fn user_by_token_hash(&self, token_hash: String) -> Result<Option<User>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let tokens = txn.open_table(TOKENS).map_err(be)?;
            let Some(name) = tokens
                .get(token_hash.as_str())
                .map_err(be)?
                .map(|g| g.value().to_string())
            else {
                return Ok(None);
            };
            let t = txn.open_table(USERS).map_err(be)?;
            get_json(&t, &name)
        })
        .await
    }

    async fn create_web_session(&self, session: WebSession) -> Result<()> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(WEB_SESSIONS).map_err(be)?;
                t.insert(session.id_hash.as_str(), to_json(&session)?.as_slice())
                    .map_err(be)?;
                Ok(())
            })
        })
        .await
    }

    async fn get_web_session(&self, id_hash: String, now: u64) -> Result<Option<WebSession>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(WEB_SESSIONS).map_err(be)?;
            Ok(get_json::<WebSession>(&t, &id_hash)?.filter(|s| s.expires > now))
        })
        .await
    }

    async fn delete_web_session(&self, id_hash: String) -> Result<bool> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(WEB_SESSIONS).map_err(be)?;
                let existed = t.remove(id_hash.as_str()).map_err(be)?.is_some();
                Ok(existed)
            })
        })
        .await
    }

    async fn purge_expired(&self, now: u64) -> Result<u64> {
        self.run(move |db| {
            write(db, |txn| {
                let mut n = 0u64;
                txn.open_table(WEB_SESSIONS)
                    .map_err(be)?
                    .retain(|_, v| {
                        let keep = serde_json::from_slice::<WebSession>(v)
                            .map(|s| s.expires > now)
                            .unwrap_or(false);
                        if !keep {
                            n += 1;
                        }
                        keep
                    })
                    .map_err(be)?;
                txn.open_table(BLOCKS)
                    .map_err(be)?
                    .retain(|_, v| {
                        serde_json::from_slice::<Block>(v)
                            .map(|b| b.active_at(now))
                            .unwrap_or(false)
                    })
                    .map_err(be)?;
                txn.open_table(SESSIONS)
                    .map_err(be)?
                    .retain(|_, v| {
                        serde_json::from_slice::<ActiveSession>(v)
                            .map(|s| s.expires > now)
                            .unwrap_or(false)
                    })
                    .map_err(be)?;
                Ok(n)
            })
        })
        .await
    }
}

fn to_json_string<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

pub(crate) fn check_user(u: &User) -> Result<()> {
    let ok = !u.name.is_empty()
        && u.name.len() <= 64
        && u.name
            .chars()
            .all(|c| c.is_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "user name {:?}: 1 to 64 letters, digits or . _ - @",
            u.name
        )))
    }
}
