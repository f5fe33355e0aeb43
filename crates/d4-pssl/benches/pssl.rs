//! Benchmarks of d4-pssl (issue 18):
//! * `ingest`: certificates/s (certificate files, half DER and half PEM, →
//!   `certfile::parse_bytes` → `BatchBuilder` → one commit per 10,000 certificates) and
//!   sessions/s (`ja3-jl` lines as `d4 tls` writes them, two certificates each → `parse_record`
//!   → one commit per 10,000 sessions), into a fresh embedded store; the same into PostgreSQL
//!   when `PSSL_BENCH_POSTGRES=1` (a `d4_testkit::PostgresServer`, a fresh database per
//!   iteration) or `PSSL_BENCH_POSTGRES_URL` is set (that database: new data every
//!   iteration, so the store grows). Sessions reuse certificates (10 sessions per
//!   certificate), JA3s (200) and client addresses (20,000).
//! * `query`: latency of 20,000 random lookups of each kind (certificate by SHA-1,
//!   certificate_ips, ip_certificates of a /32 and of a /24, fingerprint_ips of a JA3,
//!   sni_certificates; list answers: first page of 100) in a store of `PSSL_BENCH_CERTS`
//!   certificates (default 1,000,000), one session each linking it to a server address (two
//!   certificates per address), p50/p99/max printed. The embedded store is built once in
//!   `<target>/pssl-bench/` and reused while its file is complete; the PostgreSQL one holds
//!   `PSSL_BENCH_PG_CERTS` (default 20,000: its fill runs at a few hundred per second) and is
//!   asked `PSSL_BENCH_PG_LOOKUPS` (default 2,000) lookups per kind, as filled and again
//!   after an `ANALYZE`.
//!
//! `cargo bench -p d4-pssl --bench pssl`. Sizes: `PSSL_BENCH_INGEST_CERTS` (per iteration,
//! default 10,000) and `PSSL_BENCH_INGEST_SESSIONS` (default 5,000: a line is ≈ 8 KB),
//! `PSSL_BENCH_KEYS` (distinct keys, default 2,000), `PSSL_BENCH_LOOKUPS` (default 20,000);
//! `PSSL_BENCH_PARTS=ingest` or `query` runs one part.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "pssl/data.rs"]
mod data;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, SamplingMode, Throughput};
use d4_pssl::certfile::parse_bytes;
use d4_pssl::{
    certificate_from_der, parse_record, parse_record_cached, BatchBuilder, CertCache,
    EmbeddedStore, Fingerprint, Page, PostgresStore, PsslStore, Session,
};
use data::{CertGen, Line, Rng, T0};

/// Certificates (or sessions) per commit.
const BATCH: usize = 10_000;
/// Items per page of the list queries.
const PAGE: usize = 100;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

fn part(name: &str) -> bool {
    std::env::var("PSSL_BENCH_PARTS").map_or(true, |p| p.split(',').any(|x| x.trim() == name))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// Where PostgreSQL comes from, if anywhere.
enum Pg {
    Server(d4_testkit::PostgresServer),
    Url(String),
}

fn postgres() -> Option<Pg> {
    if let Ok(url) = std::env::var("PSSL_BENCH_POSTGRES_URL") {
        return Some(Pg::Url(url));
    }
    if std::env::var("PSSL_BENCH_POSTGRES").is_ok_and(|v| v == "1") {
        return Some(Pg::Server(d4_testkit::PostgresServer::start()));
    }
    eprintln!(
        "PostgreSQL benchmarks skipped: set PSSL_BENCH_POSTGRES=1 (starts a throw-away server \
         with d4-testkit) or PSSL_BENCH_POSTGRES_URL"
    );
    None
}

/// A fresh store (and what keeps it alive), outside the timed part.
type Fresh = (Box<dyn PsslStore>, Box<dyn std::any::Any>);
/// A backend's name and how to get a fresh store of it.
type Backend<'a> = (&'static str, Box<dyn Fn() -> Fresh + 'a>);

fn fresh_embedded() -> Fresh {
    let dir = tempfile::tempdir_in(target_dir()).unwrap();
    let store = EmbeddedStore::open(&dir.path().join("pssl.redb")).unwrap();
    (Box::new(store), Box::new(dir))
}

/// A database URL (a fresh database on the bench's own server) and what keeps it alive.
fn pg_database(pg: &Pg) -> (String, Box<dyn std::any::Any>) {
    match pg {
        Pg::Server(s) => {
            let db = s.database();
            (db.url().to_string(), Box::new(db))
        }
        Pg::Url(u) => (u.clone(), Box::new(())),
    }
}

fn fresh_postgres(pg: &Pg) -> Fresh {
    let (url, keep) = pg_database(pg);
    (Box::new(PostgresStore::open(&url).unwrap()), keep)
}

/// Makes every iteration's data new (certificate numbers never repeat in a run).
static NEXT_CERT: AtomicU64 = AtomicU64::new(1_000_000_000);

/// `n` certificate files (even: DER, odd: PEM) of new certificates.
fn cert_files(g: &CertGen, n: usize) -> Vec<Vec<u8>> {
    let base = NEXT_CERT.fetch_add(n as u64, Ordering::Relaxed);
    (0..n as u64)
        .map(|k| {
            let der = g.cert(base + k);
            if k % 2 == 0 {
                der
            } else {
                data::pem(&der)
            }
        })
        .collect()
}

/// `n` session lines over `n / 10` new certificates (each with the CA in its chain).
fn session_lines(g: &CertGen, ca_json: &str, n: usize, seed: u64) -> Vec<String> {
    let certs = (n / 10).max(1) as u64;
    let base = NEXT_CERT.fetch_add(certs, Ordering::Relaxed);
    let jsons: Vec<String> = (0..certs)
        .map(|k| data::go_json(&g.cert(base + k)))
        .collect();
    let mut r = Rng(seed | 1);
    (0..n as u64)
        .map(|s| {
            let c = r.below(certs);
            let cl = r.below(20_000) as u32;
            let sni = CertGen::host(base + c);
            Line {
                ts: T0 + s as i64,
                client: (
                    IpAddr::V4(Ipv4Addr::from(0xc0a8_0000u32 + cl)),
                    1024 + (s % 60_000) as u16,
                ),
                server: (
                    IpAddr::V4(data::server_ip(base + c)),
                    data::server_port(base + c),
                ),
                ja3: r.below(200),
                ja3s: r.below(20),
                sni: &sni,
                chain: &[&jsons[c as usize], ca_json],
            }
            .json()
        })
        .collect()
}

fn ingest_certs(store: &dyn PsslStore, files: &[Vec<u8>]) -> u64 {
    let mut b = BatchBuilder::new();
    let mut n = 0u64;
    for f in files {
        for (c, k) in parse_bytes(f).into_iter().flatten() {
            b.add_certificate(c);
            b.add_key(k);
            n += 1;
            if n % BATCH as u64 == 0 {
                store.commit(&b.take()).unwrap();
            }
        }
    }
    if !b.is_empty() {
        store.commit(&b.take()).unwrap();
    }
    n
}

fn ingest_sessions(store: &dyn PsslStore, lines: &[String]) -> u64 {
    // As `d4_pssl::Ingester` reads them: each certificate read once through a cache.
    let mut cache = CertCache::new(4096);
    let mut b = BatchBuilder::new();
    let mut n = 0u64;
    for l in lines {
        if let Ok(p) = parse_record_cached(l.as_bytes(), &mut cache) {
            b.extend(p.batch);
            n += 1;
            if n % BATCH as u64 == 0 {
                store.commit(&b.take()).unwrap();
            }
        }
    }
    if !b.is_empty() {
        store.commit(&b.take()).unwrap();
    }
    n
}

/// The patched certificates parse, differ, and carry their number in name and serial.
fn check_certs(gen: &CertGen) {
    let mut seen = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    for i in (0..3 * gen.keys() as u64).chain([999_999, 123_456_789]) {
        let (c, k) = certificate_from_der(&gen.cert(i)).unwrap();
        assert!(
            seen.insert(c.sha1.clone()),
            "certificate {i} repeats a SHA-1"
        );
        keys.insert(k.spki_sha256);
        assert!(c.subject.contains(&CertGen::host(i)), "{}", c.subject);
        assert_eq!(c.sans, vec![CertGen::host(i)]);
        assert_eq!(c.serial, ((0x42u64 << 56) | i).to_string());
        assert!(!c.self_signed);
    }
    assert_eq!(keys.len(), gen.keys());
}

fn bench_ingest(c: &mut Criterion) {
    if !part("ingest") {
        return;
    }
    let gen = CertGen::new(env_num("PSSL_BENCH_KEYS", 2_000) as usize);
    check_certs(&gen);
    let ca_json = data::go_json(&gen.ca_der);
    let n_certs = env_num("PSSL_BENCH_INGEST_CERTS", 10_000) as usize;
    let n_sessions = env_num("PSSL_BENCH_INGEST_SESSIONS", 5_000) as usize;
    {
        // One sample session line, its size and parse rate alone (the ceiling).
        let lines = session_lines(&gen, &ca_json, 2_000, 3);
        let t = Instant::now();
        let ok = lines
            .iter()
            .filter(|l| parse_record(l.as_bytes()).is_ok())
            .count();
        assert_eq!(ok, lines.len());
        let uncached = lines.len() as f64 / t.elapsed().as_secs_f64();
        let mut cache = CertCache::new(4096);
        let t = Instant::now();
        let ok = lines
            .iter()
            .filter(|l| parse_record_cached(l.as_bytes(), &mut cache).is_ok())
            .count();
        assert_eq!(ok, lines.len());
        eprintln!(
            "session lines: {} bytes each; parsing alone: {:.0} lines/s reading every \
             certificate, {:.0} lines/s with the ingester's certificate cache",
            lines[0].len(),
            uncached,
            lines.len() as f64 / t.elapsed().as_secs_f64()
        );
    }
    let pg = postgres();
    let mut g = c.benchmark_group("ingest");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(10));
    let mut backends: Vec<Backend<'_>> = vec![("embedded", Box::new(fresh_embedded))];
    if let Some(pg) = &pg {
        backends.push(("postgres", Box::new(move || fresh_postgres(pg))));
    }
    for (name, fresh) in &backends {
        g.throughput(Throughput::Elements(n_certs as u64));
        g.bench_function(format!("{name}_certificates_{n_certs}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let files = cert_files(&gen, n_certs);
                    let (store, keep) = fresh();
                    let t = Instant::now();
                    assert_eq!(ingest_certs(store.as_ref(), &files), n_certs as u64);
                    total += t.elapsed();
                    drop((store, keep));
                }
                total
            })
        });
        g.throughput(Throughput::Elements(n_sessions as u64));
        g.bench_function(format!("{name}_sessions_{n_sessions}"), |b| {
            let mut seed = 0;
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    seed += 1;
                    let lines = session_lines(&gen, &ca_json, n_sessions, seed);
                    let (store, keep) = fresh();
                    let t = Instant::now();
                    assert_eq!(ingest_sessions(store.as_ref(), &lines), n_sessions as u64);
                    total += t.elapsed();
                    drop((store, keep));
                }
                total
            })
        });
    }
    g.finish();
}

/// Session `i` of the query store: certificate `i` (and the CA) at its server address.
fn query_session(ca_sha1: &str, i: u64, sha1: String) -> Session {
    let mut r = Rng(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    Session {
        ts: T0 + i as i64,
        client_ip: Some(IpAddr::V4(Ipv4Addr::from(
            0xac10_0000u32 + r.below(100_000) as u32,
        ))),
        client_port: Some(1024 + (i % 60_000) as u16),
        server_ip: Some(IpAddr::V4(data::server_ip(i))),
        server_port: Some(data::server_port(i)),
        ja3: md5_hex(&data::ja3_raw(i % 1_000)),
        ja3_raw: data::ja3_raw(i % 1_000),
        ja3s: md5_hex(&data::ja3s_raw(i % 20)),
        ja3s_raw: data::ja3s_raw(i % 20),
        ja4: data::ja4(i % 1_000),
        sni: CertGen::host(i),
        alpn: vec!["h2".into()],
        transport: "tcp".into(),
        chain: vec![sha1, ca_sha1.to_string()],
        ..Session::default()
    }
}

fn md5_hex(s: &str) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(s.as_bytes()))
}

/// Fills `store` with certificates `0..n` and a session each, printing the rate.
fn fill(store: &dyn PsslStore, gen: &CertGen, n: u64, what: &str) {
    let (ca, ca_key) = certificate_from_der(&gen.ca_der).unwrap();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let mut b = BatchBuilder::new();
        if i == 0 {
            b.add_certificate(ca.clone());
            b.add_key(ca_key.clone());
        }
        let end = (i + BATCH as u64).min(n);
        for k in i..end {
            let (c, key) = certificate_from_der(&gen.cert(k)).unwrap();
            let sha1 = c.sha1.clone();
            b.add_certificate(c);
            b.add_key(key);
            b.add_session(query_session(&ca.sha1, k, sha1));
        }
        store.commit(&b.build()).unwrap();
        i = end;
        if i % 100_000 == 0 || i == n {
            let s = t.elapsed().as_secs_f64();
            eprintln!(
                "{what} fill: {i}/{n} certificates (+ as many sessions) in {s:.1}s: {:.0} certificates/s",
                i as f64 / s
            );
        }
    }
}

/// Times `lookups` calls of `f(k)` for random `k` below `n` (the argument is made outside
/// the timing) and prints p50/p99/max.
fn time_kind<A>(
    what: &str,
    n: u64,
    lookups: usize,
    arg: impl Fn(u64) -> A,
    f: impl Fn(&A) -> usize,
) {
    let mut r = Rng(0x5eed_0000 + what.len() as u64);
    let mut lat = Vec::with_capacity(lookups);
    let mut items = 0usize;
    for _ in 0..lookups {
        let a = arg(r.below(n));
        let t = Instant::now();
        items += f(&a);
        lat.push(t.elapsed());
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    eprintln!(
        "  {what:<28} p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}  ({:.1} items/answer)",
        p(0.50),
        p(0.99),
        lat[lat.len() - 1],
        items as f64 / lookups as f64
    );
}

fn query_kinds(store: &dyn PsslStore, gen: &CertGen, n: u64, lookups: usize, what: &str) {
    let info = store.info().unwrap();
    eprintln!(
        "{what} query latency, {lookups} random lookups per kind, {} certificates, {} keys, {} sessions, {} server addresses (list answers: first page of {PAGE}):",
        info.certificates, info.keys, info.sessions, info.ips
    );
    let sha1 = |i: u64| d4_tls::cert::sha1_hex(&gen.cert(i));
    let page = Page::first(PAGE);
    time_kind("certificate(sha1)", n, lookups, sha1, |s| {
        let v = store.certificate(s).unwrap();
        assert!(v.is_some(), "certificate {s} stored");
        1
    });
    time_kind("certificate_ips(sha1)", n, lookups, sha1, |s| {
        store.certificate_ips(s, &page).unwrap().items.len()
    });
    time_kind(
        "ip_certificates(/32)",
        n,
        lookups,
        |i| ipnet::IpNet::from(IpAddr::V4(data::server_ip(i))),
        |net| store.ip_certificates(*net, &page).unwrap().items.len(),
    );
    time_kind(
        "ip_certificates(/24)",
        n,
        lookups,
        |i| {
            let ip = u32::from(data::server_ip(i)) & 0xffff_ff00;
            ipnet::IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(ip), 24).unwrap())
        },
        |net| store.ip_certificates(*net, &page).unwrap().items.len(),
    );
    time_kind(
        "fingerprint_ips(ja3)",
        n.min(1_000),
        lookups,
        |j| Fingerprint::Ja3(md5_hex(&data::ja3_raw(j))),
        |fp| store.fingerprint_ips(fp, &page).unwrap().items.len(),
    );
    time_kind("sni_certificates", n, lookups, CertGen::host, |s| {
        store.sni_certificates(s, &page).unwrap().items.len()
    });
}

fn bench_query(_c: &mut Criterion) {
    if !part("query") {
        return;
    }
    let keys = env_num("PSSL_BENCH_KEYS", 2_000);
    let n = env_num("PSSL_BENCH_CERTS", 1_000_000);
    let lookups = env_num("PSSL_BENCH_LOOKUPS", 20_000) as usize;
    // Keys are random per run, so a kept store is only valid with its own certificate
    // templates: they are saved beside it, in the file that marks it complete.
    let dir = target_dir().join("pssl-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("embedded-{n}-certs-{keys}-keys.redb"));
    let done = path.with_extension("complete");
    let saved = std::fs::read(&done)
        .ok()
        .filter(|_| path.exists())
        .and_then(|b| CertGen::from_saved(&b));
    let gen = match saved {
        Some(g) => {
            eprintln!("reusing {} (delete it to refill)", path.display());
            g
        }
        None => {
            let gen = CertGen::new(keys as usize);
            check_certs(&gen);
            let _ = std::fs::remove_file(&path);
            let store = EmbeddedStore::open(&path).unwrap();
            fill(&store, &gen, n, "embedded");
            drop(store);
            std::fs::write(&done, gen.save()).unwrap();
            gen
        }
    };
    let store = EmbeddedStore::open(&path).unwrap();
    query_kinds(&store, &gen, n, lookups, "embedded");
    drop(store);
    if let Some(pg) = postgres() {
        let pn = env_num("PSSL_BENCH_PG_CERTS", 20_000);
        let (url, _keep) = pg_database(&pg);
        let store = PostgresStore::open(&url).unwrap();
        let have = store.info().unwrap().certificates;
        if have < pn + 1 {
            fill(&store, &gen, pn, "postgres");
        }
        if pn < n {
            eprintln!("(PostgreSQL store holds {pn} certificates, not {n}: PSSL_BENCH_PG_CERTS)");
        }
        let pl = env_num("PSSL_BENCH_PG_LOOKUPS", 2_000) as usize;
        query_kinds(&store, &gen, pn, pl, "postgres (as filled)");
        // Right after a bulk fill the planner may lack table statistics until autovacuum
        // analyzes the tables: the same lookups once they are there.
        let t = Instant::now();
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute("ANALYZE").unwrap();
        eprintln!("ANALYZE: {:.1?}", t.elapsed());
        query_kinds(&store, &gen, pn, pl, "postgres (after ANALYZE)");
    }
}

criterion_group!(benches, bench_ingest, bench_query);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
