//! Batch GCD benchmark (harness = false): wall time, phases and peak RSS of a full run over
//! distinct RSA moduli, then the incremental mode (new moduli against that corpus).
//!
//! Environment: `KEYS_BENCH_MODULI` (default 100000), `KEYS_BENCH_BITS` (1024),
//! `KEYS_BENCH_NEW` (10000), `KEYS_BENCH_THREADS` (available cores), `KEYS_BENCH_METHOD`
//! (`scaled`, `plain` or `both`; default `both`), `KEYS_BENCH_MEMORY_LIMIT` (bytes, optional).
//! The corpus comes from real primes (seeded), which is slow to make: it is cached under
//! `<target>/keys-bench/` and a smaller run takes a prefix of a bigger cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use d4_keys::batchgcd::spill::{read_integers, write_integers};
use d4_keys::batchgcd::synth::prime_pairs;
use d4_keys::batchgcd::{run, run_incremental, CorpusProduct, Method, NoProgress, Options};
use rug::Integer;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("keys-bench")
}

/// The first `n` moduli of the seeded corpus, from the cache (extended when too short).
fn corpus(name: &str, seed: u64, n: usize, bits: u32, threads: usize) -> Vec<Integer> {
    let dir = target_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-rsa{bits}.bin"));
    let mut have = match File::open(&path) {
        Ok(f) => read_integers(BufReader::new(f)).unwrap(),
        Err(_) => Vec::new(),
    };
    let t = Instant::now();
    // in chunks of 1,000 (each seeded by its start), saved as it goes
    while have.len() < n {
        let start = have.len();
        let len = (n - start).min(20_000);
        for chunk in (start..start + len).step_by(1_000) {
            let chunk_len = (start + len - chunk).min(1_000);
            let pairs = prime_pairs(seed.wrapping_add(chunk as u64), chunk_len, bits, threads);
            have.extend(pairs.into_iter().map(|(p, q)| p * q));
        }
        write_integers(BufWriter::new(File::create(&path).unwrap()), &have).unwrap();
        eprintln!(
            "  {name}: {} / {n} moduli ({:.0?})",
            have.len(),
            t.elapsed()
        );
    }
    have.truncate(n);
    have
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds of the whole process so far, all threads (utime + stime of /proc/self/stat, in
/// Linux's fixed 100 Hz ticks): the machine is shared, so wall time alone says little.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // fields 14 and 15 of the line; `after` starts at field 3
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

fn reset_peak_rss() {
    // "5" resets VmHWM to the current RSS (Linux ≥ 4.0); ignored where it is not supported.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_usize("KEYS_BENCH_MODULI", 100_000);
    let bits = env_usize("KEYS_BENCH_BITS", 1024) as u32;
    let new_n = env_usize("KEYS_BENCH_NEW", 10_000);
    let threads = env_usize(
        "KEYS_BENCH_THREADS",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let memory_limit = std::env::var("KEYS_BENCH_MEMORY_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok());
    let methods = match std::env::var("KEYS_BENCH_METHOD").as_deref() {
        Ok("plain") => vec![Method::Plain],
        Ok("scaled") => vec![Method::Scaled],
        _ => vec![Method::Scaled, Method::Plain],
    };
    eprintln!("batch GCD bench: {n} RSA-{bits} moduli, {new_n} new, {threads} threads");
    let t = Instant::now();
    let moduli = corpus("corpus", 0xC0FFEE, n, bits, threads);
    let new = corpus("new", 0xBEEF_0000_0000, new_n, bits, threads);
    println!(
        "corpus ready: {:.1} s (cached under {})",
        secs(t.elapsed()),
        target_dir().display()
    );
    for method in methods {
        let opts = Options {
            threads,
            memory_limit,
            spill_dir: None,
            method,
        };
        reset_peak_rss();
        let cpu = cpu_secs();
        let t = Instant::now();
        let report = run(&moduli, &opts, &NoProgress).unwrap();
        let wall = t.elapsed();
        let cpu = cpu_secs() - cpu;
        let s = &report.stats;
        println!(
            "full {method:?}: {n} moduli, {threads} threads: wall {:.2} s, CPU {:.2} s (product {:.2} s, \
             remainders+gcd {:.2} s, dedup+resolve {:.2} s), peak RSS {:.0} MB, spilled {} levels, weak {}",
            secs(wall),
            cpu,
            secs(s.product),
            secs(s.remainder),
            secs(s.resolve),
            peak_rss_mb(),
            s.spilled_levels,
            report.weak.len(),
        );
    }
    if new_n > 0 {
        let opts = Options {
            threads,
            memory_limit,
            spill_dir: None,
            method: Method::Scaled,
        };
        reset_peak_rss();
        let t = Instant::now();
        let product = CorpusProduct::build(&moduli, &opts, &NoProgress);
        let build = t.elapsed();
        let stored = target_dir().join(format!("product-{n}-rsa{bits}.bin"));
        product
            .write_to(BufWriter::new(File::create(&stored).unwrap()))
            .unwrap();
        let t = Instant::now();
        let product =
            CorpusProduct::read_from(BufReader::new(File::open(&stored).unwrap())).unwrap();
        let load = t.elapsed();
        let cpu = cpu_secs();
        let t = Instant::now();
        let report = run_incremental(&new, &moduli, &product, &opts, &NoProgress).unwrap();
        let wall = t.elapsed();
        let cpu = cpu_secs() - cpu;
        println!(
            "incremental: {new_n} new vs {n}: wall {:.2} s, CPU {:.2} s with the stored product (built once in \
             {:.2} s, loaded in {:.2} s), peak RSS {:.0} MB, weak {}",
            secs(wall),
            cpu,
            secs(build),
            secs(load),
            peak_rss_mb(),
            report.weak.len(),
        );
    }
}
