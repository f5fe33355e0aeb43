//! Start-up recovery of the journal folder: finds the journals a previous run left
//! ([`recover`]) and, before the worker files are finished, cuts the bytes written for
//! frames that were not acknowledged ([`cut_uncommitted`]).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use d4_proto::{Decoder, Frame};
use uuid::Uuid;

use super::ack::{parse_ack, parse_created, AckRecord};
use super::replay::Leftover;
use super::{ack_path, meta_path, sync_dir};

fn read_frames(path: &Path) -> io::Result<Vec<Frame>> {
    let raw = fs::read(path)?;
    let mut input = Bytes::from(raw);
    let mut dec = Decoder::with_max_payload(u32::MAX);
    let mut out = Vec::new();
    while let Ok(Some(f)) = dec.decode(&mut input) {
        out.push(f);
    }
    Ok(out)
}

/// Finds the journals of a previous run under `dir`.
pub fn recover(dir: &Path) -> io::Result<Vec<Leftover>> {
    let mut found: std::collections::BTreeMap<Uuid, Vec<(u64, PathBuf)>> = Default::default();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut sessions = std::collections::BTreeSet::new();
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let mut parts = name.split('.');
        let (Some(id), Some(rest)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(session) = Uuid::parse_str(id) else {
            continue;
        };
        sessions.insert(session);
        if let (Ok(seg), Some("jnl")) = (rest.parse::<u64>(), parts.next()) {
            found.entry(session).or_default().push((seg, e.path()));
        }
    }
    let mut out = Vec::new();
    for session in sessions {
        let mut segs = found.remove(&session).unwrap_or_default();
        segs.sort();
        let (rec, created) = match fs::read(ack_path(dir, &session)) {
            Ok(b) => (parse_ack(&b), parse_created(&b)),
            Err(_) => (AckRecord::default(), Vec::new()),
        };
        let (ack_seg, ack_off) = (rec.seg, rec.off);
        let mut segments = Vec::new();
        for (seg, path) in segs {
            if seg < ack_seg {
                continue;
            }
            let from = if seg == ack_seg { ack_off } else { 0 };
            segments.push((seg, path, from));
        }
        let meta_frames = match read_frames(&meta_path(dir, &session)) {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        out.push(Leftover {
            session,
            segments,
            meta_frames,
            first_seq: rec.next_seq,
            skip: rec.skip,
            file: rec.file,
            created,
            dir: dir.to_path_buf(),
        });
    }
    Ok(out)
}

/// Before the files of a crashed run are finished: cuts each session's open file back to
/// its length at the session's last acknowledgement (the bytes past it were written for
/// frames that are not acknowledged, which the replay writes again). Returns the bytes
/// cut.
pub fn cut_uncommitted(dir: &Path) -> io::Result<u64> {
    let mut cut = 0;
    for left in recover(dir)? {
        for path in &left.created {
            match fs::remove_file(path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a file created after the last acknowledgement (its frames are replayed)");
                    if let Some(d) = path.parent() {
                        sync_dir(d)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let Some((path, len)) = &left.file else {
            continue;
        };
        let f = match OpenOptions::new().write(true).open(path) {
            Ok(f) => f,
            // finished (gzipped) already: nothing was written to it after the ack
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let have = f.metadata()?.len();
        if have > *len {
            f.set_len(*len)?;
            f.sync_all()?;
            cut += have - len;
            tracing::info!(path = %path.display(), bytes = have - len, "cut bytes of frames not acknowledged");
        }
    }
    Ok(cut)
}
