//! The acknowledgement record of a session journal (`<session>.ack`) and the log that
//! rewrites it: where a replay resumes, the worker's open file with its acknowledged
//! length, and the rotating files created since that acknowledgement.
//!
//! Record: little-endian u64 segment, offset, sequence number, skip, file length, u16
//! path length and the open file's path; then (since the rotation fix) the trailer
//! `D4CF`, a u16 count and that many (u16 length, path) of files created since the
//! acknowledgement. The record is rewritten in place with `pwrite`, so a shorter record
//! leaves older bytes behind it: every length decides where a field ends, and a record
//! of an earlier version (no trailer) reads as having created nothing.

use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const CREATED_TAG: &[u8; 4] = b"D4CF";

/// Encodes an acknowledgement record (see the module doc).
pub(super) fn ack_record(
    buf: &mut Vec<u8>,
    seg: u64,
    at: &AckPoint,
    file: Option<(&Path, u64)>,
    created: &[PathBuf],
) {
    buf.clear();
    buf.extend_from_slice(&seg.to_le_bytes());
    buf.extend_from_slice(&at.off.to_le_bytes());
    buf.extend_from_slice(&at.seq.to_le_bytes());
    buf.extend_from_slice(&at.skip.to_le_bytes());
    let (path, len) = match file {
        Some((p, l)) if p.as_os_str().len() <= u16::MAX as usize => (p.as_os_str().as_bytes(), l),
        _ => (&[][..], 0),
    };
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&(path.len() as u16).to_le_bytes());
    buf.extend_from_slice(path);
    buf.extend_from_slice(CREATED_TAG);
    let created: Vec<&[u8]> = created
        .iter()
        .map(|p| p.as_os_str().as_bytes())
        .filter(|p| !p.is_empty() && p.len() <= u16::MAX as usize)
        .take(u16::MAX as usize)
        .collect();
    buf.extend_from_slice(&(created.len() as u16).to_le_bytes());
    for p in created {
        buf.extend_from_slice(&(p.len() as u16).to_le_bytes());
        buf.extend_from_slice(p);
    }
}

/// Where a replay must resume in the current segment: the frame at byte `off`, whose
/// sequence number is `seq`, from its payload byte `skip`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckPoint {
    pub off: u64,
    pub seq: u64,
    pub skip: u64,
}

/// A decoded acknowledgement record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct AckRecord {
    pub seg: u64,
    pub off: u64,
    pub next_seq: u64,
    pub skip: u64,
    pub file: Option<(PathBuf, u64)>,
}

fn path_of(b: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

fn u16_at(b: &[u8], i: usize) -> Option<usize> {
    b.get(i..i + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]) as usize)
}

pub(super) fn parse_ack(b: &[u8]) -> AckRecord {
    let u = |i: usize| {
        b.get(i * 8..i * 8 + 8).map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_le_bytes(a)
        })
    };
    let mut r = AckRecord {
        seg: u(0).unwrap_or(0),
        off: u(1).unwrap_or(0),
        next_seq: u(2).unwrap_or(0),
        skip: u(3).unwrap_or(0),
        file: None,
    };
    if let (Some(len), Some(pl)) = (u(4), u16_at(b, 40)) {
        if let Some(p) = b.get(42..42 + pl).filter(|p| !p.is_empty()) {
            r.file = Some((path_of(p), len));
        }
    }
    r
}

/// The files created since the acknowledgement (empty for a record without the trailer
/// or with a damaged one).
pub(super) fn parse_created(b: &[u8]) -> Vec<PathBuf> {
    let Some(pl) = u16_at(b, 40) else {
        return Vec::new();
    };
    let mut i = 42 + pl;
    if b.get(i..i + 4) != Some(&CREATED_TAG[..]) {
        return Vec::new();
    }
    i += 4;
    let Some(n) = u16_at(b, i) else {
        return Vec::new();
    };
    i += 2;
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let Some(l) = u16_at(b, i) else {
            return Vec::new();
        };
        let Some(p) = b.get(i + 2..i + 2 + l) else {
            return Vec::new();
        };
        out.push(path_of(p));
        i += 2 + l;
    }
    out
}

/// The acknowledgement record of one journal and its file, shared between the journal
/// (acknowledgements) and the worker's [`d4_worker::FileLog`] (files created between
/// two acknowledgements).
pub(super) struct AckLog {
    file: File,
    rec: Vec<u8>,
    seg: u64,
    at: AckPoint,
    open: Option<(PathBuf, u64)>,
    created: Vec<PathBuf>,
}

impl AckLog {
    pub fn new(file: File, seg: u64, at: AckPoint, open: Option<(PathBuf, u64)>) -> AckLog {
        AckLog {
            file,
            rec: Vec::with_capacity(128),
            seg,
            at,
            open,
            created: Vec::new(),
        }
    }

    fn write(&mut self) -> io::Result<()> {
        let open = self.open.as_ref().map(|(p, l)| (p.as_path(), *l));
        ack_record(&mut self.rec, self.seg, &self.at, open, &self.created);
        self.file.write_all_at(&self.rec, 0)
    }

    /// Records a new resume point and the open file; the files created before it are
    /// no longer to be removed after a crash.
    pub fn ack(&mut self, seg: u64, at: AckPoint, open: Option<(&Path, u64)>) -> io::Result<()> {
        self.seg = seg;
        self.at = at;
        self.open = open.map(|(p, l)| (p.to_path_buf(), l));
        self.created.clear();
        self.write()
    }

    /// A new segment: the resume point moves to its start (and is synced).
    pub fn next_segment(&mut self, seg: u64) -> io::Result<()> {
        self.seg = seg;
        self.at.off = 0;
        self.write()?;
        self.file.sync_data()
    }

    /// Notes a file about to be created (removed after a crash before the next ack).
    pub fn creating(&mut self, path: &Path) -> io::Result<()> {
        self.created.push(path.to_path_buf());
        self.write()
    }
}

/// The [`d4_worker::FileLog`] of a journal.
#[derive(Clone)]
pub struct JournalFiles(pub(super) Arc<Mutex<AckLog>>);

impl d4_worker::FileLog for JournalFiles {
    fn creating(&self, path: &Path) -> io::Result<()> {
        match self.0.lock() {
            Ok(mut log) => log.creating(path),
            Err(_) => Err(io::Error::other("journal acknowledgement log poisoned")),
        }
    }
}
