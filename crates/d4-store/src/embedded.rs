//! [`EmbeddedStore`]: the `Store` trait on a redb file (`<data>/d4.redb`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::model::*;
use crate::{EmbeddedOpenError, Result, Store, StoreError};

/// The embedded backend. One process at a time may open the file.
pub struct EmbeddedStore {
    #[allow(dead_code)]
    db: Arc<redb::Database>,
    events: broadcast::Sender<StoreEvent>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish()
    }
}

impl EmbeddedStore {
    /// Open (or create) `<data_dir>/d4.redb`, creating the data dir when missing.
    pub fn open(data_dir: &Path) -> Result<EmbeddedStore, EmbeddedOpenError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Backend(format!("create data dir {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join(crate::DB_FILE);
        let db = match redb::Database::create(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(EmbeddedOpenError::Locked),
            Err(e) => {
                return Err(StoreError::Backend(format!("open {}: {e}", path.display())).into())
            }
        };
        let (events, _) = broadcast::channel(1024);
        Ok(EmbeddedStore {
            db: Arc::new(db),
            events,
        })
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

    async fn register_sensor(&self, _reg: SensorRegistration) -> Result<Sensor> {
        Err(StoreError::NotImplemented("register_sensor".into()))
    }
    async fn approve_sensor(&self, _uuid: Uuid) -> Result<Sensor> {
        Err(StoreError::NotImplemented("approve_sensor".into()))
    }
    async fn delete_sensor(&self, _uuid: Uuid) -> Result<bool> {
        Err(StoreError::NotImplemented("delete_sensor".into()))
    }
    async fn get_sensor(&self, _uuid: Uuid) -> Result<Option<Sensor>> {
        Err(StoreError::NotImplemented("get_sensor".into()))
    }
    async fn list_sensors(&self) -> Result<Vec<Sensor>> {
        Err(StoreError::NotImplemented("list_sensors".into()))
    }
    async fn update_sensor(&self, _uuid: Uuid, _update: SensorUpdate) -> Result<Sensor> {
        Err(StoreError::NotImplemented("update_sensor".into()))
    }
    async fn record_sensor_error(&self, _uuid: Uuid, _time: u64, _message: String) -> Result<()> {
        Err(StoreError::NotImplemented("record_sensor_error".into()))
    }
    async fn record_activity(&self, _batch: ActivityBatch) -> Result<()> {
        Err(StoreError::NotImplemented("record_activity".into()))
    }
    async fn day_stats(&self, _day: u32) -> Result<DayStats> {
        Err(StoreError::NotImplemented("day_stats".into()))
    }
    async fn add_block(&self, _block: Block) -> Result<()> {
        Err(StoreError::NotImplemented("add_block".into()))
    }
    async fn remove_block(&self, _target: BlockTarget) -> Result<bool> {
        Err(StoreError::NotImplemented("remove_block".into()))
    }
    async fn list_blocks(&self, _now: u64) -> Result<Vec<Block>> {
        Err(StoreError::NotImplemented("list_blocks".into()))
    }
    async fn check_blocked(
        &self,
        _ip: std::net::IpAddr,
        _uuid: Option<Uuid>,
        _now: u64,
    ) -> Result<Option<Block>> {
        Err(StoreError::NotImplemented("check_blocked".into()))
    }
    async fn request_kick(&self, _uuid: Uuid, _now: u64) -> Result<()> {
        Err(StoreError::NotImplemented("request_kick".into()))
    }
    async fn accepted_types(&self) -> Result<Vec<u8>> {
        Err(StoreError::NotImplemented("accepted_types".into()))
    }
    async fn set_type_accepted(&self, _d4_type: u8, _accepted: bool) -> Result<()> {
        Err(StoreError::NotImplemented("set_type_accepted".into()))
    }
    async fn accepted_ext_types(&self) -> Result<Vec<String>> {
        Err(StoreError::NotImplemented("accepted_ext_types".into()))
    }
    async fn set_ext_type_accepted(&self, _ext: String, _accepted: bool) -> Result<()> {
        Err(StoreError::NotImplemented("set_ext_type_accepted".into()))
    }
    async fn try_claim_session(&self, _claim: SessionClaim, _now: u64) -> Result<bool> {
        Err(StoreError::NotImplemented("try_claim_session".into()))
    }
    async fn renew_sessions(&self, _server_id: String, _lease_secs: u64, _now: u64) -> Result<u64> {
        Err(StoreError::NotImplemented("renew_sessions".into()))
    }
    async fn release_session(&self, _uuid: Uuid, _d4_type: u8, _session_id: Uuid) -> Result<()> {
        Err(StoreError::NotImplemented("release_session".into()))
    }
    async fn list_sessions(&self, _now: u64) -> Result<Vec<ActiveSession>> {
        Err(StoreError::NotImplemented("list_sessions".into()))
    }
    async fn clear_sessions(&self, _server_id: String) -> Result<u64> {
        Err(StoreError::NotImplemented("clear_sessions".into()))
    }
    async fn create_queue(&self, _config: QueueConfig, _now: u64) -> Result<Queue> {
        Err(StoreError::NotImplemented("create_queue".into()))
    }
    async fn list_queues(&self) -> Result<Vec<Queue>> {
        Err(StoreError::NotImplemented("list_queues".into()))
    }
    async fn get_queue(&self, _uuid: Uuid) -> Result<Option<Queue>> {
        Err(StoreError::NotImplemented("get_queue".into()))
    }
    async fn update_queue(&self, _config: QueueConfig, _now: u64) -> Result<Queue> {
        Err(StoreError::NotImplemented("update_queue".into()))
    }
    async fn delete_queue(&self, _uuid: Uuid) -> Result<bool> {
        Err(StoreError::NotImplemented("delete_queue".into()))
    }
    async fn queues_for(&self, _kind: QueueKind, _sensor: Uuid) -> Result<Vec<Uuid>> {
        Err(StoreError::NotImplemented("queues_for".into()))
    }
    async fn push_entries(
        &self,
        _queues: Vec<Uuid>,
        _entries: Vec<QueueEntry>,
        _now: u64,
    ) -> Result<PushOutcome> {
        Err(StoreError::NotImplemented("push_entries".into()))
    }
    async fn pop_entries(&self, _queue: Uuid, _max: usize) -> Result<Vec<QueueEntry>> {
        Err(StoreError::NotImplemented("pop_entries".into()))
    }
    async fn pop_entries_blocking(
        &self,
        _queue: Uuid,
        _max: usize,
        _timeout: Duration,
    ) -> Result<Vec<QueueEntry>> {
        Err(StoreError::NotImplemented("pop_entries_blocking".into()))
    }
    async fn queue_len(&self, _queue: Uuid) -> Result<u64> {
        Err(StoreError::NotImplemented("queue_len".into()))
    }
    async fn queue_sample(&self, _queue: Uuid, _n: usize) -> Result<Vec<QueueEntry>> {
        Err(StoreError::NotImplemented("queue_sample".into()))
    }
    async fn empty_queue(&self, _queue: Uuid) -> Result<u64> {
        Err(StoreError::NotImplemented("empty_queue".into()))
    }
    async fn create_user(&self, _user: User) -> Result<()> {
        Err(StoreError::NotImplemented("create_user".into()))
    }
    async fn get_user(&self, _name: String) -> Result<Option<User>> {
        Err(StoreError::NotImplemented("get_user".into()))
    }
    async fn list_users(&self) -> Result<Vec<User>> {
        Err(StoreError::NotImplemented("list_users".into()))
    }
    async fn update_user(&self, _user: User) -> Result<()> {
        Err(StoreError::NotImplemented("update_user".into()))
    }
    async fn delete_user(&self, _name: String) -> Result<bool> {
        Err(StoreError::NotImplemented("delete_user".into()))
    }
    async fn user_by_token_hash(&self, _token_hash: String) -> Result<Option<User>> {
        Err(StoreError::NotImplemented("user_by_token_hash".into()))
    }
    async fn create_web_session(&self, _session: WebSession) -> Result<()> {
        Err(StoreError::NotImplemented("create_web_session".into()))
    }
    async fn get_web_session(&self, _id_hash: String, _now: u64) -> Result<Option<WebSession>> {
        Err(StoreError::NotImplemented("get_web_session".into()))
    }
    async fn delete_web_session(&self, _id_hash: String) -> Result<bool> {
        Err(StoreError::NotImplemented("delete_web_session".into()))
    }
    async fn purge_expired(&self, _now: u64) -> Result<u64> {
        Err(StoreError::NotImplemented("purge_expired".into()))
    }
}
