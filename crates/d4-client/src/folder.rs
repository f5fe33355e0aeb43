//! The `folder` source: every file written and closed (or moved) under a folder,
//! recursively, is sent as one frame sequence (base64 text by default, the raw bytes with
//! `--json`) followed by a frame holding a single newline, as the Go client does.
//! With `--daily`, only files under `YYYYMMDD` sub-folders are taken, and the client creates
//! today's sub-folder (local time) so that producers can write into it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};

use crate::source::{emit_file_base64, Emitter, SourceError};

/// True when `path`, relative to `root`, lies in a `YYYYMMDD` folder.
pub fn in_daily_folder(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let mut comps = rel.components();
    let first = comps.next();
    let is_date = first.is_some_and(|c| {
        let s = c.as_os_str().to_string_lossy();
        s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit())
    });
    is_date && comps.next().is_some()
}

fn today() -> String {
    chrono::Local::now().format("%Y%m%d").to_string()
}

pub fn watch(
    root: &Path,
    json: bool,
    daily: bool,
    poll: Duration,
    em: &mut Emitter,
) -> Result<(), SourceError> {
    let (tx, rx) = std_mpsc::channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(tx)
        .map_err(|e| SourceError::Io(format!("cannot watch {}: {e}", root.display())))?;
    watcher
        .watch(root, RecursiveMode::Recursive)
        .map_err(|e| SourceError::Io(format!("cannot watch {}: {e}", root.display())))?;
    tracing::info!(folder = %root.display(), json, daily, "watching for new files");
    let mut day = String::new();
    let mut queue: VecDeque<PathBuf> = VecDeque::new();
    loop {
        if daily {
            let t = today();
            if t != day {
                let d = root.join(&t);
                if let Err(e) = std::fs::create_dir_all(&d) {
                    tracing::warn!(folder = %d.display(), "cannot create the daily folder: {e}");
                }
                day = t;
            }
        }
        while let Some(p) = queue.pop_front() {
            if !p.is_file() {
                continue;
            }
            tracing::debug!(file = %p.display(), "sending file");
            let res = if json {
                match std::fs::File::open(&p) {
                    Ok(mut f) => crate::source::read_stream(&mut f, em),
                    Err(e) => Err(SourceError::Io(e.to_string())),
                }
            } else {
                emit_file_base64(&p, em)
            };
            match res {
                Ok(()) => em.emit(b"\n")?,
                Err(SourceError::Closed) => return Err(SourceError::Closed),
                Err(SourceError::Io(e)) => {
                    tracing::warn!(file = %p.display(), "cannot read file, skipped: {e}");
                }
            }
        }
        if em.is_closed() {
            return Err(SourceError::Closed);
        }
        match rx.recv_timeout(poll) {
            Ok(Ok(ev)) => {
                let take = match ev.kind {
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) => ev.paths.first(),
                    EventKind::Modify(ModifyKind::Name(RenameMode::To)) => ev.paths.first(),
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => ev.paths.get(1),
                    _ => None,
                };
                if let Some(p) = take {
                    if !daily || in_daily_folder(root, p) {
                        if !queue.contains(p) {
                            queue.push_back(p.clone());
                        }
                    } else {
                        tracing::debug!(file = %p.display(), "not in a YYYYMMDD folder: ignored");
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!("folder watch error: {e}"),
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                return Err(SourceError::Io("folder watcher stopped".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_paths() {
        let r = Path::new("/d");
        assert!(in_daily_folder(r, Path::new("/d/20260101/a.json")));
        assert!(in_daily_folder(r, Path::new("/d/20260101/x/a.json")));
        assert!(!in_daily_folder(r, Path::new("/d/a.json")));
        assert!(!in_daily_folder(r, Path::new("/d/2026011/a.json")));
        assert!(!in_daily_folder(r, Path::new("/d/20260101")));
    }
}
