//! `d4 pibs`: the backscatter analyzer (passive identification of backscatter) over pcap /
//! pcapng files, plain or gzip. The detection lives in `d4-pibs`; this module does the
//! files, the outputs, the progress bar and the hidden `--bench` measurement. Subcommands:
//! `d4 pibs ingest` fills the backscatter store ([`ingest`]).

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use d4_pibs::{
    for_each_record, Analyzer, CaptureError, DetectConfig, PcapWriter, Summary, SummaryConfig,
    CSV_HEADER,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub mod ingest;
pub mod serve;

/// `d4 pibs <command>`: the backscatter store's commands.
#[derive(Debug, clap::Subcommand)]
pub enum PibsCommand {
    /// Fill the backscatter store (`<data-dir>/pibs.redb`) from captures or the type-1 queue:
    /// per victim and 5-minute bucket, and the attacks built from the buckets.
    Ingest(ingest::IngestArgs),
    /// Serve the backscatter store over HTTP (JSON, default 127.0.0.1:8600): attacks,
    /// victims' timelines, daily summaries, pivots by AS, prefix and passive DNS.
    Serve(Box<serve::ServeArgs>),
}

#[derive(Debug, Args)]
#[command(
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true,
    after_help = "Backscatter is what a darknet or honeypot receives from victims of \
spoofed-source floods: SYN/ACK, RST and similar TCP replies, and ICMP errors, sent to addresses \
that never initiated anything. A source that sent a pure SYN is an initiator; other TCP packets \
from non-initiators are backscatter unless they answer a SYN that was seen; ICMP \
destination-unreachable / time-exceeded errors about packets never sent from here count too.\n\n\
Examples:\n  \
    d4 pibs -r darknet.pcap.gz -b                 # the reference's CSV: epoch,src_ip,tcp_flags,src_port\n  \
    d4 pibs -r darknet.pcapng -w backscatter.pcap # keep the backscatter packets\n  \
    d4 pibs -r a.cap.gz -r b.cap.gz --json --threshold 100   # victims over 100 packets / 5 min\n\n\
Exit status: 0 when every file was read; 1 when a file is malformed (what came before it is \
reported); 2 when a file cannot be opened or the arguments are wrong."
)]
pub struct PibsArgs {
    #[command(subcommand)]
    pub command: Option<PibsCommand>,

    /// Capture to read: pcap or pcapng, plain or gzip (detected by content). Repeat for
    /// several files; detection state carries over from one file to the next.
    #[arg(
        short = 'r',
        long = "read",
        value_name = "FILE",
        required_unless_present_any = ["bench", "queue"]
    )]
    pub read: Vec<PathBuf>,

    /// Long-running analyzer: take pcap file paths from this type-1 analyzer queue (its
    /// UUID) of the server's store, until SIGINT/SIGTERM. The `-b` CSV is streamed;
    /// `--json` prints the summaries of each file after it; `-w` collects every file.
    #[arg(long, value_name = "QUEUE_UUID", conflicts_with = "read")]
    pub queue: Option<String>,

    /// With `--queue`: where the server's store is (data dir, or the Redis URLs of
    /// `d4 server --redis … --redis-queue …`, or the server's d4.toml).
    #[command(flatten)]
    pub store: super::store_args::StoreArgs,

    /// With `--queue`: stop when the queue is empty instead of waiting for more paths.
    #[arg(long, requires = "queue")]
    pub exit_when_empty: bool,

    /// With `--queue`: the consumer name. A path is acknowledged once its file was
    /// analyzed; a run killed before that leaves it to the next run with the same name
    /// (at once) or to any consumer after 5 minutes.
    #[arg(long, default_value = "d4-pibs", requires = "queue", value_parser = super::consume::check_name)]
    pub consumer: String,

    /// Print each TCP backscatter packet as the reference's CSV `epoch,src_ip,tcp_flags,src_port`
    /// (after a `#timestamp, ...` comment line). The default output when neither `-w` nor
    /// `--json` is given.
    #[arg(short = 'b', long = "backscatter")]
    pub backscatter: bool,

    /// Write the backscatter packets (TCP and ICMP) to this pcap file.
    #[arg(short = 'w', long = "write", value_name = "OUT.pcap")]
    pub write: Option<PathBuf>,

    /// Print per-victim summaries (one JSON object per line, most packets first) instead of
    /// the CSV: victim, ports, first/last seen, packets, flags histogram, time buckets.
    #[arg(long, conflicts_with = "backscatter")]
    pub json: bool,

    /// Width of a `--json` time bucket, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub bucket: u64,

    /// `--json` reports a victim's bucket only when it holds at least this many packets.
    #[arg(long, default_value_t = 1, value_name = "PACKETS")]
    pub threshold: u64,

    /// How long an initiator (SYN sender) or a seen flow is remembered, in seconds of
    /// capture time.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub window: u64,

    /// Most initiators (and UDP senders) remembered; beyond it the oldest are evicted (counted).
    #[arg(long, default_value_t = 2_000_000, value_name = "N")]
    pub max_initiators: usize,

    /// Most SYN flows remembered (16 bytes each); beyond it the oldest are evicted (counted).
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_flows: usize,

    /// Most victims tracked by `--json`; more are counted and reported in the log.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub max_victims: usize,

    /// No progress bar (it is only drawn when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,

    /// Benchmark: generate a capture of this many packets in a temporary directory, time a
    /// plain record-parsing pass and the analysis pass, and print packets/s and peak memory.
    #[arg(long, value_name = "PACKETS", hide = true)]
    pub bench: Option<u64>,
}

/// Where the results go.
struct Outputs {
    csv: Option<BufWriter<io::Stdout>>,
    pcap: Option<PcapWriter<BufWriter<File>>>,
    pcap_path: Option<PathBuf>,
    link_mismatch: u64,
    summary: Option<Summary>,
}

impl Outputs {
    fn new(args: &PibsArgs) -> anyhow::Result<Outputs> {
        let csv_on = args.backscatter || (!args.json && args.write.is_none());
        let mut csv = csv_on.then(|| BufWriter::with_capacity(1 << 16, io::stdout()));
        if let Some(out) = csv.as_mut() {
            writeln!(out, "{CSV_HEADER}")?;
        }
        let summary = args.json.then(|| {
            Summary::new(SummaryConfig {
                bucket_secs: args.bucket,
                threshold: args.threshold,
                max_victims: args.max_victims,
            })
        });
        Ok(Outputs {
            csv,
            pcap: None,
            pcap_path: args.write.clone(),
            link_mismatch: 0,
            summary,
        })
    }

    fn emit(
        &mut self,
        rec: &d4_pibs::CaptureRecord<'_>,
        b: &d4_pibs::Backscatter,
    ) -> io::Result<()> {
        if let Some(out) = self.csv.as_mut() {
            d4_pibs::write_csv(out, rec.ts_sec, b)?;
        }
        if let Some(s) = self.summary.as_mut() {
            s.add(rec.ts_sec, b);
        }
        if let Some(path) = &self.pcap_path {
            if self.pcap.is_none() {
                // The output takes the link type of the first backscatter packet.
                let f = File::create(path)?;
                self.pcap = Some(PcapWriter::new(BufWriter::new(f), rec.linktype)?);
            }
            if let Some(w) = self.pcap.as_mut() {
                if w.linktype() == rec.linktype {
                    w.write(rec.ts_sec, rec.ts_nsec, rec.origlen, rec.data)?;
                } else {
                    self.link_mismatch += 1;
                }
            }
        }
        Ok(())
    }

    /// Queue mode, after each file: print and reset the per-victim summaries, flush.
    fn finish_file(&mut self) -> anyhow::Result<()> {
        self.print_summary()?;
        if let Some(s) = self.summary.as_mut() {
            s.clear();
        }
        if let Some(out) = self.csv.as_mut() {
            out.flush()?;
        }
        if let Some(w) = self.pcap.as_mut() {
            w.flush()?;
        }
        Ok(())
    }

    fn print_summary(&self) -> anyhow::Result<()> {
        if let Some(s) = self.summary.as_ref() {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            for v in s.report() {
                serde_json::to_writer(&mut out, &v)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            if s.dropped_victims() > 0 {
                tracing::warn!(
                    dropped = s.dropped_victims(),
                    "more victims than --max-victims: packets of the extra victims were not aggregated"
                );
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.print_summary()?;
        if let Some(out) = self.csv.as_mut() {
            out.flush()?;
        }
        if let Some(path) = &self.pcap_path {
            match self.pcap.as_mut() {
                Some(w) => w.flush()?,
                None => {
                    // No backscatter at all: still leave a valid (empty, Ethernet) pcap.
                    let f = File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    PcapWriter::new(BufWriter::new(f), 1)?.flush()?;
                }
            }
            if self.link_mismatch > 0 {
                tracing::warn!(
                    packets = self.link_mismatch,
                    "backscatter packets of another link type than the first were not written to the pcap"
                );
            }
        }
        Ok(())
    }
}

fn progress_bar(path: &Path, len: u64, enabled: bool) -> ProgressBar {
    if !enabled || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_prefix(
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    pb
}

/// Analyses one file into `outputs`. `Ok(false)` when the file was malformed part-way.
fn analyze_file(
    path: &Path,
    analyzer: &mut Analyzer,
    outputs: &mut Outputs,
    progress: bool,
) -> anyhow::Result<bool> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let pb = progress_bar(path, len, progress);
    let started = Instant::now();
    let frames_before = analyzer.frames;
    let mut n: u64 = 0;
    let result = for_each_record(pb.wrap_read(file), |rec| {
        n += 1;
        if n & 0xFFFF == 0 {
            pb.set_message(format!("{n} packets"));
        }
        match analyzer.process(rec) {
            Some(b) => outputs.emit(rec, &b),
            None => Ok(()),
        }
    });
    pb.finish_and_clear();
    let frames = analyzer.frames - frames_before;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    match result {
        Ok(sum) => {
            if sum.truncated_tail {
                tracing::warn!(file = %path.display(), "capture ends inside a record (cut short); the records before were analysed");
            }
            tracing::info!(
                file = %path.display(),
                packets = frames,
                packets_per_sec = (frames as f64 / secs) as u64,
                "file analysed"
            );
            Ok(true)
        }
        Err(CaptureError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => Err(e.into()),
        Err(CaptureError::Io(e)) => {
            Err(anyhow::Error::new(e).context(format!("while analysing {}", path.display())))
        }
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "malformed capture; the records before the error were analysed");
            Ok(false)
        }
    }
}

fn log_stats(analyzer: &Analyzer) {
    let s = analyzer.stats();
    let (initiators, flows) = analyzer.state_len();
    let mut skipped: Vec<String> = analyzer
        .skipped
        .iter()
        .map(|(k, v)| format!("{k:?}={v}"))
        .collect();
    skipped.sort();
    tracing::info!(
        frames = analyzer.frames,
        tcp = s.tcp,
        syn = s.syn,
        icmp_errors = s.icmp_errors,
        backscatter_tcp = s.backscatter_tcp,
        backscatter_icmp = s.backscatter_icmp,
        replies_to_seen_syn = s.replies,
        initiators,
        flows,
        initiators_evicted = s.initiators_evicted,
        flows_evicted = s.flows_evicted,
        skipped = %skipped.join(" "),
        "pibs done"
    );
}

fn detect_config(args: &PibsArgs) -> DetectConfig {
    DetectConfig {
        window_secs: args.window,
        max_initiators: args.max_initiators,
        max_flows: args.max_flows,
    }
}

pub fn run(args: PibsArgs) -> anyhow::Result<ExitCode> {
    match run_inner(args) {
        // A closed pipe (`d4 pibs -r x -b | head`) ends the command quietly.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            }) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        other => other,
    }
}

fn run_inner(mut args: PibsArgs) -> anyhow::Result<ExitCode> {
    if let Some(cmd) = args.command.take() {
        return match cmd {
            PibsCommand::Ingest(a) => ingest::run(&args.store, a),
            PibsCommand::Serve(a) => serve::main(&args.store, &a),
        };
    }
    if let Some(n) = args.bench {
        return bench(n);
    }
    if let Some(q) = args.queue.clone() {
        return run_queue(&args, &q);
    }
    let mut analyzer = Analyzer::new(detect_config(&args));
    let mut outputs = Outputs::new(&args)?;
    let mut ok = true;
    for path in &args.read {
        ok &= analyze_file(path, &mut analyzer, &mut outputs, !args.no_progress)?;
    }
    outputs.finish()?;
    log_stats(&analyzer);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--queue`: pop file paths from a type-1 analyzer queue and analyse each, until a signal
/// (or an empty queue with `--exit-when-empty`). A path that cannot be read is logged and
/// skipped: the analyzer keeps running.
fn run_queue(args: &PibsArgs, queue: &str) -> anyhow::Result<ExitCode> {
    use d4_store::{QueueKind, Queues};
    let uuid = uuid::Uuid::parse_str(queue.trim())
        .with_context(|| format!("--queue {queue:?} is not a queue UUID"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut analyzer = Analyzer::new(detect_config(args));
    let mut outputs = Outputs::new(args)?;
    let config = args.store.store_config()?;
    let result: anyhow::Result<u64> = rt.block_on(async {
        let mut stop = super::consume::Stop::new();
        // the analyzer takes the store's queue role only
        let store: std::sync::Arc<dyn Queues> = d4_store::open(&config).await?;
        let q = store
            .get_queue(uuid)
            .await?
            .with_context(|| format!("no analyzer queue {uuid} in the store"))?;
        if q.config.kind != QueueKind::Type(1) {
            anyhow::bail!(
                "queue {uuid} takes {} data, not pcap file paths (type 1)",
                q.config.kind
            );
        }
        let backend = store.backend();
        let mut c = super::consume::consumer(store, uuid, &args.consumer, 1)?;
        tracing::info!(queue = %uuid, backend, consumer = %args.consumer, "waiting for pcap file paths");
        let mut files = 0u64;
        // (cancel-safe: a signal while waiting loses no path; one during a file's
        // analysis stops after it)
        while let Some(batch) =
            super::consume::next(&mut c, args.exit_when_empty, stop.wait()).await?
        {
            for e in &batch.entries {
                let path = PathBuf::from(e.text().trim_end_matches(['\r', '\n']).to_owned());
                tracing::info!(file = %path.display(), "from queue");
                files += 1;
                match analyze_file(&path, &mut analyzer, &mut outputs, false) {
                    Ok(_) => {}
                    Err(err) => {
                        tracing::error!(file = %path.display(), error = %format!("{err:#}"), "skipped")
                    }
                }
                outputs.finish_file()?;
            }
            c.ack(batch).await?;
            if stop.received() {
                break;
            }
        }
        Ok(files)
    });
    rt.shutdown_timeout(Duration::from_millis(200));
    let files = result?;
    outputs.finish()?;
    tracing::info!(files, "queue analyzer stopped");
    log_stats(&analyzer);
    Ok(ExitCode::SUCCESS)
}

/// Peak resident memory of this process (VmHWM), in KiB, when /proc tells.
fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system) used by this thread so far, from /proc (10 ms resolution):
/// on a loaded machine it measures our work, where wall time also counts waiting.
fn thread_cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Resets the peak resident memory counter (Linux ≥ 4.0), so each pass has its own peak.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn bench(n: u64) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let path = dir.path().join("bench.pcap");
    let t = Instant::now();
    {
        let f = File::create(&path)?;
        d4_pibs::synth::write_bench_pcap(BufWriter::with_capacity(1 << 20, f), n, 42)?;
    }
    let size = std::fs::metadata(&path)?.len();
    outln!(
        "generated {n} packets ({:.1} MB) in {:.1} s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // Plain pass: only parse the pcap records (and touch each frame's bytes).
    let reset_ok = reset_peak_rss();
    let base_rss = peak_rss_kib();
    let cpu0 = thread_cpu_secs();
    let t = Instant::now();
    let mut bytes = 0u64;
    let mut check = 0u64;
    let sum = for_each_record(File::open(&path)?, |rec| {
        bytes += rec.data.len() as u64;
        check = check.wrapping_add(u64::from(rec.data.last().copied().unwrap_or(0)));
        Ok(())
    })?;
    let plain = t.elapsed();
    let cpu1 = thread_cpu_secs();
    let plain_rss = peak_rss_kib();

    // Analysis pass: parse + classify + detect + CSV formatting (into a sink).
    reset_peak_rss();
    let t = Instant::now();
    let mut analyzer = Analyzer::new(DetectConfig::default());
    let mut out = BufWriter::with_capacity(1 << 16, io::sink());
    let mut found = 0u64;
    for_each_record(File::open(&path)?, |rec| {
        if let Some(b) = analyzer.process(rec) {
            found += 1;
            d4_pibs::write_csv(&mut out, rec.ts_sec, &b)?;
        }
        Ok(())
    })?;
    out.flush()?;
    let full = t.elapsed();
    let cpu2 = thread_cpu_secs();
    let full_rss = peak_rss_kib();

    let rate = |d: Duration| sum.records as f64 / d.as_secs_f64().max(1e-9);
    outln!(
        "plain pass (pcap records only): {} records, {:.2} s, {:.2} M packets/s, {:.0} MB/s (checksum {check})",
        sum.records,
        plain.as_secs_f64(),
        rate(plain) / 1e6,
        bytes as f64 / 1e6 / plain.as_secs_f64().max(1e-9)
    );
    outln!(
        "analysis pass (pibs): {} backscatter, {:.2} s, {:.2} M packets/s",
        found,
        full.as_secs_f64(),
        rate(full) / 1e6
    );
    outln!(
        "speed ratio analysis/plain: {:.2} (time ratio {:.2})",
        rate(full) / rate(plain),
        full.as_secs_f64() / plain.as_secs_f64().max(1e-9)
    );
    if let (Some(c0), Some(c1), Some(c2)) = (cpu0, cpu1, cpu2) {
        let (pc, ac) = ((c1 - c0).max(0.01), (c2 - c1).max(0.01));
        outln!(
            "CPU time (this thread): plain {pc:.2} s = {:.2} M packets/s per CPU-second, analysis {ac:.2} s = {:.2} M packets/s per CPU-second, ratio {:.2}",
            sum.records as f64 / pc / 1e6,
            sum.records as f64 / ac / 1e6,
            pc / ac
        );
    }
    let s = analyzer.stats();
    let (initiators, flows) = analyzer.state_len();
    outln!(
        "state at end: {initiators} initiators, {flows} flows; backscatter tcp {} icmp {}",
        s.backscatter_tcp,
        s.backscatter_icmp
    );
    match (plain_rss, full_rss, reset_ok) {
        (Some(p), Some(f), true) => outln!(
            "peak RSS: plain pass {:.1} MiB, analysis pass {:.1} MiB, ratio {:.2} (process baseline before passes {:.1} MiB)",
            p as f64 / 1024.0,
            f as f64 / 1024.0,
            f as f64 / (p as f64).max(1.0),
            base_rss.unwrap_or(0) as f64 / 1024.0
        ),
        (Some(p), Some(f), false) => outln!(
            "peak RSS (cumulative, /proc/self/clear_refs unavailable): after plain {:.1} MiB, after analysis {:.1} MiB",
            p as f64 / 1024.0,
            f as f64 / 1024.0
        ),
        _ => outln!("peak RSS: unavailable (no /proc/self/status)"),
    }
    Ok(ExitCode::SUCCESS)
}
