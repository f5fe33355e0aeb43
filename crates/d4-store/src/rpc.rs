//! The store's Unix-socket protocol: JSON lines. The client writes one [`Request`] per
//! line (the request enum and its dispatch are generated from the operations list in
//! [`crate::ops`]); the server answers one line `{"ok": <value>}` or `{"err": <StoreError>}`, in
//! order. `{"op": "subscribe"}` turns the connection into an event stream (one
//! [`StoreEvent`] per line). Lines are bounded ([`MAX_LINE`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;

use crate::model::*;
use crate::ops::{dispatch, Request};
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
