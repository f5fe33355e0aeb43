//! `d4 keys batch-gcd`: the batch GCD of `d4-keys` over the RSA moduli of files, or of new
//! files against an existing corpus (`--incremental-against`). This module reads the files,
//! draws the progress bar and writes the findings (text table or JSON lines); the arithmetic
//! is `d4_keys::batchgcd`.
//!
//! Exit status, a bitmask like `d4 keys check`: 0 clean, 4 weak moduli found, 2 some input
//! lines were not moduli (counted, reported on stderr), 1 error (nothing reported).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use d4_keys::batchgcd::{
    self, CorpusProduct, How, Integer, Method, Options, Phase, Progress, Report, Source, Weak,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Args)]
pub struct BatchGcdArgs {
    /// Files of RSA moduli in hex, one per line, or of keys and certificates (PEM, DER,
    /// OpenSSH public keys: their RSA moduli) (`-`: stdin; none: stdin). With
    /// `--incremental-against`, these are the new moduli.
    pub files: Vec<PathBuf>,
    /// Check the moduli of FILE... against this existing corpus (hex moduli, one per line)
    /// and against each other, instead of a batch GCD of FILE... alone.
    #[arg(long, value_name = "CORPUS")]
    pub incremental_against: Option<PathBuf>,
    /// With --incremental-against: the corpus product is read from this file when it matches
    /// the corpus (size and fingerprint), else built and written there for the next run.
    #[arg(long, value_name = "FILE", requires = "incremental_against")]
    pub corpus_product: Option<PathBuf>,
    /// Memory the trees may use before levels are spilled to a temporary directory
    /// (bytes, or with a K, M, G or T suffix: `2G`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<u64>,
    /// Where spilled levels go (default: the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// Threads per tree level (default: the available cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Remainder tree: Bernstein's scaled tree (one multiplication per node, the faster) or
    /// the plain one (one division per node, a little less memory).
    #[arg(long, value_enum, default_value_t = MethodArg::Scaled)]
    pub method: MethodArg,
    /// One JSON object per weak modulus instead of the text table.
    #[arg(long)]
    pub json: bool,
    /// No progress bar (it is only drawn on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MethodArg {
    Plain,
    Scaled,
}

/// `2G` → 2·2³⁰ bytes.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix in {s:?} (K, M, G or T)")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?}"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

/// Where a modulus came from.
struct Origin {
    file: String,
    line: usize,
}

/// Moduli of all inputs, with their origins, and the lines that were not moduli.
#[derive(Default)]
struct Loaded {
    moduli: Vec<Integer>,
    origins: Vec<Origin>,
    bad: usize,
}

/// Bytes of one input → (position, modulus or why not). Hex moduli one per line (position:
/// the line); when no line is a hex modulus, keys and certificates (PEM with any number of
/// blocks, DER, OpenSSH public keys: `d4_keys::key`), whose RSA moduli are taken (position:
/// the RSA key's number in the input; other key types are skipped, unreadable ones counted).
fn moduli_from_bytes(bytes: &[u8]) -> Vec<(usize, Result<Integer, String>)> {
    let hex: Vec<_> = batchgcd::input::parse_hex_moduli(bytes)
        .into_iter()
        .map(|l| (l.line, l.modulus.map_err(|e| e.to_string())))
        .collect();
    if hex.is_empty() || hex.iter().any(|(_, m)| m.is_ok()) {
        return hex;
    }
    let (moduli, bad) = d4_keys::key::rsa_moduli(bytes);
    let mut out: Vec<_> = moduli
        .into_iter()
        .enumerate()
        .map(|(i, n)| (i + 1, Ok(n)))
        .collect();
    out.extend((0..bad).map(|_| (0, Err("not a readable key or certificate".to_string()))));
    out
}

fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
    } else {
        File::open(path)
            .and_then(|f| BufReader::new(f).read_to_end(&mut buf))
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(buf)
}

fn load(paths: &[PathBuf]) -> anyhow::Result<Loaded> {
    let mut out = Loaded::default();
    for path in paths {
        let name = if path.as_os_str() == "-" {
            "<stdin>".to_string()
        } else {
            path.display().to_string()
        };
        for (line, m) in moduli_from_bytes(&read_input(path)?) {
            match m {
                Ok(x) => {
                    out.moduli.push(x);
                    out.origins.push(Origin {
                        file: name.clone(),
                        line,
                    });
                }
                Err(why) => {
                    out.bad += 1;
                    if out.bad <= 10 {
                        eprintln!("d4: warning: {name}:{line}: {why}");
                    }
                }
            }
        }
    }
    if out.bad > 10 {
        eprintln!("d4: warning: {} lines were not moduli in all", out.bad);
    }
    Ok(out)
}

/// The progress bar, by tree level.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn on_level(&self, phase: Phase, done: usize, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(done as u64);
        self.0.set_message(match phase {
            Phase::Product => "product tree",
            Phase::Remainder => "remainder tree",
            Phase::Corpus => "corpus product",
        });
    }
}

fn progress_bar(enabled: bool) -> ProgressBar {
    if !enabled || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("batch gcd [{bar:30}] level {pos}/{len} {msg} {elapsed}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

pub fn run(args: BatchGcdArgs) -> anyhow::Result<ExitCode> {
    match run_inner(args) {
        Ok(code) => Ok(code),
        Err(e) if crate::out::is_broken_pipe(&e) => Err(e),
        Err(e) => {
            eprintln!("d4: error: {e:#}");
            Ok(ExitCode::from(1))
        }
    }
}

fn run_inner(args: BatchGcdArgs) -> anyhow::Result<ExitCode> {
    let opts = Options {
        threads: args
            .threads
            .unwrap_or_else(|| Options::default().threads)
            .max(1),
        memory_limit: args.memory_limit,
        spill_dir: args.spill_dir.clone(),
        method: match args.method {
            MethodArg::Plain => Method::Plain,
            MethodArg::Scaled => Method::Scaled,
        },
    };
    let files = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    let input = load(&files)?;
    let bar = Bar(progress_bar(!args.no_progress));
    let (report, corpus) = match &args.incremental_against {
        None => (batchgcd::run(&input.moduli, &opts, &bar)?, None),
        Some(path) => {
            let corpus = load(std::slice::from_ref(path))?;
            if corpus.bad > 0 {
                anyhow::bail!("{}: {} lines are not moduli", path.display(), corpus.bad);
            }
            let product =
                corpus_product(&corpus.moduli, args.corpus_product.as_deref(), &opts, &bar)?;
            let report =
                batchgcd::run_incremental(&input.moduli, &corpus.moduli, &product, &opts, &bar)?;
            (report, Some(corpus))
        }
    };
    bar.0.finish_and_clear();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for w in &report.weak {
        let line = if args.json {
            json_line(w, &input, corpus.as_ref())
        } else {
            text_line(w, &input, corpus.as_ref())
        };
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    summary(&report, input.bad);
    let mut code = 0u8;
    if !report.weak.is_empty() {
        code |= 4;
    }
    if input.bad > 0 {
        code |= 2;
    }
    Ok(ExitCode::from(code))
}

/// The corpus product: from `cache` when it matches the corpus, else built (and cached).
fn corpus_product(
    corpus: &[Integer],
    cache: Option<&Path>,
    opts: &Options,
    bar: &Bar,
) -> anyhow::Result<CorpusProduct> {
    if let Some(path) = cache {
        if let Ok(f) = File::open(path) {
            match CorpusProduct::read_from(BufReader::new(f)) {
                Ok(p) if p.check(corpus).is_ok() => return Ok(p),
                Ok(_) => eprintln!(
                    "d4: {} is the product of another corpus: rebuilding it",
                    path.display()
                ),
                Err(e) => eprintln!("d4: {}: {e}: rebuilding it", path.display()),
            }
        }
    }
    let product = CorpusProduct::build(corpus, opts, bar);
    if let Some(path) = cache {
        let f = File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
        product
            .write_to(BufWriter::new(f))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(product)
}

fn hex(x: &Integer) -> String {
    x.to_string_radix(16)
}

fn origin_of(p_source: Source, index: usize, input: &Loaded, corpus: Option<&Loaded>) -> String {
    let list = match p_source {
        Source::Input => Some(input),
        Source::Corpus => corpus,
    };
    match list.and_then(|l| l.origins.get(index)) {
        Some(o) => format!("{}:{}", o.file, o.line),
        None => format!("#{index}"),
    }
}

fn json_line(w: &Weak, input: &Loaded, corpus: Option<&Loaded>) -> String {
    let partners: Vec<serde_json::Value> = w
        .shared_with
        .iter()
        .map(|p| {
            serde_json::json!({
                "corpus": p.source == Source::Corpus,
                "index": p.index,
                "where": origin_of(p.source, p.index, input, corpus),
                "factor": p.factor.as_ref().map(hex),
            })
        })
        .collect();
    serde_json::json!({
        "index": w.index,
        "where": origin_of(Source::Input, w.index, input, corpus),
        "bits": input.moduli.get(w.index).map_or(0, |m| m.significant_bits()),
        "modulus": input.moduli.get(w.index).map(hex),
        "how": w.how.as_str(),
        "factors": w.factors.iter().map(hex).collect::<Vec<_>>(),
        "shared_with": partners,
    })
    .to_string()
}

/// `0x` and the first 16 hex digits, then the size.
fn short(x: &Integer) -> String {
    let h = hex(x);
    if h.len() > 16 {
        format!("0x{}…({} bits)", &h[..16], x.significant_bits())
    } else {
        format!("0x{h}")
    }
}

fn text_line(w: &Weak, input: &Loaded, corpus: Option<&Loaded>) -> String {
    let mut s = format!(
        "{}  {}  rsa[{}]",
        origin_of(Source::Input, w.index, input, corpus),
        w.how.as_str(),
        input
            .moduli
            .get(w.index)
            .map_or(0, |m| m.significant_bits()),
    );
    if !w.factors.is_empty() {
        let fs: Vec<String> = w.factors.iter().map(short).collect();
        let _ = write!(s, "  factors {}", fs.join(" × "));
    }
    let partners: Vec<String> = w
        .shared_with
        .iter()
        .map(|p| {
            let at = origin_of(p.source, p.index, input, corpus);
            match &p.factor {
                Some(f) => format!("{at} (prime {})", short(f)),
                None => format!("{at} (same modulus)"),
            }
        })
        .collect();
    let _ = write!(s, "  shared with {}", partners.join(", "));
    s
}

fn summary(report: &Report, bad: usize) {
    let count = |h: How| report.weak.iter().filter(|w| w.how == h).count();
    let s = &report.stats;
    eprintln!(
        "d4: {} moduli ({} distinct), {} weak: {} shared_prime, {} both_primes_shared, {} duplicate{}; \
         {:.1} s (product {:.1} s, remainders {:.1} s), {} levels spilled",
        s.moduli,
        s.distinct,
        report.weak.len(),
        count(How::SharedPrime),
        count(How::BothPrimesShared),
        count(How::Duplicate),
        if bad > 0 {
            format!("; {bad} lines not moduli")
        } else {
            String::new()
        },
        (s.product + s.remainder + s.resolve).as_secs_f64(),
        s.product.as_secs_f64(),
        s.remainder.as_secs_f64(),
        s.spilled_levels,
    );
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("2X").is_err());
        assert!(parse_size("G").is_err());
    }
}
