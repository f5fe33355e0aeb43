//! What survives a restart, per rule (`<data>/forward/<rule>/state.json`) and per outbound
//! stream (`spool-*/sent.json`), each written atomically (temporary file, rename).
//!
//! The rule's state is written after the spool it fed was synced: after a crash the
//! reader resumes at its saved cursors, so frames spooled after the last save are spooled
//! again: the reader compares what the spool holds (plus what the sender consumed) with
//! the bytes the state says were spooled and counts the surplus it spools again as
//! duplicates. The stream's `sent.json` is written before each
//! write to the partner: its counters include the batch being written.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a rule resumes in one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub seg: u64,
    pub off: u64,
    /// Frame number (the reader's own count in the session) at that position.
    pub seq: u64,
    /// Bytes of that frame's payload already in the output: the resumed transform is fed
    /// from there (its `held_at` offset).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skip: usize,
    /// Type 1: the input's pcap global header, once seen (a resumed transform starts with
    /// it, the frame at the cursor holding records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcap: Option<[u8; 24]>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// `state.json` of a rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleState {
    #[serde(default)]
    pub cursors: HashMap<Uuid, Cursor>,
    /// Sessions the rule is done with (kept while their data is on disk).
    #[serde(default)]
    pub done: Vec<Uuid>,
    /// Frames put in the spool since the rule was created here.
    #[serde(default)]
    pub spooled_total: u64,
    #[serde(default)]
    pub filtered: u64,
    #[serde(default)]
    pub dropped: u64,
    /// Per outbound stream (its folder name): bytes of frames ever put in its spool, as of
    /// this save. After a crash, the spool (with what the sender consumed) can hold more:
    /// the frames spooled after the save, which the reader spools again (duplicates).
    #[serde(default)]
    pub spooled_bytes: HashMap<String, u64>,
    /// Frames spooled a second time after a crash or a failed spool write (duplicates).
    #[serde(default)]
    pub respooled: u64,
    /// Per outbound stream: bytes of the spool's tail that the reader, from the saved
    /// cursors, is spooling again (not all covered at this save).
    #[serde(default)]
    pub again: HashMap<String, u64>,
    /// `spooled_bytes` is kept (false in a state written before it was): a stream with no
    /// entry then had nothing spooled at this save.
    #[serde(default)]
    pub accounting: bool,
}

/// `sent.json` of an outbound stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentState {
    /// Frames and payload bytes written to the partner (prologues and resends included).
    pub frames: u64,
    pub bytes: u64,
    pub duplicates: u64,
    /// Spool frames confirmed (removed from the spool).
    pub consumed: u64,
    /// Spool frames written but not confirmed: sent again at the next connection.
    pub unconfirmed: u64,
    /// Bytes of frames confirmed (removed from the spool): with the spool's size, what
    /// was ever put in it.
    #[serde(default)]
    pub consumed_bytes: u64,
    #[serde(default)]
    pub last_forward_time: Option<u64>,
    /// Written on connections that nothing was confirmed on yet, not in the counts above
    /// (see the sender's `Series`): published at the next start unless the partner was
    /// refusing this server (`early` > 0).
    #[serde(default)]
    pub unpublished: Unpublished,
}

impl SentState {
    /// Adds counts that were held back (see [`Unpublished`]), last forwarded at `at`.
    pub fn publish(&mut self, u: &Unpublished, at: u64) {
        if u.is_empty() {
            return;
        }
        self.frames += u.frames;
        self.bytes += u.bytes;
        self.duplicates += u.duplicates;
        self.unconfirmed += u.unconfirmed;
        self.last_forward_time = Some(at);
    }
}

/// Counts written on unconfirmed connections, and how many such connections in a row the
/// partner closed before the current one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpublished {
    pub frames: u64,
    pub bytes: u64,
    pub duplicates: u64,
    /// Spool frames among them written for the first time (unconfirmed once published).
    pub unconfirmed: u64,
    pub early: u32,
}

impl Unpublished {
    pub fn add(&mut self, o: &Unpublished) {
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.duplicates += o.duplicates;
        self.unconfirmed += o.unconfirmed;
    }

    pub fn is_empty(&self) -> bool {
        self.frames == 0 && self.bytes == 0 && self.duplicates == 0 && self.unconfirmed == 0
    }
}

/// Reads a JSON state file; a missing file is the default, a damaged one is reported.
pub fn load<T: Default + for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e),
    }
}

/// Writes a JSON state file atomically (`sync`: fsync the file before the rename and the
/// folder after it).
pub fn save<T: Serialize>(path: &Path, value: &T, sync: bool) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    {
        let mut f = std::fs::File::create(&tmp)?;
        io::Write::write_all(&mut f, &bytes)?;
        if sync {
            f.sync_data()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if sync {
        // the rename itself survives a power loss once the folder is synced
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        let s: RuleState = load(&p).unwrap();
        assert_eq!(s, RuleState::default());
        let mut s = RuleState::default();
        s.cursors.insert(
            Uuid::nil(),
            Cursor {
                seg: 1,
                off: 2,
                seq: 3,
                skip: 4,
                pcap: Some([7; 24]),
            },
        );
        s.filtered = 9;
        save(&p, &s, true).unwrap();
        assert_eq!(load::<RuleState>(&p).unwrap(), s);
        // a state file written before `skip` and `pcap` existed
        std::fs::write(
            &p,
            br#"{"cursors":{"00000000-0000-0000-0000-000000000000":{"seg":1,"off":2,"seq":3}}}"#,
        )
        .unwrap();
        let old = load::<RuleState>(&p).unwrap();
        assert_eq!(old.cursors[&Uuid::nil()].skip, 0);
        assert_eq!(old.cursors[&Uuid::nil()].pcap, None);
        std::fs::write(&p, b"{").unwrap();
        assert!(load::<RuleState>(&p).is_err());
    }
}
