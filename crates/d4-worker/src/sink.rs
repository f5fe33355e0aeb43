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

/// Where workers push analyzer-queue entries: lines (types 3, 4, 6, 8, extended
/// `default`/`maltrail`) or absolute file paths (type 1 `.cap.gz`, `ja3-jl` JSON files,
/// `filewatcher` / `filewatcherjson` files). Entries of one call keep their order; a call
/// carries the entries of one frame (or one finished file), so implementations should
/// push them as one batch.
///
/// Lines that are not valid UTF-8 are converted lossily (U+FFFD) before they get here.
pub trait QueueSink: Send + Sync {
    fn push(&self, target: QueueTarget<'_>, entries: Vec<String>) -> Result<(), SinkError>;
}

/// A sink that drops everything (for a server with no analyzers, or benchmarks).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl QueueSink for NullSink {
    fn push(&self, _target: QueueTarget<'_>, _entries: Vec<String>) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A sink keeping every entry in memory, in push order. For tests.
#[derive(Debug, Default)]
pub struct MemorySink {
    entries: Mutex<Vec<(OwnedTarget, String)>>,
    fail: Mutex<Option<String>>,
}

impl MemorySink {
    pub fn new() -> MemorySink {
        MemorySink::default()
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

impl QueueSink for MemorySink {
    fn push(&self, target: QueueTarget<'_>, entries: Vec<String>) -> Result<(), SinkError> {
        if let Ok(g) = self.fail.lock() {
            if let Some(msg) = g.as_ref() {
                return Err(SinkError::Backend(msg.clone()));
            }
        }
        let owned = OwnedTarget {
            d4_type: target.d4_type,
            ext_type: target.ext_type.map(str::to_owned),
            sensor: target.sensor,
        };
        let mut g = self
            .entries
            .lock()
            .map_err(|_| SinkError::Backend("poisoned".into()))?;
        g.extend(entries.into_iter().map(|e| (owned.clone(), e)));
        Ok(())
    }
}
