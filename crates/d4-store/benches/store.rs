//! Hot-path costs of the embedded store and of the socket: a queue push of a batch of
//! lines (one transaction), the pop of a batch, and a stats/last-seen flush.
//! `cargo bench -p d4-store`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use d4_store::*;
use uuid::Uuid;

fn setup(rt: &tokio::runtime::Runtime, store: &Arc<dyn Store>) -> Uuid {
    let q = Uuid::new_v4();
    rt.block_on(store.create_queue(
        QueueConfig {
            uuid: q,
            kind: QueueKind::Type(8),
            description: String::new(),
            max_size: 1_000_000,
            sensors: None,
            groups: Vec::new(),
        },
        1,
    ))
    .unwrap();
    q
}

fn bench_backend(
    c: &mut Criterion,
    name: &str,
    rt: &tokio::runtime::Runtime,
    store: Arc<dyn Store>,
) {
    let q = setup(rt, &store);
    let sensor = Uuid::new_v4();
    let batch: Vec<QueueEntry> = (0..1000)
        .map(|i| {
            QueueEntry::from_sensor(
                sensor,
                format!("{i:08},www.example.org,A,192.0.2.1,300,line"),
            )
        })
        .collect();
    let mut g = c.benchmark_group(format!("{name}/queue"));
    g.throughput(Throughput::Elements(1000));
    g.bench_function("push 1000 lines + pop 1000", |b| {
        b.iter(|| {
            rt.block_on(async {
                store.push_entries(vec![q], batch.clone(), 2).await.unwrap();
                let got = store.pop_entries(q, 1000).await.unwrap();
                assert_eq!(got.len(), 1000);
            })
        })
    });
    g.finish();
    let mut g = c.benchmark_group(format!("{name}/activity"));
    let batch = ActivityBatch {
        stats: (0..100u32)
            .map(|i| StatsDelta {
                day: 20260101,
                uuid: Uuid::from_u128(i as u128),
                ip: IpAddr::from([10, 0, 0, i as u8]),
                d4_type: 8,
                frames: 100,
                bytes: 10_000,
            })
            .collect(),
        seen: (0..100u32)
            .map(|i| SeenUpdate {
                uuid: Uuid::from_u128(i as u128),
                ip: IpAddr::from([10, 0, 0, i as u8]),
                d4_type: 8,
                ext: None,
                time: 1000,
                connections: 1,
            })
            .collect(),
    };
    g.throughput(Throughput::Elements(100));
    g.bench_function("flush 100 sensors", |b| {
        b.iter(|| rt.block_on(store.record_activity(batch.clone())).unwrap())
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    bench_backend(c, "embedded", &rt, embedded.clone());
    let sock = dir.path().join("d4.sock");
    let server = rt.block_on(serve_socket(embedded, &sock)).unwrap();
    let remote: Arc<dyn Store> = Arc::new(rt.block_on(RemoteStore::connect(&sock)).unwrap());
    bench_backend(c, "remote", &rt, remote);
    server.shutdown();
}

criterion_group! {
    name = store;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(store);
