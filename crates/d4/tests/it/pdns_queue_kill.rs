//! `d4 pdns ingest --queue` killed with `kill -9` in the middle of a queue: the entries it
//! had taken but not yet committed to its database are delivered again to the next
//! consumer (at-least-once), so after a restart every record is there. Embedded store
//! and Redis store (the reliable-queue pattern: entries move to a processing list).

use std::process::{Command, Stdio};
use std::time::Duration;

use d4_pdns::PdnsStore;
use d4_store::{QueueConfig, QueueEntry, QueueKind, StoreConfig};

const D4: &str = env!("CARGO_BIN_EXE_d4");
const N: u32 = 30_000;

fn line(i: u32) -> String {
    format!(
        "{}.5||192.0.2.1||192.0.2.53||IN||k{i}.example.com.||A||192.0.2.{}||60||1",
        1_600_000_000 + i,
        i % 250
    )
}

async fn fill(config: &StoreConfig, queue: uuid::Uuid) {
    let store = d4_store::open(config).await.unwrap();
    store
        .create_queue(
            QueueConfig {
                uuid: queue,
                kind: QueueKind::Type(8),
                description: "kill test".into(),
                max_size: 100_000,
                sensors: None,
                groups: Vec::new(),
            },
            1,
        )
        .await
        .unwrap();
    for chunk in (0..N).collect::<Vec<_>>().chunks(5_000) {
        let entries = chunk.iter().map(|i| QueueEntry::new(line(*i))).collect();
        store.push_entries(vec![queue], entries, 2).await.unwrap();
    }
    assert_eq!(store.queue_len(queue).await.unwrap(), N as u64);
}

async fn queue_len(config: &StoreConfig, queue: uuid::Uuid) -> u64 {
    let store = d4_store::open(config).await.unwrap();
    store.queue_len(queue).await.unwrap()
}

fn ingest(dir: &std::path::Path, redis: Option<&str>, queue: uuid::Uuid) -> Command {
    let mut c = Command::new(D4);
    c.args(["pdns", "--data-dir"]).arg(dir);
    if let Some(url) = redis {
        c.args(["--store-redis", url]);
    }
    c.args(["ingest", "--queue", &queue.to_string(), "--pop-max", "700"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Kills the consumer three times while it works through the queue, then lets a last
/// one drain it; every record must be in the pdns database.
fn kill_9_loses_nothing(config: StoreConfig, redis: Option<&str>) {
    let dir = config.data_dir.clone();
    let queue = uuid::Uuid::new_v4();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(fill(&config, queue));
    let mut kills = 0;
    for round in 0..3 {
        let mut child = ingest(&dir, redis, queue).spawn().unwrap();
        // kill it once it consumes, at a different point each round
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stderr).lines() {
                let Ok(l) = l else { break };
                if l.contains("consuming analyzer queue") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the consumer started");
        std::thread::sleep(Duration::from_millis(if redis.is_some() {
            100 + 150 * round
        } else {
            600 + 500 * round
        }));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills > 0, "the consumer was never killed mid-queue");
    let left = rt.block_on(queue_len(&config, queue));
    assert!(left < N as u64, "the consumers made no progress");
    let out = ingest(&dir, redis, queue)
        .arg("--until-empty")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rt.block_on(queue_len(&config, queue)), 0, "queue drained");
    let pdns = PdnsStore::open(&dir.join("pdns.redb")).unwrap();
    assert_eq!(
        pdns.len().unwrap(),
        N as u64,
        "every record of the queue is in the database ({kills} kills, {left} entries left before the last run)"
    );
}

#[test]
fn kill_9_of_pdns_ingest_queue_loses_nothing_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        embedded_only: true,
        ..StoreConfig::new(dir.path())
    };
    kill_9_loses_nothing(config, None);
}

#[test]
fn kill_9_of_pdns_ingest_queue_loses_nothing_redis() {
    let redis = d4_testkit::RedisServer::start();
    let url = redis.url_db(0);
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        redis_url: Some(url.clone()),
        ..StoreConfig::new(dir.path())
    };
    kill_9_loses_nothing(config, Some(&url));
}
