//! Where a worker's output goes between two durability points of its caller.
//!
//! By default ([`Mode::Immediate`]) queue entries are pushed to the [`QueueSink`] as soon
//! as a frame produced them and a finished (rotated) file goes to the gzip thread at once:
//! right for a worker used on its own (tests, tools).
//!
//! The collector holds them instead ([`crate::Worker::hold_delivery`]): a frame's entries
//! wait in the worker until the server takes them ([`crate::Worker::take_entries`]) and
//! pushes one batch per acknowledgement under an explicit idempotency key; a finished file
//! waits ([`crate::Worker::release_files`]) until the server's journal no longer names
//! it, so that the bytes past the last acknowledgement can still be cut from it after a
//! crash (a gzipped file could not be cut, and a replay would write its frames twice); and
//! before a new rotating file is created the [`FileLog`] records its name, so that a
//! crash before the next acknowledgement removes it instead of leaving frames that the
//! replay writes again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::files::Shared;
use crate::sink::{Outgoing, OwnedTarget};
use crate::WorkerError;

/// Records, durably enough for a crash of the process, that a rotating file is about to
/// be created (the server's journal: see `d4-server`'s `journal` module).
pub trait FileLog: Send + Sync {
    fn creating(&self, path: &Path) -> std::io::Result<()>;
}

#[derive(Default)]
struct State {
    hold: bool,
    entries: Vec<Outgoing>,
    files: Vec<(PathBuf, Option<OwnedTarget>)>,
    log: Option<Arc<dyn FileLog>>,
}

/// The delivery state of one worker, shared by its rotating files.
#[derive(Clone, Default)]
pub(crate) struct Outbox(Arc<Mutex<State>>);

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding it cannot leave the state half-updated (plain pushes).
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn hold(&self, log: Option<Arc<dyn FileLog>>) {
        let mut s = self.lock();
        s.hold = true;
        s.log = log;
    }

    /// Entries produced by a frame: held, or pushed now (no key: a worker on its own).
    pub fn push(
        &self,
        shared: &Shared,
        target: &OwnedTarget,
        entries: Vec<String>,
    ) -> Result<(), WorkerError> {
        {
            let mut s = self.lock();
            if s.hold {
                match s.entries.last_mut() {
                    Some((t, e)) if t == target => e.extend(entries),
                    _ => s.entries.push((target.clone(), entries)),
                }
                return Ok(());
            }
        }
        shared.sink.push(target.as_target(), entries)?;
        Ok(())
    }

    /// A rotating file was closed (synced): held, or handed to the gzip thread now.
    pub fn finished(&self, shared: &Shared, path: PathBuf, target: Option<OwnedTarget>) {
        {
            let mut s = self.lock();
            if s.hold {
                s.files.push((path, target));
                return;
            }
        }
        shared.compressor.submit(path, target);
    }

    /// A rotating file is about to be created.
    pub fn creating(&self, path: &Path) -> Result<(), WorkerError> {
        let log = self.lock().log.clone();
        match log {
            Some(l) => l.creating(path).map_err(|e| WorkerError::io(path, e)),
            None => Ok(()),
        }
    }

    pub fn take_entries(&self) -> Vec<Outgoing> {
        std::mem::take(&mut self.lock().entries)
    }

    pub fn holds_files(&self) -> bool {
        !self.lock().files.is_empty()
    }

    pub fn release_files(&self, shared: &Shared) {
        let files = std::mem::take(&mut self.lock().files);
        for (path, target) in files {
            shared.compressor.submit(path, target);
        }
    }
}
