//! `d4 export QUEUE --to URL`: the entries of an analyzer queue to another tool (stdout,
//! TCP, TLS, UDP, Unix sockets, syslog), through the shared queue consumer
//! ([`crate::cmd::consume::drain`]): a batch is acknowledged only once the sink took all
//! of it (at least once). The sinks and the formats live in the `d4-export` crate; this
//! module wires the flags, the store and the signals. `docs/export.md` has the details.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use d4_export::exporter::MAX_UDP_PAYLOAD;
use d4_export::tls::TlsOptions;
use d4_export::{ExportConfig, ExportError, Exporter, Newline, SinkSpec, SyslogHeader};
use d4_store::QueueBatch;

use super::consume;

#[derive(Debug, Args)]
#[command(after_help = "Sinks (--to):\n  \
    stdout                                  one line per entry\n  \
    tcp://HOST:PORT                         one line per entry\n  \
    tls://HOST:PORT                         one line per entry; needs --ca FILE or --insecure\n  \
    udp://HOST:PORT                         one datagram per entry\n  \
    unix:///PATH[?type=stream|dgram]        lines or datagrams (detected without type)\n  \
    syslog://HOST[:PORT][?proto=udp|tcp]    RFC 5424 (UDP, port 514 by default)\n  \
    syslog+tcp://HOST[:PORT]                RFC 5424 over TCP, octet counting (RFC 6587)\n\n\
Examples:\n  \
    d4 export 8c4ae4d9-3f9e-4a3f-9b0a-4f7e2a6c1d11 --to stdout --until-empty\n  \
    d4 export $Q --to syslog://logs.example.org --facility local3 --severity notice\n  \
    d4 export $Q --to tls://siem.example.org:6514 --ca /etc/d4/siem-ca.pem --rate 500\n\n\
At least once: a batch (--pop-max) is acknowledged only after the sink took it; a run\n\
stopped by SIGINT/SIGTERM or killed sends the unacknowledged batch again when restarted\n\
with the same --consumer name.")]
pub struct ExportArgs {
    /// The analyzer queue (uuid) to read (`d4 queue list`).
    #[arg(value_name = "QUEUE_UUID")]
    pub queue: uuid::Uuid,

    /// Where the entries go: stdout, tcp://, tls://, udp://, unix://, syslog:// (see below).
    #[arg(long, value_name = "URL", value_parser = parse_sink)]
    pub to: SinkSpec,

    /// Where the collector's store is (data dir, or the Redis URLs of
    /// `d4 server --redis … --redis-queue …`, or the server's d4.toml).
    #[command(flatten)]
    pub store: super::store_args::StoreArgs,

    /// Stop when the queue is empty (a one-shot export) instead of waiting for entries.
    #[arg(long)]
    pub until_empty: bool,

    /// Most entries taken from the queue (and acknowledged) at once. After a crash or a
    /// reconnect, at most this many entries are sent twice.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub pop_max: u32,

    /// The consumer name. A run killed before acknowledging its batch leaves it to the next
    /// run with the same name (at once) or to any consumer after 5 minutes.
    #[arg(long, default_value = "d4-export", value_parser = consume::check_name)]
    pub consumer: String,

    /// Line ends inside an entry: `escape` (as \n and \r), `strip` (as spaces), `keep`
    /// (sent as they are). A line end closing the entry is dropped (escape, strip).
    #[arg(long, default_value = "escape", value_name = "escape|strip|keep")]
    pub newline: Newline,

    /// Most entries sent per second (a token bucket; bursts of up to N/20).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,

    /// Longest wait between two reconnect tries, in seconds (the wait doubles from 0.1 s).
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub max_backoff: u64,

    /// Datagram sinks: larger entries are counted as oversize and not sent.
    #[arg(long, default_value_t = MAX_UDP_PAYLOAD, value_name = "BYTES")]
    pub max_datagram: usize,

    /// tls://: the CA certificate(s) (PEM) that must have signed the receiver's
    /// certificate. Required unless --insecure.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// tls://: our client certificate chain (PEM), for receivers that ask for one.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,

    /// tls://: the private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// tls://: do NOT verify the receiver's certificate (tests, trusted networks only).
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,

    /// syslog://: facility name (user, daemon, local0..local7, …) or number 0-23.
    #[arg(long, default_value = "user", value_parser = d4_export::syslog::parse_facility)]
    pub facility: u8,

    /// syslog://: severity name (emerg … info, debug) or number 0-7.
    #[arg(long, default_value = "info", value_parser = d4_export::syslog::parse_severity)]
    pub severity: u8,

    /// syslog://: APP-NAME field.
    #[arg(long, default_value = "d4")]
    pub app_name: String,

    /// syslog://: HOSTNAME field [default: this machine's host name].
    #[arg(long)]
    pub hostname: Option<String>,

    /// syslog://: MSGID field [default: the queue's type, `type-8` or `ext-ja3-jl`].
    #[arg(long)]
    pub msgid: Option<String>,
}

fn parse_sink(s: &str) -> Result<SinkSpec, String> {
    SinkSpec::parse(s).map_err(|e| e.to_string())
}

/// The machine's host name, as the kernel has it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default()
}

impl ExportArgs {
    /// Flags that only one sink reads, given with another: an error naming them.
    fn check_flags(&self) -> anyhow::Result<()> {
        if !self.to.is_tls() && (self.ca.is_some() || self.cert.is_some() || self.insecure) {
            anyhow::bail!("--ca, --cert, --key and --insecure are for tls:// sinks only");
        }
        if !self.to.is_syslog() && (self.hostname.is_some() || self.msgid.is_some()) {
            anyhow::bail!("--hostname and --msgid are for syslog:// sinks only");
        }
        Ok(())
    }

    fn syslog_header(
        &self,
        queue_kind: Option<&d4_store::QueueKind>,
    ) -> anyhow::Result<SyslogHeader> {
        let hostname =
            d4_export::syslog::sanitize_hostname(self.hostname.as_deref().unwrap_or(&host_name()));
        let msgid = match (&self.msgid, queue_kind) {
            (Some(m), _) => m.clone(),
            (None, Some(d4_store::QueueKind::Type(t))) => format!("type-{t}"),
            (None, Some(d4_store::QueueKind::Ext(e))) => {
                let m = format!("ext-{e}");
                if m.len() <= 32 && m.bytes().all(|b| b.is_ascii_graphic()) {
                    m
                } else {
                    "-".into()
                }
            }
            (None, None) => "-".into(),
        };
        SyslogHeader::new(
            self.facility,
            self.severity,
            &hostname,
            &self.app_name,
            &std::process::id().to_string(),
            &msgid,
        )
        .context("--hostname, --app-name or --msgid")
    }
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    args.check_flags()?;
    let cfg = args.store.store_config()?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let store = d4_store::open(&cfg).await?;
        let queue = store
            .get_queue(args.queue)
            .await
            .with_context(|| format!("analyzer queue {}", args.queue))?
            .with_context(|| {
                format!(
                    "no analyzer queue {} in the {} store (`d4 queue list` shows them)",
                    args.queue,
                    store.backend()
                )
            })?;
        let syslog = if args.to.is_syslog() {
            Some(args.syslog_header(Some(&queue.config.kind))?)
        } else {
            None
        };
        let config = ExportConfig {
            sink: args.to.clone(),
            newline: args.newline,
            rate: args.rate,
            syslog,
            tls: TlsOptions {
                ca: args.ca.clone(),
                cert: args.cert.clone(),
                key: args.key.clone(),
                insecure: args.insecure,
            },
            max_datagram: args.max_datagram,
            max_backoff: Duration::from_secs(args.max_backoff),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let exporter = Exporter::new(config, stop.clone())?;
        let stats = exporter.stats();
        let mut signal = consume::Stop::new();
        let flag = stop.clone();
        tokio::spawn(async move {
            signal.wait().await;
            tracing::info!("stopping: the batch in hand is finished or left for the next run");
            flag.store(true, Ordering::Relaxed);
        });
        let d = consume::Drain {
            queue: args.queue,
            consumer: &args.consumer,
            pop_max: args.pop_max as usize,
            until_empty: args.until_empty,
            stop,
            what: "any",
        };
        let queues: Arc<dyn d4_store::Queues> = store;
        let res = consume::drain(exporter, queues, d, |exp: &mut Exporter, batch: &QueueBatch| {
            exp.send_batch(batch.entries.iter().map(|e| e.data.as_slice()))
        })
        .await;
        let summary = stats.to_json();
        match res {
            Ok(_) => tracing::info!(sink = %args.to, stats = %summary, "export done"),
            Err(e) if matches!(e.downcast_ref::<ExportError>(), Some(ExportError::Stopped)) => {
                tracing::info!(sink = %args.to, stats = %summary, "export stopped; the unacknowledged batch goes out with the next run")
            }
            Err(e) => return Err(e.context(format!("exporting to {}", args.to))),
        }
        if args.to != SinkSpec::Stdout {
            outln!("{summary}");
        }
        Ok(ExitCode::SUCCESS)
    })
}
