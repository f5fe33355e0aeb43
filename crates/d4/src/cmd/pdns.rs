//! `d4 pdns`: the passive DNS analyzer. `ingest` loads passivedns CSV (files, `.gz`,
//! stdin) into the embedded record store; `serve` answers COF lookups over HTTP.
//! The logic lives in the `d4-pdns` crate; this module only wires files, sockets, signals.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Subcommand};
use d4_pdns::cof::CofOptions;
use d4_pdns::server::LookupConfig;
use d4_pdns::{IngestOptions, Ingester, PdnsStore, RecordStore, RedisRecordStore};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    d4 pdns ingest /var/log/passivedns.log.gz --sensor-id 15dde53e50b54bbba76117210179b4da\n  \
    tail -F passivedns.log | d4 pdns ingest -\n  \
    d4 pdns serve --listen 127.0.0.1:8400 --token-file /etc/d4/pdns.tokens\n  \
    curl -s http://127.0.0.1:8400/query/example.com\n\n\
The database is one redb file (default <data-dir>/pdns.redb) that one process owns at a\n\
time: stop `serve` before a bulk `ingest`.")]
pub struct PdnsArgs {
    /// Data directory (the database lives there unless --db is given).
    #[arg(long, global = true, env = "D4_DATA_DIR", default_value = "./d4-data")]
    pub data_dir: PathBuf,

    /// The passive DNS database file (default: <data-dir>/pdns.redb).
    #[arg(long, global = true, env = "D4_PDNS_DB")]
    pub db: Option<PathBuf>,

    /// Use a Redis/kvrocks database in analyzer-d4-passivedns's key layout instead of the
    /// embedded file (`redis://127.0.0.1:6400/0`): serve or feed an existing database.
    /// Wildcard, prefix and CIDR searches need the embedded store.
    #[arg(long, global = true, env = "D4_PDNS_REDIS", value_name = "URL")]
    pub redis: Option<String>,

    /// With --queue: the collector's store is in Redis (`d4 server --redis URL`); consume
    /// its analyzer queue there (`analyzer:8:<queue>`) instead of `<data-dir>/d4.redb`.
    #[arg(long, global = true, env = "D4_REDIS", value_name = "URL")]
    pub store_redis: Option<String>,

    /// With --queue: the collector's separate Redis URL for the analyzer queues
    /// (`d4 server --redis-queue`) [default: --store-redis].
    #[arg(long, global = true, env = "D4_REDIS_QUEUE", value_name = "URL")]
    pub redis_queue: Option<String>,

    /// With --queue: the collector's separate Redis URL for the metadata
    /// (`d4 server --redis-metadata`) [default: --store-redis].
    #[arg(long, global = true, env = "D4_REDIS_METADATA", value_name = "URL")]
    pub redis_metadata: Option<String>,

    /// With --queue: the collector's configuration file, whose store settings apply
    /// (redis, redis_queue, redis_metadata) [default: <data-dir>/d4.toml when it exists].
    #[arg(long, global = true, env = "D4_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: PdnsCommand,
}

#[derive(Debug, Subcommand)]
pub enum PdnsCommand {
    /// Load passivedns CSV lines (files, `.gz` files, or `-` for stdin) into the store.
    ///
    /// Lines are `timestamp||client||server||class||query||type||answer||ttl||count`.
    /// Bad lines are counted and logged with their reason, never fatal. A summary is
    /// printed on stdout as JSON when done.
    Ingest(IngestArgs),
    /// Serve COF lookups: GET /query/<name|ip|cidr|*.suffix|prefix*>, /fquery/<rdata>, /info.
    ///
    /// Answers are JSON lines (application/x-ndjson) ordered by last seen, newest first.
    /// Pagination: request headers dribble-paginate-count / dribble-paginate-cursor, answer
    /// header x-dribble-cursor (as CIRCL's service and PyPDNS); filters: header
    /// dribble-filter-rrtype or ?rrtype=A,AAAA&since=SECS&until=SECS&limit=N&cursor=C. The
    /// cursor encodes the last record sent, so pages stay stable while records are ingested.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Input files (`.gz` decompressed); `-` or nothing reads stdin.
    #[arg(value_name = "FILE|-")]
    pub inputs: Vec<PathBuf>,

    /// Sensor id recorded with every line of these inputs (COF `sensor_id`).
    #[arg(long)]
    pub sensor_id: Option<String>,

    /// Drop rcode lines (NXDOMAIN, SERVFAIL...) instead of storing them apart.
    #[arg(long)]
    pub skip_rcode: bool,

    /// Most distinct (rrname, rrtype, rdata) per write transaction (repeated lines are
    /// merged in memory first). Each transaction is durable: a crash loses at most the
    /// batch being built, never part of a committed one.
    #[arg(long, default_value_t = 100_000)]
    pub batch: usize,

    /// Most lines per write transaction.
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_lines: usize,

    /// Expiry per rrtype: remove records of TYPE last seen more than SECS ago (after the
    /// ingest). Repeatable, e.g. `--expire TXT=86400 --expire 99=86400`.
    #[arg(long, value_name = "TYPE=SECS", value_parser = parse_expire)]
    pub expire: Vec<(u16, u64)>,

    #[command(flatten)]
    pub queue: QueueArgs,
}

/// Consuming an analyzer queue of the server's store (`<data-dir>/d4.redb`, or the
/// server's socket when `d4 server` holds it).
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// Read passivedns lines from this analyzer queue (uuid) instead of files: blocking,
    /// batched, the sensor id of each entry kept. Runs until Ctrl-C (or --until-empty).
    #[arg(long, value_name = "QUEUE_UUID")]
    pub queue: Option<uuid::Uuid>,

    /// With --queue: stop when the queue is empty (a one-shot drain).
    #[arg(long, requires = "queue")]
    pub until_empty: bool,

    /// With --queue: most entries taken (and committed) at once.
    #[arg(long, default_value_t = 10_000, requires = "queue")]
    pub pop_max: usize,

    /// With --queue: the consumer name. Entries are taken at least once: a batch is
    /// acknowledged only once committed, and a run killed before that leaves it to the
    /// next run with the same name (at once) or to any consumer after 5 minutes.
    #[arg(long, default_value = "d4-pdns", requires = "queue", value_parser = super::consume::check_name)]
    pub consumer: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8400", env = "D4_PDNS_LISTEN")]
    pub listen: SocketAddr,

    /// Require this token in `Authorization: <token>` (or `Bearer <token>`). Repeatable.
    #[arg(long, env = "D4_PDNS_TOKEN")]
    pub token: Vec<String>,

    /// Read accepted tokens from a file, one per line.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Requests per minute per client IP; over it the answer is 429 with Retry-After.
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,

    /// Emit `rdata` as an array of strings, as COF recommends.
    #[arg(long)]
    pub rdata_array: bool,

    /// An `origin` field added to every record.
    #[arg(long)]
    pub origin: Option<String>,

    /// Refuse (HTTP 422) a query matching more records than this, instead of cutting it.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_matches: usize,

    /// Refuse (HTTP 422) a query that reads more stored records than this, whether they
    /// pass its filters (rrtype, since, until) or not: bounds the work of every request.
    #[arg(long, default_value_t = 1_000_000, env = "D4_PDNS_MAX_EXAMINED")]
    pub max_examined: usize,

    /// Lookups running at once; more wait up to 2 s, then get 429.
    #[arg(long, default_value_t = 4, env = "D4_PDNS_MAX_CONCURRENT")]
    pub max_concurrent: usize,

    /// With tokens: wrong or missing tokens per minute and client IP before 429.
    #[arg(long, default_value_t = 10, env = "D4_PDNS_MAX_AUTH_FAILURES")]
    pub max_auth_failures: u32,

    /// Accepted `Host` name (repeatable; DNS rebinding onto a loopback server). `*` accepts
    /// any; IP literals always pass [default: localhost and this machine's host name].
    #[arg(
        long,
        value_name = "NAME",
        env = "D4_PDNS_ALLOWED_HOST",
        value_delimiter = ','
    )]
    pub allowed_host: Vec<String>,

    /// Connections open at once; more are closed at once.
    #[arg(long, default_value_t = 256, env = "D4_PDNS_MAX_CONNECTIONS")]
    pub max_connections: usize,

    /// Connections open at once from one client IP.
    #[arg(long, default_value_t = 32, env = "D4_PDNS_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: usize,

    /// Seconds a client has to send a request head.
    #[arg(
        long,
        default_value_t = 10,
        value_name = "SECS",
        env = "D4_PDNS_HEADER_TIMEOUT"
    )]
    pub header_timeout: u64,

    /// Seconds without a byte before a connection is closed.
    #[arg(
        long,
        default_value_t = 60,
        value_name = "SECS",
        env = "D4_PDNS_IDLE_TIMEOUT"
    )]
    pub idle_timeout: u64,

    /// Expiry per rrtype, applied at start and every hour (see `ingest --expire`).
    #[arg(long, value_name = "TYPE=SECS", value_parser = parse_expire)]
    pub expire: Vec<(u16, u64)>,

    /// Also ingest from an analyzer queue in this process (the database has one owner).
    #[arg(long, value_name = "QUEUE_UUID")]
    pub queue: Option<uuid::Uuid>,

    /// Skip rcode lines from --queue (see `ingest --skip-rcode`).
    #[arg(long, requires = "queue")]
    pub skip_rcode: bool,

    /// The consumer name of --queue (see `ingest --consumer`).
    #[arg(long, default_value = "d4-pdns", requires = "queue", value_parser = super::consume::check_name)]
    pub consumer: String,
}

fn parse_expire(s: &str) -> Result<(u16, u64), String> {
    let (t, secs) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected TYPE=SECONDS"))?;
    let t = d4_pdns::rrtype::parse(t).ok_or_else(|| format!("unknown rrtype `{t}`"))?;
    let secs = secs
        .parse()
        .map_err(|_| format!("`{secs}`: expected a number of seconds"))?;
    Ok((t, secs))
}

fn db_path(args: &PdnsArgs) -> anyhow::Result<PathBuf> {
    match &args.db {
        Some(p) => Ok(p.clone()),
        None => {
            // often d4's own data dir (which holds the sensors' keys): 0700 when created
            d4_store::private::create_private_dir(&args.data_dir)
                .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
            Ok(args.data_dir.join("pdns.redb"))
        }
    }
}

/// Opens a record store: the Redis/kvrocks database `redis` when given (keys written
/// expire per `expire`), else the embedded file `db` (created when missing). (`d4 pdns` and
/// `d4 misp feed` open their stores with it.)
pub fn open_store(
    redis: Option<&str>,
    db: &Path,
    expire: HashMap<u16, u64>,
) -> anyhow::Result<Arc<dyn RecordStore>> {
    Ok(match redis {
        Some(url) => Arc::new(
            RedisRecordStore::open(url, expire)
                .with_context(|| format!("cannot use the Redis database {url}"))?,
        ),
        None => Arc::new(PdnsStore::open(db)?),
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn run(args: PdnsArgs) -> anyhow::Result<ExitCode> {
    let store = match &args.redis {
        Some(url) => {
            let expire = match &args.command {
                PdnsCommand::Ingest(a) => a.expire.iter().copied().collect(),
                PdnsCommand::Serve(a) => a.expire.iter().copied().collect(),
            };
            open_store(Some(url), Path::new(""), expire)?
        }
        None => open_store(None, &db_path(&args)?, HashMap::new())?,
    };
    // The collector's store (only for --queue): the same settings as `d4 server`.
    let location = super::store_args::StoreArgs {
        config: args.config.clone(),
        data_dir: Some(args.data_dir.clone()),
        redis: args.store_redis.clone(),
        redis_queue: args.redis_queue.clone(),
        redis_metadata: args.redis_metadata.clone(),
    };
    match args.command {
        PdnsCommand::Ingest(a) => match a.queue.queue {
            Some(q) => ingest_queue(store, &location.store_config()?, q, a),
            None => ingest(store, a),
        },
        PdnsCommand::Serve(a) => {
            let d4cfg = match a.queue {
                Some(_) => Some(location.store_config()?),
                None => None,
            };
            serve(store, d4cfg, a)
        }
    }
}

/// Takes entries from `queue` and ingests them at least once: each batch is committed to
/// the database, then acknowledged (so at most one batch is in flight, and a crash
/// repeats it rather than losing it), until `stop` is set or, with `until_empty`, the
/// queue holds nothing more. Only the store's [`d4_store::Queues`] role is needed.
async fn consume_queue(
    ing: Ingester,
    d4: Arc<dyn d4_store::Queues>,
    queue: uuid::Uuid,
    consumer: &str,
    pop_max: usize,
    until_empty: bool,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Ingester> {
    let d = super::consume::Drain {
        queue,
        consumer,
        pop_max,
        until_empty,
        stop,
        what: "passivedns",
    };
    super::consume::drain(
        ing,
        d4,
        d,
        |ing: &mut Ingester, batch: &d4_store::QueueBatch| {
            for e in &batch.entries {
                let sensor = e.sensor.map(|u| d4_proto::sensor_id(&u));
                ing.chunk(&e.data, sensor.as_deref())?;
            }
            ing.flush()
        },
    )
    .await
}

/// On SIGINT/SIGTERM: sets `stop` (the queue consumer ends after its current batch) and
/// signals the returned receiver (the HTTP server drains and ends).
fn stop_on_signal(stop: Arc<AtomicBool>) -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        super::client::shutdown_signal().await;
        tracing::info!("stopping after the current batch");
        stop.store(true, Ordering::Relaxed);
        let _ = tx.send(true);
    });
    rx
}

fn ingest_queue(
    store: Arc<dyn RecordStore>,
    d4cfg: &d4_store::StoreConfig,
    queue: uuid::Uuid,
    a: IngestArgs,
) -> anyhow::Result<ExitCode> {
    let ing = Ingester::new(
        store.clone(),
        IngestOptions {
            batch_lines: a.batch_lines.max(1),
            batch_records: a.batch.max(1),
            skip_rcode: a.skip_rcode,
            ..IngestOptions::default()
        },
    );
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let started = Instant::now();
    let ing = rt.block_on(async {
        let d4: Arc<dyn d4_store::Queues> = d4_store::open(d4cfg).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let _signalled = stop_on_signal(stop.clone());
        consume_queue(
            ing,
            d4,
            queue,
            &a.queue.consumer,
            a.queue.pop_max,
            a.queue.until_empty,
            stop,
        )
        .await
    })?;
    let expired = store.expire(now_ms(), &a.expire.into_iter().collect::<HashMap<_, _>>())?;
    let mut summary = serde_json::to_value(ing.stats())?;
    summary["expired"] = expired.into();
    summary["seconds"] = started.elapsed().as_secs_f64().into();
    outln!("{summary}");
    Ok(ExitCode::SUCCESS)
}

fn open_input(p: &Path) -> anyhow::Result<Box<dyn Read>> {
    if p.as_os_str() == "-" {
        return Ok(Box::new(io::stdin().lock()));
    }
    let f = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
    if p.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(f)))
    } else {
        Ok(Box::new(f))
    }
}

fn ingest(store: Arc<dyn RecordStore>, a: IngestArgs) -> anyhow::Result<ExitCode> {
    let mut ing = Ingester::new(
        store.clone(),
        IngestOptions {
            batch_lines: a.batch_lines.max(1),
            batch_records: a.batch.max(1),
            skip_rcode: a.skip_rcode,
            ..IngestOptions::default()
        },
    );
    let inputs = if a.inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        a.inputs
    };
    let started = Instant::now();
    let mut failed = false;
    for p in &inputs {
        let r = open_input(p)?;
        if let Err(e) = ing.read(BufReader::with_capacity(1 << 16, r), a.sensor_id.as_deref()) {
            tracing::error!(input = %p.display(), error = %e, "reading stopped");
            failed = true;
        }
    }
    ing.flush()?;
    let expired = store.expire(now_ms(), &a.expire.into_iter().collect::<HashMap<_, _>>())?;
    let s = ing.stats();
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        lines_ok = s.lines_ok,
        lines_bad = s.lines_bad,
        new_records = s.new_records,
        secs,
        "ingest done"
    );
    let mut summary = serde_json::to_value(s)?;
    summary["expired"] = expired.into();
    summary["seconds"] = secs.into();
    outln!("{summary}");
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn serve(
    store: Arc<dyn RecordStore>,
    d4cfg: Option<d4_store::StoreConfig>,
    a: ServeArgs,
) -> anyhow::Result<ExitCode> {
    let mut tokens = a.token.clone();
    if let Some(f) = &a.token_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read token file {}", f.display()))?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    if tokens.iter().any(|t| t.trim().is_empty()) {
        anyhow::bail!(
            "an empty --token would accept an empty Authorization header: give a real token"
        );
    }
    let cfg = LookupConfig {
        cof: CofOptions {
            rdata_array: a.rdata_array,
            origin: a.origin.clone(),
        },
        tokens,
        rate_limit_per_min: a.rate_limit,
        max_matches: a.max_matches,
        max_examined: a.max_examined.max(1),
        max_concurrent: a.max_concurrent.max(1),
        max_auth_failures: a.max_auth_failures.max(1),
        allowed_hosts: crate::config::allowed_hosts(&a.allowed_host),
    };
    let expire: HashMap<u16, u64> = a.expire.into_iter().collect();
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        let local = listener.local_addr()?;
        tracing::info!(listen = %local, auth = !cfg.tokens.is_empty(), "pdns lookup server ready");
        if !expire.is_empty() {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
                loop {
                    tick.tick().await;
                    let (s, e) = (store.clone(), expire.clone());
                    match tokio::task::spawn_blocking(move || s.expire(now_ms(), &e)).await {
                        Ok(Ok(n)) => tracing::info!(removed = n, "expired records removed"),
                        Ok(Err(e)) => tracing::error!(error = %e, "expiry failed"),
                        Err(e) => tracing::error!(error = %e, "expiry task failed"),
                    }
                }
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut signalled = stop_on_signal(stop.clone());
        let consumer = match (a.queue, &d4cfg) {
            (Some(q), Some(d4cfg)) => {
                let d4: Arc<dyn d4_store::Queues> = d4_store::open(d4cfg).await?;
                let ing = Ingester::new(
                    store.clone(),
                    IngestOptions {
                        skip_rcode: a.skip_rcode,
                        ..IngestOptions::default()
                    },
                );
                let stop = stop.clone();
                let name = a.consumer.clone();
                Some(tokio::spawn(async move {
                    let r = consume_queue(ing, d4, q, &name, 10_000, false, stop).await;
                    if let Err(e) = &r {
                        // Logged at once: the server keeps answering from what is stored.
                        tracing::error!(error = %format!("{e:#}"), "queue consumer stopped");
                    }
                    r
                }))
            }
            _ => None,
        };
        let shutdown = async move {
            let _ = signalled.wait_for(|s| *s).await;
            tracing::info!("shutting down");
        };
        let limits = d4_pdns::server::ListenLimits {
            max_connections: a.max_connections.max(1),
            max_connections_per_ip: a.max_connections_per_ip.max(1),
            header_timeout: std::time::Duration::from_secs(a.header_timeout.max(1)),
            idle_timeout: std::time::Duration::from_secs(a.idle_timeout.max(1)),
        };
        d4_pdns::server::serve_with_limits(listener, store, cfg, limits, shutdown).await?;
        if let Some(c) = consumer {
            match c.await {
                Ok(Ok(ing)) => tracing::info!(stats = ?ing.stats(), "queue consumer stopped"),
                Ok(Err(_)) => {} // already logged
                Err(e) => tracing::error!(error = %e, "queue consumer task failed"),
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
