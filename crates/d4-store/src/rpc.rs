//! The store's Unix-socket protocol: JSON lines. The client writes one [`Request`] per
//! line; the server answers one line `{"ok": <value>}` or `{"err": <StoreError>}`, in
//! order. `{"op": "subscribe"}` turns the connection into an event stream (one
//! [`StoreEvent`] per line). Lines are bounded ([`MAX_LINE`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::model::*;
use crate::{Result, Store, StoreError};

/// Longest accepted request or answer line (64 MiB).
pub const MAX_LINE: usize = 64 << 20;

/// One answer line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Answer {
    Ok(serde_json::Value),
    Err(StoreError),
}

/// One request per `Store` method (JSON: `{"op": "<method>", ...args}`), plus `subscribe`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Switch this connection to an event stream: one `StoreEvent` JSON per line.
    Subscribe,
    /// Liveness check; answers `"pong"`.
    Ping,
    RegisterSensor {
        reg: SensorRegistration,
    },
    ApproveSensor {
        uuid: Uuid,
    },
    DeleteSensor {
        uuid: Uuid,
    },
    GetSensor {
        uuid: Uuid,
    },
    ListSensors,
    UpdateSensor {
        uuid: Uuid,
        update: SensorUpdate,
    },
    RecordSensorError {
        uuid: Uuid,
        time: u64,
        message: String,
    },
    RecordActivity {
        batch: ActivityBatch,
    },
    DayStats {
        day: u32,
    },
    AddBlock {
        block: Block,
    },
    RemoveBlock {
        target: BlockTarget,
    },
    ListBlocks {
        now: u64,
    },
    CheckBlocked {
        ip: std::net::IpAddr,
        uuid: Option<Uuid>,
        now: u64,
    },
    RequestKick {
        uuid: Uuid,
        now: u64,
    },
    AcceptedTypes,
    SetTypeAccepted {
        d4_type: u8,
        accepted: bool,
    },
    AcceptedExtTypes,
    SetExtTypeAccepted {
        ext: String,
        accepted: bool,
    },
    TryClaimSession {
        claim: SessionClaim,
        now: u64,
    },
    RenewSessions {
        server_id: String,
        lease_secs: u64,
        now: u64,
    },
    ReleaseSession {
        uuid: Uuid,
        d4_type: u8,
        session_id: Uuid,
    },
    ListSessions {
        now: u64,
    },
    ClearSessions {
        server_id: String,
    },
    CreateQueue {
        config: QueueConfig,
        now: u64,
    },
    ListQueues,
    GetQueue {
        uuid: Uuid,
    },
    UpdateQueue {
        config: QueueConfig,
        now: u64,
    },
    DeleteQueue {
        uuid: Uuid,
    },
    QueuesFor {
        kind: QueueKind,
        sensor: Uuid,
    },
    PushEntries {
        queues: Vec<Uuid>,
        entries: Vec<QueueEntry>,
        now: u64,
    },
    PushEntriesOnce {
        journal: Uuid,
        position: u64,
        queues: Vec<Uuid>,
        entries: Vec<QueueEntry>,
        now: u64,
    },
    JournalPosition {
        journal: Uuid,
    },
    ForgetJournal {
        journal: Uuid,
    },
    PopEntries {
        queue: Uuid,
        max: usize,
    },
    PopEntriesBlocking {
        queue: Uuid,
        max: usize,
        timeout: Duration,
    },
    QueueLen {
        queue: Uuid,
    },
    QueueSample {
        queue: Uuid,
        n: usize,
    },
    EmptyQueue {
        queue: Uuid,
    },
    CreateUser {
        user: User,
    },
    GetUser {
        name: String,
    },
    ListUsers,
    UpdateUser {
        user: User,
    },
    DeleteUser {
        name: String,
    },
    UserByTokenHash {
        token_hash: String,
    },
    CreateWebSession {
        session: WebSession,
    },
    GetWebSession {
        id_hash: String,
        now: u64,
    },
    DeleteWebSession {
        id_hash: String,
    },
    PurgeExpired {
        now: u64,
    },
}

/// Run one request on a store; the answer as a JSON value.
pub(crate) async fn dispatch(store: &dyn Store, req: Request) -> Result<serde_json::Value> {
    fn json<T: Serialize>(v: T) -> Result<serde_json::Value> {
        serde_json::to_value(v).map_err(|e| StoreError::Backend(format!("encode answer: {e}")))
    }
    match req {
        Request::Subscribe => Err(StoreError::Invalid(
            "subscribe is handled by the connection".into(),
        )),
        Request::Ping => json("pong"),
        Request::RegisterSensor { reg } => json(store.register_sensor(reg).await?),
        Request::ApproveSensor { uuid } => json(store.approve_sensor(uuid).await?),
        Request::DeleteSensor { uuid } => json(store.delete_sensor(uuid).await?),
        Request::GetSensor { uuid } => json(store.get_sensor(uuid).await?),
        Request::ListSensors => json(store.list_sensors().await?),
        Request::UpdateSensor { uuid, update } => json(store.update_sensor(uuid, update).await?),
        Request::RecordSensorError {
            uuid,
            time,
            message,
        } => json(store.record_sensor_error(uuid, time, message).await?),
        Request::RecordActivity { batch } => json(store.record_activity(batch).await?),
        Request::DayStats { day } => json(store.day_stats(day).await?),
        Request::AddBlock { block } => json(store.add_block(block).await?),
        Request::RemoveBlock { target } => json(store.remove_block(target).await?),
        Request::ListBlocks { now } => json(store.list_blocks(now).await?),
        Request::CheckBlocked { ip, uuid, now } => json(store.check_blocked(ip, uuid, now).await?),
        Request::RequestKick { uuid, now } => json(store.request_kick(uuid, now).await?),
        Request::AcceptedTypes => json(store.accepted_types().await?),
        Request::SetTypeAccepted { d4_type, accepted } => {
            json(store.set_type_accepted(d4_type, accepted).await?)
        }
        Request::AcceptedExtTypes => json(store.accepted_ext_types().await?),
        Request::SetExtTypeAccepted { ext, accepted } => {
            json(store.set_ext_type_accepted(ext, accepted).await?)
        }
        Request::TryClaimSession { claim, now } => json(store.try_claim_session(claim, now).await?),
        Request::RenewSessions {
            server_id,
            lease_secs,
            now,
        } => json(store.renew_sessions(server_id, lease_secs, now).await?),
        Request::ReleaseSession {
            uuid,
            d4_type,
            session_id,
        } => json(store.release_session(uuid, d4_type, session_id).await?),
        Request::ListSessions { now } => json(store.list_sessions(now).await?),
        Request::ClearSessions { server_id } => json(store.clear_sessions(server_id).await?),
        Request::CreateQueue { config, now } => json(store.create_queue(config, now).await?),
        Request::ListQueues => json(store.list_queues().await?),
        Request::GetQueue { uuid } => json(store.get_queue(uuid).await?),
        Request::UpdateQueue { config, now } => json(store.update_queue(config, now).await?),
        Request::DeleteQueue { uuid } => json(store.delete_queue(uuid).await?),
        Request::QueuesFor { kind, sensor } => json(store.queues_for(kind, sensor).await?),
        Request::PushEntries {
            queues,
            entries,
            now,
        } => json(store.push_entries(queues, entries, now).await?),
        Request::PushEntriesOnce {
            journal,
            position,
            queues,
            entries,
            now,
        } => json(
            store
                .push_entries_once(journal, position, queues, entries, now)
                .await?,
        ),
        Request::JournalPosition { journal } => json(store.journal_position(journal).await?),
        Request::ForgetJournal { journal } => json(store.forget_journal(journal).await?),
        Request::PopEntries { queue, max } => json(store.pop_entries(queue, max).await?),
        Request::PopEntriesBlocking {
            queue,
            max,
            timeout,
        } => json(store.pop_entries_blocking(queue, max, timeout).await?),
        Request::QueueLen { queue } => json(store.queue_len(queue).await?),
        Request::QueueSample { queue, n } => json(store.queue_sample(queue, n).await?),
        Request::EmptyQueue { queue } => json(store.empty_queue(queue).await?),
        Request::CreateUser { user } => json(store.create_user(user).await?),
        Request::GetUser { name } => json(store.get_user(name).await?),
        Request::ListUsers => json(store.list_users().await?),
        Request::UpdateUser { user } => json(store.update_user(user).await?),
        Request::DeleteUser { name } => json(store.delete_user(name).await?),
        Request::UserByTokenHash { token_hash } => {
            json(store.user_by_token_hash(token_hash).await?)
        }
        Request::CreateWebSession { session } => json(store.create_web_session(session).await?),
        Request::GetWebSession { id_hash, now } => json(store.get_web_session(id_hash, now).await?),
        Request::DeleteWebSession { id_hash } => json(store.delete_web_session(id_hash).await?),
        Request::PurgeExpired { now } => json(store.purge_expired(now).await?),
    }
}

/// Read one line (without the newline) of at most [`MAX_LINE`] bytes. `Ok(None)` at EOF.
pub(crate) async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<()>> {
    buf.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "truncated line",
                ))
            };
        }
        if let Some(pos) = available.iter().position(|&b| b == b'\n') {
            buf.extend_from_slice(&available[..pos]);
            reader.consume(pos + 1);
            return Ok(Some(()));
        }
        let n = available.len();
        buf.extend_from_slice(available);
        reader.consume(n);
        if buf.len() > MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
    }
}

/// A running socket server; dropping it does not stop it: call [`SocketServer::shutdown`].
#[derive(Debug)]
pub struct SocketServer {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl SocketServer {
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Stop accepting, abort the listener and remove the socket file. Open connections
    /// finish their current request.
    pub fn shutdown(self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serve `store` on the Unix socket `path` (mode 0600). A stale socket file (no process
/// answering) is replaced; a live one is an error (`AlreadyExists`).
pub async fn serve_socket(store: Arc<dyn Store>, path: &Path) -> Result<SocketServer> {
    if path.exists() {
        match tokio::time::timeout(Duration::from_secs(2), UnixStream::connect(path)).await {
            Ok(Ok(_)) => {
                return Err(StoreError::AlreadyExists(format!(
                    "another process serves the store socket {}",
                    path.display()
                )))
            }
            _ => {
                let _ = std::fs::remove_file(path);
            }
        }
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| StoreError::Connection(format!("bind {}: {e}", path.display())))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| StoreError::Connection(format!("chmod {}: {e}", path.display())))?;
    }
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let store = store.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_connection(store, stream).await {
                            tracing::debug!(error = %e, "store socket connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "store socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(SocketServer {
        path: path.to_path_buf(),
        task,
    })
}

async fn serve_connection(store: Arc<dyn Store>, stream: UnixStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    while read_line(&mut reader, &mut line).await?.is_some() {
        let answer = match serde_json::from_slice::<Request>(&line) {
            Ok(Request::Subscribe) => {
                let events = store.subscribe();
                write.write_all(b"{\"ok\":\"subscribed\"}\n").await?;
                return stream_events(events, reader, write).await;
            }
            Ok(req @ Request::PopEntriesBlocking { .. }) => {
                // A client that goes away while waiting must not take entries with it:
                // cancel the (cancel-safe) wait when the connection closes.
                let fut = dispatch(store.as_ref(), req);
                tokio::pin!(fut);
                let r = tokio::select! {
                    r = &mut fut => r,
                    closed = peer_closed(&mut reader) => {
                        if closed {
                            return Ok(());
                        }
                        fut.await
                    }
                };
                match r {
                    Ok(v) => Answer::Ok(v),
                    Err(e) => Answer::Err(e),
                }
            }
            Ok(req) => match dispatch(store.as_ref(), req).await {
                Ok(v) => Answer::Ok(v),
                Err(e) => Answer::Err(e),
            },
            Err(e) => Answer::Err(StoreError::Invalid(format!("bad request: {e}"))),
        };
        let mut out = serde_json::to_vec(&answer).map_err(std::io::Error::other)?;
        out.push(b'\n');
        write.write_all(&out).await?;
    }
    Ok(())
}

/// Whether the peer closed the connection (EOF or error); `false` if it sent more data.
async fn peer_closed<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> bool {
    match reader.fill_buf().await {
        Ok(buf) => buf.is_empty(),
        Err(_) => true,
    }
}

async fn stream_events(
    mut events: broadcast::Receiver<StoreEvent>,
    mut reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    mut write: tokio::net::unix::OwnedWriteHalf,
) -> std::io::Result<()> {
    let mut sink = [0u8; 256];
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    let mut out = serde_json::to_vec(&ev).map_err(std::io::Error::other)?;
                    out.push(b'\n');
                    write.write_all(&out).await?;
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "store event subscriber lagged");
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            n = tokio::io::AsyncReadExt::read(&mut reader, &mut sink) => {
                if n? == 0 { return Ok(()); }
            }
        }
    }
}
