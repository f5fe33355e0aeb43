//! Standard input for a slow feed (`tail -F records | d4 pssl ingest -`): read on a thread,
//! so that the ingester, once it reads JSON lines, is woken every second while nothing
//! comes ([`io::ErrorKind::WouldBlock`]) and commits a batch older than its
//! `max_batch_age`; and ended cleanly by SIGINT/SIGTERM (the batch in hand is committed and
//! the summary printed) instead of losing what was read since the last commit.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

/// How often a quiet feed wakes the reader.
const TICK: Duration = Duration::from_secs(1);

/// Standard input read on its own thread. Until [`PacedStdin::pace`] is called it blocks
/// like stdin (format sniffing, captures, certificates); after, a quiet second is a
/// `WouldBlock` error (the caller retries). A stop signal reads as the end of input.
pub struct PacedStdin {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
    paced: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl PacedStdin {
    /// Starts the reading thread; `stop` is set by the signal listener.
    pub fn new(stop: Arc<AtomicBool>) -> (PacedStdin, Arc<AtomicBool>) {
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(4);
        std::thread::spawn(move || {
            let mut stdin = io::stdin().lock();
            loop {
                let mut buf = vec![0u8; 1 << 16];
                match stdin.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.send(Ok(Vec::new()));
                        return;
                    }
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(Ok(buf)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        let paced = Arc::new(AtomicBool::new(false));
        let me = PacedStdin {
            rx,
            chunk: Vec::new(),
            pos: 0,
            paced: paced.clone(),
            stop,
        };
        (me, paced)
    }
}

impl Read for PacedStdin {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.chunk.len() {
                let n = out.len().min(self.chunk.len() - self.pos);
                out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.stop.load(Ordering::Relaxed) {
                return Ok(0);
            }
            let got = if self.paced.load(Ordering::Relaxed) {
                self.rx.recv_timeout(TICK)
            } else {
                // Blocking, but still seeing a stop signal within a tick.
                match self.rx.recv_timeout(TICK) {
                    Err(RecvTimeoutError::Timeout) => continue,
                    other => other,
                }
            };
            match got {
                Ok(Ok(chunk)) if chunk.is_empty() => return Ok(0),
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
            }
        }
    }
}

/// Sets `stop` on the first SIGINT or SIGTERM (from then on those signals no longer kill
/// the process: the ingest ends itself after committing).
pub fn stop_on_signal(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let mut s = crate::cmd::consume::Stop::new();
            s.wait().await;
            tracing::info!("stopping: committing what was read");
            stop.store(true, Ordering::Relaxed);
        });
    });
}
