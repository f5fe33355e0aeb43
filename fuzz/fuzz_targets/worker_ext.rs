//! Fuzz the extended-type workers (type 2 meta header, then type-254 lines handled by
//! `ja3-jl`, `filewatcher` or `filewatcherjson`: JSON read in place, base64 decoded as a
//! stream into files) with sensor bytes in arbitrary chunks. Never a panic; a failing
//! line is an error value or a counted invalid line; closing always works.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use d4_worker::{MemoryQueueSink, WorkerConfig, WorkerSet};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

const EXT: [&str; 3] = ["ja3-jl", "filewatcher", "filewatcherjson"];

/// One data dir and worker set for the whole run (files accumulate; the target checks
/// behaviour, not content).
fn set() -> &'static (tempfile::TempDir, WorkerSet) {
    static SET: OnceLock<(tempfile::TempDir, WorkerSet)> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|_| std::process::abort());
        let mut cfg = WorkerConfig::new(dir.path());
        cfg.gzip = false;
        cfg.gzip_in_background = false;
        cfg.max_blob_line = 4096;
        let sink = Arc::new(MemoryQueueSink::new());
        let set = WorkerSet::new(cfg, sink).unwrap_or_else(|_| std::process::abort());
        (dir, set)
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let ext = EXT[usize::from(data[0]) % EXT.len()];
    let step = usize::from(data[1]) + 1;
    let body = &data[2..];
    let now = UNIX_EPOCH + Duration::from_secs(1_767_225_000);
    let (_, set) = set();
    let Ok(mut w) = set.worker(Uuid::from_bytes([7; 16]), 2) else {
        return;
    };
    let meta = format!(r#"{{"type":"{ext}","compress":true,"extension":"bin"}}"#);
    if w.handle_payload(2, meta.as_bytes(), now).is_err() {
        return;
    }
    for chunk in body.chunks(step) {
        if w.handle_payload(254, chunk, now).is_err() {
            break;
        }
    }
    let _ = w.close(SystemTime::from(now));
});
