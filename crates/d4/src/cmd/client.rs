//! `d4 client`: the sensor client. Reads a source, frames it (D4 v1, HMAC-SHA256) and
//! delivers it to stdout or a collector, surviving outages (spool, reconnect). All the
//! logic is in the `d4-client` crate; this module maps flags to its settings.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use d4_client::{ConfigDir, Overrides, Settings};

#[derive(Debug, Args)]
#[command(
    after_help = "Configuration: a directory in the C/Go client layout (-c DIR: files uuid, key,\n\
type, version, snaplen, source, destination, metaheader.json, folder, redis_d4,\n\
redis_queue, rootCA.crt; one trailing newline trimmed), and/or flags, which win.\n\n\
Examples:\n  \
tcpdump -n -s0 -w - | d4 client -c /etc/d4/sensor\n  \
d4 client --key-file key --type 3 --source /var/log/syslog --follow --destination d4.example.org:4443 --ca ca.pem\n  \
d4 client --key secret --type 8 --source folder --folder /data/pdns --json --destination 10.0.0.5:4443 --no-tls\n\n\
Exit status: 0 at the end of a (non-followed) input or on SIGINT/SIGTERM after flushing,\n\
once the collector has confirmed the end of the stream; 1 on a runtime failure (source,\n\
stdout, spool, or no confirmation within --close-timeout); 2 on bad configuration."
)]
pub struct ClientArgs {
    /// Configuration directory of the C/Go clients (optional: flags can give everything).
    #[arg(short = 'c', long = "config", value_name = "CONFDIR")]
    pub config: Option<PathBuf>,

    /// Sensor uuid (dashed, 32 hex digits, {...} or urn:uuid:). Generated and saved when absent.
    #[arg(long)]
    pub uuid: Option<String>,

    /// HMAC key shared with the collector.
    #[arg(long, conflicts_with = "key_file")]
    pub key: Option<String>,

    /// Read the HMAC key from a file (one trailing newline trimmed).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// D4 type: a number or a name (1 pcap, 2 meta-header, 3 generic log, 8 passivedns,
    /// 254 extended...). Types 2/254 send the meta header then data as type 254.
    #[arg(long = "type", value_name = "TYPE")]
    pub d4_type: Option<String>,

    /// Protocol version (only 1 exists; `version` file of the config dir). `--version` prints
    /// the program's version.
    #[arg(long = "proto-version", id = "proto_version", value_name = "N")]
    pub proto_version: Option<u8>,

    /// Source: `stdin`, `folder`, `d4server` (a Redis list), or the path of a file.
    #[arg(long)]
    pub source: Option<String>,

    /// Destination: `stdout`, or `host:port` / `ipv4:port` / `[ipv6]:port` of a collector.
    #[arg(long)]
    pub destination: Option<String>,

    /// Largest read, in bytes: each read becomes one frame (default 4096).
    #[arg(long)]
    pub snaplen: Option<usize>,

    /// Meta header JSON for types 2/254 (default: metaheader.json of the config dir).
    #[arg(long, value_name = "FILE")]
    pub metaheader: Option<PathBuf>,

    /// CA certificate(s) (PEM) to verify the collector (default: rootCA.crt of the config dir,
    /// else the system roots).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// Do not verify the collector's certificate (logged as a warning).
    #[arg(long)]
    pub insecure: bool,

    /// Plain TCP instead of TLS.
    #[arg(long)]
    pub no_tls: bool,

    /// File source: keep reading as the file grows (like `tail -F`).
    #[arg(long)]
    pub follow: bool,

    /// Folder source: send files as they are (JSON) instead of base64.
    #[arg(long)]
    pub json: bool,

    /// Folder source: only files under `YYYYMMDD` sub-folders (today's is created).
    #[arg(long)]
    pub daily: bool,

    /// Folder watched by the `folder` source (default: `folder` file of the config dir).
    #[arg(long, value_name = "DIR")]
    pub folder: Option<PathBuf>,

    /// Redis for the `d4server` source: `host:port/db`.
    #[arg(long, value_name = "HOST:PORT/DB")]
    pub redis_d4: Option<String>,

    /// Redis list read by the `d4server` source.
    #[arg(long, value_name = "LIST")]
    pub redis_queue: Option<String>,

    /// Spool folder for frames the collector could not take yet
    /// (default: CONFDIR/spool, else $XDG_STATE_HOME/d4/spool/<uuid>).
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Spool bound in bytes; when full, the client stops reading its source.
    #[arg(long, value_name = "BYTES", default_value_t = d4_client::config::DEFAULT_SPOOL_MAX)]
    pub spool_max: u64,

    /// Connect (TCP + TLS handshake) timeout, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub connect_timeout: f64,

    /// Longest delay between reconnect attempts, in seconds (backoff starts at 0.25 s).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub backoff_max: f64,

    /// Poll period (followed file, Redis list, folder), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub poll_ms: u64,

    /// At the end of input, how long to keep trying to deliver before leaving the rest in
    /// the spool for the next start, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub drain_timeout: f64,

    /// At the end, after sending everything, its TLS close_notify and closing its writing
    /// side, the client waits for the collector to close the connection (which it does
    /// once it has read everything); past this many seconds it says so and exits with 1.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub close_timeout: f64,
}

fn secs(v: f64, name: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).map_err(|_| anyhow::anyhow!("invalid --{name} {v}"))
}

pub fn run(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let conf = match &args.config {
        Some(d) => ConfigDir::load(d)?,
        None => ConfigDir::default(),
    };
    let o = Overrides {
        uuid: args.uuid.clone(),
        key: args.key.clone(),
        key_file: args.key_file.clone(),
        d4_type: args.d4_type.clone(),
        version: args.proto_version,
        source: args.source.clone(),
        destination: args.destination.clone(),
        snaplen: args.snaplen,
        metaheader: args.metaheader.clone(),
        metaheader_json: None,
        ca: args.ca.clone(),
        insecure: args.insecure,
        no_tls: args.no_tls,
        follow: args.follow,
        json: args.json,
        daily: args.daily,
        spool_dir: args.spool_dir.clone(),
        spool_max: Some(args.spool_max),
        folder: args.folder.clone(),
        redis_d4: args.redis_d4.clone(),
        redis_queue: args.redis_queue.clone(),
        connect_timeout: Some(secs(args.connect_timeout, "connect-timeout")?),
        backoff_max: Some(secs(args.backoff_max, "backoff-max")?),
        poll: Some(Duration::from_millis(args.poll_ms.max(1))),
        close_timeout: Some(secs(args.close_timeout, "close-timeout")?),
    };
    // configuration errors: status 2 (the caller's default for Err)
    let settings = Settings::resolve(&conf, &o)?;
    let drain = secs(args.drain_timeout, "drain-timeout")?;
    tracing::debug!(?settings.source, ?settings.destination, snaplen = settings.snaplen, d4_type = settings.d4_type, "client settings");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let res = rt.block_on(d4_client::run(settings, drain, shutdown_signal()));
    // the source thread may be blocked on stdin: do not wait for it
    rt.shutdown_background();
    match res {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(d4_client::RunError::Config(e)) => Err(e.into()),
        Err(e) => {
            eprintln!("d4: error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (shared by the commands that run until stopped).
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
