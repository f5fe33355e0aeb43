//! Start-up recovery: finishing the files a previous run left behind (crash, kill -9).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use d4_proto::types;
use uuid::Uuid;

use crate::files::Shared;
use crate::pcap::PcapTracker;
use crate::sink::OwnedTarget;
use crate::WorkerError;

/// What [`crate::WorkerSet::recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Unfinished files handed to the gzip thread (and queued, for types 1, 5, 7).
    pub finished: Vec<PathBuf>,
    /// Stray `.gz.tmp` files removed (their original was still there).
    pub removed_tmp: usize,
    /// Originals removed because their `.gz` was complete.
    pub removed_originals: usize,
    /// Bytes of incomplete last pcap records cut off.
    pub pcap_truncated: u64,
    /// Empty files removed.
    pub removed_empty: usize,
}

/// Suffixes of the files workers rotate (meta header `.json` files are final).
const ROTATED: &[&str] = &[
    ".cap",
    ".syslog.txt",
    ".dnscap.txt",
    ".ndjson",
    ".passivedns.txt",
    ".pcapng",
    ".yaf",
    ".txt",
];

fn subdirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    v.sort();
    v
}

fn plain_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    v.sort();
    v
}

fn numeric(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit())
}

/// Length of the longest prefix of a pcap file that ends at a record boundary (`None`:
/// not a pcap file).
fn pcap_complete_len(path: &Path) -> Option<u64> {
    let mut f = fs::File::open(path).ok()?;
    let mut t = PcapTracker::new(u32::MAX);
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = 0u64;
    let mut good = 0u64;
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        let mut d = &buf[..n];
        while !d.is_empty() {
            let s = t.advance(d).ok()?;
            pos += s.consumed as u64;
            d = &d[s.consumed..];
            if t.at_boundary() {
                good = pos;
            }
        }
    }
    Some(good)
}

pub(crate) fn recover(shared: &Shared) -> Result<RecoveryReport, WorkerError> {
    let mut report = RecoveryReport::default();
    for (sid, sdir) in subdirs(&shared.cfg.data_dir) {
        let Some(sensor) = (sid.len() == 32)
            .then(|| Uuid::try_parse(&sid).ok())
            .flatten()
        else {
            continue;
        };
        for (tname, tdir) in subdirs(&sdir) {
            let Ok(d4_type) = tname.parse::<u8>() else {
                continue;
            };
            for (y, ydir) in subdirs(&tdir) {
                if !numeric(&y, 4) {
                    continue;
                }
                for (m, mdir) in subdirs(&ydir) {
                    if !numeric(&m, 2) {
                        continue;
                    }
                    for (d, ddir) in subdirs(&mdir) {
                        if !numeric(&d, 2) {
                            continue;
                        }
                        if d4_type == types::EXTENDED {
                            for (_, extdir) in subdirs(&ddir) {
                                recover_dir(shared, &extdir, sensor, None, &mut report)?;
                            }
                        } else {
                            recover_dir(shared, &ddir, sensor, Some(d4_type), &mut report)?;
                        }
                    }
                }
            }
        }
    }
    Ok(report)
}

fn recover_dir(
    shared: &Shared,
    dir: &Path,
    sensor: Uuid,
    d4_type: Option<u8>,
    report: &mut RecoveryReport,
) -> Result<(), WorkerError> {
    let target = d4_type
        .filter(|t| matches!(*t, types::PCAP | types::PCAPNG | types::YAF))
        .map(|t| OwnedTarget {
            d4_type: t,
            ext_type: None,
            sensor,
        });
    let files = plain_files(dir);
    for (name, path) in &files {
        if name.ends_with(".gz.tmp") {
            fs::remove_file(path).map_err(|e| WorkerError::io(path, e))?;
            report.removed_tmp += 1;
        }
    }
    for (name, path) in &files {
        if !ROTATED.iter().any(|s| name.ends_with(s)) || !path.exists() {
            continue;
        }
        let gz = dir.join(format!("{name}.gz"));
        if gz.exists() {
            // The .gz is complete (renamed only after fsync): the crash came before the
            // original was deleted, so perhaps before the path was queued. The push
            // repeats the key of the one made before the crash, if any: queued once.
            if let Some(t) = &target {
                if !crate::files::queue_path(&*shared.sink, &gz, t, None) {
                    continue; // both kept: the next start tries again
                }
            }
            crate::files::remove_original(path).map_err(|e| WorkerError::io(path, e))?;
            report.removed_originals += 1;
            if target.is_some() {
                shared.sink.forget(crate::files::file_key(&gz).producer)?;
            }
            continue;
        }
        if fs::metadata(path).map(|m| m.len() == 0).unwrap_or(false) {
            // Created and never written (or cut back to nothing by the server's journal
            // recovery): nothing to keep or queue.
            fs::remove_file(path).map_err(|e| WorkerError::io(path, e))?;
            report.removed_empty += 1;
            continue;
        }
        if name.ends_with(".cap") {
            if let Some(good) = pcap_complete_len(path) {
                let len = fs::metadata(path).map(|m| m.len()).unwrap_or(good);
                if good < len {
                    let f = fs::OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(|e| WorkerError::io(path, e))?;
                    f.set_len(good).map_err(|e| WorkerError::io(path, e))?;
                    f.sync_all().map_err(|e| WorkerError::io(path, e))?;
                    report.pcap_truncated += len - good;
                }
            }
        }
        tracing::info!(path = %path.display(), "finishing a file left by a previous run");
        shared.compressor.submit(path.clone(), target.clone());
        report.finished.push(path.clone());
    }
    Ok(())
}
