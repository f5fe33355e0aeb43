//! The reader of one enabled rule: walks the linked journal sessions in order, decides once
//! per session whether the rule takes it (type, extended type, sensor, tag, group), feeds
//! the payloads of a taken session to its own [`StreamTransform`], frames the output under
//! the rule's identity into the outbound stream's spool, and saves its cursors once the
//! spool is synced. At the rule's spool limit it stops reading (its journal position is
//! held; nothing else waits).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use d4_client::spool::Spool;
use d4_client::Framer;
use d4_proto::{types, Header, HmacKey, HEADER_LEN};
use d4_store::ForwardRule;
use uuid::Uuid;

use super::links::{meta_name, seg_name, Journals, Progress, TrackedSession};
use super::reframe;
use super::sender::{self, SenderCtx, Stream};
use super::state::{self, Cursor, RuleState};
use super::stats::RuleCounters;
use super::tls::Dialer;
use super::SensorInfo;
use crate::transform::StreamTransform;

mod session;

/// Payload bytes per outbound frame at most.
pub const FRAME_MAX: usize = 64 * 1024;
/// Bytes read per pass over the sessions before the spool is synced and cursors saved.
const PASS_BYTES: usize = 8 << 20;
/// Largest frame a journal holds (a sanity bound when reading a previous run's data).
const MAX_FRAME: u32 = 64 << 20;

/// The D4 types a rule can forward.
pub fn forwardable(t: u8) -> bool {
    matches!(t, 1 | 3 | 4 | 6 | 8 | 254)
}

/// What a reader shares with the engine.
pub struct ReaderCtx {
    pub rule: Arc<ForwardRule>,
    pub dir: PathBuf,
    pub journals: Arc<Journals>,
    pub sensors: Arc<RwLock<Arc<HashMap<Uuid, SensorInfo>>>>,
    pub default_key: Arc<[u8]>,
    pub org: Option<Uuid>,
    pub counters: Arc<RuleCounters>,
    /// The durable progress per session (what retention looks at).
    pub progress: Arc<Mutex<HashMap<Uuid, Progress>>>,
    pub stop: Arc<AtomicBool>,
}

struct Taken {
    stream: Arc<Stream>,
    transform: StreamTransform,
}

/// How far a reader is in one session.
struct SessionRead {
    cur: Cursor,
    file: Option<(u64, File)>,
    meta: Vec<u8>,
    /// `None`: not decided yet; `Some(None)`: not taken.
    decision: Option<Option<Taken>>,
    /// Frames whose input the transform may still hold (resume point after a crash).
    held: VecDeque<(u64, Cursor)>,
    key: Option<HmacKey>,
}

enum Status {
    /// More to read now (the pass budget ran out).
    More,
    /// Caught up with the durable end of a live session.
    Waiting,
    /// The rule is done with the session.
    Done,
    /// A spool write failed: the pass is abandoned without saving the cursors.
    Failed,
}

pub struct Reader {
    ctx: ReaderCtx,
    state: RuleState,
    reads: HashMap<Uuid, SessionRead>,
    done: HashSet<Uuid>,
    streams: HashMap<String, Arc<Stream>>,
    senders: Vec<std::thread::JoinHandle<()>>,
    dialer: Arc<Dialer>,
    dirty: HashSet<String>,
    changed: bool,
    last_ts: u64,
    out: Vec<u8>,
    /// A spool write failed and was logged; cleared by the next write that succeeds.
    spool_failing: bool,
    /// Per stream: bytes put in its spool since the last commit (spooled again after an
    /// abort).
    pushed: HashMap<String, u64>,
    /// Per stream: bytes the spool holds twice over that the reader is spooling again;
    /// the frames that cover them are counted as duplicates.
    again: HashMap<String, u64>,
    /// The streams a previous run left were opened (at the first pass, on the reader's
    /// own thread: re-framing a big spool holds up nothing else).
    previous_opened: bool,
}

fn stream_dir_name(t: u8, ext: Option<&str>) -> String {
    match ext {
        Some(e) => {
            let safe: String = e
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("spool-{t}-{safe}")
        }
        None => format!("spool-{t}"),
    }
}

impl Reader {
    pub fn new(ctx: ReaderCtx) -> Result<Reader, String> {
        std::fs::create_dir_all(&ctx.dir).map_err(|e| format!("{}: {e}", ctx.dir.display()))?;
        let dialer = Arc::new(Dialer::new(
            &ctx.rule.destination,
            &ctx.rule.tls,
            Duration::from_secs(10),
        )?);
        let state: RuleState =
            state::load(&ctx.dir.join("state.json")).map_err(|e| e.to_string())?;
        ctx.counters
            .spooled_total
            .fetch_add(state.spooled_total, Relaxed);
        ctx.counters.filtered.fetch_add(state.filtered, Relaxed);
        ctx.counters.dropped.fetch_add(state.dropped, Relaxed);
        ctx.counters.duplicates.fetch_add(state.respooled, Relaxed);
        let done = state.done.iter().copied().collect();
        let r = Reader {
            ctx,
            state,
            reads: HashMap::new(),
            done,
            streams: HashMap::new(),
            senders: Vec::new(),
            dialer,
            dirty: HashSet::new(),
            changed: false,
            last_ts: 0,
            out: Vec::new(),
            spool_failing: false,
            pushed: HashMap::new(),
            again: HashMap::new(),
            previous_opened: false,
        };
        Ok(r)
    }

    /// Opens the streams a previous run left (their spools are sent first), after
    /// finishing a re-framing a crash cut.
    fn open_previous_streams(&mut self) {
        reframe::recover(&self.ctx.dir);
        let Ok(rd) = std::fs::read_dir(&self.ctx.dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(rest) = name.strip_prefix("spool-") else {
                continue;
            };
            let (t, ext) = match rest.split_once('-') {
                Some((t, x)) => (t.parse::<u8>().ok(), Some(x.to_string())),
                None => (rest.parse::<u8>().ok(), None),
            };
            if let Some(t) = t {
                if let Err(e) = self.stream(t, ext.as_deref()) {
                    tracing::error!(rule = %self.ctx.rule.name, error = %e, "forwarding: cannot open a spool");
                }
            }
        }
    }

    /// The outbound stream of (type, extended type), opened (and its sender started) at
    /// first use.
    fn stream(&mut self, t: u8, ext: Option<&str>) -> Result<Arc<Stream>, String> {
        let name = stream_dir_name(t, ext);
        if let Some(s) = self.streams.get(&name) {
            return Ok(s.clone());
        }
        let dir = self.ctx.dir.join(&name);
        let rule = self.ctx.rule.clone();
        match reframe::ensure(&dir, rule.uuid, rule.hmac_key.as_bytes()) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(rule = %rule.name, stream = %name, frames = n, "forwarding: the rule's UUID or key changed: its spooled frames were framed again with the new identity");
            }
            Err(e) => return Err(format!("{}: re-framing the spool: {e}", dir.display())),
        }
        let spool = Spool::open(&dir, self.ctx.rule.spool_limit_bytes())
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        self.reconcile(&name, &dir, &spool);
        let header = std::fs::read(dir.join("pcap-header"))
            .ok()
            .and_then(|b| <[u8; 24]>::try_from(b.as_slice()).ok());
        let ftype = if t == types::EXTENDED {
            types::META_HEADER
        } else {
            t
        };
        let stream = Arc::new(Stream {
            dir,
            d4_type: t,
            ext: ext.map(str::to_string),
            framer: Framer::new(rule.uuid, rule.hmac_key.as_bytes(), ftype, 1, FRAME_MAX),
            spool: Mutex::new(spool),
            pcap_header: Mutex::new(header),
        });
        let sctx = SenderCtx {
            dialer: self.dialer.clone(),
            tags: rule.tags.clone(),
            org: self.ctx.org,
            counters: self.ctx.counters.clone(),
            stop: self.ctx.stop.clone(),
            rule: rule.name.clone(),
        };
        let s2 = stream.clone();
        let h = std::thread::Builder::new()
            .name(format!("d4-fwd-send-{t}"))
            .spawn(move || sender::run(sctx, s2))
            .map_err(|e| e.to_string())?;
        self.senders.push(h);
        self.streams.insert(name, stream.clone());
        Ok(stream)
    }

    /// What the spool holds past the saved state: frames spooled after the last save
    /// (a crash), which the reader spools again from its saved cursors, plus what an
    /// earlier restart had left to spool again at that save. They are counted as
    /// duplicates when spooled again; the known size becomes what the spool holds.
    fn reconcile(&mut self, name: &str, dir: &std::path::Path, spool: &Spool) {
        let sent: state::SentState = match state::load(&dir.join("sent.json")) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(rule = %self.ctx.rule.name, error = %e, "forwarding: unreadable sent.json: duplicates after the last crash are not counted");
                self.state.spooled_bytes.remove(name);
                return;
            }
        };
        let held = sent.consumed_bytes + spool.bytes();
        let saved = match self.state.spooled_bytes.get(name) {
            Some(&b) => b,
            // not spooled at the last save, or a state from before the count was kept
            None if self.state.accounting => 0,
            None => held,
        };
        let again = self.state.again.get(name).copied().unwrap_or(0) + held.saturating_sub(saved);
        self.state.spooled_bytes.insert(name.to_string(), held);
        if again > 0 {
            tracing::info!(rule = %self.ctx.rule.name, stream = %name, bytes = again, "forwarding: frames spooled after the last saved position are spooled again (counted as duplicates)");
            self.again.insert(name.to_string(), again);
        }
    }

    fn spooled_bytes(&self) -> u64 {
        self.streams.values().map(|s| s.spool().bytes()).sum()
    }

    /// Runs until stopped, then stops the senders.
    pub fn run(mut self) {
        while !self.ctx.stop.load(Relaxed) {
            let busy = self.pass();
            if self.spool_failing {
                // a spool that cannot be written (disk full): try again in a while
                sender::sleep(&self.ctx.stop, Duration::from_secs(1));
            } else if !busy {
                sender::sleep(&self.ctx.stop, Duration::from_millis(20));
            }
        }
        self.commit();
        // the senders are stopped and joined when the reader is dropped
    }

    /// One pass over the sessions; returns whether there is more to read at once.
    pub(crate) fn pass(&mut self) -> bool {
        if !self.previous_opened {
            self.previous_opened = true;
            self.open_previous_streams();
        }
        let sessions = self.ctx.journals.snapshot();
        let now = d4_store::now();
        let limit = self.ctx.rule.spool_limit_bytes();
        let mut budget = PASS_BYTES;
        let mut more = false;
        let mut behind = false;
        let live: HashSet<Uuid> = sessions.iter().map(|s| s.id).collect();
        // forget what is gone from disk
        self.done.retain(|d| live.contains(d));
        self.reads.retain(|id, _| live.contains(id));
        for s in &sessions {
            if self.done.contains(&s.id) {
                continue;
            }
            if self.spooled_bytes() >= limit {
                behind = true;
                break;
            }
            match self.read_session(s, &mut budget, now) {
                Status::More => {
                    more = true;
                    behind = true;
                    break;
                }
                Status::Waiting => {}
                Status::Done => {
                    if self.finish_session(s.id).is_err() {
                        self.abort();
                        return false;
                    }
                }
                Status::Failed => {
                    self.abort();
                    return false;
                }
            }
        }
        // aggregation windows that closed
        let mut ticked = Vec::new();
        for r in self.reads.values_mut() {
            if let Some(Some(t)) = r.decision.as_mut() {
                self.out.clear();
                let p = t.transform.tick(now, &mut self.out);
                self.ctx.counters.dropped.fetch_add(p.dropped, Relaxed);
                self.state.dropped += p.dropped;
                if !self.out.is_empty() {
                    ticked.push((t.stream.clone(), std::mem::take(&mut self.out)));
                }
            }
        }
        for (s, out) in ticked {
            if self.emit(&s, &out).is_err() {
                self.abort();
                return false;
            }
        }
        self.ctx.counters.lag.store(
            if behind {
                now.saturating_sub(self.last_ts)
            } else {
                0
            },
            Relaxed,
        );
        self.ctx
            .counters
            .spooled_bytes
            .store(self.spooled_bytes(), Relaxed);
        self.commit();
        more
    }

    fn finish_session(&mut self, id: Uuid) -> Result<(), SpoolFailed> {
        if let Some(mut r) = self.reads.remove(&id) {
            if let Some(Some(t)) = r.decision.as_mut() {
                self.out.clear();
                let p = t.transform.finish(&mut self.out);
                self.ctx.counters.dropped.fetch_add(p.dropped, Relaxed);
                self.state.dropped += p.dropped;
                let (s, out) = (t.stream.clone(), std::mem::take(&mut self.out));
                self.emit(&s, &out)?;
            }
        }
        self.done.insert(id);
        self.changed = true;
        Ok(())
    }

    /// A spool write failed: forget what this run read since the last saved cursors (the
    /// transforms included), so the next pass reads those frames again from the saved
    /// state. Frames of that stretch already spooled are spooled again (duplicates).
    fn abort(&mut self) {
        for (name, n) in self.pushed.drain() {
            *self.again.entry(name).or_insert(0) += n;
        }
        self.reads.clear();
        self.done = self.state.done.iter().copied().collect();
        self.changed = false;
    }

    /// Where a session resumes after a crash: the frame holding the first input byte the
    /// transform has not produced output for, from that byte, with the pcap input header.
    fn resume_point(r: &mut SessionRead) -> Cursor {
        let held = match r.decision.as_ref() {
            Some(Some(t)) => t.transform.held_at(),
            _ => None,
        };
        while r
            .held
            .front()
            .is_some_and(|f| held.is_none_or(|h| f.0 < h.seq))
        {
            r.held.pop_front();
        }
        match (r.held.front(), held) {
            (Some((seq, c)), Some(h)) => Cursor {
                skip: if *seq == h.seq { h.offset } else { c.skip },
                pcap: r.cur.pcap,
                ..*c
            },
            (Some((_, c)), None) => Cursor {
                pcap: r.cur.pcap,
                ..*c
            },
            (None, _) => r.cur,
        }
    }

    /// Makes the spools durable, then saves the cursors and publishes the progress.
    fn commit(&mut self) {
        if !self.changed {
            return;
        }
        let dirty: Vec<String> = self.dirty.iter().cloned().collect();
        for name in dirty {
            if let Some(s) = self.streams.get(&name) {
                if let Err(e) = s.spool().sync() {
                    // the names not synced stay dirty: the next commit syncs them first
                    tracing::error!(rule = %self.ctx.rule.name, error = %e, "forwarding: spool sync failed");
                    return;
                }
            }
            self.dirty.remove(&name);
        }
        self.state.cursors = self
            .reads
            .iter_mut()
            .map(|(id, r)| (*id, Self::resume_point(r)))
            .collect();
        self.state.done = self.done.iter().copied().collect();
        self.state.again = self.again.clone();
        self.state.accounting = true;
        self.pushed.clear();
        if let Err(e) = state::save(&self.ctx.dir.join("state.json"), &self.state, true) {
            tracing::error!(rule = %self.ctx.rule.name, error = %e, "forwarding: could not save the rule's state");
            return;
        }
        let mut p: HashMap<Uuid, Progress> = self
            .state
            .cursors
            .iter()
            .map(|(id, c)| {
                (
                    *id,
                    Progress {
                        seg: c.seg,
                        done: false,
                    },
                )
            })
            .collect();
        for d in &self.done {
            p.insert(
                *d,
                Progress {
                    seg: u64::MAX,
                    done: true,
                },
            );
        }
        if let Ok(mut g) = self.ctx.progress.lock() {
            *g = p;
        }
        self.changed = false;
    }

    /// A spool could not be written or opened: logged once per failing stretch (reading
    /// stops until it works again), counted, and the pass abandoned.
    fn spool_failed(&mut self, what: &str, e: &dyn std::fmt::Display) -> SpoolFailed {
        if !self.spool_failing {
            tracing::error!(rule = %self.ctx.rule.name, error = %e, "forwarding: {what}: reading stops until it works again");
        }
        self.spool_failing = true;
        self.ctx.counters.spool_errors.fetch_add(1, Relaxed);
        self.ctx
            .counters
            .error(format!("spool: {e}"), d4_store::now());
        SpoolFailed
    }

    /// One sensor's tags, groups and key, as the engine last loaded them.
    fn sensor_info(&self, uuid: &Uuid) -> Option<SensorInfo> {
        self.ctx
            .sensors
            .read()
            .ok()
            .and_then(|g| g.get(uuid).cloned())
    }

    /// Frames `out` into the stream's spool. A failed write (disk full) is logged once
    /// per failing stretch, counted, and returned: the caller abandons the pass.
    fn emit(&mut self, stream: &Arc<Stream>, out: &[u8]) -> Result<(), SpoolFailed> {
        if out.is_empty() {
            return Ok(());
        }
        let name = stream_dir_name(stream.d4_type, stream.ext.as_deref());
        self.dirty.insert(name.clone());
        self.changed = true;
        let mut sp = stream.spool();
        for chunk in out.chunks(FRAME_MAX) {
            match stream.framer.frame(chunk) {
                Ok(f) => {
                    if let Err(e) = sp.push(&f) {
                        return Err(self.spool_failed("spool write failed", &e));
                    }
                    self.spool_failing = false;
                    let len = f.len() as u64;
                    *self.state.spooled_bytes.entry(name.clone()).or_insert(0) += len;
                    *self.pushed.entry(name.clone()).or_insert(0) += len;
                    if let Some(a) = self.again.get_mut(&name) {
                        *a = a.saturating_sub(len);
                        if *a == 0 {
                            self.again.remove(&name);
                        }
                        self.state.respooled += 1;
                        self.ctx.counters.duplicates.fetch_add(1, Relaxed);
                    }
                    self.state.spooled_total += 1;
                    self.ctx.counters.spooled_total.fetch_add(1, Relaxed);
                }
                Err(e) => tracing::error!(error = %e, "forwarding: framing failed"),
            }
        }
        Ok(())
    }
}

impl Drop for Reader {
    /// Stops and joins the senders, also when the reader panicked: none of them may
    /// still use a stream folder when the rule's next reader opens it.
    fn drop(&mut self) {
        self.ctx.stop.store(true, Relaxed);
        for h in self.senders.drain(..) {
            let _ = h.join();
        }
    }
}

/// A spool write failed (logged and counted where it happened).
#[derive(Debug)]
struct SpoolFailed;
