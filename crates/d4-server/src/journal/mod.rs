//! The durable per-session buffer: every accepted frame is appended to a journal file
//! (raw D4 wire bytes, so the file is self-delimiting and can be read back with the
//! protocol decoder) and synced before the worker sees it; the worker's progress is
//! recorded in a small ack file. After a crash, [`recover`] finds the entries that were
//! journaled but not acknowledged and they are replayed once.
//!
//! Layout under `<data>/journal/`:
//! * `<session>.<seg>.jnl` — segments of frames; a new segment starts when everything
//!   written so far is acknowledged and the segment is larger than `segment_bytes`.
//! * `<session>.ack` — the acknowledgement record, rewritten in place with `pwrite` (one
//!   small write per acknowledgement): segment number and byte offset acknowledged in it,
//!   the sequence number of the frame there (frames are numbered from 0 in a session: the
//!   queue pushes after frame `n` carry the key (session, `n << 16`) and are made at most
//!   once), how many payload bytes of that frame to skip (the replay resumes inside the
//!   frame holding the start of the worker's partial last line, which lived in memory
//!   only), the worker's open file with its length at that point (after a crash, bytes
//!   past it were written for frames that are replayed: [`cut_uncommitted`] removes them
//!   before the file is finished), and the rotating files created since (removed after a
//!   crash). The record format is described in `journal/ack.rs`.
//! * `<session>.meta` — the type-2 frames of a 2/254 session, so that a replay of type-254
//!   entries knows its extended type even when the segment holding them is gone.
//!
//! A torn last entry (the process died while appending) was never synced, so it was never
//! acknowledged to anyone: recovery stops there. The replay also checks every frame's HMAC
//! again (with the sensor's key, or the default key). A frame that fails, or bytes that do
//! not decode, followed only by zeros to the end of the last segment, are a write torn by
//! a power loss: the end, as above. Anywhere else they are damage (a file altered on
//! disk, a key changed while the server was down): the replay stops there and the
//! session's journal is moved to `<data>/journal/unverified/` for the operator.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use uuid::Uuid;

mod ack;
pub mod direct;
mod recover;
mod replay;
mod writer;

pub use ack::AckPoint;
pub use recover::{cut_uncommitted, recover};
pub use replay::{RecentFrames, Replayed};
pub use writer::Journal;

/// Default segment size before a fully acknowledged journal starts a new file.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Where [`Leftover::quarantine`] keeps the journals whose replay stopped at a frame that
/// did not verify (a sub-folder of the journal folder).
pub const UNVERIFIED_DIR: &str = "unverified";

fn seg_path(dir: &Path, session: &Uuid, seg: u64) -> PathBuf {
    dir.join(format!("{}.{seg}.jnl", session.simple()))
}
fn ack_path(dir: &Path, session: &Uuid) -> PathBuf {
    dir.join(format!("{}.ack", session.simple()))
}
fn meta_path(dir: &Path, session: &Uuid) -> PathBuf {
    dir.join(format!("{}.meta", session.simple()))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn remove_session(dir: &Path, session: &Uuid) -> io::Result<()> {
    let prefix = format!("{}.", session.simple());
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
