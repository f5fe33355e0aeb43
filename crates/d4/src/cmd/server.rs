//! `d4 server`: the collector. Configuration = defaults < `d4.toml` < `D4_*` env < flags.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use d4_server::{Mode, OnLimit};

use crate::config::D4Config;

/// Run the D4 collector: TLS listener, sessions, journal, workers, analyzer queues.
///
/// With no arguments: data dir ./d4-data, TLS on [::]:4443 (dual stack) with a
/// certificate generated on first start in <data>/tls/, registration mode. Every
/// setting can come from <data>/d4.toml (or --config), a D4_* environment variable or a
/// flag (flags win). The admin commands (`d4 sensor`, `d4 queue`...) reach the running
/// server's store through <data>/d4.sock. SIGTERM/SIGINT: stop accepting, drain the
/// sessions, close the files, exit 0.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Configuration file (default: <data-dir>/d4.toml when it exists).
    #[arg(long, env = "D4_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Data dir: database, TLS material, journal, sensors' files [default: ./d4-data].
    #[arg(long, env = "D4_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TLS listener address ("" disables TLS) [default: [::]:4443].
    #[arg(long, env = "D4_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Add a plain-TCP listener (repeatable; for tests or TLS terminated elsewhere).
    #[arg(
        long,
        env = "D4_PLAIN_LISTEN",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub plain_listen: Vec<String>,
    /// PEM certificate chain (default: generated in <data>/tls/).
    #[arg(long, env = "D4_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "D4_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Extra name (DNS name or IP address) for the generated certificate (repeatable). It
    /// always holds localhost, 127.0.0.1, ::1, the host name and the machine's addresses.
    /// A certificate generated earlier without a name given here is kept (a warning says
    /// so): delete <data>/tls/ to generate a new one.
    #[arg(long, env = "D4_TLS_SAN", value_name = "NAME", value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// registration (approved sensors only) or shared-secret (any v4 UUID with the right key).
    #[arg(long, env = "D4_MODE", value_parser = parse_mode)]
    pub mode: Option<Mode>,
    /// HMAC key of sensors without a key of their own.
    #[arg(
        long,
        env = "D4_DEFAULT_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub default_key: Option<String>,
    /// Start in shared-secret mode even with the reference's public default key
    /// ("private key to change"), which lets anyone send as any sensor; warned about at
    /// every start. Without it such a server refuses to start.
    #[arg(long, env = "D4_ALLOW_REFERENCE_KEY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub allow_reference_key: Option<bool>,
    /// Largest accepted payload in bytes [default: 1000000].
    #[arg(long, env = "D4_MAX_PAYLOAD")]
    pub max_payload: Option<u32>,
    /// Seconds a connection has to send its first valid frame [default: 30].
    #[arg(long, env = "D4_HEADER_TIMEOUT")]
    pub header_timeout: Option<u64>,
    /// Seconds of silence after which a connection is closed, 0 = never [default: 900].
    #[arg(long, env = "D4_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Pending entries per sensor without a limit of its own [default: 10000].
    #[arg(long, env = "D4_STREAM_LIMIT")]
    pub stream_limit: Option<u64>,
    /// Pending bytes per session over which reading stops too [default: 67108864].
    #[arg(long, env = "D4_MAX_PENDING_BYTES")]
    pub max_pending_bytes: Option<u64>,
    /// Over the stream limit: backpressure (stop reading) or drop (reference behaviour).
    #[arg(long, env = "D4_ON_LIMIT", value_parser = parse_on_limit)]
    pub on_limit: Option<OnLimit>,
    /// Connections served at once [default: 50000].
    #[arg(long, env = "D4_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Bytes all connections that have not yet shown a valid frame may hold together
    /// (a declared payload arrives before its HMAC can be checked) [default: 33554432].
    #[arg(long, env = "D4_PREAUTH_BUDGET_BYTES", value_name = "BYTES")]
    pub preauth_budget_bytes: Option<usize>,
    /// Bytes the not-yet-authenticated connections of one source IP may hold
    /// [default: 4194304].
    #[arg(long, env = "D4_PREAUTH_IP_BYTES", value_name = "BYTES")]
    pub preauth_ip_bytes: Option<usize>,
    /// Not-yet-authenticated connections (TLS handshakes included) per source IP; more
    /// are closed at once [default: 64].
    #[arg(long, env = "D4_PREAUTH_IP_CONNECTIONS", value_name = "N")]
    pub preauth_ip_connections: Option<usize>,
    /// Not-yet-authenticated connections in total [default: 1024].
    #[arg(long, env = "D4_PREAUTH_CONNECTIONS", value_name = "N")]
    pub preauth_connections: Option<usize>,
    /// Concurrent extended-type (2 -> 254) connections of one sensor; more are refused
    /// (ext-sessions-limit), 0 = no limit [default: 4].
    #[arg(long, env = "D4_MAX_EXT_SESSIONS_PER_SENSOR", value_name = "N")]
    pub max_ext_sessions_per_sensor: Option<usize>,
    /// fsync the journal before the workers handle a batch (true/false) [default: true].
    #[arg(long, env = "D4_JOURNAL_FSYNC")]
    pub journal_fsync: Option<bool>,
    /// Write the journal with O_DIRECT, past the page cache (true/false) [default: true].
    /// Falls back to buffered writes where the filesystem does not support it (tmpfs).
    #[arg(long, env = "D4_JOURNAL_DIRECT")]
    pub journal_direct: Option<bool>,
    /// Journal segment size in bytes [default: 67108864].
    #[arg(long, env = "D4_JOURNAL_SEGMENT_BYTES")]
    pub journal_segment_bytes: Option<u64>,
    /// Stats flush period in milliseconds [default: 1000].
    #[arg(long, env = "D4_STATS_FLUSH_MS")]
    pub stats_flush_ms: Option<u64>,
    /// Flush stats once this many frames were counted [default: 10000].
    #[arg(long, env = "D4_STATS_FLUSH_FRAMES")]
    pub stats_flush_frames: Option<u64>,
    /// This server's name in the store's session table [default: d4-server].
    #[arg(long, env = "D4_SERVER_ID")]
    pub server_id: Option<String>,
    /// This organisation's UUID, sent as `misp:org` in the meta header of forwarded
    /// extended-type streams (docs/forward.md) [default: none].
    #[arg(long, env = "D4_ORG_UUID", value_name = "UUID")]
    pub org_uuid: Option<uuid::Uuid>,
    /// File rotation period in seconds, 0 = no time rotation [default: 300].
    #[arg(long, env = "D4_ROTATION_SECS")]
    pub rotation_secs: Option<u64>,
    /// Rotate a file once it holds this many bytes, 0 = no size rotation [default: 0].
    /// Files are cut only where their type allows (between lines, pcap records).
    #[arg(long, env = "D4_ROTATION_BYTES", value_name = "BYTES")]
    pub rotation_bytes: Option<u64>,
    /// Rotate files at UTC day change (true/false) [default: true].
    #[arg(long, env = "D4_ROTATE_DAILY")]
    pub rotate_daily: Option<bool>,
    /// Gzip rotated files (true/false) [default: true].
    #[arg(long, env = "D4_GZIP")]
    pub gzip: Option<bool>,
    /// Keep the store in Redis (redis://HOST:PORT/DB) with d4-core's key layout, so d4-core
    /// analyzers keep working and several servers can share it (docs/redis-layout.md).
    #[arg(long, env = "D4_REDIS", value_name = "URL")]
    pub redis: Option<String>,
    /// Separate Redis URL for the analyzer queues [default: --redis].
    #[arg(long, env = "D4_REDIS_QUEUE", value_name = "URL")]
    pub redis_queue: Option<String>,
    /// Separate Redis URL for the metadata [default: --redis].
    #[arg(long, env = "D4_REDIS_METADATA", value_name = "URL")]
    pub redis_metadata: Option<String>,
    /// Session lease in seconds: a crashed server's (uuid, type) slots free themselves
    /// after it [default: 90].
    #[arg(long, env = "D4_SESSION_LEASE_SECS")]
    pub session_lease_secs: Option<u64>,
    /// Queue alert when a queue holds at least this fraction of its max size, 0 = off
    /// [default: 0.8].
    #[arg(long, env = "D4_QUEUE_ALERT_FILL", value_name = "FRACTION")]
    pub queue_alert_fill: Option<f64>,
    /// Queue alert when a queue's oldest entry waits longer than this, 0 = off
    /// [default: 3600].
    #[arg(long, env = "D4_QUEUE_ALERT_AGE", value_name = "SECS")]
    pub queue_alert_age: Option<u64>,
    /// A "trimmed" queue alert (entries dropped from a full queue) ends after this many
    /// seconds without a drop [default: 300].
    #[arg(long, env = "D4_QUEUE_ALERT_TRIMMED_QUIET", value_name = "SECS")]
    pub queue_alert_trimmed_quiet: Option<u64>,
    /// Seconds between two evaluations of the queue alerts (logged once per episode)
    /// [default: 10].
    #[arg(long, env = "D4_QUEUE_ALERT_INTERVAL", value_name = "SECS")]
    pub queue_alert_interval: Option<u64>,
    #[command(flatten)]
    pub web: super::web::WebArgs,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "registration" => Ok(Mode::Registration),
        "shared-secret" | "shared_secret" => Ok(Mode::SharedSecret),
        _ => Err("expected registration or shared-secret".into()),
    }
}

fn parse_on_limit(s: &str) -> Result<OnLimit, String> {
    match s {
        "backpressure" => Ok(OnLimit::Backpressure),
        "drop" => Ok(OnLimit::Drop),
        _ => Err("expected backpressure or drop".into()),
    }
}

/// The effective configuration of these arguments: flags and `D4_*` over the file.
pub fn effective_config(args: &ServerArgs) -> anyhow::Result<D4Config> {
    let mut c = D4Config::load(args.config.as_deref(), args.data_dir.as_deref())?;
    macro_rules! over {
        ($($f:ident => $k:ident),* $(,)?) => {$(
            if let Some(v) = args.$f.clone() { c.$k = v; }
        )*};
    }
    over!(data_dir => data_dir, listen => listen, mode => mode, default_key => default_key,
        max_payload => max_payload, header_timeout => header_timeout_secs,
        idle_timeout => idle_timeout_secs, stream_limit => stream_limit,
        max_pending_bytes => max_pending_bytes, on_limit => on_limit,
        max_connections => max_connections, journal_fsync => journal_fsync,
        preauth_budget_bytes => preauth_budget_bytes, preauth_ip_bytes => preauth_ip_bytes,
        preauth_ip_connections => preauth_ip_connections,
        preauth_connections => preauth_connections,
        max_ext_sessions_per_sensor => max_ext_sessions_per_sensor,
        journal_direct => journal_direct,
        journal_segment_bytes => journal_segment_bytes, stats_flush_ms => stats_flush_ms,
        stats_flush_frames => stats_flush_frames, server_id => server_id,
        rotation_secs => rotation_secs, rotation_bytes => rotation_bytes,
        rotate_daily => rotate_daily, gzip => gzip,
        allow_reference_key => allow_reference_key,
        session_lease_secs => session_lease_secs,
        queue_alert_fill => queue_alert_fill, queue_alert_age => queue_alert_age,
        queue_alert_trimmed_quiet => queue_alert_trimmed_quiet,
        queue_alert_interval => queue_alert_interval);
    if args.org_uuid.is_some() {
        c.org_uuid = args.org_uuid;
    }
    if args.redis.is_some() {
        c.redis = args.redis.clone();
    }
    if args.redis_queue.is_some() {
        c.redis_queue = args.redis_queue.clone();
    }
    if args.redis_metadata.is_some() {
        c.redis_metadata = args.redis_metadata.clone();
    }
    if args.tls_cert.is_some() {
        c.tls_cert = args.tls_cert.clone();
        c.tls_key = args.tls_key.clone();
    }
    if !args.tls_san.is_empty() {
        c.tls_san = args.tls_san.clone();
    }
    if !args.plain_listen.is_empty() {
        c.plain_listen = args.plain_listen.clone();
    }
    args.web.apply(&mut c);
    // A split store without its main URL is refused before anything starts.
    c.store_config()?;
    c.queue_alerts()?;
    Ok(c)
}

pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let cfg = effective_config(&args)?;
    if args.print_config {
        out!("{}", cfg.to_toml()?);
        return Ok(ExitCode::SUCCESS);
    }
    // Before anything is created (web account, certificate, store).
    cfg.server_config().check()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(cfg))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(cfg: D4Config) -> anyhow::Result<()> {
    // The data dir holds the sensors' keys: 0700 whatever the umask; an existing one, or
    // secret files in it, open to other local users are warned about (once each).
    d4_store::private::create_private_dir(&cfg.data_dir)
        .with_context(|| format!("creating the data dir {}", cfg.data_dir.display()))?;
    let mut secrets = d4_store::private::secret_paths(&cfg.data_dir);
    secrets.extend(cfg.tls_key.clone());
    d4_store::private::warn_loose(&secrets.iter().map(|p| p.as_path()).collect::<Vec<_>>());
    let mut scfg = cfg.store_config()?;
    scfg.embedded_only = true;
    scfg.core_kicks = true; // d4-core's UI kick button (Redis)
    let mut cfg = cfg;
    if cfg.redis.is_some() {
        // Servers sharing a Redis need distinct ids (leases, clearing at start): the
        // default becomes `d4-server@<host>:<data dir>`, stable across restarts.
        if cfg.server_id == D4Config::default().server_id {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".into());
            let dir = std::fs::canonicalize(&cfg.data_dir).unwrap_or(cfg.data_dir.clone());
            cfg.server_id = format!("{}@{host}:{}", cfg.server_id, dir.display());
        }
        tracing::info!(server_id = %cfg.server_id, "using the Redis store");
    }
    let store = d4_store::open(&scfg)
        .await
        .context("opening the store (is another `d4 server` running on this data dir?)")?;
    let socket = d4_store::serve_socket(store.clone(), &scfg.socket_path())
        .await
        .context("starting the store socket")?;
    let metrics = Arc::new(d4_server::ServerMetrics::new());
    let alerts = Arc::new(d4_server::QueueAlertMonitor::new(
        store.clone(),
        cfg.queue_alerts()?,
    ));
    let alert_task = tokio::spawn(alerts.clone().run(std::time::Duration::from_secs(
        cfg.queue_alert_interval.max(1),
    )));
    let web_task =
        super::web::start(&cfg, store.clone(), Some(metrics.clone()), Some(alerts)).await?;
    // Watch SIGTERM now, before the ready line: a stop sent as soon as the server says it
    // is ready must still drain and exit 0, not kill the process.
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    let shutdown = async {
        let mut term = match term {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = async {
                match int {
                    Ok(mut i) => { i.recv().await; }
                    Err(_) => std::future::pending::<()>().await,
                }
            } => tracing::info!("SIGINT received"),
        }
    };
    let forward = super::forward_engine::start(&cfg, store.clone(), &metrics)?;
    let tap = Some(forward.tap());
    let res = d4_server::run_with_tap(cfg.server_config(), store, metrics, tap, shutdown, |b| {
        // One machine-readable line for scripts and tests.
        let tls = b.tls.map(|a| a.to_string()).unwrap_or_default();
        let plain: Vec<String> = b.plain.iter().map(|a| a.to_string()).collect();
        eprintln!("d4-server-ready tls={tls} plain={}", plain.join(","));
    })
    .await;
    forward.shutdown().await;
    if let Some(t) = web_task {
        t.abort();
    }
    alert_task.abort();
    socket.shutdown();
    res.map_err(Into::into)
}
