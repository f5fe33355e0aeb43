//! [`RemoteStore`]: every store role over the server's Unix socket (see `rpc`). The
//! operations themselves are generated from the operations list ([`crate::ops`]); this
//! module holds the connection pool, the call and the event stream.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::broadcast;

use crate::model::*;
use crate::ops::Request;
use crate::rpc::{read_line, Answer};
use crate::{Base, Result, StoreError};

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

    /// Send one request and decode its answer (the generated operations call this).
    pub(crate) async fn call<T: DeserializeOwned>(&self, req: Request) -> Result<T> {
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
            // Reconnect while anybody listens: at once when the stream ended because
            // nobody listened for a while (a new subscriber may be waiting already),
            // after a pause when it failed.
            while tx.receiver_count() > 0 {
                if let Err(e) = forward_events(&path, &tx).await {
                    tracing::debug!(error = %e, "store event stream ended");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
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

impl Base for RemoteStore {
    fn backend(&self) -> &'static str {
        "remote"
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        let rx = self.events.subscribe();
        self.start_event_task();
        rx
    }
}
