//! The interface through which workers hand entries to the analyzer queues.

use std::sync::Mutex;

use thiserror::Error;
use uuid::Uuid;

/// Which analyzer queues an entry is for: the queues of `d4_type` (or, for type 254, of
/// the extended type `ext_type`) that take data of `sensor` (global queues and queues
/// whose sensor group holds it — the store decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueTarget<'a> {
    pub d4_type: u8,
    /// `Some` for type 254 only: the validated extended type name.
    pub ext_type: Option<&'a str>,
    pub sensor: Uuid,
}

/// The owned form of a [`QueueTarget`] (kept by workers and the compressor).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnedTarget {
    pub d4_type: u8,
    pub ext_type: Option<String>,
    pub sensor: Uuid,
}

impl OwnedTarget {
    pub fn as_target(&self) -> QueueTarget<'_> {
        QueueTarget {
            d4_type: self.d4_type,
            ext_type: self.ext_type.as_deref(),
            sensor: self.sensor,
        }
    }
}

/// A queue backend refused or failed a push.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SinkError {
    #[error("analyzer queue backend: {0}")]
    Backend(String),
}

/// The idempotency key of a push: who produced it (a session's journal, a finished file)
/// and a sequence number that grows with each push of that producer. A push whose key is
/// not greater than the last one recorded for its producer is a repeat (a replay after a
/// crash) and pushes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PushId {
    pub producer: Uuid,
    pub seq: u64,
}

/// Entries for one queue target, in order.
pub type Outgoing = (OwnedTarget, Vec<String>);

/// Where workers push analyzer-queue entries: lines (types 3, 4, 6, 8, extended
/// `default`/`maltrail`) or absolute file paths (type 1 `.cap.gz`, `ja3-jl` JSON files,
/// `filewatcher` / `filewatcherjson` files). Entries keep their order.
///
/// Lines that are not valid UTF-8 are converted lossily (U+FFFD) before they get here.
pub trait QueueSink: Send + Sync {
    /// Appends every target's entries as one batch (one store transaction). With a key,
    /// at most once per key (see [`PushId`]); returns false when the key was a repeat.
    fn push_batch(&self, key: Option<PushId>, batch: Vec<Outgoing>) -> Result<bool, SinkError>;

    /// [`QueueSink::push_batch`] of one target's entries, without a key.
    fn push(&self, target: QueueTarget<'_>, entries: Vec<String>) -> Result<(), SinkError> {
        self.push_batch(None, vec![(target.to_owned(), entries)])
            .map(|_| ())
    }

    /// The producer's recorded key is no longer needed (its pushes can never repeat).
    fn forget(&self, _producer: Uuid) -> Result<(), SinkError> {
        Ok(())
    }
}

impl QueueTarget<'_> {
    pub fn to_owned(&self) -> OwnedTarget {
        OwnedTarget {
            d4_type: self.d4_type,
            ext_type: self.ext_type.map(str::to_owned),
            sensor: self.sensor,
        }
    }
}

/// A sink that drops everything (for a server with no analyzers, or benchmarks).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullQueueSink;

impl QueueSink for NullQueueSink {
    fn push_batch(&self, _key: Option<PushId>, _batch: Vec<Outgoing>) -> Result<bool, SinkError> {
        Ok(true)
    }
}

/// A sink keeping every entry in memory, in push order, with the store's at-most-once
/// rule for keyed pushes. For tests.
#[derive(Debug, Default)]
pub struct MemoryQueueSink {
    entries: Mutex<Vec<(OwnedTarget, String)>>,
    fail: Mutex<Option<String>>,
    keys: Mutex<std::collections::HashMap<Uuid, u64>>,
}

impl MemoryQueueSink {
    pub fn new() -> MemoryQueueSink {
        MemoryQueueSink::default()
    }

    /// Every entry pushed so far, with its target.
    pub fn all(&self) -> Vec<(OwnedTarget, String)> {
        self.entries.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// The entries pushed for `d4_type` (and `ext_type`), in order.
    pub fn entries(&self, d4_type: u8, ext_type: Option<&str>) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|(t, _)| t.d4_type == d4_type && t.ext_type.as_deref() == ext_type)
            .map(|(_, e)| e)
            .collect()
    }

    /// Makes every following push fail with `msg` (`None`: succeed again).
    pub fn set_failure(&self, msg: Option<&str>) {
        if let Ok(mut g) = self.fail.lock() {
            *g = msg.map(str::to_owned);
        }
    }
}

impl MemoryQueueSink {
    /// The producers whose last key is still recorded.
    pub fn producers(&self) -> Vec<Uuid> {
        self.keys
            .lock()
            .map(|k| k.keys().copied().collect())
            .unwrap_or_default()
    }
}

impl QueueSink for MemoryQueueSink {
    fn push_batch(&self, key: Option<PushId>, batch: Vec<Outgoing>) -> Result<bool, SinkError> {
        if let Ok(g) = self.fail.lock() {
            if let Some(msg) = g.as_ref() {
                return Err(SinkError::Backend(msg.clone()));
            }
        }
        let mut keys = self
            .keys
            .lock()
            .map_err(|_| SinkError::Backend("poisoned".into()))?;
        if let Some(k) = key {
            if keys.get(&k.producer).is_some_and(|last| *last >= k.seq) {
                return Ok(false);
            }
            keys.insert(k.producer, k.seq);
        }
        let mut g = self
            .entries
            .lock()
            .map_err(|_| SinkError::Backend("poisoned".into()))?;
        for (t, entries) in batch {
            g.extend(entries.into_iter().map(|e| (t.clone(), e)));
        }
        Ok(true)
    }

    fn forget(&self, producer: Uuid) -> Result<(), SinkError> {
        if let Ok(mut k) = self.keys.lock() {
            k.remove(&producer);
        }
        Ok(())
    }
}
