//! `d4 pssl ingest`: files, stdin, certificates, pcap and the `ja3-jl` analyzer queue into
//! the passive SSL store. Files: each input's format is told from its bytes (`--format
//! auto`, [`d4_pssl::sniff`]) or forced; one progress bar over the inputs; a JSON summary
//! (the ingester's counters and the elapsed seconds) on stdout at the end. The queue
//! consumer lives in [`queue`].

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use d4_pssl::sniff::{is_tar, sniff, Content};
use d4_pssl::{IngestError, IngestOptions, IngestStats, Ingester};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{PsslArgs, PsslCommand};

/// The queue consumer; `serve --queue` can run [`queue::consume_queue`] too.
pub mod queue;
pub(crate) mod stdin;

/// How many bytes are looked at to tell a file's format.
const SNIFF: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Told from each input's first bytes: pcap/pcapng magic, gzip (then what it holds),
    /// PEM or DER certificates, `.tar.gz`/`.tgz` names and folders (certificates); else
    /// JSON lines.
    Auto,
    /// `ja3-jl` JSON lines (gzip decompressed).
    Jsonl,
    /// DER/PEM certificate files, folders (`-r`) and `.tar.gz` archives.
    Certs,
    /// pcap/pcapng captures (plain or gzip), through the TLS sensor.
    Pcap,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Inputs: files (JSON lines, certificates, captures, archives) and certificate folders;
    /// `-` or nothing reads stdin.
    #[arg(value_name = "FILE|DIR|-")]
    pub inputs: Vec<PathBuf>,

    /// What the inputs hold.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,

    /// Same as `--format certs`.
    #[arg(long, conflicts_with_all = ["format", "pcap"])]
    pub certs: bool,

    /// Same as `--format pcap`.
    #[arg(long, conflicts_with = "format")]
    pub pcap: bool,

    /// Certificate folders: their subfolders too.
    #[arg(short = 'r', long)]
    pub recursive: bool,

    /// Most certificates, keys and sessions per write transaction. Each transaction is
    /// durable: a crash loses at most the batch being built.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,

    /// No progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Read the collector's `ja3-jl` analyzer queue (uuid) instead of files: entries are
    /// paths of JSON record files (or record lines). Runs until Ctrl-C (or --until-empty).
    #[arg(long, value_name = "QUEUE_UUID", conflicts_with = "inputs")]
    pub queue: Option<uuid::Uuid>,

    /// With --queue: stop when the queue is empty (a one-shot drain).
    #[arg(long, requires = "queue")]
    pub until_empty: bool,

    /// With --queue: most entries taken (and committed) at once.
    #[arg(long, default_value_t = 1_000, requires = "queue")]
    pub pop_max: usize,

    /// With --queue: the consumer name. Entries are taken at least once: a batch is
    /// acknowledged only once committed, and a run killed before that leaves it to the
    /// next run with the same name (at once) or to any consumer after 5 minutes.
    #[arg(long, default_value = "d4-pssl", requires = "queue", value_parser = crate::cmd::consume::check_name)]
    pub consumer: String,

    #[command(flatten)]
    pub key_checks: super::keychecks::KeyCheckArgs,
}

impl IngestArgs {
    fn format(&self) -> Format {
        if self.certs {
            Format::Certs
        } else if self.pcap {
            Format::Pcap
        } else {
            self.format
        }
    }

    fn options(&self) -> IngestOptions {
        IngestOptions {
            batch_items: self.batch.max(1),
            ..IngestOptions::default()
        }
    }
}

pub fn run(args: &PsslArgs) -> anyhow::Result<ExitCode> {
    let PsslCommand::Ingest(a) = &args.command else {
        anyhow::bail!("internal: not an ingest command");
    };
    let store = args.open_store()?;
    let ing = a.key_checks.apply(Ingester::new(store, a.options()))?;
    match a.queue {
        Some(q) => queue::run(args, a, ing, q),
        None => ingest_inputs(a, ing),
    }
}

/// The JSON summary printed at the end.
pub fn summary(stats: &IngestStats, started: Instant) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(stats)?;
    v["seconds"] = started.elapsed().as_secs_f64().into();
    Ok(v)
}

fn progress_bar(len: u64, enabled: bool) -> ProgressBar {
    if !enabled || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("[{bar:30}] {pos}/{len} files {msg}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

fn ingest_inputs(a: &IngestArgs, mut ing: Ingester) -> anyhow::Result<ExitCode> {
    let inputs = if a.inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        a.inputs.clone()
    };
    let started = Instant::now();
    let pb = progress_bar(inputs.len() as u64, !a.quiet);
    let mut failed = false;
    // Reading stdin (a feed that may never end): SIGINT/SIGTERM end it cleanly.
    let stop = Arc::new(AtomicBool::new(false));
    if inputs.iter().any(|p| p.as_os_str() == "-") {
        stdin::stop_on_signal(stop.clone());
    }
    for p in &inputs {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        pb.set_message(
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        match ingest_input(&mut ing, p, a.format(), a.recursive, &stop) {
            Ok(()) => {}
            Err(InputError::Store(e)) => {
                pb.finish_and_clear();
                // What was committed before stays; the summary says how far it went.
                outln!("{}", summary(ing.stats(), started)?);
                return Err(e.into());
            }
            Err(InputError::Input(e)) => {
                let e = format!("{e:#}");
                tracing::error!(input = %p.display(), error = %d4_proto::logsafe::escape(&e), "input not read");
                failed = true;
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    ing.flush()?;
    let s = ing.stats();
    tracing::info!(
        records_ok = s.records_ok,
        records_bad = s.records_bad,
        certificates_read = s.certificates_read,
        new_certificates = s.new_certificates,
        new_sessions = s.new_sessions,
        "ingest done"
    );
    outln!("{}", summary(s, started)?);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Why one input failed: the store (fatal) or the input (reported, the others go on).
enum InputError {
    Store(d4_pssl::PsslError),
    Input(anyhow::Error),
}

impl From<IngestError> for InputError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Store(e) => InputError::Store(e),
            IngestError::Io(e) => InputError::Input(e.into()),
        }
    }
}

impl From<d4_pssl::PsslError> for InputError {
    fn from(e: d4_pssl::PsslError) -> Self {
        InputError::Store(e)
    }
}

impl From<io::Error> for InputError {
    fn from(e: io::Error) -> Self {
        InputError::Input(e.into())
    }
}

fn is_archive_name(p: &Path) -> bool {
    let n = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    n.ends_with(".tar.gz") || n.ends_with(".tgz")
}

/// The first bytes of a buffered reader (up to [`SNIFF`], fewer at the end of input).
fn head<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    // `fill_buf` may return fewer bytes than the buffer holds: enough to sniff.
    Ok(r.fill_buf()?.iter().take(SNIFF).copied().collect())
}

fn ingest_input(
    ing: &mut Ingester,
    path: &Path,
    format: Format,
    recursive: bool,
    stop: &Arc<AtomicBool>,
) -> Result<(), InputError> {
    let stdin = path.as_os_str() == "-";
    let name = path.display().to_string();
    if !stdin {
        let meta = std::fs::metadata(path).map_err(|e| cannot_open(path, e))?;
        if meta.is_dir() || (is_archive_name(path) && format != Format::Pcap) {
            if !matches!(format, Format::Auto | Format::Certs) {
                return Err(InputError::Input(anyhow::anyhow!(
                    "{name} is a folder or an archive: only certificates are read from those"
                )));
            }
            return Ok(ing.certificate_path(path, recursive)?);
        }
    }
    let mut paced = None;
    let input: Box<dyn Read + Send> = if stdin {
        let (r, pace) = stdin::PacedStdin::new(stop.clone());
        paced = Some(pace);
        Box::new(r)
    } else {
        Box::new(File::open(path).map_err(|e| cannot_open(path, e))?)
    };
    let mut r = BufReader::with_capacity(1 << 16, input);
    let first = head(&mut r)?;
    let content = match format {
        Format::Auto => sniff(&first),
        Format::Pcap => Content::Capture,
        Format::Certs => Content::Certificates,
        Format::Jsonl if sniff(&first) == Content::Gzip => Content::Gzip,
        Format::Jsonl => Content::JsonLines,
    };
    match content {
        // gzip or not: the capture reader looks for itself
        Content::Capture => Ok(ing.capture(&name, r, &|| false)?),
        Content::Certificates if !stdin => Ok(ing.certificate_path(path, false)?),
        Content::Certificates => certificate_stream(ing, &name, r),
        Content::JsonLines => {
            // A slow feed: from now on a quiet second wakes the reader (batch age).
            if let Some(p) = &paced {
                p.store(true, Ordering::Relaxed);
            }
            Ok(ing.read(r)?)
        }
        Content::Gzip => {
            let mut gz = BufReader::with_capacity(1 << 16, flate2::read::MultiGzDecoder::new(r));
            let inner = head(&mut gz)?;
            let inner_content = match format {
                Format::Jsonl => Content::JsonLines,
                _ => sniff(&inner),
            };
            match inner_content {
                Content::Capture => Ok(ing.capture(&name, gz, &|| false)?),
                _ if is_tar(&inner) => Err(InputError::Input(anyhow::anyhow!(
                    "{name} is a tar archive: name it .tar.gz or .tgz to read its certificates"
                ))),
                Content::Certificates => certificate_stream(ing, &name, gz),
                _ => Ok(ing.read(gz)?),
            }
        }
    }
}

fn cannot_open(path: &Path, e: io::Error) -> InputError {
    InputError::Input(anyhow::Error::new(e).context(format!("cannot open {}", path.display())))
}

/// Certificates from a stream (stdin, a decompressed file), bounded as certificate files.
fn certificate_stream<R: Read>(ing: &mut Ingester, name: &str, r: R) -> Result<(), InputError> {
    let max = d4_pssl::certfile::MAX_FILE;
    let mut bytes = Vec::new();
    r.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("while reading {name}"))
        .map_err(InputError::Input)?;
    if bytes.len() as u64 > max {
        return Err(InputError::Input(anyhow::anyhow!(
            "{name}: more than {max} bytes of certificates"
        )));
    }
    Ok(ing.certificate_bytes(name, &bytes)?)
}
