//! [`EmbeddedStore`]: every store role on a redb file (`<data>/d4.redb`), one file per role
//! (`sensors`, `policy`, `leases`, `queues`, `accounts`) plus the shared `codec`.
//!
//! Tables (keys → values; JSON values unless said otherwise):
//! - `sensors`: uuid (32 hex) → [`Sensor`]
//! - `blocks`: target (`ip 10.0.0.0/8`, `uuid <hex>`, `ips-of-uuid <hex>`) → [`Block`]
//! - `settings`: name (`accepted_types`, `accepted_ext_types`) → JSON list
//! - `stats`: (day, JSON [`StatsKey`]) → (frames, bytes)
//! - `sessions`: `<uuid>:<type>` (exclusive) or `<uuid>:<type>:<session>` (types 2/254)
//!   → [`Lease`] (the table keeps its name)
//! - `queues`: queue uuid (u128) → queue meta (settings, head, tail, trimmed)
//! - `queue_entries`: (queue uuid, sequence) → entry (binary: flag, sensor uuid, data)
//! - `queue_times`: (queue uuid, sequence) → Unix seconds: the push time of the entries
//!   from this sequence on (one mark per queue and second with a push; marks older than
//!   the one covering the queue's head are pruned at the next push), for
//!   [`Queue::oldest`]
//! - `queue_leases`: (queue uuid, sequence) → an entry leased to a consumer (binary: lease
//!   expiry, consumer name, entry; see `consume`)
//! - `users`: name → [`User`]; `tokens`: token hash → user name;
//!   `web_sessions`: id hash → [`WebLogin`] (the table keeps its name)
//! - `journals`: producer uuid (u128) → last pushed seq (u64) of a keyed push
//!   ([`crate::PushKey`]; a server's producers are its journals, hence the name)
//! - `forward_rules`: rule name → [`ForwardRule`]; `forward_stats`: (rule name, server id)
//!   → [`ForwardServerStats`] (both created by their first write, see `forward`)
//!
//! Every call is one redb transaction (committed with fsync: crash-safe), run on the
//! blocking thread pool. A queue is a window `head..tail` of sequence numbers: push
//! appends at `tail`, pop and trim remove at `head`, so both are O(entries moved).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::{broadcast, Notify};
use uuid::Uuid;

use crate::model::*;
use crate::{Base, EmbeddedOpenError, Result, StoreError};

mod accounts;
mod codec;
mod consume;
mod forward;
mod leases;
mod policy;
mod queues;
mod sensors;

use codec::{be, to_json};

const SENSORS: TableDefinition<&str, &[u8]> = TableDefinition::new("sensors");
const BLOCKS: TableDefinition<&str, &[u8]> = TableDefinition::new("blocks");
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
const STATS: TableDefinition<(u32, &str), (u64, u64)> = TableDefinition::new("stats");
/// Leases (the table keeps its former name).
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const QUEUES: TableDefinition<u128, &[u8]> = TableDefinition::new("queues");
const QUEUE_ENTRIES: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("queue_entries");
/// Push-time marks of queue entries (see `queues`).
const QUEUE_TIMES: TableDefinition<(u128, u64), u64> = TableDefinition::new("queue_times");
/// Entries leased to a consumer and not acknowledged (see `consume`).
const QUEUE_LEASES: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("queue_leases");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");
/// Web logins (the table keeps its former name).
const WEB_LOGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("web_sessions");
/// Last seq pushed with a [`PushKey`], per producer (the table keeps its former name:
/// a server's producers are its journals).
const PUSHED_SEQS: TableDefinition<u128, u64> = TableDefinition::new("journals");

const ACCEPTED_TYPES: &str = "accepted_types";
const ACCEPTED_EXT_TYPES: &str = "accepted_ext_types";

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

/// Run `f` in one write transaction, committed (with fsync) when it returns `Ok`.
fn write<T>(db: &redb::Database, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
    let txn = db.begin_write().map_err(be)?;
    let out = f(&txn)?;
    txn.commit().map_err(be)?;
    Ok(out)
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
        && txn.open_table(LEASES).is_ok()
        && txn.open_table(QUEUES).is_ok()
        && txn.open_table(QUEUE_ENTRIES).is_ok()
        && txn.open_table(QUEUE_LEASES).is_ok()
        && txn.open_table(QUEUE_TIMES).is_ok()
        && txn.open_table(USERS).is_ok()
        && txn.open_table(TOKENS).is_ok()
        && txn.open_table(WEB_LOGINS).is_ok()
        && txn.open_table(PUSHED_SEQS).is_ok();
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
        txn.open_table(LEASES).map_err(be)?;
        txn.open_table(QUEUES).map_err(be)?;
        txn.open_table(QUEUE_ENTRIES).map_err(be)?;
        txn.open_table(QUEUE_LEASES).map_err(be)?;
        txn.open_table(QUEUE_TIMES).map_err(be)?;
        txn.open_table(USERS).map_err(be)?;
        txn.open_table(TOKENS).map_err(be)?;
        txn.open_table(WEB_LOGINS).map_err(be)?;
        txn.open_table(PUSHED_SEQS).map_err(be)?;
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
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    pub(super) fn emit(&self, ev: StoreEvent) {
        let _ = self.events.send(ev);
    }
}

impl Base for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }
}
