#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Worker throughput: 16 KiB payloads through a type-3 (lines) and a type-1 (pcap)
//! worker into real files (gzip off, so that the frame path alone is measured), with
//! the bare `LineSplitter` as the baseline.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use d4_worker::lines::LineSplitter;
use d4_worker::pcap::{global_header_le, record_le};
use d4_worker::{NullQueueSink, WorkerConfig, WorkerSet};
use uuid::Uuid;

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = WorkerConfig::new(tmp.path());
    cfg.gzip = false;
    cfg.rotation.period = Some(Duration::from_secs(3600));
    let set = WorkerSet::new(cfg, Arc::new(NullQueueSink)).unwrap();
    let now = SystemTime::now();

    let line = b"2026-01-01 00:00:00 host sshd[42]: Invalid user admin from 192.0.2.1 port 22\n";
    let payload: Vec<u8> = line.iter().copied().cycle().take(16 * 1024).collect();
    let mut g = c.benchmark_group("worker_16k");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("line_splitter_only", |b| {
        let mut s = LineSplitter::new(64 * 1024);
        b.iter(|| {
            let mut n = 0usize;
            s.push(black_box(&payload), |l, _| n += l.len());
            n
        })
    });
    let mut w3 = set.worker(Uuid::new_v4(), 3).unwrap();
    g.bench_function("type3_lines_to_file_and_queue", |b| {
        b.iter(|| w3.handle_payload(3, black_box(&payload), now).unwrap())
    });
    let mut w1 = set.worker(Uuid::new_v4(), 1).unwrap();
    w1.handle_payload(1, &global_header_le(65535), now).unwrap();
    let rec = record_le(1, &[0x5a; 1500]);
    // whole records only (10 x 1516 bytes), so that every iteration ends at a boundary
    let pcap: Vec<u8> = rec.repeat(16 * 1024 / rec.len());
    g.bench_function("type1_pcap_to_file", |b| {
        b.iter(|| w1.handle_payload(1, black_box(&pcap), now).unwrap())
    });
    g.finish();
    w3.close(now).unwrap();
    w1.close(now).unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
