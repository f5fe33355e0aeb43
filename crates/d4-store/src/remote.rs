//! [`RemoteStore`]: the `Store` trait over the server's Unix socket (see `rpc`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::model::*;
use crate::rpc::{read_line, Answer, Request};
use crate::{Result, Store, StoreError};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections kept for reuse.
const POOL_MAX: usize = 8;

struct Conn {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

/// A store reached through another process's socket. Cheap to share; each call borrows a
/// pooled connection (a blocking pop holds one while it waits).
pub struct RemoteStore {
    path: PathBuf,
    pool: Mutex<Vec<Conn>>,
    events: broadcast::Sender<StoreEvent>,
    subscribed: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl RemoteStore {
    /// Connect and check that the server answers.
    pub async fn connect(path: &Path) -> Result<RemoteStore> {
        let (events, _) = broadcast::channel(1024);
        let store = RemoteStore {
            path: path.to_path_buf(),
            pool: Mutex::new(Vec::new()),
            events,
            subscribed: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        let pong: String = store.call(Request::Ping).await?;
        if pong != "pong" {
            return Err(StoreError::Connection(format!(
                "unexpected answer {pong:?}"
            )));
        }
        Ok(store)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn open_conn(path: &Path) -> Result<Conn> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(path))
            .await
            .map_err(|_| StoreError::Connection(format!("connect {}: timed out", path.display())))?
            .map_err(|e| StoreError::Connection(format!("connect {}: {e}", path.display())))?;
        let (r, w) = stream.into_split();
        Ok(Conn {
            reader: BufReader::new(r),
            writer: w,
        })
    }

    fn take_conn(&self) -> Option<Conn> {
        self.pool.lock().ok().and_then(|mut p| p.pop())
    }

    fn put_conn(&self, conn: Conn) {
        if let Ok(mut p) = self.pool.lock() {
            if p.len() < POOL_MAX {
                p.push(conn);
            }
        }
    }

    async fn exchange(conn: &mut Conn, line: &[u8]) -> std::io::Result<Vec<u8>> {
        conn.writer.write_all(line).await?;
        let mut buf = Vec::new();
        match read_line(&mut conn.reader, &mut buf).await? {
            Some(()) => Ok(buf),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            )),
        }
    }

    async fn call<T: DeserializeOwned>(&self, req: Request) -> Result<T> {
        let mut line = serde_json::to_vec(&req)
            .map_err(|e| StoreError::Invalid(format!("encode request: {e}")))?;
        line.push(b'\n');
        // A pooled connection may have been closed by the server: retry once on a new one,
        // but only when the request could not have been executed (write or EOF failure).
        let answer = match self.take_conn() {
            Some(mut conn) => match Self::exchange(&mut conn, &line).await {
                Ok(a) => {
                    self.put_conn(conn);
                    a
                }
                Err(_) => self.fresh_exchange(&line).await?,
            },
            None => self.fresh_exchange(&line).await?,
        };
        match serde_json::from_slice::<Answer>(&answer) {
            Ok(Answer::Ok(v)) => serde_json::from_value(v)
                .map_err(|e| StoreError::Connection(format!("unexpected answer: {e}"))),
            Ok(Answer::Err(e)) => Err(e),
            Err(e) => Err(StoreError::Connection(format!("bad answer line: {e}"))),
        }
    }

    async fn fresh_exchange(&self, line: &[u8]) -> Result<Vec<u8>> {
        let mut conn = Self::open_conn(&self.path).await?;
        let a = Self::exchange(&mut conn, line)
            .await
            .map_err(|e| StoreError::Connection(format!("{}: {e}", self.path.display())))?;
        self.put_conn(conn);
        Ok(a)
    }

    /// Start (once) the task that forwards the server's events to `self.events`.
    fn start_event_task(&self) {
        use std::sync::atomic::Ordering;
        if self.subscribed.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.subscribed.store(false, Ordering::SeqCst);
            tracing::warn!("RemoteStore::subscribe outside a tokio runtime: no events");
            return;
        };
        let path = self.path.clone();
        let tx = self.events.clone();
        let flag = self.subscribed.clone();
        handle.spawn(async move {
            // Reconnect while anybody listens.
            while tx.receiver_count() > 0 {
                if let Err(e) = forward_events(&path, &tx).await {
                    tracing::debug!(error = %e, "store event stream ended");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            flag.store(false, Ordering::SeqCst);
        });
    }
}

async fn forward_events(path: &Path, tx: &broadcast::Sender<StoreEvent>) -> Result<()> {
    let mut conn = RemoteStore::open_conn(path).await?;
    let first = RemoteStore::exchange(&mut conn, b"{\"op\":\"subscribe\"}\n")
        .await
        .map_err(|e| StoreError::Connection(e.to_string()))?;
    if !matches!(serde_json::from_slice::<Answer>(&first), Ok(Answer::Ok(_))) {
        return Err(StoreError::Connection("subscribe refused".into()));
    }
    let mut buf = Vec::new();
    loop {
        match read_line(&mut conn.reader, &mut buf).await {
            Ok(Some(())) => {
                if let Ok(ev) = serde_json::from_slice::<StoreEvent>(&buf) {
                    if tx.send(ev).is_err() {
                        return Ok(()); // nobody listens any more
                    }
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(StoreError::Connection(e.to_string())),
        }
    }
}

#[async_trait]
impl Store for RemoteStore {
    fn backend(&self) -> &'static str {
        "remote"
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        let rx = self.events.subscribe();
        self.start_event_task();
        rx
    }

    async fn register_sensor(&self, reg: SensorRegistration) -> Result<Sensor> {
        self.call(Request::RegisterSensor { reg }).await
    }
    async fn approve_sensor(&self, uuid: Uuid) -> Result<Sensor> {
        self.call(Request::ApproveSensor { uuid }).await
    }
    async fn delete_sensor(&self, uuid: Uuid) -> Result<bool> {
        self.call(Request::DeleteSensor { uuid }).await
    }
    async fn get_sensor(&self, uuid: Uuid) -> Result<Option<Sensor>> {
        self.call(Request::GetSensor { uuid }).await
    }
    async fn list_sensors(&self) -> Result<Vec<Sensor>> {
        self.call(Request::ListSensors).await
    }
    async fn update_sensor(&self, uuid: Uuid, update: SensorUpdate) -> Result<Sensor> {
        self.call(Request::UpdateSensor { uuid, update }).await
    }
    async fn record_sensor_error(&self, uuid: Uuid, time: u64, message: String) -> Result<()> {
        self.call(Request::RecordSensorError {
            uuid,
            time,
            message,
        })
        .await
    }
    async fn record_activity(&self, batch: ActivityBatch) -> Result<()> {
        self.call(Request::RecordActivity { batch }).await
    }
    async fn day_stats(&self, day: u32) -> Result<DayStats> {
        self.call(Request::DayStats { day }).await
    }
    async fn add_block(&self, block: Block) -> Result<()> {
        self.call(Request::AddBlock { block }).await
    }
    async fn remove_block(&self, target: BlockTarget) -> Result<bool> {
        self.call(Request::RemoveBlock { target }).await
    }
    async fn list_blocks(&self, now: u64) -> Result<Vec<Block>> {
        self.call(Request::ListBlocks { now }).await
    }
    async fn check_blocked(
        &self,
        ip: std::net::IpAddr,
        uuid: Option<Uuid>,
        now: u64,
    ) -> Result<Option<Block>> {
        self.call(Request::CheckBlocked { ip, uuid, now }).await
    }
    async fn request_kick(&self, uuid: Uuid, now: u64) -> Result<()> {
        self.call(Request::RequestKick { uuid, now }).await
    }
    async fn accepted_types(&self) -> Result<Vec<u8>> {
        self.call(Request::AcceptedTypes).await
    }
    async fn set_type_accepted(&self, d4_type: u8, accepted: bool) -> Result<()> {
        self.call(Request::SetTypeAccepted { d4_type, accepted })
            .await
    }
    async fn accepted_ext_types(&self) -> Result<Vec<String>> {
        self.call(Request::AcceptedExtTypes).await
    }
    async fn set_ext_type_accepted(&self, ext: String, accepted: bool) -> Result<()> {
        self.call(Request::SetExtTypeAccepted { ext, accepted })
            .await
    }
    async fn try_claim_session(&self, claim: SessionClaim, now: u64) -> Result<bool> {
        self.call(Request::TryClaimSession { claim, now }).await
    }
    async fn renew_sessions(&self, server_id: String, lease_secs: u64, now: u64) -> Result<u64> {
        self.call(Request::RenewSessions {
            server_id,
            lease_secs,
            now,
        })
        .await
    }
    async fn release_session(&self, uuid: Uuid, d4_type: u8, session_id: Uuid) -> Result<()> {
        self.call(Request::ReleaseSession {
            uuid,
            d4_type,
            session_id,
        })
        .await
    }
    async fn list_sessions(&self, now: u64) -> Result<Vec<ActiveSession>> {
        self.call(Request::ListSessions { now }).await
    }
    async fn clear_sessions(&self, server_id: String) -> Result<u64> {
        self.call(Request::ClearSessions { server_id }).await
    }
    async fn create_queue(&self, config: QueueConfig, now: u64) -> Result<Queue> {
        self.call(Request::CreateQueue { config, now }).await
    }
    async fn list_queues(&self) -> Result<Vec<Queue>> {
        self.call(Request::ListQueues).await
    }
    async fn get_queue(&self, uuid: Uuid) -> Result<Option<Queue>> {
        self.call(Request::GetQueue { uuid }).await
    }
    async fn update_queue(&self, config: QueueConfig, now: u64) -> Result<Queue> {
        self.call(Request::UpdateQueue { config, now }).await
    }
    async fn delete_queue(&self, uuid: Uuid) -> Result<bool> {
        self.call(Request::DeleteQueue { uuid }).await
    }
    async fn queues_for(&self, kind: QueueKind, sensor: Uuid) -> Result<Vec<Uuid>> {
        self.call(Request::QueuesFor { kind, sensor }).await
    }
    async fn push_entries(
        &self,
        queues: Vec<Uuid>,
        entries: Vec<QueueEntry>,
        now: u64,
    ) -> Result<PushOutcome> {
        self.call(Request::PushEntries {
            queues,
            entries,
            now,
        })
        .await
    }
    async fn push_entries_once(
        &self,
        journal: Uuid,
        position: u64,
        queues: Vec<Uuid>,
        entries: Vec<QueueEntry>,
        now: u64,
    ) -> Result<Option<PushOutcome>> {
        self.call(Request::PushEntriesOnce {
            journal,
            position,
            queues,
            entries,
            now,
        })
        .await
    }
    async fn journal_position(&self, journal: Uuid) -> Result<Option<u64>> {
        self.call(Request::JournalPosition { journal }).await
    }
    async fn forget_journal(&self, journal: Uuid) -> Result<()> {
        self.call(Request::ForgetJournal { journal }).await
    }
    async fn pop_entries(&self, queue: Uuid, max: usize) -> Result<Vec<QueueEntry>> {
        self.call(Request::PopEntries { queue, max }).await
    }
    async fn pop_entries_blocking(
        &self,
        queue: Uuid,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<QueueEntry>> {
        self.call(Request::PopEntriesBlocking {
            queue,
            max,
            timeout,
        })
        .await
    }
    async fn queue_len(&self, queue: Uuid) -> Result<u64> {
        self.call(Request::QueueLen { queue }).await
    }
    async fn queue_sample(&self, queue: Uuid, n: usize) -> Result<Vec<QueueEntry>> {
        self.call(Request::QueueSample { queue, n }).await
    }
    async fn empty_queue(&self, queue: Uuid) -> Result<u64> {
        self.call(Request::EmptyQueue { queue }).await
    }
    async fn create_user(&self, user: User) -> Result<()> {
        self.call(Request::CreateUser { user }).await
    }
    async fn get_user(&self, name: String) -> Result<Option<User>> {
        self.call(Request::GetUser { name }).await
    }
    async fn list_users(&self) -> Result<Vec<User>> {
        self.call(Request::ListUsers).await
    }
    async fn update_user(&self, user: User) -> Result<()> {
        self.call(Request::UpdateUser { user }).await
    }
    async fn delete_user(&self, name: String) -> Result<bool> {
        self.call(Request::DeleteUser { name }).await
    }
    async fn user_by_token_hash(&self, token_hash: String) -> Result<Option<User>> {
        self.call(Request::UserByTokenHash { token_hash }).await
    }
    async fn create_web_session(&self, session: WebSession) -> Result<()> {
        self.call(Request::CreateWebSession { session }).await
    }
    async fn get_web_session(&self, id_hash: String, now: u64) -> Result<Option<WebSession>> {
        self.call(Request::GetWebSession { id_hash, now }).await
    }
    async fn delete_web_session(&self, id_hash: String) -> Result<bool> {
        self.call(Request::DeleteWebSession { id_hash }).await
    }
    async fn purge_expired(&self, now: u64) -> Result<u64> {
        self.call(Request::PurgeExpired { now }).await
    }
}
