//! Benchmarks of d4-pdns:
//! * `ingest`: passivedns CSV lines/s into a fresh embedded store (goal ≥ 300,000/s on one
//!   core), next to `parse_only` (the parser alone: the ceiling), on three data sets of
//!   500k lines: uniform over 100k records (each seen ~5 times), skewed like real traffic
//!   (a few records make most lines) over 100k records, and all-unique (the worst case).
//! * `query`: name lookup latency (lookup + sort + COF serialization) in a store holding
//!   1,000,000 records; p50/p99 printed from 20,000 timed lookups (goal p99 < 5 ms).
//!
//! `cargo bench -p d4-pdns` (set PDNS_BENCH_RECORDS to change the store size).
//! `PDNS_BENCH_PROBE=uniform|skewed|unique [PDNS_BENCH_LINES=n] [PDNS_BENCH_BATCH=records]`
//! runs one ingest without criterion (batches of `PDNS_BENCH_BATCH` distinct records, default
//! the ingester's) and prints lines/s: for before/after comparisons and
//! `valgrind --tool=callgrind --toggle-collect='*ingest_all*'` (instruction counts are
//! repeatable on a loaded machine, wall-clock figures are not).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use d4_pdns::cof::{write_lines, CofOptions};
use d4_pdns::query::{parse_query, sort_records};
use d4_pdns::store::Filter;
use d4_pdns::{parse_line, IngestOptions, Ingester, PdnsStore};

/// Deterministic pseudo-random numbers (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// How records are drawn for each line.
#[derive(Clone, Copy)]
enum Mix {
    /// Uniformly over `distinct` records (each seen lines/distinct times on average).
    Uniform,
    /// Skewed like real resolver traffic: a few popular records make most lines (the
    /// record index is `distinct * u^4` for a uniform `u`, so ~56% of the lines hit the
    /// first 10% of the records).
    Skewed,
    /// Every line a new record (line i is record i): the worst case.
    Unique,
}

/// Real-shaped traffic: `lines` lines over `distinct` (name, type, rdata) records, types
/// mixed like resolver traffic.
fn traffic_mix(lines: usize, distinct: u64, seed: u64, mix: Mix) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    let mut out = Vec::with_capacity(lines * 110);
    for i in 0..lines {
        let rec = match mix {
            Mix::Uniform => r.next() % distinct,
            Mix::Skewed => {
                let u = (r.next() >> 11) as f64 / (1u64 << 53) as f64;
                ((distinct as f64) * u.powi(4)) as u64
            }
            Mix::Unique => i as u64,
        };
        let ts = 1_600_000_000 + i as u64 / 100;
        let name = format!(
            "host{}.zone{}.example{}.com.",
            rec % 1000,
            rec / 1000 % 500,
            rec % 7
        );
        let line = match rec % 10 {
            0..=5 => format!(
                "{ts}.{:06}||10.0.0.1||10.0.0.53||IN||{name}||A||{}.{}.{}.{}||300||1\n",
                i % 1_000_000,
                rec >> 24 & 255,
                rec >> 16 & 255,
                rec >> 8 & 255,
                rec & 255
            ),
            6 | 7 => format!(
                "{ts}.{:06}||10.0.0.1||10.0.0.53||IN||{name}||AAAA||2001:db8:{:x}::{:x}||300||1\n",
                i % 1_000_000,
                rec >> 16,
                rec & 0xffff
            ),
            8 => format!(
                "{ts}.{:06}||10.0.0.1||10.0.0.53||IN||www.{name}||CNAME||{name}||300||1\n",
                i % 1_000_000
            ),
            _ => format!(
                "{ts}.{:06}||10.0.0.1||10.0.0.53||IN||{name}||TXT||\"v=spf1 ip4:10.{}.0.0/16 ~all\"||300||1\n",
                i % 1_000_000,
                rec % 256
            ),
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn traffic(lines: usize, distinct: u64, seed: u64) -> Vec<u8> {
    traffic_mix(lines, distinct, seed, Mix::Uniform)
}

fn ingest_all(data: &[u8]) -> (tempfile::TempDir, Arc<PdnsStore>) {
    ingest_with(data, IngestOptions::default())
}

fn ingest_with(data: &[u8], opts: IngestOptions) -> (tempfile::TempDir, Arc<PdnsStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(PdnsStore::open(&dir.path().join("pdns.redb")).unwrap());
    let mut ing = Ingester::new(store.clone(), opts);
    ing.read(data, None).unwrap();
    ing.flush().unwrap();
    (dir, store)
}

fn bench_ingest(c: &mut Criterion) {
    const LINES: usize = 500_000;
    let data = traffic(LINES, 100_000, 7);
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(LINES as u64));
    g.bench_function("parse_only", |b| {
        b.iter(|| {
            let mut ok = 0usize;
            for l in data.split(|b| *b == b'\n') {
                if parse_line(l).is_ok() {
                    ok += 1;
                }
            }
            ok
        })
    });
    let skewed = traffic_mix(LINES, 100_000, 7, Mix::Skewed);
    let unique = traffic_mix(LINES, 0, 7, Mix::Unique);
    for (name, data) in [
        ("embedded_store_500k_lines_100k_records", &data),
        ("embedded_store_500k_lines_skewed_100k_records", &skewed),
        ("embedded_store_500k_lines_all_unique", &unique),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let (_d, store) = ingest_all(data);
                    total += t.elapsed();
                    drop(store);
                }
                total
            })
        });
    }
    g.finish();
}

fn query_latency(c: &mut Criterion) {
    let n: usize = std::env::var("PDNS_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // (Nearly) unique records: `n` lines drawn from a space of 1000n records.
    let data = traffic(n, n as u64 * 1000, 11);
    let t = Instant::now();
    let (_d, store) = ingest_all(&data);
    let records = store.len().unwrap();
    eprintln!(
        "query bench store: {records} records from {n} lines, built in {:.1}s ({:.0} lines/s)",
        t.elapsed().as_secs_f64(),
        n as f64 / t.elapsed().as_secs_f64()
    );
    // Query names that exist.
    let names: Vec<String> = data
        .split(|b| *b == b'\n')
        .step_by(97)
        .filter_map(|l| parse_line(l).ok().map(|o| o.rrname.into_owned()))
        .collect();
    let opts = CofOptions::default();
    let one = |name: &str| {
        let l = parse_query(name).unwrap();
        let mut r = store.lookup(&l, &Filter::default(), 1_000_000).unwrap();
        sort_records(&mut r);
        write_lines(&r, &opts).len()
    };
    let mut lat = Vec::with_capacity(20_000);
    let mut found = 0usize;
    for i in 0..20_000 {
        let name = &names[i % names.len()];
        let t = Instant::now();
        found += one(name);
        lat.push(t.elapsed());
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    eprintln!(
        "query latency over {} name lookups in {records} records: p50 {:?}, p99 {:?}, max {:?} ({found} bytes of COF)",
        lat.len(),
        p(0.50),
        p(0.99),
        lat[lat.len() - 1]
    );
    // CIDR and wildcard latencies, for the record.
    for q in ["10.0.0.0/16", "*.zone7.example3.com", "host12*"] {
        let t = Instant::now();
        let b = one(q);
        eprintln!("query {q}: {:?} ({b} bytes)", t.elapsed());
    }
    let mut g = c.benchmark_group("query");
    g.sample_size(50);
    let mut i = 0usize;
    g.bench_function("name_lookup_1m_records", |b| {
        b.iter(|| {
            i += 1;
            one(&names[i % names.len()])
        })
    });
    g.finish();
}

criterion_group!(benches, bench_ingest, query_latency);

/// `PDNS_BENCH_PROBE=uniform|skewed|unique` (optionally `PDNS_BENCH_LINES`): one ingest
/// into a fresh store, lines/s printed, no criterion; for callgrind and quick comparisons.
fn probe(kind: &str) {
    let lines: usize = std::env::var("PDNS_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let mix = match kind {
        "skewed" => Mix::Skewed,
        "unique" => Mix::Unique,
        _ => Mix::Uniform,
    };
    let data = traffic_mix(lines, lines as u64 / 5, 7, mix);
    let mut opts = IngestOptions::default();
    if let Some(n) = std::env::var("PDNS_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.batch_records = n;
    }
    let t = Instant::now();
    let (_d, store) = ingest_with(&data, opts);
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "probe {kind}: {lines} lines, {} records, {secs:.3}s, {:.0} lines/s",
        store.len().unwrap(),
        lines as f64 / secs
    );
}

fn main() {
    if let Ok(kind) = std::env::var("PDNS_BENCH_PROBE") {
        probe(&kind);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
