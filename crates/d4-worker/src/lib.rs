//! # d4-worker — what the collector does with accepted frames
//!
//! One [`Worker`] per (sensor, type) stream receives, in order, the payloads of the frames
//! the server accepted and turns them into files under
//! `<data>/<uuid32hex>/<type>/<YYYY>/<MM>/<DD>/` (rotated every 300 s and at UTC day
//! change, gzipped off the frame path) and into entries of the analyzer queues (lines, or
//! absolute paths of finished files) handed to a [`QueueSink`].
//!
//! Per type: 1 pcap (checked, rotated between records, each file a valid pcap, `.cap.gz`
//! paths queued), 3/4/6/8 lines (to files and queues; 4 rotates only before a line
//! starting with `[`), 5 pcapng (rotated between blocks, each file starting with the section
//! header and interface blocks), 7 raw files, 2+254 meta header then the extended type handlers
//! `default`, `ja3-jl`, `filewatcher`, `filewatcherjson`, `maltrail`. See `docs/workers.md`.
//!
//! Path, rotation, line and pcap logic are pure (clocks are passed in as `now`); files
//! are written at the edge ([`files`]). Hostile input never panics, memory per worker is
//! bounded (line, pcap record and meta header bounds) and path components come only from
//! validated values (uuid hex, numbers, validated extended type names, hex digests).
//!
//! This crate depends on `d4-proto` only among the crates of d4-rs: it must never depend
//! on the store, the server or any analyzer (the server adapts [`QueueSink`] to the
//! store's queues).

mod b64file;
mod config;
mod delivery;
pub mod ext;
pub mod files;
mod ja3;
pub mod layout;
pub mod lines;
mod lines_state;
mod meta_state;
pub mod pcap;
mod pcap_state;
pub mod pcapng;
mod pcapng_state;
mod recover;
mod sink;
mod worker;

use std::path::Path;

use thiserror::Error;

pub use config::WorkerConfig;
pub use delivery::FileLog;
pub use ext::{has_special_handler, ExtKind, SPECIAL_EXT_TYPES};
pub use layout::RotationPolicy;
pub use recover::RecoveryReport;
pub use sink::{
    MemoryQueueSink, NullQueueSink, Outgoing, OwnedTarget, PushId, QueueSink, QueueTarget,
    SinkError,
};
pub use worker::{Worker, WorkerSet, WorkerStats};

/// Why a worker refused data. Every error but [`WorkerError::Io`] and
/// [`WorkerError::Sink`] is about the sensor's data: record it as the sensor's last error
/// and end the stream. After any error other than `Sink`, the worker refuses further data
/// ([`WorkerError::Failed`]); `close` still finishes its files.
#[derive(Debug, Error)]
pub enum WorkerError {
    #[error("type {0} has no worker")]
    UnsupportedType(u8),
    #[error("frame of type {got} given to the worker of type {expected}")]
    WrongType { expected: u8, got: u8 },
    #[error("type 1 stream: {0}")]
    Pcap(#[from] pcap::PcapError),
    #[error("type 5 stream: {0}")]
    Pcapng(#[from] pcapng::PcapngError),
    #[error("meta header: {0}")]
    Meta(#[from] d4_proto::MetaError),
    #[error("type 254 data before a meta header")]
    NoMetaHeader,
    #[error("extended type {0:?} is not accepted")]
    ExtTypeNotAccepted(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("worker stopped after an earlier error: {0}")]
    Failed(String),
}

impl WorkerError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> WorkerError {
        WorkerError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Whether the error is about the sensor's data (as opposed to the server's disk or
    /// queue backend).
    pub fn is_data_error(&self) -> bool {
        !matches!(self, WorkerError::Io { .. } | WorkerError::Sink(_))
    }
}
