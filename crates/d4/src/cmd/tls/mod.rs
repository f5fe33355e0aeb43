//! `d4 tls`: the TLS fingerprinting sensor. Reads pcap/pcapng files (plain or gzip, `-` for
//! stdin) or a live interface, reassembles TCP, decrypts QUIC Initials, and prints one JSON
//! record per TLS session (the reference sensor-d4-tls-fingerprinting's format plus JA4,
//! SNI, ALPN...), optionally streaming them to a collector as `ja3-jl`. The analysis is the
//! sans-IO `d4_tls::sensor`; this module does the inputs (`input`), the outputs (`output`)
//! and the counters.

mod input;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use output::{Outputs, Sink};

#[derive(Debug, Args)]
#[command(
    after_help = "Each TLS session (TCP, IPv4 and IPv6; QUIC v1 Initials) becomes one JSON line with \
the reference's fields (ServerIP, ServerPort, ClientIP, ClientPort, TLSH, Timestamp, JA3, \
JA3Digest, JA3S, JA3SDigest, Certificates) and ours (JA4, JA4_r, SNI, ALPN, Version, Transport, \
Complete, per certificate CertSHA256). The client is whoever sent the ClientHello. A record is \
written when the server's certificates are complete (or known not to come in clear: TLS 1.3, \
resumption), else when the flow ends (`\"Complete\": false`).\n\n\
Examples:\n  \
    d4 tls -r capture.pcap.gz                        # JSON lines on stdout\n  \
    d4 tls -r capture.pcapng -w certs/ -j records/   # also every certificate (DER) and record as files\n  \
    tcpdump -w - -U port 443 | d4 tls -r -           # from stdin\n  \
    d4 tls -i eth0 tcp port 443 or udp port 443      # live (BPF filter as trailing words)\n  \
    d4 tls -i eth0 --d4 /etc/d4/tls-sensor           # stream to a collector as ja3-jl\n  \
    d4 tls -r x.pcap --destination d4.example.org:4443 --key-file key --ca ca.pem\n\n\
Exit status: 0 when every input was read; 1 when a capture is malformed (what came before is \
reported) or records could not be delivered; 2 on bad arguments or an unreadable input."
)]
pub struct TlsArgs {
    /// Capture to read: pcap or pcapng, plain or gzip (by content); `-` reads stdin. Repeat
    /// for several files, read in order as one capture.
    #[arg(
        short = 'r',
        long = "read",
        value_name = "FILE",
        required_unless_present = "interface"
    )]
    pub read: Vec<PathBuf>,

    /// Capture live on this interface (promiscuous, snaplen 65535). Needs a build with the
    /// `live-capture` feature (libpcap) and the CAP_NET_RAW capability (or root).
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        conflicts_with = "read"
    )]
    pub interface: Option<String>,

    /// BPF filter (tcpdump syntax) as trailing words, e.g. `tcp port 443`; applies to files
    /// too. Needs the `live-capture` feature (libpcap compiles the filter).
    #[arg(value_name = "FILTER", trailing_var_arg = true)]
    pub filter: Vec<String>,

    /// Write every new certificate once as DIR/<sha1>.crt (DER). Created if missing.
    #[arg(short = 'w', long = "write-certs", value_name = "DIR")]
    pub certs_dir: Option<PathBuf>,

    /// Write each record as its own file DIR/<sha256 of the record>.json instead of stdout.
    /// Created if missing.
    #[arg(short = 'j', long = "json-dir", value_name = "DIR")]
    pub json_dir: Option<PathBuf>,

    /// Live capture: the kernel's ring buffer for the interface, in bytes. Packets that
    /// arrive while it is full are lost (libpcap counts them: see the counters).
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    pub buffer_size: usize,

    /// Log the counters every this many seconds (0: only at the end).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub stats_secs: u64,

    /// Do not look at UDP for QUIC Initial packets.
    #[arg(long)]
    pub no_quic: bool,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub d4: D4Args,
}

/// Memory bounds (every drop they cause is counted in the statistics).
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Most TCP flows tracked at once.
    #[arg(long, value_name = "N", default_value_t = 262_144)]
    pub max_flows: usize,
    /// Most out-of-order bytes buffered per TCP flow.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 10)]
    pub max_flow_buffer: usize,
    /// Most out-of-order bytes buffered over all flows.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    pub max_buffer: usize,
    /// A flow with no packet for this many seconds of capture time ends (partial record).
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub idle_timeout: u64,
    /// Most QUIC connections whose Initial packets are being reassembled.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_quic: usize,
    /// Most bytes held by all TLS flows for handshake messages cut across segments; a flow
    /// that would pass it is given up (reported partial, counted).
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    pub max_tls_buffer: usize,
}

/// Sending the records to a D4 collector (as `d4 client` would: type 2 meta header
/// `{"type":"ja3-jl"}`, then type 254, with spool and reconnects).
#[derive(Debug, Args)]
pub struct D4Args {
    /// A `d4 client` configuration directory (uuid, key, destination, rootCA.crt...); its
    /// `type`, `source` and `metaheader.json` are ignored (`ja3-jl` is sent).
    #[arg(long = "d4", value_name = "CONFDIR")]
    pub d4: Option<PathBuf>,
    /// Collector `host:port` (wins over the config dir).
    #[arg(long)]
    pub destination: Option<String>,
    /// Sensor uuid (generated and saved in the config dir when absent).
    #[arg(long)]
    pub uuid: Option<String>,
    /// HMAC key shared with the collector.
    #[arg(long, conflicts_with = "key_file")]
    pub key: Option<String>,
    /// Read the HMAC key from a file.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// CA certificate(s) (PEM) to verify the collector.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Do not verify the collector's certificate.
    #[arg(long)]
    pub insecure: bool,
    /// Plain TCP instead of TLS.
    #[arg(long)]
    pub no_tls: bool,
    /// Spool folder (default: CONFDIR/spool, else $XDG_STATE_HOME/d4/spool/<uuid>).
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Spool bound in bytes. When full, reading a capture file pauses until the collector
    /// takes records again; a live capture holds up to --live-buffer bytes of records, then
    /// counts the records it cannot queue as dropped.
    #[arg(long, value_name = "BYTES", default_value_t = d4_client::config::DEFAULT_SPOOL_MAX)]
    pub spool_max: u64,
    /// Live capture: bytes of records held while the client cannot take them (its queue and
    /// spool full); past it records are dropped and counted, never waited for.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub live_buffer: usize,
    /// At the end, how long to keep trying to deliver before leaving the rest in the spool.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub drain_timeout: u64,
}

impl D4Args {
    fn wanted(&self) -> bool {
        self.d4.is_some() || self.destination.is_some()
    }
}

pub fn run(args: TlsArgs) -> anyhow::Result<ExitCode> {
    let filter = input::Filter::compile(&args.filter)?;
    if let Some(dir) = &args.certs_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if let Some(dir) = &args.json_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if args.interface.is_some() {
        input::check_live_supported()?;
    }
    if args.d4.wanted() {
        return run_d4(args, filter);
    }
    // stdout: SIGINT/SIGTERM stop the capture, flush the partial sessions and print counters
    let stop = Arc::new(AtomicBool::new(false));
    spawn_signal_watch(stop.clone());
    let mut outputs = Outputs::new(&args, Sink::Stdout(std::io::stdout().lock()));
    let res = input::run_capture(&args, filter, &mut outputs, stop);
    finish(res, outputs)
}

/// The capture loop inside the client's source thread: records go to the collector.
fn run_d4(args: TlsArgs, filter: input::Filter) -> anyhow::Result<ExitCode> {
    let d = &args.d4;
    let conf = match &d.d4 {
        Some(dir) => d4_client::ConfigDir::load(dir)?,
        None => d4_client::ConfigDir::default(),
    };
    let o = d4_client::Overrides {
        uuid: d.uuid.clone(),
        key: d.key.clone(),
        key_file: d.key_file.clone(),
        d4_type: Some("2".into()),
        // our records are the source: the config dir's own source must not be checked
        source: Some("stdin".into()),
        destination: d.destination.clone(),
        metaheader_json: Some(br#"{"type":"ja3-jl"}"#.to_vec()),
        ca: d.ca.clone(),
        insecure: d.insecure,
        no_tls: d.no_tls,
        spool_dir: d.spool_dir.clone(),
        spool_max: Some(d.spool_max),
        ..Default::default()
    };
    let settings = d4_client::Settings::resolve(&conf, &o)?;
    if matches!(settings.destination, d4_client::Destination::Stdout) {
        anyhow::bail!("--d4/--destination: no collector destination (host:port) configured");
    }
    let drain = Duration::from_secs(d.drain_timeout);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let live = args.interface.is_some();
    // the client stops on the signal too; this flag also ends a read waiting on stdin
    let stop = Arc::new(AtomicBool::new(false));
    spawn_signal_watch(stop.clone());
    let res = rt.block_on(d4_client::run_with_source(
        settings,
        drain,
        super::client::shutdown_signal(),
        move |em| {
            let mut outputs = Outputs::new(
                &args,
                Sink::D4 {
                    em: Box::new(em),
                    live,
                },
            );
            // the client's shutdown also reaches the capture through `Outputs::should_stop`
            let res = input::run_capture(&args, filter, &mut outputs, stop);
            let _ = done_tx.send(finish(res, outputs));
        },
    ));
    rt.shutdown_background();
    let capture = done_rx
        .recv()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the capture thread ended without a result")));
    match res {
        Ok(stats) => {
            tracing::info!(
                frames = stats.frames_in,
                bytes_sent = stats.bytes_sent,
                spooled_at_exit = stats.spooled_at_exit,
                "records handed to the collector"
            );
            capture
        }
        Err(d4_client::RunError::Config(e)) => Err(e.into()),
        Err(e) => {
            eprintln!("d4: error: {e}");
            let _ = capture;
            Ok(ExitCode::from(1))
        }
    }
}

/// Ends a run: flushes the outputs, logs the counters, maps the result to an exit status.
fn finish(res: anyhow::Result<bool>, outputs: Outputs) -> anyhow::Result<ExitCode> {
    let all_read = match res {
        Ok(ok) => ok,
        Err(e) if super::super::out::is_broken_pipe(&e) => true,
        Err(e) => {
            // still flush what was found
            let _ = outputs.close();
            return Err(e);
        }
    };
    let delivered = outputs.close()?;
    Ok(if all_read && delivered {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Sets `stop` on SIGINT/SIGTERM (a small thread with its own runtime).
fn spawn_signal_watch(stop: Arc<AtomicBool>) {
    let _ = std::thread::Builder::new()
        .name("d4-tls-signals".into())
        .spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(super::client::shutdown_signal());
                tracing::info!("signal: stopping the capture, flushing the open sessions");
                stop.store(true, Ordering::Relaxed);
            }
        });
}
