//! The forwarding engine: per enabled rule a reader thread (journal → filter → transform
//! → spool, [`reader`]) and one sender thread per outbound stream (spool → partner,
//! [`sender`]); a manager thread that reloads the rules and the sensors' tags and groups,
//! starts and stops the rules, removes the journal data no enabled rule needs any more
//! ([`links::Journals::retain`]) and reports the counters.
//!
//! The server reaches the engine through its journal tap ([`Engine::segment_created`]
//! and the other tap methods, wired by the binary); the store through the two traits
//! below. On disk, under `<data>/forward/`: `journal/` (the linked segments) and one
//! folder per rule with `state.json` and its `spool-<type>[-<ext>]/` streams.

pub mod links;
pub mod reader;
pub mod reframe;
pub mod sender;
pub mod state;
pub mod stats;
pub mod tls;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use d4_store::{ForwardRule, ForwardStats};
use uuid::Uuid;

use links::{Journals, Progress};
use reader::{Reader, ReaderCtx};
use stats::RuleCounters;

/// What the engine needs to know about a sensor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SensorInfo {
    pub tags: Vec<String>,
    pub groups: Vec<String>,
    /// Its own HMAC key (frames of a previous run are checked again with it).
    pub hmac_key: Option<Vec<u8>>,
}

/// Where the rules come from and where the counters go (the store's forwarding role).
/// Called from the engine's manager thread: may block briefly.
pub trait RuleSource: Send + Sync {
    fn rules(&self) -> Result<Vec<ForwardRule>, String>;
    fn report(&self, name: &str, stats: &ForwardStats);
}

/// The sensors' tags, groups and keys.
pub trait SensorDirectory: Send + Sync {
    fn sensors(&self) -> Result<HashMap<Uuid, SensorInfo>, String>;
}

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The server's data dir (`<data>/forward/` is used).
    pub data_dir: PathBuf,
    /// The organisation UUID sent as `misp:org` in meta headers.
    pub org_uuid: Option<Uuid>,
    /// The server's default HMAC key (frames of sensors without a key of their own).
    pub default_key: Vec<u8>,
    /// How often rules and sensors are reloaded.
    pub reload: Duration,
    /// How often the counters are reported.
    pub report: Duration,
}

impl EngineConfig {
    pub fn new(data_dir: &Path) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.to_path_buf(),
            org_uuid: None,
            default_key: Vec::new(),
            reload: Duration::from_secs(2),
            report: Duration::from_secs(2),
        }
    }
}

struct Running {
    rule: ForwardRule,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    counters: Arc<RuleCounters>,
    progress: Arc<Mutex<HashMap<Uuid, Progress>>>,
}

/// The running engine (see the module documentation).
pub struct Engine {
    cfg: EngineConfig,
    journals: Arc<Journals>,
    sensors: Arc<RwLock<Arc<HashMap<Uuid, SensorInfo>>>>,
    running: Mutex<HashMap<String, Running>>,
    stop: AtomicBool,
    wake: (Mutex<bool>, std::sync::Condvar),
    manager: Mutex<Option<JoinHandle<()>>>,
    /// Whether the last reload read the rules and started every enabled one: only then
    /// may journal data be freed (a store that could not be read, or a rule that could not
    /// start, must not let the data its rules still need be deleted).
    retain_ok: AtomicBool,
}

/// Whether two versions of a rule read and send the same way (counters aside).
fn same_rule(a: &ForwardRule, b: &ForwardRule) -> bool {
    let strip = |r: &ForwardRule| ForwardRule {
        created: 0,
        updated: 0,
        description: String::new(),
        ..r.clone()
    };
    strip(a) == strip(b)
}

impl Engine {
    /// Opens `<data>/forward/` (what a previous run left is read first) and starts the
    /// manager thread.
    pub fn start(
        cfg: EngineConfig,
        rules: Arc<dyn RuleSource>,
        sensors: Arc<dyn SensorDirectory>,
    ) -> std::io::Result<Arc<Engine>> {
        let journals = Arc::new(Journals::open(
            &cfg.data_dir.join("forward").join("journal"),
        )?);
        let engine = Arc::new(Engine {
            cfg,
            journals,
            sensors: Arc::new(RwLock::new(Arc::new(HashMap::new()))),
            running: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            wake: (Mutex::new(false), std::sync::Condvar::new()),
            manager: Mutex::new(None),
            retain_ok: AtomicBool::new(false),
        });
        // the first load before any session starts, so that nothing is missed
        engine.reload(&*rules, &*sensors);
        let e = engine.clone();
        let h = std::thread::Builder::new()
            .name("d4-fwd-manager".into())
            .spawn(move || e.manage(rules, sensors))?;
        if let Ok(mut m) = engine.manager.lock() {
            *m = Some(h);
        }
        Ok(engine)
    }

    /// Rules changed in the store: reload now.
    pub fn poke(&self) {
        if let Ok(mut w) = self.wake.0.lock() {
            *w = true;
            self.wake.1.notify_all();
        }
    }

    fn manage(self: Arc<Self>, rules: Arc<dyn RuleSource>, sensors: Arc<dyn SensorDirectory>) {
        let mut last_reload = Instant::now();
        let mut last_report = Instant::now();
        while !self.stop.load(Relaxed) {
            {
                let g = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
                let (mut g, _) = self
                    .wake
                    .1
                    .wait_timeout(g, Duration::from_millis(500))
                    .unwrap_or_else(|e| e.into_inner());
                if *g {
                    *g = false;
                    last_reload = Instant::now() - self.cfg.reload;
                }
            }
            if self.stop.load(Relaxed) {
                break;
            }
            if last_reload.elapsed() >= self.cfg.reload {
                self.reload(&*rules, &*sensors);
                last_reload = Instant::now();
            }
            self.retain();
            if last_report.elapsed() >= self.cfg.report {
                for (name, s) in self.stats() {
                    rules.report(&name, &s);
                }
                last_report = Instant::now();
            }
        }
        for (name, s) in self.stats() {
            rules.report(&name, &s);
        }
    }

    fn reload(&self, rules: &dyn RuleSource, sensors: &dyn SensorDirectory) {
        match sensors.sensors() {
            Ok(s) => {
                if let Ok(mut g) = self.sensors.write() {
                    *g = Arc::new(s);
                }
            }
            Err(e) => tracing::warn!(error = %e, "forwarding: could not read the sensors"),
        }
        let list = match rules.rules() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "forwarding: could not read the rules (journal data is kept until they can be read)");
                self.retain_ok.store(false, Relaxed);
                return;
            }
        };
        let known: std::collections::HashSet<String> =
            list.iter().map(|r| r.name.clone()).collect();
        let wanted: HashMap<String, ForwardRule> = list
            .into_iter()
            .filter(|r| r.enabled)
            .map(|r| (r.name.clone(), r))
            .collect();
        self.journals.set_link_new(!wanted.is_empty());
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        // rules removed, disabled or edited; and readers that ended by themselves (a
        // panic): those are started again below, from their saved cursors
        let stale: Vec<String> = running
            .iter()
            .filter(|(n, r)| {
                r.thread.is_finished() || wanted.get(*n).is_none_or(|w| !same_rule(w, &r.rule))
            })
            .map(|(n, _)| n.clone())
            .collect();
        for n in stale {
            if let Some(r) = running.remove(&n) {
                // only the engine stops a reader: one that ended by itself panicked
                if r.thread.is_finished() {
                    tracing::error!(rule = %n, "forwarding: the rule's reader ended unexpectedly: starting it again");
                } else {
                    tracing::info!(rule = %n, "forwarding: rule stopped");
                }
                r.stop.store(true, Relaxed);
                let _ = r.thread.join();
            }
        }
        let mut all_started = true;
        for (name, rule) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            match self.start_rule(rule) {
                Ok(r) => {
                    tracing::info!(rule = %name, "forwarding: rule started");
                    running.insert(name, r);
                }
                Err(e) => {
                    all_started = false;
                    tracing::error!(rule = %name, error = %e, "forwarding: cannot start the rule (journal data is kept for it)")
                }
            }
        }
        self.retain_ok.store(all_started, Relaxed);
        drop(running);
        self.remove_deleted_rules(&known);
    }

    fn start_rule(&self, rule: ForwardRule) -> Result<Running, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(RuleCounters::default());
        let progress = Arc::new(Mutex::new(HashMap::new()));
        let ctx = ReaderCtx {
            rule: Arc::new(rule.clone()),
            dir: self.cfg.data_dir.join("forward").join(&rule.name),
            journals: self.journals.clone(),
            sensors: self.sensors.clone(),
            default_key: Arc::from(self.cfg.default_key.as_slice()),
            org: self.cfg.org_uuid,
            counters: counters.clone(),
            progress: progress.clone(),
            stop: stop.clone(),
        };
        let reader = Reader::new(ctx)?;
        let thread = std::thread::Builder::new()
            .name("d4-fwd-read".into())
            .spawn(move || reader.run())
            .map_err(|e| e.to_string())?;
        Ok(Running {
            rule,
            stop,
            thread,
            counters,
            progress,
        })
    }

    /// The folders (`<data>/forward/<rule>/`: spool, cursors, counters) of rules the store
    /// no longer has: a rule created again under the same name starts afresh.
    fn remove_deleted_rules(&self, known: &std::collections::HashSet<String>) {
        let dir = self.cfg.data_dir.join("forward");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "journal" || known.contains(&name) || !e.path().is_dir() {
                continue;
            }
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => {
                    tracing::info!(rule = %name, "forwarding: removed the spool and state of a deleted rule")
                }
                Err(err) => {
                    tracing::warn!(rule = %name, error = %err, "forwarding: could not remove a deleted rule's folder")
                }
            }
        }
    }

    fn retain(&self) {
        if !self.retain_ok.load(Relaxed) {
            return;
        }
        let progress: Vec<HashMap<Uuid, Progress>> = {
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running
                .values()
                .map(|r| r.progress.lock().map(|p| p.clone()).unwrap_or_default())
                .collect()
        };
        self.journals.retain(&progress);
    }

    /// The counters of every running rule.
    pub fn stats(&self) -> Vec<(String, ForwardStats)> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = running
            .iter()
            .map(|(n, r)| (n.clone(), r.counters.snapshot()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The `d4_forward_*{rule}` series.
    pub fn render_metrics(&self, out: &mut String) {
        stats::render(&self.stats(), out);
    }

    /// Stops every rule (spools synced, cursors saved) and the manager.
    pub fn shutdown(&self) {
        self.stop.store(true, Relaxed);
        self.poke();
        if let Some(h) = self.manager.lock().ok().and_then(|mut m| m.take()) {
            let _ = h.join();
        }
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for (_, r) in running.drain() {
            r.stop.store(true, Relaxed);
            let _ = r.thread.join();
        }
    }

    // The journal tap (the binary wires `d4_server::JournalTap` to these).

    pub fn segment_created(&self, session: Uuid, seg: u64, path: &Path) {
        self.journals.segment_created(session, seg, path);
    }
    pub fn meta_created(&self, session: Uuid, path: &Path) {
        self.journals.meta_created(session, path);
    }
    pub fn synced(&self, session: Uuid, seg: u64, end: u64) {
        self.journals.synced(session, seg, end);
    }
    pub fn closed(&self, session: Uuid) {
        self.journals.closed(session);
    }
}

#[cfg(test)]
mod tests;
