//! `d4 keys check`: badkeys' per-key checks on key and certificate files, hex moduli
//! (`-m`) and base64 certificate lines (`--crt-lines`), printed as badkeys prints them
//! (text or `--json`), with badkeys' exit status bits.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use d4_keys::batchgcd::Integer;
use d4_keys::check::{
    bad_prime_residues, check_key, check_key_with, check_modulus_with, Applies, Check, Checks,
};
use d4_keys::key::{parse_crt_line, parse_hex_modulus, parse_keys, Key, KeyData, Parsed};
use d4_keys::par::par_map;
use d4_keys::report::Report;

/// Exit status bit: an error (unreadable file, bad option, failed blocklist read).
const EXIT_ERROR: u8 = 1;
/// Largest key or certificate file read (badkeys reads 2 MB; PEM bundles can be larger).
const MAX_FILE: u64 = 64 << 20;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    d4 keys check server.crt id_rsa.pub\n  \
    d4 keys check -w --json --blocklist ~/.cache/badkeys/blocklist.dat --bad-primes primes/ *.pem\n  \
    d4 keys check -m moduli.txt\n\n\
Exit status (bits, as badkeys): 0 all keys clean; 1 an error; 2 an input could not be\n\
scanned (unparseable, unsupported, no key found); 4 a vulnerable key was found.")]
pub struct CheckArgs {
    /// Key or certificate files (PEM, several blocks allowed; DER; OpenSSH public keys);
    /// `-` for stdin.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// A file of RSA moduli in hex, one per line (`Modulus=` prefix allowed); e = 65537.
    #[arg(short = 'm', long = "moduli", value_name = "FILE")]
    pub moduli: Vec<PathBuf>,

    /// A file of base64 DER certificates, one per line (text after `,`, `;` or a space is
    /// a description printed with the result).
    #[arg(long = "crt-lines", value_name = "FILE")]
    pub crt_lines: Vec<PathBuf>,

    /// Also run the warnings (`rsawarnings`, `rsabias`).
    #[arg(short = 'w', long)]
    pub warnings: bool,

    /// Comma-separated checks instead of the defaults: check names, `default`, `warning`
    /// (see --list).
    #[arg(short = 'c', long, value_name = "LIST")]
    pub checks: Option<String>,

    /// List the checks and exit.
    #[arg(long)]
    pub list: bool,

    /// badkeys' `blocklist.dat` (list names from `badkeysdata.json` beside it); repeatable.
    #[arg(long, value_name = "FILE", env = "D4_KEYS_BLOCKLIST")]
    pub blocklist: Vec<PathBuf>,

    /// A folder of `primes<bits>.dat` files (badkeys' format) for `sharedprimes`.
    #[arg(long, value_name = "DIR", env = "D4_KEYS_BAD_PRIMES")]
    pub bad_primes: Option<PathBuf>,

    /// One JSON object per line (vulnerable and unscannable keys; all keys with --all).
    #[arg(short = 'j', long)]
    pub json: bool,

    /// Show every key, clean ones too.
    #[arg(short = 'a', long)]
    pub all: bool,

    /// Print the recovered numbers (p, q, d) under each finding (badkeys' `-v`; `-v` is
    /// d4's log level).
    #[arg(long)]
    pub numbers: bool,

    /// Threads checking the lines of `-m` and `--crt-lines` inputs (default: every core);
    /// results keep the input order.
    #[arg(long, value_name = "N", env = "D4_KEYS_THREADS")]
    pub threads: Option<usize>,
}

/// Lines of `-m` / `--crt-lines` input checked together (in parallel), then printed in order.
const LINE_BLOCK: usize = 1024;

/// The enabled checks from `-c` / `-w`.
fn enabled_checks(args: &CheckArgs) -> anyhow::Result<Vec<Check>> {
    let Some(list) = &args.checks else {
        let mut c = Check::DEFAULT.to_vec();
        if args.warnings {
            c.extend(Check::WARNINGS);
        }
        return Ok(c);
    };
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name {
            "default" => out.extend(Check::DEFAULT),
            "warning" => out.extend(Check::WARNINGS),
            n => {
                out.push(Check::from_name(n).with_context(|| format!("{n} is not a valid check"))?)
            }
        }
    }
    Ok(out)
}

fn load_checks(args: &CheckArgs) -> anyhow::Result<Checks> {
    let mut checks = Checks::new(&enabled_checks(args)?);
    for bl in &args.blocklist {
        checks.load_blocklist(bl)?;
    }
    if let Some(dir) = &args.bad_primes {
        checks.load_bad_primes(dir)?;
    }
    Ok(checks)
}

/// Prints reports and keeps the exit bits.
struct Output<W: Write> {
    out: W,
    json: bool,
    all: bool,
    verbose: bool,
    status: u8,
}

impl<W: Write> Output<W> {
    fn report(&mut self, r: &Report) -> io::Result<()> {
        self.status |= r.exit_bits();
        if self.json {
            if self.all || !r.findings.is_empty() || r.error.is_some() {
                writeln!(self.out, "{}", r.to_json_line())?;
            }
            return Ok(());
        }
        let (lines, warnings) = r.text(self.all, self.verbose);
        if !warnings.is_empty() {
            self.out.flush()?;
            for w in warnings {
                eprintln!("{w}");
            }
        }
        for l in lines {
            writeln!(self.out, "{l}")?;
        }
        Ok(())
    }

    fn error(&mut self, msg: &str) -> io::Result<()> {
        self.out.flush()?;
        eprintln!("ERROR: {msg}");
        self.status |= EXIT_ERROR;
        Ok(())
    }
}

fn open(path: &Path) -> io::Result<Box<dyn Read>> {
    if path == Path::new("-") {
        Ok(Box::new(io::stdin().lock()))
    } else {
        Ok(Box::new(File::open(path)?))
    }
}

fn read_all(path: &Path) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    open(path)?.take(MAX_FILE + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE {
        return Err(io::Error::other(format!(
            "larger than {} MiB",
            MAX_FILE >> 20
        )));
    }
    Ok(buf)
}

fn key_file<W: Write>(o: &mut Output<W>, checks: &Checks, path: &Path) -> io::Result<()> {
    let name = path.display().to_string();
    let bytes = match read_all(path) {
        Ok(b) => b,
        Err(e) => return o.error(&format!("{name}: {e}")),
    };
    let keys = parse_keys(&bytes);
    if keys.is_empty() {
        return o.report(&Report::not_found(name));
    }
    let several = keys.len() > 1;
    for (i, parsed) in keys.iter().enumerate() {
        let place = if several {
            format!("{name}[{}]", i + 1)
        } else {
            name.clone()
        };
        let r = match parsed {
            Parsed::Key(k) => Report::key(place, k, check_key(k, checks)),
            other => Report::not_key(place, other),
        };
        o.report(&r)?;
    }
    Ok(())
}

/// Walks the non-blank lines of a line-per-key input (`-m`, `--crt-lines`) in blocks of
/// [`LINE_BLOCK`] (place, text) pairs, printing the reports `block` returns for each (one
/// per line, in order), and "no key found" when there is none.
fn each_line<W: Write>(
    o: &mut Output<W>,
    path: &Path,
    mut block: impl FnMut(&[(String, String)]) -> Vec<Report>,
) -> io::Result<()> {
    let name = path.display().to_string();
    let reader = match open(path) {
        Ok(r) => BufReader::new(r),
        Err(e) => return o.error(&format!("{name}: {e}")),
    };
    let mut count = 0usize;
    let mut lines: Vec<(String, String)> = Vec::with_capacity(LINE_BLOCK);
    let mut flush = |o: &mut Output<W>, lines: &mut Vec<(String, String)>| {
        let reports = block(lines);
        lines.clear();
        reports.iter().try_for_each(|r| o.report(r))
    };
    for (lno, line) in reader.split(b'\n').enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(err) => {
                flush(o, &mut lines)?;
                return o.error(&format!("{name}: {err}"));
            }
        };
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.trim().is_empty() {
            continue;
        }
        count += 1;
        lines.push((format!("{name}[{}]", lno + 1), text.to_string()));
        if lines.len() == LINE_BLOCK {
            flush(o, &mut lines)?;
        }
    }
    flush(o, &mut lines)?;
    if count == 0 {
        o.report(&Report::not_found(name))?;
    }
    Ok(())
}

/// [`bad_prime_residues`] of a block, its parts on `threads` threads (each part its own
/// remainder tree).
fn residues(moduli: &[Option<&Integer>], checks: &Checks, threads: usize) -> Vec<Option<Integer>> {
    let part = moduli.len().div_ceil(threads.max(1)).max(1);
    let parts: Vec<&[Option<&Integer>]> = moduli.chunks(part).collect();
    par_map(parts.len(), threads, |i| {
        bad_prime_residues(parts[i], checks)
    })
    .into_iter()
    .flatten()
    .collect()
}

/// The RSA modulus of a parsed key, if it is one.
fn modulus(p: &Parsed) -> Option<&Integer> {
    match p {
        Parsed::Key(Key {
            data: KeyData::Rsa { n, .. },
            ..
        }) => Some(n),
        _ => None,
    }
}

fn moduli_file<W: Write>(
    o: &mut Output<W>,
    checks: &Checks,
    path: &Path,
    threads: usize,
) -> io::Result<()> {
    each_line(o, path, |lines| {
        let parsed: Vec<Option<Integer>> = lines
            .iter()
            .map(|(_, text)| parse_hex_modulus(text))
            .collect();
        let refs: Vec<Option<&Integer>> = parsed.iter().map(Option::as_ref).collect();
        let residues = residues(&refs, checks, threads);
        par_map(lines.len(), threads, |i| match &parsed[i] {
            Some(n) => Report::modulus(n, check_modulus_with(n, checks, residues[i].as_ref())),
            None => Report::error(
                lines[i].0.clone(),
                "unparseable",
                "not a hex modulus".into(),
            ),
        })
    })
}

fn crt_lines_file<W: Write>(
    o: &mut Output<W>,
    checks: &Checks,
    path: &Path,
    threads: usize,
) -> io::Result<()> {
    each_line(o, path, |lines| {
        let parsed = par_map(lines.len(), threads, |i| parse_crt_line(&lines[i].1));
        let refs: Vec<Option<&Integer>> = parsed.iter().map(|(p, _)| modulus(p)).collect();
        let residues = residues(&refs, checks, threads);
        par_map(lines.len(), threads, |i| {
            let (parsed, desc) = &parsed[i];
            let mut place = lines[i].0.clone();
            if let Some(d) = desc {
                place = format!("{place} {d}");
            }
            match parsed {
                Parsed::Key(k) => {
                    Report::key(place, k, check_key_with(k, checks, residues[i].as_ref()))
                }
                other => Report::not_key(place, other),
            }
        })
    })
}

pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        for c in Check::ALL {
            let kind = match c.applies() {
                Applies::Rsa => "rsa",
                Applies::Dsa => "dsa",
                Applies::All => "all",
            };
            println!("{}/{kind} keys: {}", c.name(), c.description());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.files.is_empty() && args.moduli.is_empty() && args.crt_lines.is_empty() {
        eprintln!("ERROR: no input: give key files, -m FILE or --crt-lines FILE");
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let checks = match load_checks(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            return Ok(ExitCode::from(EXIT_ERROR));
        }
    };
    let stdout = io::stdout().lock();
    let mut o = Output {
        out: BufWriter::new(stdout),
        json: args.json,
        all: args.all,
        verbose: args.numbers,
        status: 0,
    };
    for f in &args.files {
        key_file(&mut o, &checks, f)?;
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    for f in &args.moduli {
        moduli_file(&mut o, &checks, f, threads)?;
    }
    for f in &args.crt_lines {
        crt_lines_file(&mut o, &checks, f, threads)?;
    }
    o.out.flush()?;
    if checks.io_errors() > 0 {
        eprintln!("ERROR: {} blocklist reads failed", checks.io_errors());
        o.status |= EXIT_ERROR;
    }
    Ok(ExitCode::from(o.status))
}
