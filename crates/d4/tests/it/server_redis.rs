//! Two real `d4 server` processes sharing one real redis-server (`--redis`): a sensor
//! approved through either is accepted by both; one connection per (uuid, type) across
//! both; stats add up; a kick reaches the server holding the connection; a crashed
//! server's sessions lapse with their lease; a d4-core style Python analyzer `RPOP`s
//! exactly the lines the sensors streamed, in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::server::*;
use d4_proto::Encoder;
use d4_store::{QueueConfig, QueueKind, StatsKey, Store, StoreConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use uuid::Uuid;

const SENSOR_KEY: &str = "redis test sensor key";

fn frame(uuid: Uuid, t: u8, payload: &[u8]) -> Vec<u8> {
    Encoder::new(uuid, SENSOR_KEY.as_bytes(), t)
        .encode(d4_store::now(), payload)
        .unwrap()
}

async fn wait_for(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let t0 = Instant::now();
    while !f().await {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn register(store: &Arc<dyn Store>) -> Uuid {
    register_sensor(store, SENSOR_KEY, "redis test").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_redis_behave_as_one() {
    let redis = d4_testkit::RedisServer::start();
    let url = redis.url_db(0);
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = ["--redis", url.as_str(), "--session-lease-secs", "4"];
    let a = ServerProc::start(da.path(), &args);
    let b = ServerProc::start(db.path(), &args);
    let mut cfg = StoreConfig::new(da.path());
    cfg.redis_url = Some(url.clone());
    let store = d4_store::open(&cfg).await.unwrap();
    assert_eq!(store.backend(), "redis");
    let queue = |kind| QueueConfig {
        uuid: Uuid::new_v4(),
        kind,
        description: "python analyzer".into(),
        max_size: 100_000,
        sensors: None,
        groups: Vec::new(),
    };
    let q8 = store
        .create_queue(queue(QueueKind::Type(8)), d4_store::now())
        .await
        .unwrap()
        .config
        .uuid;
    let q3 = store
        .create_queue(queue(QueueKind::Type(3)), d4_store::now())
        .await
        .unwrap()
        .config
        .uuid;

    // Sensors approved through A's admin socket.
    let via_a = a.store().await;
    let (s1, s2, s3) = (
        register(&via_a).await,
        register(&via_a).await,
        register(&via_a).await,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // s1 streams passive DNS to B, s2 syslog to A.
    let pdns: Vec<String> = (0..300)
        .map(|i| {
            format!(
                "1700000{i:03}||192.0.2.1||10.0.0.1||IN||h{i}.example.||A||198.51.100.{}||300||1",
                i % 200
            )
        })
        .collect();
    let syslog: Vec<String> = (0..120)
        .map(|i| {
            format!("<34>Oct 11 22:14:15 host{i} su: 'su root' failed for lonvick on /dev/pts/{i}")
        })
        .collect();
    let mut frames1 = 0u64;
    let mut c = TcpStream::connect(b.plain).await.unwrap();
    for chunk in pdns.chunks(7) {
        let mut payload = chunk.join("\n");
        payload.push('\n');
        c.write_all(&frame(s1, 8, payload.as_bytes()))
            .await
            .unwrap();
        frames1 += 1;
    }
    c.shutdown().await.unwrap();
    assert!(closed_within(&mut c, 10).await);
    let mut c = TcpStream::connect(a.plain).await.unwrap();
    for line in &syslog {
        c.write_all(&frame(s2, 3, format!("{line}\n").as_bytes()))
            .await
            .unwrap();
    }
    c.shutdown().await.unwrap();
    assert!(closed_within(&mut c, 10).await);
    wait_for("lines in the queues", 60, async || {
        store.queue_len(q8).await.unwrap() == pdns.len() as u64
            && store.queue_len(q3).await.unwrap() == syslog.len() as u64
    })
    .await;
    assert_eq!(python_analyzer(&url, "8", q8), pdns);
    assert_eq!(python_analyzer(&url, "3", q3), syslog);

    // One connection per (uuid, type) across both servers.
    let mut held = open(a.plain, &frame(s1, 8, b"held\n")).await;
    wait_for("s1's session listed", 10, async || {
        store
            .list_leases(d4_store::now())
            .await
            .unwrap()
            .iter()
            .any(|s| s.uuid == s1 && s.d4_type == 8)
    })
    .await;
    let mut dup = open(b.plain, &frame(s1, 8, b"duplicate\n")).await;
    assert!(closed_within(&mut dup, 10).await, "duplicate on B refused");
    assert!(!closed_within(&mut held, 1).await, "the holder on A stays");
    let err = store.get_sensor(s1).await.unwrap().unwrap().last_error;
    assert!(
        err.as_ref().is_some_and(|e| e.message.contains("duplicate")
            || e.message.contains("one connection")
            || e.message.contains("already")),
        "{err:?}"
    );

    // Stats add up: frames of s1 through B and A.
    let day = d4_store::day_of(d4_store::now());
    wait_for("stats of both servers", 20, async || {
        store
            .day_stats(day)
            .await
            .unwrap()
            .get(&StatsKey::Sensor { uuid: s1 })
            .frames
            == frames1 + 1
    })
    .await;
    drop(held);

    // A kick through A reaches the connection held by B.
    let mut kicked = open(b.plain, &frame(s2, 3, b"before kick\n")).await;
    assert!(!closed_within(&mut kicked, 1).await);
    via_a.request_kick(s2, d4_store::now()).await.unwrap();
    assert!(
        closed_within(&mut kicked, 5).await,
        "kick closed B's connection"
    );

    // A crashed server's session lapses with its lease (4 s), then B accepts the sensor.
    let _c3 = open(a.plain, &frame(s3, 8, b"on a\n")).await;
    wait_for("s3's session on A", 10, async || {
        store
            .list_leases(d4_store::now())
            .await
            .unwrap()
            .iter()
            .any(|s| s.uuid == s3)
    })
    .await;
    a.crash();
    let mut early = open(b.plain, &frame(s3, 8, b"too early\n")).await;
    assert!(
        closed_within(&mut early, 10).await,
        "slot still leased by the crashed server"
    );
    wait_for("the crashed server's lease to lapse", 20, async || {
        !store
            .list_leases(d4_store::now())
            .await
            .unwrap()
            .iter()
            .any(|s| s.uuid == s3)
    })
    .await;
    let mut late = open(b.plain, &frame(s3, 8, b"after lease\n")).await;
    assert!(!closed_within(&mut late, 2).await, "B accepts s3 now");
    drop(late);
    assert_eq!(b.stop(), Some(0));
}

/// The d4-core style analyzer (d4_testkit): `RPOP analyzer:<qtype>:<queue>` until empty.
fn python_analyzer(url: &str, qtype: &str, queue: Uuid) -> Vec<String> {
    d4_testkit::d4core_analyzer(url, qtype, &queue.hyphenated().to_string())
        .into_iter()
        .map(|l| String::from_utf8(l).unwrap())
        .collect()
}
