//! `d4 pdns ingest --queue`: lines pushed into an analyzer queue of the server's store
//! (embedded backend) are ingested with their sensor ids, the queue is drained.

use std::process::Command;

use d4_pdns::store::{Filter, Lookup};
use d4_pdns::PdnsStore;
use d4_store::{QueueConfig, QueueEntry, QueueKind, StoreConfig};

const D4: &str = env!("CARGO_BIN_EXE_d4");

#[test]
fn ingest_from_an_analyzer_queue_keeps_sensor_ids() {
    let dir = tempfile::tempdir().unwrap();
    let queue = uuid::Uuid::new_v4();
    let sensor = uuid::Uuid::new_v4();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = d4_store::open(&StoreConfig {
            embedded_only: true,
            ..StoreConfig::new(dir.path())
        })
        .await
        .unwrap();
        store
            .create_queue(
                QueueConfig {
                    uuid: queue,
                    kind: QueueKind::Type(8),
                    description: "pdns test".into(),
                    max_size: 10_000,
                    sensors: None,
                    groups: Vec::new(),
                },
                1,
            )
            .await
            .unwrap();
        let mut entries = Vec::new();
        for i in 0..250u32 {
            entries.push(QueueEntry::from_sensor(
                sensor,
                format!("{}.5||192.0.2.1||192.0.2.53||IN||q{i}.example.com.||A||192.0.2.{}||60||1", 1_600_000_000 + i, i % 250),
            ));
        }
        // One entry holding two lines (a D4 payload), one without sensor, one bad line.
        entries.push(QueueEntry::from_sensor(
            sensor,
            "1600000500.0||c||s||IN||multi.example.com.||A||198.51.100.1||60||1\n1600000501.0||c||s||IN||multi.example.com.||AAAA||2001:db8::2||60||1\n",
        ));
        entries.push(QueueEntry::new(
            "1600000600.0||c||s||IN||anon.example.com.||A||198.51.100.2||60||3",
        ));
        entries.push(QueueEntry::new("garbage"));
        store.push_entries(vec![queue], entries, 2).await.unwrap();
        assert_eq!(store.queue_len(queue).await.unwrap(), 253);
    });
    drop(rt); // closes the store's database

    let out = Command::new(D4)
        .args(["pdns", "--data-dir"])
        .arg(dir.path())
        .args([
            "ingest",
            "--queue",
            &queue.to_string(),
            "--until-empty",
            "--pop-max",
            "100",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["lines_ok"], 253, "{summary}");
    assert_eq!(summary["lines_bad"], 1, "{summary}");
    assert!(
        summary["commits"].as_u64().unwrap() >= 3,
        "batched per pop: {summary}"
    );

    let pdns = PdnsStore::open(&dir.path().join("pdns.redb")).unwrap();
    assert_eq!(pdns.len().unwrap(), 253);
    let f = Filter::default();
    let r = pdns
        .lookup(&Lookup::Name("multi.example.com".into()), &f, 10)
        .unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].sensors, vec![d4_proto::sensor_id(&sensor)]);
    let r = pdns
        .lookup(&Lookup::Name("anon.example.com".into()), &f, 10)
        .unwrap();
    assert!(r[0].sensors.is_empty());
    assert_eq!(r[0].count, 3);
    drop(pdns);

    // The queue is drained.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = d4_store::open(&StoreConfig::new(dir.path())).await.unwrap();
        assert_eq!(store.queue_len(queue).await.unwrap(), 0);
    });
}

/// The same against a collector whose store is in Redis (`d4 server --redis`): the queue
/// is d4-core's `analyzer:8:<uuid>` list, reached with `--store-redis`.
#[test]
fn ingest_from_a_redis_store_queue() {
    let redis = d4_testkit::RedisServer::start();
    let url = redis.url_db(0);
    let dir = tempfile::tempdir().unwrap();
    let queue = uuid::Uuid::new_v4();
    let config = StoreConfig {
        redis_url: Some(url.clone()),
        ..StoreConfig::new(dir.path())
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = d4_store::open(&config).await.unwrap();
        assert_eq!(store.backend(), "redis");
        store
            .create_queue(
                QueueConfig {
                    uuid: queue,
                    kind: QueueKind::Type(8),
                    description: "pdns on redis".into(),
                    max_size: 1000,
                    sensors: None,
                    groups: Vec::new(),
                },
                1,
            )
            .await
            .unwrap();
        let entries = (0..20u32)
            .map(|i| {
                QueueEntry::new(format!(
                    "{}.0||c||s||IN||r{i}.example.net.||A||203.0.113.{i}||60||2",
                    1_600_000_000 + i
                ))
            })
            .collect();
        store.push_entries(vec![queue], entries, 2).await.unwrap();
    });
    let out = Command::new(D4)
        .args(["pdns", "--data-dir"])
        .arg(dir.path())
        .args(["--store-redis", &url])
        .args(["ingest", "--queue", &queue.to_string(), "--until-empty"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["lines_ok"], 20, "{summary}");
    let pdns = PdnsStore::open(&dir.path().join("pdns.redb")).unwrap();
    let r = pdns
        .lookup(
            &Lookup::Name("r7.example.net".into()),
            &Filter::default(),
            10,
        )
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].rdata, "203.0.113.7");
    assert_eq!(r[0].count, 2);
    rt.block_on(async {
        let store = d4_store::open(&config).await.unwrap();
        assert_eq!(store.queue_len(queue).await.unwrap(), 0);
    });
}

/// Issue 14: the collector split like d4-core's databases (`d4 server --redis …/0
/// --redis-queue …/2`, the layout analyzer-d4-passivedns reads): `--queue` consumes the
/// list in the queue database — through the flag, and through `D4_REDIS_QUEUE`.
#[test]
fn ingest_from_a_split_redis_store_queue() {
    let redis = d4_testkit::RedisServer::start();
    let (db0, db2) = (redis.url_db(0), redis.url_db(2));
    let dir = tempfile::tempdir().unwrap();
    let queue = uuid::Uuid::new_v4();
    let mut config = StoreConfig::new(dir.path());
    config.redis_url = Some(db0.clone());
    config.redis_queue_url = Some(db2.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let push = |from: u32| {
        rt.block_on(async {
            let store = d4_store::open(&config).await.unwrap();
            if store.get_queue(queue).await.unwrap().is_none() {
                store
                    .create_queue(
                        QueueConfig {
                            uuid: queue,
                            kind: QueueKind::Type(8),
                            description: "split".into(),
                            max_size: 1000,
                            sensors: None,
                            groups: Vec::new(),
                        },
                        1,
                    )
                    .await
                    .unwrap();
            }
            let entries = (from..from + 10)
                .map(|i| {
                    QueueEntry::new(format!(
                        "{}.0||c||s||IN||s{i}.example.net.||A||203.0.113.{i}||60||1",
                        1_600_000_000 + i
                    ))
                })
                .collect();
            store.push_entries(vec![queue], entries, 2).await.unwrap();
        })
    };
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        summary["lines_ok"].as_u64()
    };
    push(0);
    let hyphenated = queue.hyphenated().to_string();
    let ingest = ["ingest", "--queue", hyphenated.as_str(), "--until-empty"];
    let n = run(Command::new(D4)
        .args(["pdns", "--data-dir"])
        .arg(dir.path())
        .args(["--store-redis", &db0, "--redis-queue", &db2])
        .args(ingest)
        .env_remove("D4_REDIS_QUEUE"));
    assert_eq!(n, Some(10));
    push(10);
    let n = run(Command::new(D4)
        .args(["pdns", "--data-dir"])
        .arg(dir.path())
        .args(ingest)
        .env("D4_REDIS", &db0)
        .env("D4_REDIS_QUEUE", &db2));
    assert_eq!(n, Some(10));
    let pdns = PdnsStore::open(&dir.path().join("pdns.redb")).unwrap();
    for name in ["s3.example.net", "s13.example.net"] {
        let r = pdns
            .lookup(&Lookup::Name(name.into()), &Filter::default(), 10)
            .unwrap();
        assert_eq!(r.len(), 1, "{name}");
    }
}
