//! `d4 pibs ingest`: captures (files, or the server's type-1 queue) into the backscatter
//! store (`<data-dir>/pibs.redb`), each file once: its identity and how far it was read
//! are committed with its buckets ([`d4_pibs::ingest`]), so a second read adds nothing and
//! a killed run resumes where its last commit left off. The queue is read through the one
//! queue consumer ([`crate::cmd::consume::drain`]): a batch of paths is acknowledged once
//! every file in it is committed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use d4_pibs::ingest::{sensor_from_path, FileOutcome, IngestError, IngestOptions, Ingester};
use d4_pibs::store::{open_embedded, EmbeddedPibsStore, PibsStore, StoreConfig};
use d4_pibs::DetectConfig;
use d4_store::QueueBatch;

use crate::cmd::consume;
use crate::cmd::store_args::StoreArgs;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    d4 pibs ingest darknet-*.pcap.gz --sensor darknet-1 --darknet-size 65536\n  \
    d4 pibs ingest --queue 3b8c…  --data-dir /var/lib/d4      # long-running, from d4 server\n\n\
Per victim and 5-minute bucket the store keeps packets, distinct darknet addresses, reply \
kinds, victim ports, protocols, first/last seen and sensors; attacks are runs of buckets with \
gaps shorter than --attack-gap. A file already ingested is skipped (it is known by its \
content, not its name); a run killed mid-file resumes it without counting anything twice. \
The database is one redb file that one process owns at a time.")]
pub struct IngestArgs {
    /// Captures to read: pcap or pcapng, plain or gzip (told from their bytes).
    #[arg(value_name = "FILE", required_unless_present = "queue")]
    pub inputs: Vec<PathBuf>,

    /// The backscatter database file [default: <data-dir>/pibs.redb].
    #[arg(long, env = "D4_PIBS_DB", value_name = "FILE")]
    pub db: Option<PathBuf>,

    /// Sensor name recorded for these captures [default: the sensor UUID of the d4 server's
    /// file layout `<data-dir>/<sensor>/1/YYYY/MM/DD/…`, else "local"].
    #[arg(long, value_name = "NAME")]
    pub sensor: Option<String>,

    /// Keep buckets and attacks for this many days (counted back from the newest bucket,
    /// or now if earlier); older ones are removed after each file or queue batch. 0 keeps
    /// everything.
    #[arg(long, default_value_t = 90, value_name = "DAYS")]
    pub retention_days: u64,

    /// Seconds: a victim's buckets belong to one attack when the next one's first packet
    /// came less than this after the previous one's last packet. Kept in the store
    /// [store default: 900]; changing it rebuilds every attack.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub attack_gap: Option<u64>,

    /// How many addresses the sensors watch (e.g. 65536 for a /16): attacks on IPv4 victims
    /// then carry an estimated attack rate, peak packets/s × 2^32 / N. Kept in the store.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub darknet_size: Option<u64>,

    /// Commit when this many (victim, bucket) entries are pending.
    #[arg(long, default_value_t = 200_000, value_name = "N")]
    pub batch_buckets: usize,

    /// Commit after this many packets of a file (each commit records the file position: a
    /// killed run loses at most this much work, never counts it twice).
    #[arg(long, default_value_t = 10_000_000, value_name = "N")]
    pub batch_records: u64,

    /// How long an initiator (SYN sender) or a seen flow is remembered, in seconds of
    /// capture time.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub window: u64,

    /// Most initiators (and UDP senders) remembered; beyond it the oldest are evicted.
    #[arg(long, default_value_t = 2_000_000, value_name = "N")]
    pub max_initiators: usize,

    /// Most SYN flows remembered; beyond it the oldest are evicted.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_flows: usize,

    /// Read the server's type-1 (pcap) analyzer queue (its UUID) instead of files: entries
    /// are capture file paths. Runs until SIGINT/SIGTERM (or --until-empty).
    #[arg(long, value_name = "QUEUE_UUID", conflicts_with = "inputs")]
    pub queue: Option<uuid::Uuid>,

    /// With --queue: stop when the queue is empty (a one-shot drain).
    #[arg(long, requires = "queue")]
    pub until_empty: bool,

    /// With --queue: most paths taken (and committed) at once.
    #[arg(long, default_value_t = 16, requires = "queue")]
    pub pop_max: usize,

    /// With --queue: the consumer name. Paths are acknowledged once their files are
    /// committed; a run killed before that leaves them to the next run with the same name
    /// (at once) or to any consumer after 5 minutes — files already in are then skipped.
    #[arg(long, default_value = "d4-pibs-ingest", requires = "queue", value_parser = consume::check_name)]
    pub consumer: String,
}

/// The ingester and what the command adds around it.
struct State {
    ing: Ingester<EmbeddedPibsStore>,
    sensor: Option<String>,
    retention_days: u64,
    failed: u64,
}

impl State {
    fn sensor_of(&self, path: &Path) -> String {
        self.sensor
            .clone()
            .or_else(|| sensor_from_path(path))
            .unwrap_or_else(|| "local".to_owned())
    }

    /// One file; `Err` only when the store fails (the run must stop).
    /// Ingests one file. A store error is returned; a file that cannot be read is counted
    /// and logged, except with `retry_io` (queue entries) when it exists but reading failed:
    /// then the error is returned so that the batch is not acknowledged and comes back (what
    /// was read is kept, the next reading resumes it).
    fn file(&mut self, path: &Path, retry_io: bool) -> Result<(), IngestError> {
        let sensor = self.sensor_of(path);
        let t = Instant::now();
        match self.ing.ingest_path(path, &sensor) {
            Ok(FileOutcome::AlreadyDone) => {
                tracing::info!(file = %path.display(), "already in the store: skipped");
            }
            Ok(FileOutcome::Ingested {
                records,
                backscatter,
                resumed_at,
                malformed,
            }) => {
                if let Some(m) = malformed {
                    self.failed += 1;
                    tracing::error!(file = %path.display(), error = %m, "malformed capture; the records before the error are in the store");
                }
                tracing::info!(
                    file = %path.display(),
                    %sensor,
                    packets = records,
                    backscatter,
                    resumed_at,
                    packets_per_sec = (records as f64 / t.elapsed().as_secs_f64().max(1e-9)) as u64,
                    "file ingested"
                );
            }
            Err(e @ IngestError::Store(_)) => return Err(e),
            Err(IngestError::Io { path, source })
                if retry_io && source.kind() != std::io::ErrorKind::NotFound =>
            {
                tracing::error!(file = %path.display(), error = %source, "cannot read the file: its queue batch is not acknowledged (read again when the reader restarts)");
                return Err(IngestError::Io { path, source });
            }
            Err(e @ IngestError::Io { .. }) => {
                self.failed += 1;
                tracing::error!(error = %e, "file not ingested (what was read is kept; a later run resumes it)");
            }
        }
        Ok(())
    }

    /// Removes what is older than the retention.
    fn expire(&self) -> Result<(), d4_pibs::store::PibsStoreError> {
        if self.retention_days == 0 {
            return Ok(());
        }
        let store = self.ing.store();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let Some(newest) = store.info()?.newest_bucket else {
            return Ok(());
        };
        let reference = now.min(newest + d4_pibs::store::BUCKET_SECS);
        let cutoff = reference.saturating_sub(self.retention_days.saturating_mul(86_400));
        let ex = store.expire(cutoff)?;
        if ex.buckets + ex.attacks > 0 {
            tracing::info!(
                cutoff,
                buckets = ex.buckets,
                attacks = ex.attacks,
                "expired"
            );
        }
        Ok(())
    }
}

/// Opens the store at `--db` or `<data-dir>/pibs.redb` and applies the settings given.
fn open_store(store: &StoreArgs, a: &IngestArgs) -> anyhow::Result<Arc<EmbeddedPibsStore>> {
    let path = match &a.db {
        Some(p) => p.clone(),
        None => {
            let dir = store
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("./d4-data"));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
            dir.join("pibs.redb")
        }
    };
    let s = open_embedded(&path).with_context(|| {
        format!(
            "cannot open the backscatter store {} (--db / --data-dir)",
            path.display()
        )
    })?;
    let cur = s.config()?;
    let want = StoreConfig {
        attack_gap: a.attack_gap.unwrap_or(cur.attack_gap),
        darknet_size: a.darknet_size.or(cur.darknet_size),
    };
    if want != cur {
        tracing::info!(attack_gap = want.attack_gap, darknet_size = ?want.darknet_size, "store settings changed");
        s.set_config(&want)?;
    }
    Ok(Arc::new(s))
}

pub fn run(store_args: &StoreArgs, a: IngestArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(store_args, &a)?;
    let opts = IngestOptions {
        detect: DetectConfig {
            window_secs: a.window,
            max_initiators: a.max_initiators,
            max_flows: a.max_flows,
        },
        batch_buckets: a.batch_buckets,
        batch_records: a.batch_records,
    };
    let mut st = State {
        ing: Ingester::new(store, opts),
        sensor: a.sensor.clone(),
        retention_days: a.retention_days,
        failed: 0,
    };
    let started = Instant::now();
    st = match a.queue {
        Some(q) => run_queue(store_args, st, q, &a.consumer, a.pop_max, a.until_empty)?,
        None => {
            for p in &a.inputs {
                st.file(p, false)?;
                st.expire()?;
            }
            st
        }
    };
    let mut v = serde_json::to_value(st.ing.stats())?;
    v["seconds"] = started.elapsed().as_secs_f64().into();
    v["store"] = serde_json::to_value(st.ing.store().info()?)?;
    outln!("{v}");
    Ok(if st.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `d4 pibs serve --queue`: drains the type-1 queue `queue` into `store` (the one the
/// server reads) with the default ingest settings, until SIGINT/SIGTERM; fails on a store
/// error or a file that cannot be read (the server then stops too).
pub fn serve_queue(
    store_args: &StoreArgs,
    store: Arc<EmbeddedPibsStore>,
    queue: uuid::Uuid,
    consumer: &str,
    pop_max: usize,
    retention_days: u64,
) -> anyhow::Result<()> {
    let st = State {
        ing: Ingester::new(store, IngestOptions::default()),
        sensor: None,
        retention_days,
        failed: 0,
    };
    let st = run_queue(store_args, st, queue, consumer, pop_max, false)?;
    tracing::info!(stats = %serde_json::to_value(st.ing.stats())?, "queue reader stopped");
    Ok(())
}

fn run_queue(
    store_args: &StoreArgs,
    st: State,
    queue: uuid::Uuid,
    consumer: &str,
    pop_max: usize,
    until_empty: bool,
) -> anyhow::Result<State> {
    use d4_store::{QueueKind, Queues};
    let d4cfg = store_args.store_config()?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let res = rt.block_on(async {
        let d4: Arc<dyn Queues> = d4_store::open(&d4cfg).await?;
        let q = d4
            .get_queue(queue)
            .await?
            .with_context(|| format!("no analyzer queue {queue} in the store (--queue)"))?;
        if q.config.kind != QueueKind::Type(1) {
            anyhow::bail!(
                "queue {queue} takes {} data, not pcap file paths (type 1): give a type-1 queue to --queue",
                q.config.kind
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut signal = consume::Stop::new();
        let flag = stop.clone();
        tokio::spawn(async move {
            signal.wait().await;
            tracing::info!("stopping after the current batch");
            flag.store(true, Ordering::Relaxed);
        });
        let d = consume::Drain {
            queue,
            consumer,
            pop_max,
            until_empty,
            stop,
            what: "pcap file paths",
        };
        consume::drain(st, d4, d, |st: &mut State, batch: &QueueBatch| {
            for e in &batch.entries {
                let path = PathBuf::from(e.text().trim_end_matches(['\r', '\n']));
                st.file(&path, true)?;
            }
            st.expire().map_err(IngestError::Store)
        })
        .await
    });
    drop(rt);
    res
}
