//! Sources: each runs on its own thread, cuts its input into reads of at most `snaplen`
//! bytes, frames each read (one read = one frame, as the reference clients do) and hands
//! the encoded frames to the sender through a bounded channel. A full channel blocks the
//! thread: that is the backpressure that stops reading when the spool is full.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::sync::mpsc;

use crate::backoff::Backoff;
use crate::config::SourceKind;
use crate::framer::Framer;
use crate::redis::RedisList;

/// What a source sends to the sender.
#[derive(Debug)]
pub enum Msg {
    /// One or more whole encoded frames.
    Frames(Vec<u8>),
    /// The source failed and stopped (the sender flushes and the run ends with this error).
    Failed(String),
}

/// A source's side of the channel: framing plus sending.
pub struct Emitter {
    framer: Framer,
    tx: mpsc::Sender<Msg>,
    /// Set on shutdown: the source stops before its next read (what it already read is
    /// still sent, so nothing read is lost).
    stop: Arc<AtomicBool>,
}

/// The sender went away (shutdown): the source stops.
#[derive(Debug)]
pub struct Closed;

impl Emitter {
    pub fn new(framer: Framer, tx: mpsc::Sender<Msg>, stop: Arc<AtomicBool>) -> Emitter {
        Emitter { framer, tx, stop }
    }

    /// Frames one read and sends it (blocks while the channel is full).
    pub fn emit(&mut self, payload: &[u8]) -> Result<(), Closed> {
        let f = self.framer.frame(payload).map_err(|_| Closed)?;
        self.tx.blocking_send(Msg::Frames(f)).map_err(|_| Closed)
    }

    /// How many frames can be handed over now without waiting. With one source thread (the
    /// only sender), `emit` of that many frames does not block: a source that cannot wait
    /// checks this before sending a record of several frames, so it sends all or none.
    pub fn free_slots(&self) -> usize {
        self.tx.capacity()
    }

    /// Frames `data` in pieces of at most `snaplen` bytes (never truncates).
    pub fn emit_chunked(&mut self, data: &[u8]) -> Result<(), Closed> {
        let n = self.framer.snaplen();
        for piece in data.chunks(n) {
            self.emit(piece)?;
        }
        Ok(())
    }

    pub fn fail(&self, msg: String) {
        tracing::error!("source failed: {msg}");
        let _ = self.tx.blocking_send(Msg::Failed(msg));
    }

    /// True when the source must stop reading (shutdown, or the sender is gone).
    pub fn is_closed(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.tx.is_closed()
    }

    pub fn snaplen(&self) -> usize {
        self.framer.snaplen()
    }
}

/// Runs the source to its end on the current thread.
pub fn run_source(kind: SourceKind, follow: bool, poll: Duration, mut em: Emitter) {
    let res = match kind {
        SourceKind::Stdin => read_stream(&mut io::stdin().lock(), &mut em),
        SourceKind::File(p) => read_file(&p, follow, poll, &mut em),
        SourceKind::Folder { dir, json, daily } => {
            crate::folder::watch(&dir, json, daily, poll, &mut em)
        }
        SourceKind::Redis {
            host_port,
            db,
            queue,
        } => read_redis(&host_port, db, &queue, poll, &mut em),
    };
    match res {
        Ok(()) | Err(SourceError::Closed) => {}
        Err(SourceError::Io(e)) => em.fail(e),
    }
}

#[derive(Debug)]
pub enum SourceError {
    Closed,
    Io(String),
}

impl From<Closed> for SourceError {
    fn from(_: Closed) -> SourceError {
        SourceError::Closed
    }
}

fn read_once(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// One frame per read until end of input.
pub fn read_stream(r: &mut impl Read, em: &mut Emitter) -> Result<(), SourceError> {
    let mut buf = vec![0u8; em.snaplen()];
    loop {
        if em.is_closed() {
            return Err(SourceError::Closed);
        }
        let n = read_once(r, &mut buf).map_err(|e| SourceError::Io(e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        em.emit(&buf[..n])?;
    }
}

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}
#[cfg(not(unix))]
fn file_id(_m: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// A file to its end; with `follow`, keeps reading as it grows (reopening it when it is
/// replaced or truncated, like `tail -F`).
fn read_file(
    path: &Path,
    follow: bool,
    poll: Duration,
    em: &mut Emitter,
) -> Result<(), SourceError> {
    let io_err = |e: io::Error| SourceError::Io(format!("{}: {e}", path.display()));
    let mut f = File::open(path).map_err(io_err)?;
    if !follow {
        return read_stream(&mut f, em);
    }
    let mut id = file_id(&f.metadata().map_err(io_err)?);
    let mut pos: u64 = 0;
    let mut buf = vec![0u8; em.snaplen()];
    loop {
        if em.is_closed() {
            return Err(SourceError::Closed);
        }
        let n = read_once(&mut f, &mut buf).map_err(io_err)?;
        if n > 0 {
            pos += n as u64;
            em.emit(&buf[..n])?;
            continue;
        }
        if em.is_closed() {
            return Err(SourceError::Closed);
        }
        std::thread::sleep(poll);
        match std::fs::metadata(path) {
            Ok(m) if file_id(&m) != id => {
                // rotated: finish the old file first, then switch
                let n = read_once(&mut f, &mut buf).map_err(io_err)?;
                if n > 0 {
                    pos += n as u64;
                    em.emit(&buf[..n])?;
                    continue;
                }
                tracing::info!(file = %path.display(), "followed file was replaced: reopening");
                match File::open(path) {
                    Ok(nf) => {
                        f = nf;
                        id = file_id(&m);
                        pos = 0;
                    }
                    Err(e) => tracing::debug!("reopen: {e}"),
                }
            }
            Ok(m) if m.len() < pos => {
                tracing::info!(file = %path.display(), "followed file was truncated: reading from its start");
                f = File::open(path).map_err(io_err)?;
                pos = 0;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(file = %path.display(), "followed file: {e}"),
        }
    }
}

/// A Redis list: each item is one line (`item\n`), in frames of at most snaplen bytes.
fn read_redis(
    host_port: &str,
    db: u32,
    queue: &str,
    poll: Duration,
    em: &mut Emitter,
) -> Result<(), SourceError> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut logged = false;
    loop {
        if em.is_closed() {
            return Err(SourceError::Closed);
        }
        let mut list = match RedisList::connect(host_port, db) {
            Ok(l) => {
                tracing::info!(redis = host_port, db, queue, "reading the Redis list");
                backoff.reset();
                logged = false;
                l
            }
            Err(e) => {
                if !logged {
                    tracing::warn!(redis = host_port, "cannot reach Redis ({e}): retrying");
                    logged = true;
                }
                std::thread::sleep(backoff.next_delay());
                continue;
            }
        };
        loop {
            if em.is_closed() {
                return Err(SourceError::Closed);
            }
            match list.lpop(queue) {
                Ok(Some(item)) => {
                    let mut line = item.clone();
                    line.push(b'\n');
                    if let Err(Closed) = em.emit_chunked(&line) {
                        // popped but not handed over (shutdown): put it back at the head
                        match list.lpush(queue, &item) {
                            Ok(()) => tracing::info!(
                                queue,
                                "shutdown: item put back at the head of the list"
                            ),
                            Err(e) => tracing::error!(
                                queue,
                                "shutdown: could not put an item back ({e}): {} bytes lost",
                                item.len()
                            ),
                        }
                        return Err(SourceError::Closed);
                    }
                }
                Ok(None) => {
                    if em.is_closed() {
                        return Err(SourceError::Closed);
                    }
                    std::thread::sleep(poll);
                }
                Err(e) => {
                    tracing::warn!(redis = host_port, "Redis error ({e}): reconnecting");
                    break;
                }
            }
        }
    }
}

/// Base64 of a whole file, in frames of at most snaplen bytes (one base64 text per file).
pub fn emit_file_base64(path: &PathBuf, em: &mut Emitter) -> Result<(), SourceError> {
    let io_err = |e: io::Error| SourceError::Io(format!("{}: {e}", path.display()));
    let mut f = File::open(path).map_err(io_err)?;
    let raw_chunk = (em.snaplen() / 4).max(1) * 3;
    let mut buf = vec![0u8; raw_chunk];
    loop {
        // fill the buffer completely (padding may only appear at the very end)
        let mut got = 0;
        while got < raw_chunk {
            let n = read_once(&mut f, &mut buf[got..]).map_err(io_err)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got == 0 {
            return Ok(());
        }
        let enc = base64::engine::general_purpose::STANDARD.encode(&buf[..got]);
        em.emit_chunked(enc.as_bytes())?;
        if got < raw_chunk {
            return Ok(());
        }
    }
}
