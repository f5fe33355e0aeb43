//! Worker configuration.

use std::path::PathBuf;

use crate::layout::RotationPolicy;

/// Settings shared by every worker of a server.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Root of the sensors' files (made absolute by [`crate::WorkerSet::new`]).
    pub data_dir: PathBuf,
    /// File rotation: every 300 s and at UTC day change by default.
    pub rotation: RotationPolicy,
    /// Longest line for line types (3, 4, 6, 8, extended `default`, `maltrail`); longer
    /// lines are cut and counted.
    pub max_line: usize,
    /// Longest line for `ja3-jl`, `filewatcher`, `filewatcherjson` (one JSON document or
    /// one base64-encoded file per line); longer lines are dropped and counted.
    pub max_blob_line: usize,
    /// Largest pcap record (`incl_len`) accepted in a type-1 stream.
    pub max_pcap_record: u32,
    /// Largest meta header (type 2).
    pub max_meta: usize,
    /// Gzip rotated files (`.gz`); off: rotated files stay as they are.
    pub gzip: bool,
    /// Gzip in a background thread (off the frame path); off: inline, in `handle`.
    pub gzip_in_background: bool,
    /// Extended types a type-254 stream may announce (`None`: any valid name).
    pub accepted_ext_types: Option<Vec<String>>,
}

impl WorkerConfig {
    /// Defaults for a data dir: 300 s rotation + day change, 64 KiB lines, 16 MiB
    /// filewatcher lines, 256 KiB pcap records, 100 KiB meta header, background gzip.
    pub fn new(data_dir: impl Into<PathBuf>) -> WorkerConfig {
        WorkerConfig {
            data_dir: data_dir.into(),
            rotation: RotationPolicy::default(),
            max_line: 64 * 1024,
            max_blob_line: 16 * 1024 * 1024,
            max_pcap_record: 256 * 1024,
            max_meta: d4_proto::DEFAULT_MAX_META_LEN,
            gzip: true,
            gzip_in_background: true,
            accepted_ext_types: None,
        }
    }

    pub(crate) fn ext_accepted(&self, ext: &str) -> bool {
        match &self.accepted_ext_types {
            None => true,
            Some(list) => list.iter().any(|e| e == ext),
        }
    }
}
