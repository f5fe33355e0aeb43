//! `d4 pssl weak`: the batch GCD over every RSA modulus of the passive SSL store, with
//! the findings recorded in the store (`record_weak`, how `batch_gcd`).
//!
//! The first run is a full batch GCD. It leaves a state file (`<data-dir>/pssl-weak.state`,
//! or `<db>.weak-state` beside `--db`) holding the SPKI SHA-256 of every modulus covered and
//! the product of their moduli ([`CorpusProduct`], as `d4 keys batch-gcd --corpus-product`
//! keeps it). The next runs take the moduli whose SPKI is not in the state as the new ones and
//! run the incremental batch GCD of them against the covered ones. A state that cannot be
//! read, or whose covered keys are not all in the store or do not match its product (size
//! and fingerprint), is logged and replaced by a full run; `--full` ignores it.
//!
//! State format: the magic `D4PSSLW1`, the number of covered keys as a little-endian `u64`,
//! their SPKI SHA-256 (32 bytes each, sorted), then the corpus product in
//! `CorpusProduct::write_to`'s format. Written to a temporary file and renamed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use d4_keys::batchgcd::{
    self, incremental::fingerprint, CorpusProduct, Integer, NoProgress, Options, Report, Source,
    Weak,
};
use d4_pssl::store::{parse_hex, HOW_BATCH_GCD};
use d4_pssl::{Page, PsslStore, WeakKey};

use super::{PsslArgs, PsslCommand};

const MAGIC: &[u8; 8] = b"D4PSSLW1";
/// Moduli read from the store per page.
const PAGE: usize = 10_000;
/// Past this many partial products the state's product is rebuilt in one piece.
const MAX_PARTS: usize = 16;

/// Check name of a modulus sharing a prime with another one (badkeys' name).
pub const CHECK_SHARED: &str = "sharedprimes";
/// Check name of a modulus stored under more than one SPKI encoding.
pub const CHECK_DUPLICATE: &str = "duplicate";

#[derive(Debug, Args)]
pub struct WeakArgs {
    /// Run again every SECS seconds (incrementally) until SIGINT/SIGTERM, which stop
    /// between runs.
    #[arg(long, value_name = "SECS")]
    pub interval: Option<u64>,

    /// Ignore the state file: a full batch GCD over every modulus (the state is rewritten).
    #[arg(long)]
    pub full: bool,

    /// Memory budget of the product tree (`512M`, `4G`): levels past it are spilled to disk.
    #[arg(long, value_name = "SIZE", value_parser = crate::cmd::keys::batch_gcd::parse_size)]
    pub memory_limit: Option<u64>,

    /// Where spilled levels go [default: the system's temporary folder].
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,

    /// Worker threads [default: the available cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// What one run did (the JSON summary).
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    /// RSA moduli in the store.
    pub moduli: usize,
    /// Moduli not covered before (all of them in a full run).
    pub new: usize,
    /// Whether it was a full run.
    pub full: bool,
    /// Stored moduli that are not numbers > 1 (skipped).
    pub bad: usize,
    /// Keys with a finding from this run.
    pub weak_keys: usize,
    /// Findings handed to the store (new ones and ones it held already).
    pub findings: usize,
    pub seconds: f64,
}

/// A stored RSA key: SPKI SHA-256 and modulus.
type Key = ([u8; 32], Integer);

/// The covered keys and the product of their moduli.
struct State {
    covered: Vec<[u8; 32]>,
    product: CorpusProduct,
}

impl State {
    fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let f =
                File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
            let mut w = BufWriter::new(f);
            w.write_all(MAGIC)?;
            w.write_all(&(self.covered.len() as u64).to_le_bytes())?;
            for k in &self.covered {
                w.write_all(k)?;
            }
            self.product.write_to(&mut w)?;
            w.into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()
                .with_context(|| format!("cannot write {}", tmp.display()))?;
        }
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    }

    fn read(path: &Path) -> anyhow::Result<State> {
        let mut r = BufReader::new(File::open(path)?);
        let mut head = [0u8; 16];
        r.read_exact(&mut head).context("truncated header")?;
        anyhow::ensure!(&head[..8] == MAGIC, "not a d4 pssl weak state file");
        let mut n = [0u8; 8];
        n.copy_from_slice(&head[8..]);
        let n = u64::from_le_bytes(n);
        anyhow::ensure!(n < 1 << 40, "impossible key count {n}");
        let mut covered = Vec::new();
        for _ in 0..n {
            let mut k = [0u8; 32];
            r.read_exact(&mut k).context("truncated key list")?;
            covered.push(k);
        }
        let product = CorpusProduct::read_from(r)?;
        anyhow::ensure!(
            product.count == n,
            "the product covers {} moduli, the key list {n}",
            product.count
        );
        Ok(State { covered, product })
    }
}

/// The state file's path.
pub fn state_path(args: &PsslArgs) -> anyhow::Result<PathBuf> {
    match (&args.db, &args.postgres) {
        (Some(db), None) => {
            let mut name = db.as_os_str().to_owned();
            name.push(".weak-state");
            Ok(PathBuf::from(name))
        }
        _ => {
            d4_store::private::create_private_dir(&args.data_dir)
                .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
            Ok(args.data_dir.join("pssl-weak.state"))
        }
    }
}

/// Every RSA modulus of the store (SPKI, modulus), the bad ones counted and skipped.
fn load_moduli(store: &dyn PsslStore) -> anyhow::Result<(Vec<Key>, usize)> {
    let mut out = Vec::new();
    let mut bad = 0usize;
    let mut page = Page::first(PAGE);
    loop {
        let p = store.rsa_moduli(&page)?;
        for (spki, m) in p.items {
            let key = parse_hex::<32>("spki_sha256", &spki);
            match (key, m.parse::<Integer>()) {
                (Ok(k), Ok(n)) if n > 1 => out.push((k, n)),
                _ => {
                    bad += 1;
                    if bad <= 10 {
                        eprintln!("d4: warning: key {spki}: the stored modulus is not usable");
                    }
                }
            }
        }
        match p.next {
            Some(c) => page = Page::after(c, PAGE),
            None => break,
        }
    }
    Ok((out, bad))
}

/// Findings by (SPKI, check), partners merged.
#[derive(Default)]
struct Findings {
    map: BTreeMap<([u8; 32], &'static str), WeakKey>,
}

impl Findings {
    fn add(
        &mut self,
        spki: &[u8; 32],
        check: &'static str,
        pq: Option<(&Integer, &Integer)>,
        partners: impl IntoIterator<Item = [u8; 32]>,
        now: i64,
    ) {
        let f = self.map.entry((*spki, check)).or_insert_with(|| WeakKey {
            spki_sha256: hex::encode(spki),
            check: check.to_string(),
            subtest: None,
            how: HOW_BATCH_GCD.to_string(),
            p: None,
            q: None,
            d: None,
            partners: Vec::new(),
            found: now,
        });
        if f.p.is_none() {
            if let Some((p, q)) = pq {
                f.p = Some(p.to_string_radix(16));
                f.q = Some(q.to_string_radix(16));
            }
        }
        let mut set: BTreeSet<String> = f.partners.drain(..).collect();
        set.extend(partners.into_iter().map(hex::encode));
        set.remove(&f.spki_sha256);
        f.partners = set.into_iter().collect();
    }

    /// One weak modulus of the run (`input[w.index]`) and its partners in the corpus.
    fn add_weak(&mut self, w: &Weak, input: &[&Key], corpus: &[&Key], now: i64) {
        let Some((spki, n)) = input.get(w.index).map(|e| (&e.0, &e.1)) else {
            return;
        };
        let key_of = |s: Source, i: usize| -> Option<&Key> {
            match s {
                Source::Input => input.get(i).copied(),
                Source::Corpus => corpus.get(i).copied(),
            }
        };
        let shared: Vec<[u8; 32]> = w
            .shared_with
            .iter()
            .filter(|p| p.factor.is_some())
            .filter_map(|p| key_of(p.source, p.index).map(|k| k.0))
            .collect();
        let dups: Vec<[u8; 32]> = w
            .shared_with
            .iter()
            .filter(|p| p.factor.is_none())
            .filter_map(|p| key_of(p.source, p.index).map(|k| k.0))
            .collect();
        if let Some(p) = w.factors.first() {
            let q = match w.factors.get(1) {
                Some(q) => q.clone(),
                None => Integer::from(n / p),
            };
            self.add(spki, CHECK_SHARED, Some((p, &q)), shared, now);
        }
        if !dups.is_empty() || (w.factors.is_empty() && w.how == batchgcd::How::Duplicate) {
            self.add(spki, CHECK_DUPLICATE, None, dups, now);
        }
        // The corpus partners are not in the report as weak themselves: record them here.
        for p in w.shared_with.iter().filter(|p| p.source == Source::Corpus) {
            let Some((ospki, on)) = corpus.get(p.index).map(|e| (&e.0, &e.1)) else {
                continue;
            };
            match &p.factor {
                Some(f) if *f > 1 && f < on && on.is_divisible(f) => {
                    let q = Integer::from(on / f);
                    self.add(ospki, CHECK_SHARED, Some((f, &q)), [*spki], now);
                }
                Some(_) => self.add(ospki, CHECK_SHARED, None, [*spki], now),
                None => self.add(ospki, CHECK_DUPLICATE, None, [*spki], now),
            }
        }
    }
}

/// One run: load, batch GCD (full or incremental), record, rewrite the state.
pub fn run_once(
    store: &dyn PsslStore,
    state_file: &Path,
    full: bool,
    opts: &Options,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let (all, bad) = load_moduli(store)?;
    let mut summary = Summary {
        moduli: all.len(),
        bad,
        ..Summary::default()
    };
    let state = if full {
        None
    } else {
        match State::read(state_file) {
            Ok(s) => Some(s),
            Err(e) => {
                if state_file.exists() {
                    eprintln!("d4: {}: {e:#}: full run", state_file.display());
                }
                None
            }
        }
    };
    // The split into covered (corpus) and new moduli, when the state matches the store.
    let split = state.and_then(|s| {
        let covered: HashSet<[u8; 32]> = s.covered.iter().copied().collect();
        let (corpus, new): (Vec<_>, Vec<_>) = all.iter().partition(|e| covered.contains(&e.0));
        let moduli: Vec<Integer> = corpus.iter().map(|e| e.1.clone()).collect();
        if corpus.len() != covered.len() || s.product.check(&moduli).is_err() {
            eprintln!(
                "d4: {}: the state does not match the store's keys: full run",
                state_file.display()
            );
            return None;
        }
        Some((corpus, new, moduli, s.product))
    });
    let now = unix_now();
    let mut findings = Findings::default();
    let new_state = match split {
        Some((corpus, new, corpus_moduli, product)) => {
            summary.new = new.len();
            if new.is_empty() {
                None
            } else {
                let new_moduli: Vec<Integer> = new.iter().map(|e| e.1.clone()).collect();
                let report: Report = batchgcd::run_incremental(
                    &new_moduli,
                    &corpus_moduli,
                    &product,
                    opts,
                    &NoProgress,
                )?;
                for w in &report.weak {
                    findings.add_weak(w, &new, &corpus, now);
                }
                let mut all_moduli = corpus_moduli;
                all_moduli.extend(new_moduli.iter().cloned());
                let product = if product.parts.len() >= MAX_PARTS {
                    CorpusProduct::build(&all_moduli, opts, &NoProgress)
                } else {
                    let mut parts = product.parts;
                    parts.extend(CorpusProduct::build(&new_moduli, opts, &NoProgress).parts);
                    CorpusProduct {
                        count: all_moduli.len() as u64,
                        fingerprint: fingerprint(&all_moduli),
                        parts,
                    }
                };
                Some(product)
            }
        }
        None => {
            summary.full = true;
            summary.new = all.len();
            if all.is_empty() {
                None
            } else {
                let moduli: Vec<Integer> = all.iter().map(|e| e.1.clone()).collect();
                let report = batchgcd::run(&moduli, opts, &NoProgress)?;
                let input: Vec<&Key> = all.iter().collect();
                for w in &report.weak {
                    findings.add_weak(w, &input, &[], now);
                }
                Some(CorpusProduct::build(&moduli, opts, &NoProgress))
            }
        }
    };
    let list: Vec<WeakKey> = findings.map.into_values().collect();
    summary.findings = list.len();
    summary.weak_keys = list
        .iter()
        .map(|f| f.spki_sha256.as_str())
        .collect::<HashSet<_>>()
        .len();
    if !list.is_empty() {
        store
            .record_weak(&list)
            .context("cannot record the findings")?;
    }
    if let Some(product) = new_state {
        let mut covered: Vec<[u8; 32]> = all.iter().map(|e| e.0).collect();
        covered.sort_unstable();
        State { covered, product }.write(state_file)?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn run(args: &PsslArgs) -> anyhow::Result<ExitCode> {
    let PsslCommand::Weak(a) = &args.command else {
        anyhow::bail!("internal: not a weak command");
    };
    let opts = Options {
        threads: a
            .threads
            .unwrap_or_else(|| Options::default().threads)
            .max(1),
        memory_limit: a.memory_limit,
        spill_dir: a.spill_dir.clone(),
        ..Options::default()
    };
    let state_file = state_path(args)?;
    let stop = Arc::new(AtomicBool::new(false));
    if a.interval.is_some() {
        super::ingest::stdin::stop_on_signal(stop.clone());
    }
    let mut full = a.full;
    loop {
        // Opened for each run and closed after it: between runs the embedded file is free
        // for `d4 pssl ingest` or `serve`.
        let once = args
            .open_store()
            .and_then(|store| run_once(store.as_ref(), &state_file, full, &opts));
        match once {
            Ok(s) => {
                println!("{}", serde_json::to_string(&s)?);
                full = false;
            }
            // Looping: a failed run (the database away...) is logged and tried again.
            Err(e) if a.interval.is_some() => {
                eprintln!("d4: error: pssl weak: {e:#}: trying again in the next run");
            }
            Err(e) => return Err(e),
        }
        let Some(secs) = a.interval else { break };
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
