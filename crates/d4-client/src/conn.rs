//! One connection to the collector: writes that end on frame boundaries (over TLS, in
//! records cut by [`crate::wire`]), a task that reads what the collector sends, and the
//! proper close — `close_notify`, half-close, then reading until the collector's end of
//! stream, bounded — that tells the sender whether the collector confirmed the end.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::dest::{Link, Stream};
use crate::wire;

/// How long a single batch write may take before the connection is considered dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// How the collector's side of a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerEnd {
    /// End of stream (with or without a TLS `close_notify`): the collector read our whole
    /// stream, up to our close, or it closed on its own.
    Closed,
    /// Reset or another read error: what it had not read yet may be lost.
    Failed(String),
}

pub(crate) struct Conn {
    w: WriteHalf<Box<dyn Stream>>,
    /// TLS: writes are cut into records of at most this size (see [`crate::wire`]).
    record_max: Option<usize>,
    /// Fires when the collector's side ends (the reader task saw EOF or an error).
    end_rx: oneshot::Receiver<PeerEnd>,
    ended: Option<PeerEnd>,
    pub(crate) reader: tokio::task::JoinHandle<()>,
}

impl Conn {
    /// Splits the stream; a task reads (and ignores) what the collector sends — TLS session
    /// tickets, its `close_notify` — so that unread bytes never turn our close into a reset.
    pub(crate) fn new(link: Link) -> Conn {
        let (mut r, w) = tokio::io::split(link.stream);
        let (tx, end_rx) = oneshot::channel();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            let end = loop {
                match r.read(&mut buf).await {
                    Ok(0) => break PeerEnd::Closed,
                    // a TCP end without close_notify: still an orderly end of the peer's side
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        break PeerEnd::Closed
                    }
                    Err(e) => break PeerEnd::Failed(e.to_string()),
                    Ok(_) => {} // collectors do not talk; ignore
                }
            };
            let _ = tx.send(end);
        });
        Conn {
            w,
            record_max: link.record_max,
            end_rx,
            ended: None,
            reader,
        }
    }

    pub(crate) fn peer_closed(&mut self) -> bool {
        if self.ended.is_none() {
            match self.end_rx.try_recv() {
                Ok(e) => self.ended = Some(e),
                Err(oneshot::error::TryRecvError::Empty) => {}
                Err(oneshot::error::TryRecvError::Closed) => {
                    self.ended = Some(PeerEnd::Failed("reader stopped".into()));
                }
            }
        }
        self.ended.is_some()
    }

    /// Resolves when the collector's side has ended.
    pub(crate) async fn peer_end(&mut self) -> PeerEnd {
        if let Some(e) = &self.ended {
            return e.clone();
        }
        let e = (&mut self.end_rx)
            .await
            .unwrap_or_else(|_| PeerEnd::Failed("reader stopped".into()));
        self.ended = Some(e.clone());
        e
    }

    /// Closes properly: `close_notify` and half-close (TCP FIN), then keeps reading until
    /// the collector ends its side, which it does once it has read everything we sent.
    /// Closing at once instead, with unread bytes in our socket (TLS 1.3 session tickets),
    /// sends a reset, and the collector's kernel throws away the data it had not read yet.
    /// `Err` when the collector did not end its side within `bound`, or reset it.
    pub(crate) async fn close(mut self, bound: Duration) -> Result<(), String> {
        let deadline = Instant::now() + bound;
        let res = if let Some(e) = self.ended.clone() {
            // the collector had already closed: nothing more can be confirmed
            let _ = tokio::time::timeout(Duration::from_millis(200), self.w.shutdown()).await;
            match e {
                PeerEnd::Closed => Ok(()),
                PeerEnd::Failed(why) => Err(why),
            }
        } else {
            match tokio::time::timeout_at(deadline, self.w.shutdown()).await {
                Err(_) => Err(format!("could not send our close within {bound:?}")),
                Ok(Err(e)) => Err(format!("closing: {e}")),
                Ok(Ok(())) => match tokio::time::timeout_at(deadline, self.peer_end()).await {
                    Err(_) => Err(format!(
                        "no end of stream from the collector within {bound:?}"
                    )),
                    Ok(PeerEnd::Closed) => Ok(()),
                    Ok(PeerEnd::Failed(why)) => Err(why),
                },
            }
        };
        self.reader.abort();
        res
    }

    /// Writes whole frames and flushes; over TLS, in records cut by [`wire::cuts`].
    pub(crate) async fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let fut = async {
            match self.record_max {
                None => self.w.write_all(buf).await?,
                Some(max) => {
                    for r in wire::cuts(buf.len(), max) {
                        self.w.write_all(&buf[r]).await?;
                    }
                }
            }
            self.w.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, fut).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "write timed out",
            )),
        }
    }
}
