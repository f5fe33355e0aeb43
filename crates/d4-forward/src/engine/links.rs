//! The engine's own names for journal data: every segment (and `.meta` file) of a session
//! is hard-linked into `<data>/forward/journal/` when it is created, while at least one
//! rule is enabled. The journal keeps removing its own names as without forwarding; the
//! data stays on disk until every enabled rule has read it ([`Journals::retain`]).
//!
//! Live sessions are read only up to the end the tap reports as durable. Sessions found
//! in the folder at start are from a previous run: they are complete and read to the last
//! frame that decodes and verifies.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use uuid::Uuid;

/// One tracked session, as the readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedSession {
    pub id: Uuid,
    /// Order of arrival (sessions of a previous run first).
    pub order: u64,
    /// Linked segments: the durable end reported by the tap (live session), or `None`
    /// for a session of a previous run (read to the last frame that verifies).
    pub segs: BTreeMap<u64, Option<u64>>,
    /// The session ended (its last segment is complete).
    pub closed: bool,
    /// Whether its `.meta` file is linked.
    pub meta: bool,
}

impl TrackedSession {
    /// A previous run's session: frames are checked against their HMAC again.
    pub fn from_previous_run(&self) -> bool {
        self.segs.values().any(Option::is_none)
    }
}

/// How far one rule has durably read one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The segment its saved cursor is in (earlier segments are no longer needed).
    pub seg: u64,
    /// The rule is done with the session.
    pub done: bool,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<Uuid, TrackedSession>,
    next_order: u64,
    /// Link new sessions (at least one rule is enabled).
    link_new: bool,
}

/// The tracked sessions and their folder.
pub struct Journals {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

pub fn seg_name(dir: &Path, session: &Uuid, seg: u64) -> PathBuf {
    dir.join(format!("{}.{seg}.jnl", session.simple()))
}

pub fn meta_name(dir: &Path, session: &Uuid) -> PathBuf {
    dir.join(format!("{}.meta", session.simple()))
}

impl Journals {
    /// Opens the folder and tracks what a previous run left there.
    pub fn open(dir: &Path) -> std::io::Result<Journals> {
        fs::create_dir_all(dir)?;
        let mut found: HashMap<Uuid, (TrackedSession, std::time::SystemTime)> = HashMap::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().to_string();
            let mtime = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            let mut parts = name.split('.');
            let (Some(id), Some(second)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(id) = Uuid::parse_str(id) else {
                continue;
            };
            let entry = found.entry(id).or_insert_with(|| {
                (
                    TrackedSession {
                        id,
                        order: 0,
                        segs: BTreeMap::new(),
                        closed: true,
                        meta: false,
                    },
                    mtime,
                )
            });
            entry.1 = entry.1.min(mtime);
            match (second, parts.next()) {
                ("meta", None) => entry.0.meta = true,
                (n, Some("jnl")) => {
                    if let Ok(seg) = n.parse::<u64>() {
                        entry.0.segs.insert(seg, None);
                    }
                }
                _ => {}
            }
        }
        let mut list: Vec<_> = found.into_values().collect();
        list.sort_by_key(|(s, t)| (*t, s.id));
        let mut inner = Inner::default();
        for (mut s, _) in list {
            if s.segs.is_empty() {
                let _ = fs::remove_file(meta_name(dir, &s.id));
                continue;
            }
            s.order = inner.next_order;
            inner.next_order += 1;
            inner.sessions.insert(s.id, s);
        }
        if !inner.sessions.is_empty() {
            tracing::info!(
                sessions = inner.sessions.len(),
                "forwarding: journal data of a previous run is read first"
            );
        }
        Ok(Journals {
            dir: dir.to_path_buf(),
            inner: Mutex::new(inner),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether new sessions are linked (some rule is enabled).
    pub fn set_link_new(&self, on: bool) {
        self.lock().link_new = on;
    }

    /// The tap: a segment was created.
    pub fn segment_created(&self, session: Uuid, seg: u64, path: &Path) {
        let mut g = self.lock();
        if !g.link_new && !g.sessions.contains_key(&session) {
            return;
        }
        let to = seg_name(&self.dir, &session, seg);
        if let Err(e) = fs::hard_link(path, &to) {
            tracing::error!(%session, seg, error = %e, "forwarding: could not link a journal segment: its frames are not forwarded");
            return;
        }
        let order = g.next_order;
        let s = g.sessions.entry(session).or_insert_with(|| TrackedSession {
            id: session,
            order,
            segs: BTreeMap::new(),
            closed: false,
            meta: false,
        });
        s.segs.insert(seg, Some(0));
        if s.order == order {
            g.next_order += 1;
        }
    }

    /// The tap: the `.meta` file was created.
    pub fn meta_created(&self, session: Uuid, path: &Path) {
        let mut g = self.lock();
        if let Some(s) = g.sessions.get_mut(&session) {
            match fs::hard_link(path, meta_name(&self.dir, &session)) {
                Ok(()) => s.meta = true,
                Err(e) => {
                    tracing::warn!(%session, error = %e, "forwarding: could not link a meta file")
                }
            }
        }
    }

    /// The tap: a segment is durable up to `end`.
    pub fn synced(&self, session: Uuid, seg: u64, end: u64) {
        let mut g = self.lock();
        if let Some(s) = g.sessions.get_mut(&session) {
            if let Some(e) = s.segs.get_mut(&seg) {
                *e = Some(end);
            }
        }
    }

    /// The tap: the session ended.
    pub fn closed(&self, session: Uuid) {
        let mut g = self.lock();
        if let Some(s) = g.sessions.get_mut(&session) {
            s.closed = true;
        }
    }

    /// The tracked sessions in order of arrival.
    pub fn snapshot(&self) -> Vec<TrackedSession> {
        let g = self.lock();
        let mut v: Vec<TrackedSession> = g.sessions.values().cloned().collect();
        v.sort_by_key(|s| s.order);
        v
    }

    /// Removes what no enabled rule needs any more: given each enabled rule's durable
    /// progress, segments before every rule's cursor, and whole sessions every rule is
    /// done with. With no enabled rule at all, everything goes (a disabled rule holds no
    /// journal data). Returns the files removed.
    pub fn retain(&self, rules: &[HashMap<Uuid, Progress>]) -> usize {
        let mut g = self.lock();
        let mut removed = 0;
        let mut gone = Vec::new();
        for s in g.sessions.values_mut() {
            let all_done = rules.iter().all(|r| r.get(&s.id).is_some_and(|p| p.done));
            if all_done && s.closed {
                for seg in s.segs.keys() {
                    removed +=
                        usize::from(fs::remove_file(seg_name(&self.dir, &s.id, *seg)).is_ok());
                }
                if s.meta {
                    removed += usize::from(fs::remove_file(meta_name(&self.dir, &s.id)).is_ok());
                }
                gone.push(s.id);
                continue;
            }
            if rules.is_empty() {
                continue; // a live session: dropped whole above once closed
            }
            let keep_from = rules
                .iter()
                .map(|r| match r.get(&s.id) {
                    Some(p) if p.done => u64::MAX,
                    Some(p) => p.seg,
                    None => 0,
                })
                .min()
                .unwrap_or(0);
            let old: Vec<u64> = s.segs.range(..keep_from).map(|(k, _)| *k).collect();
            // the last linked segment of a live session is kept (it is being written)
            let last = s.segs.keys().next_back().copied();
            for seg in old {
                if Some(seg) == last && !s.closed {
                    continue;
                }
                removed += usize::from(fs::remove_file(seg_name(&self.dir, &s.id, seg)).is_ok());
                s.segs.remove(&seg);
            }
        }
        for id in gone {
            g.sessions.remove(&id);
        }
        if rules.is_empty() {
            // live sessions: nothing holds them; forget them (their files go now, later
            // segments are not linked)
            let live: Vec<Uuid> = g.sessions.keys().copied().collect();
            for id in live {
                if let Some(s) = g.sessions.remove(&id) {
                    for seg in s.segs.keys() {
                        removed +=
                            usize::from(fs::remove_file(seg_name(&self.dir, &id, *seg)).is_ok());
                    }
                    if s.meta {
                        removed += usize::from(fs::remove_file(meta_name(&self.dir, &id)).is_ok());
                    }
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_track_and_retain() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let j = Journals::open(dst.path()).unwrap();
        let s = Uuid::new_v4();
        let p0 = src.path().join("a.0.jnl");
        fs::write(&p0, b"x").unwrap();
        // no rule enabled: not linked
        j.segment_created(s, 0, &p0);
        assert!(j.snapshot().is_empty());
        j.set_link_new(true);
        j.segment_created(s, 0, &p0);
        j.synced(s, 0, 1);
        let p1 = src.path().join("a.1.jnl");
        fs::write(&p1, b"y").unwrap();
        j.segment_created(s, 1, &p1);
        fs::remove_file(&p0).unwrap(); // the journal removes its own name
        let snap = j.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].segs.get(&0), Some(&Some(1)));
        assert!(!snap[0].closed);
        // one rule past segment 0, one not started: nothing removed
        let a: HashMap<Uuid, Progress> = [(
            s,
            Progress {
                seg: 1,
                done: false,
            },
        )]
        .into();
        assert_eq!(j.retain(&[a.clone(), HashMap::new()]), 0);
        assert_eq!(j.retain(&[a]), 1);
        assert!(!seg_name(dst.path(), &s, 0).exists());
        j.closed(s);
        let done: HashMap<Uuid, Progress> = [(s, Progress { seg: 1, done: true })].into();
        assert_eq!(j.retain(&[done]), 1);
        assert!(j.snapshot().is_empty());
        assert_eq!(fs::read_dir(dst.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_previous_run_is_found_complete() {
        let dst = tempfile::tempdir().unwrap();
        let s = Uuid::new_v4();
        fs::write(seg_name(dst.path(), &s, 3), b"").unwrap();
        fs::write(meta_name(dst.path(), &s), b"").unwrap();
        fs::write(dst.path().join("junk"), b"").unwrap();
        let j = Journals::open(dst.path()).unwrap();
        let snap = j.snapshot();
        assert_eq!(snap.len(), 1);
        assert!(snap[0].closed && snap[0].meta && snap[0].from_previous_run());
        assert_eq!(snap[0].segs.keys().copied().collect::<Vec<_>>(), vec![3]);
    }
}
