#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
//! Helpers shared by the integration tests.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use d4_worker::{MemoryQueueSink, WorkerConfig, WorkerSet};

/// 2025-12-31 23:50:00 UTC
pub const T0: u64 = 1_767_225_000;

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn setup(dir: &Path, f: impl FnOnce(&mut WorkerConfig)) -> (WorkerSet, Arc<MemoryQueueSink>) {
    let mut cfg = WorkerConfig::new(dir);
    cfg.gzip_in_background = false;
    f(&mut cfg);
    let sink = Arc::new(MemoryQueueSink::new());
    (WorkerSet::new(cfg, sink.clone()).unwrap(), sink)
}

pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn gunzip(p: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn rel(dir: &Path, p: &Path) -> String {
    p.strip_prefix(dir).unwrap().to_string_lossy().into_owned()
}
