//! The Redis backend against a real redis-server: d4-core's key layout as d4-core's own
//! tools read it (raw commands and a Python analyzer using the PyPI `redis` package), and
//! several stores ("servers") sharing one Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use d4_store::*;
use redis::AsyncCommands;
use uuid::Uuid;

async fn store(url: &str) -> Arc<dyn Store> {
    let mut cfg = StoreConfig::new("/nonexistent-unused");
    cfg.redis_url = Some(url.to_string());
    open(&cfg).await.unwrap()
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn qcfg(kind: QueueKind, max: u64) -> QueueConfig {
    QueueConfig {
        uuid: Uuid::new_v4(),
        kind,
        description: "analyzer".into(),
        max_size: max,
        sensors: None,
        groups: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d4core_layout_and_python_analyzer() {
    let server = d4_testkit::RedisServer::start();
    let url = server.url_db(0);
    let s = store(&url).await;
    let mut r = raw(&url).await;
    let a = Uuid::new_v4();
    let a32 = a.simple().to_string();

    // Registration: pending set, then registered set; key in metadata_uuid.
    s.register_sensor(SensorRegistration {
        uuid: a,
        hmac_key: Some("sensor key".into()),
        mail: Some("soc@example.org".into()),
        third_party: false,
        description: Some("tap".into()),
        approve: false,
    })
    .await
    .unwrap();
    assert!(r
        .sismember::<_, _, bool>("sensor_pending_registration", &a32)
        .await
        .unwrap());
    let md: std::collections::HashMap<String, String> =
        r.hgetall(format!("metadata_uuid:{a32}")).await.unwrap();
    assert_eq!(md["hmac_key"], "sensor key");
    assert_eq!(md["user_mail"], "soc@example.org");
    assert_eq!(md["description"], "tap");
    s.approve_sensor(a).await.unwrap();
    assert!(r
        .sismember::<_, _, bool>("registered_uuid", &a32)
        .await
        .unwrap());
    assert!(!r
        .sismember::<_, _, bool>("sensor_pending_registration", &a32)
        .await
        .unwrap());
    s.record_sensor_error(a, 5, "Error: HMAC don't match".into())
        .await
        .unwrap();
    let err: String = r
        .hget(format!("metadata_uuid:{a32}"), "Error")
        .await
        .unwrap();
    assert_eq!(err, "Error: HMAC don't match");
    s.update_sensor(
        a,
        SensorUpdate {
            stream_limit: Some(Some(123)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let lim: u64 = r.hget("stream_max_size_by_uuid", &a32).await.unwrap();
    assert_eq!(lim, 123);
    // A sensor registered by d4-core's own tools is seen by d4-rs.
    let b = Uuid::new_v4();
    let b32 = b.simple().to_string();
    let () = r
        .hset(format!("metadata_uuid:{b32}"), "hmac_key", "k")
        .await
        .unwrap();
    let _: i64 = r.sadd("registered_uuid", &b32).await.unwrap();
    let sb = s.get_sensor(b).await.unwrap().unwrap();
    assert_eq!(sb.status, SensorStatus::Approved);
    assert_eq!(sb.hmac_key.as_deref(), Some("k"));

    // Types: d4-core's sets.
    let types: Vec<u8> = r.smembers("server:accepted_type").await.unwrap();
    assert!(types.contains(&8) && types.contains(&254));
    s.set_type_accepted(5, false).await.unwrap();
    assert!(!r
        .sismember::<_, _, bool>("server:accepted_type", 5)
        .await
        .unwrap());
    assert!(r
        .sismember::<_, _, bool>("server:accepted_extended_type", "ja3-jl")
        .await
        .unwrap());

    // Blocklists: permanent blocks mirrored in d4-core's sets, and the other way round.
    for target in [
        BlockTarget::Uuid(a),
        BlockTarget::IpsOfUuid(b),
        BlockTarget::Ip("198.51.100.7/32".parse().unwrap()),
    ] {
        s.add_block(Block {
            target,
            reason: "admin".into(),
            created: 1,
            expires: None,
        })
        .await
        .unwrap();
    }
    assert!(r
        .sismember::<_, _, bool>("blacklist_uuid", &a32)
        .await
        .unwrap());
    assert!(r
        .sismember::<_, _, bool>("blacklist_ip_by_uuid", &b32)
        .await
        .unwrap());
    assert!(r
        .sismember::<_, _, bool>("blacklist_ip", "198.51.100.7")
        .await
        .unwrap());
    let _: i64 = r.sadd("blacklist_ip", "192.0.2.99").await.unwrap();
    assert!(s
        .check_blocked(ip("192.0.2.99"), None, 10)
        .await
        .unwrap()
        .is_some());
    assert!(s.remove_block(BlockTarget::Uuid(a)).await.unwrap());
    assert!(!r
        .sismember::<_, _, bool>("blacklist_uuid", &a32)
        .await
        .unwrap());

    // Stats and last seen: d4-core's daily sorted sets, metadata_uuid, list_uuid_ip.
    let day = 20260101;
    s.record_activity(ActivityBatch {
        stats: vec![StatsDelta {
            day,
            uuid: a,
            ip: ip("203.0.113.5"),
            d4_type: 8,
            frames: 7,
            bytes: 700,
        }],
        seen: vec![SeenUpdate {
            uuid: a,
            ip: ip("203.0.113.5"),
            d4_type: 8,
            ext: None,
            time: 1_767_225_600,
            connections: 1,
        }],
    })
    .await
    .unwrap();
    let z: f64 = r.zscore(format!("daily_uuid:{day}"), &a32).await.unwrap();
    assert_eq!(z, 7.0);
    for (key, member) in [
        (format!("daily_ip:{day}"), "203.0.113.5".to_string()),
        (format!("daily_type:{day}"), "8".to_string()),
        (
            format!("stat_uuid_ip:{day}:{a32}"),
            "203.0.113.5".to_string(),
        ),
        (format!("stat_ip_uuid:{day}:203.0.113.5"), a32.clone()),
        (format!("stat_uuid_type:{day}:{a32}"), "8".to_string()),
        (format!("stat_type_uuid:{day}:8"), a32.clone()),
    ] {
        let z: Option<f64> = r.zscore(&key, &member).await.unwrap();
        assert_eq!(z, Some(7.0), "{key} {member}");
    }
    let md: std::collections::HashMap<String, String> =
        r.hgetall(format!("metadata_uuid:{a32}")).await.unwrap();
    assert_eq!(md["first_seen"], "1767225600");
    assert_eq!(md["last_seen"], "1767225600");
    let ips: Vec<String> = r
        .lrange(format!("list_uuid_ip:{a32}"), 0, -1)
        .await
        .unwrap();
    assert_eq!(ips, ["203.0.113.5-20260101000000"]);

    // Queues: d4-core's metadata and sets.
    let q8 = s
        .create_queue(qcfg(QueueKind::Type(8), 1000), 100)
        .await
        .unwrap()
        .config
        .uuid;
    let q3 = s
        .create_queue(qcfg(QueueKind::Type(3), 1000), 100)
        .await
        .unwrap()
        .config
        .uuid;
    let qj = s
        .create_queue(qcfg(QueueKind::Ext("ja3-jl".into()), 3), 100)
        .await
        .unwrap()
        .config
        .uuid;
    let h8 = q8.hyphenated().to_string();
    assert!(r.sismember::<_, _, bool>("analyzer:8", &h8).await.unwrap());
    assert!(r
        .sismember::<_, _, bool>("all_analyzer_queues", &h8)
        .await
        .unwrap());
    let meta: std::collections::HashMap<String, String> =
        r.hgetall(format!("analyzer:{h8}")).await.unwrap();
    assert_eq!(meta["type"], "8");
    assert_eq!(meta["max_size"], "1000");
    assert_eq!(meta["description"], "analyzer");
    let hj = qj.hyphenated().to_string();
    assert!(r
        .sismember::<_, _, bool>("analyzer:254:ja3-jl", &hj)
        .await
        .unwrap());
    let meta: std::collections::HashMap<String, String> =
        r.hgetall(format!("analyzer:{hj}")).await.unwrap();
    assert_eq!(
        (meta["type"].as_str(), meta["metatype"].as_str()),
        ("254", "ja3-jl")
    );

    // Lines pushed in several batches come out of RPOP exactly, in order.
    let pdns: Vec<Vec<u8>> = (0..250)
        .map(|i| format!("1700000{i:03}||192.0.2.1||10.0.0.1||IN||host{i}.example.||A||198.51.100.{}||300||1", i % 250).into_bytes())
        .collect();
    let syslog: Vec<Vec<u8>> = vec![
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed".to_vec(),
        Vec::new(),
        vec![0xff, 0xfe, b'x', 0x00, b' '],
        "utf-8: \u{e9}t\u{e9}".as_bytes().to_vec(),
    ];
    for chunk in pdns.chunks(100) {
        let entries = chunk
            .iter()
            .map(|l| QueueEntry::from_sensor(a, l.clone()))
            .collect();
        s.push_entries(vec![q8], entries, 200).await.unwrap();
    }
    let entries = syslog.iter().map(|l| QueueEntry::new(l.clone())).collect();
    s.push_entries(vec![q3], entries, 200).await.unwrap();
    assert_eq!(python_analyzer(&url, "8", q8), pdns);
    assert_eq!(python_analyzer(&url, "3", q3), syslog);
    assert_eq!(s.queue_len(q8).await.unwrap(), 0);

    // Extended type queue: `analyzer:<ext>:<uuid>`, trimmed to max, counted.
    let entries: Vec<_> = (0..5)
        .map(|i| QueueEntry::new(format!("{{\"n\":{i}}}")))
        .collect();
    let out = s.push_entries(vec![qj], entries, 300).await.unwrap();
    assert_eq!(out.trimmed, 2);
    let trimmed: u64 = r.hget(format!("d4rs:queue:{hj}"), "trimmed").await.unwrap();
    assert_eq!(trimmed, 2);
    let last: u64 = r
        .hget(format!("analyzer:{hj}"), "last_updated")
        .await
        .unwrap();
    assert_eq!(last, 300);
    let got = python_analyzer(&url, "ja3-jl", qj);
    assert_eq!(
        got,
        [
            b"{\"n\":2}".to_vec(),
            b"{\"n\":3}".to_vec(),
            b"{\"n\":4}".to_vec()
        ]
    );

    // A queue created by d4-core's tools is usable.
    let ext_q = Uuid::new_v4();
    let hq = ext_q.hyphenated().to_string();
    let () = r.hset(format!("analyzer:{hq}"), "type", 8).await.unwrap();
    let _: i64 = r.sadd("analyzer:8", &hq).await.unwrap();
    let _: i64 = r.sadd("all_analyzer_queues", &hq).await.unwrap();
    assert!(s
        .queues_for(QueueKind::Type(8), a)
        .await
        .unwrap()
        .contains(&ext_q));
    s.push_entries(vec![ext_q], vec![QueueEntry::new("x")], 1)
        .await
        .unwrap();
    assert_eq!(python_analyzer(&url, "8", ext_q), [b"x".to_vec()]);
    assert!(s.delete_queue(ext_q).await.unwrap());
    assert!(!r.sismember::<_, _, bool>("analyzer:8", &hq).await.unwrap());
}

/// Registration is one atomic step: many stores registering the same uuid at once, one
/// succeeds and every other gets `AlreadyExists`; the record is the winner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_of_one_uuid() {
    let server = d4_testkit::RedisServer::start();
    let url = server.url_db(0);
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(store(&url).await);
    }
    for round in 0..10 {
        let u = Uuid::new_v4();
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let mut tasks = Vec::new();
        for i in 0..16 {
            let s = stores[i % stores.len()].clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let r = s
                    .register_sensor(SensorRegistration {
                        uuid: u,
                        hmac_key: Some(format!("key {i}")),
                        mail: None,
                        third_party: false,
                        description: Some(format!("by {i}")),
                        approve: false,
                    })
                    .await;
                (i, r)
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                (i, Ok(_)) => won.push(i),
                (_, Err(StoreError::AlreadyExists(_))) => {}
                (_, Err(e)) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: winners {won:?}");
        let s = stores[0].get_sensor(u).await.unwrap().unwrap();
        assert_eq!(s.status, SensorStatus::Pending);
        assert_eq!(s.hmac_key, Some(format!("key {}", won[0])));
        assert_eq!(s.description, format!("by {}", won[0]));
    }
}

/// Two stores on one Redis behave as one: registrations, the (uuid, type) rule,
/// stats, kicks and blocking pops cross; a crashed holder's lease lapses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_one_redis() {
    let server = d4_testkit::RedisServer::start();
    let url = server.url_db(0);
    let a = store(&url).await;
    let b = store(&url).await;
    let u = Uuid::new_v4();

    a.register_sensor(SensorRegistration {
        uuid: u,
        hmac_key: Some("k".into()),
        mail: None,
        third_party: false,
        description: None,
        approve: true,
    })
    .await
    .unwrap();
    assert_eq!(
        b.get_sensor(u).await.unwrap().unwrap().status,
        SensorStatus::Approved
    );

    // One session per (uuid, type) across both.
    let claim = |server: &str, t: u8, lease: u64| LeaseClaim {
        uuid: u,
        d4_type: t,
        session_id: Uuid::new_v4(),
        server_id: server.into(),
        ip: ip("127.0.0.1"),
        lease_secs: lease,
    };
    let now = model::now();
    let held = claim("srv-a", 8, 60);
    assert!(a.try_claim_lease(held.clone(), now).await.unwrap());
    assert!(!b.try_claim_lease(claim("srv-b", 8, 60), now).await.unwrap());
    assert_eq!(b.list_leases(now).await.unwrap().len(), 1);
    a.release_lease(u, 8, held.session_id).await.unwrap();
    assert!(b.try_claim_lease(claim("srv-b", 8, 60), now).await.unwrap());

    // Kick through A reaches B's subscribers.
    let mut events = b.subscribe();
    a.request_kick(u, now).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(StoreEvent::Kick { uuid }) = events.recv().await {
                return uuid;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got, u);
    assert!(b
        .check_blocked(ip("127.0.0.1"), Some(u), now + 1)
        .await
        .unwrap()
        .is_some());

    // Stats add up.
    let day = 20260202;
    for s in [&a, &b] {
        s.record_activity(ActivityBatch {
            stats: vec![StatsDelta {
                day,
                uuid: u,
                ip: ip("127.0.0.1"),
                d4_type: 8,
                frames: 3,
                bytes: 30,
            }],
            seen: vec![],
        })
        .await
        .unwrap();
    }
    let st = a.day_stats(day).await.unwrap();
    assert_eq!(
        st.get(&StatsKey::Sensor { uuid: u }),
        Counter {
            frames: 6,
            bytes: 60
        }
    );

    // A blocking pop on B is woken by a push on A.
    let q = a
        .create_queue(qcfg(QueueKind::Type(8), 10), 1)
        .await
        .unwrap()
        .config
        .uuid;
    let popper = {
        let b = b.clone();
        tokio::spawn(async move {
            b.pop_entries_blocking(q, 10, Duration::from_secs(20))
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.push_entries(vec![q], vec![QueueEntry::new("hello")], 2)
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), popper)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, [QueueEntry::new("hello")]);

    // A "crashed" server: its session (lease 1 s) is never released nor renewed.
    let crashed = claim("srv-crashed", 3, 1);
    assert!(a.try_claim_lease(crashed, model::now()).await.unwrap());
    drop(a);
    assert!(!b
        .try_claim_lease(claim("srv-b", 3, 60), model::now())
        .await
        .unwrap());
    let mut r = raw(&url).await;
    let key = format!("d4rs:session:{}:3", u.simple());
    let t0 = Instant::now();
    loop {
        let exists: bool = r.exists(&key).await.unwrap();
        if !exists {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!b
        .list_leases(model::now())
        .await
        .unwrap()
        .iter()
        .any(|s| s.server_id == "srv-crashed"));
    assert!(b
        .try_claim_lease(claim("srv-b", 3, 60), model::now())
        .await
        .unwrap());
}

/// The d4-core style analyzer: `RPOP analyzer:<qtype>:<queue>` until empty.
fn python_analyzer(url: &str, qtype: &str, queue: Uuid) -> Vec<Vec<u8>> {
    d4_testkit::d4core_analyzer(url, qtype, &queue.hyphenated().to_string())
}

/// Issue 14: d4-core's sensors page lists a sensor's extended types from
/// `all_extended_types_by_uuid:<sensor>` (when 254 is in `all_types_by_uuid`); d4-core's
/// type-2 worker also keeps `metadata_extended_type_by_uuid:<sensor>:<ext>` first/last
/// seen. A Python stand-in of the Flask view reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d4core_sensor_page_shows_extended_types() {
    let server = d4_testkit::RedisServer::start();
    let url = server.url_db(0);
    let s = store(&url).await;
    let mut r = raw(&url).await;
    let a = Uuid::new_v4();
    let a32 = a.simple().to_string();
    let seen = |ext: Option<&str>, t: u8, time: u64| SeenUpdate {
        uuid: a,
        ip: ip("192.0.2.9"),
        d4_type: t,
        ext: ext.map(str::to_string),
        time,
        connections: 1,
    };
    s.record_activity(ActivityBatch {
        stats: vec![],
        seen: vec![
            seen(None, 2, 1_700_000_000),
            seen(Some("ja3-jl"), 254, 1_700_000_010),
            seen(Some("maltrail"), 254, 1_700_000_020),
        ],
    })
    .await
    .unwrap();
    s.record_activity(ActivityBatch {
        stats: vec![],
        seen: vec![seen(Some("ja3-jl"), 254, 1_700_000_030)],
    })
    .await
    .unwrap();
    let shown = d4_testkit::d4core_script("d4core_ui.py", &["types", &url, &a32], "");
    assert_eq!(shown.trim(), r#"[2, 254, "ja3-jl", "maltrail"]"#);
    let md: std::collections::HashMap<String, String> = r
        .hgetall(format!("metadata_extended_type_by_uuid:{a32}:ja3-jl"))
        .await
        .unwrap();
    assert_eq!(md.get("first_seen").map(String::as_str), Some("1700000010"));
    assert_eq!(md.get("last_seen").map(String::as_str), Some("1700000030"));
    // Forgetting the sensor forgets them too.
    s.delete_sensor(a).await.unwrap();
    let left: Vec<String> = r.keys(format!("*{a32}*")).await.unwrap();
    assert!(!left.iter().any(|k| k.contains("extended")), "{left:?}");
}

/// Leased consumption keeps d4-core's layout: leased entries sit in the consumer's
/// processing list (out of the queue list a reference analyzer `RPOP`s), an
/// acknowledgement removes them, an expired lease puts them back where `RPOP` finds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_use_processing_lists() {
    let server = d4_testkit::RedisServer::start();
    let url = server.url_db(0);
    let s = store(&url).await;
    let mut r = raw(&url).await;
    let cfg = qcfg(QueueKind::Type(8), 100);
    let q = s.create_queue(cfg, 1).await.unwrap().config.uuid;
    let list = format!("analyzer:8:{}", q.hyphenated());
    let processing = format!("d4rs:processing:{}:ingest", q.hyphenated());
    let entries = ["a", "b", "c", "d"].map(QueueEntry::new).to_vec();
    s.push_entries(vec![q], entries, 1).await.unwrap();
    let leased = s
        .lease_entries(q, "ingest".into(), 2, 10, 100)
        .await
        .unwrap();
    assert_eq!(leased.len(), 2);
    assert_eq!(r.llen::<_, u64>(&list).await.unwrap(), 2);
    let held: Vec<String> = r.lrange(&processing, 0, -1).await.unwrap();
    assert_eq!(held, ["b", "a"], "newest first, as the queue list");
    // A reference analyzer pops what is not leased.
    let popped: Option<String> = r.rpop(&list, None).await.unwrap();
    assert_eq!(popped.as_deref(), Some("c"));
    // Acknowledge one: gone from the processing list.
    let a_id = leased[0].id;
    assert_eq!(
        s.ack_entries(q, "ingest".into(), vec![a_id]).await.unwrap(),
        1
    );
    let held: Vec<String> = r.lrange(&processing, 0, -1).await.unwrap();
    assert_eq!(held, ["b"]);
    // Expired: another consumer's lease puts "b" back first.
    let got = s
        .lease_entries(q, "other".into(), 10, 10, 200)
        .await
        .unwrap();
    let got: Vec<String> = got.iter().map(|l| l.entry.text().into_owned()).collect();
    assert_eq!(got, ["b", "d"]);
    assert!(!r.exists::<_, bool>(&processing).await.unwrap());
    s.delete_queue(q).await.unwrap();
    let left: Vec<String> = r.keys(format!("d4rs:*{}*", q.hyphenated())).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// Push times live in side keys: d4-core's list keeps the plain entries, a reference
/// analyzer's `RPOP` moves the oldest entry's time on, deleting the queue removes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_times_beside_the_plain_list() {
    let server = d4_testkit::RedisServer::start();
    let url = server.url_db(0);
    let s = store(&url).await;
    let mut r = raw(&url).await;
    let q = s
        .create_queue(qcfg(QueueKind::Type(3), 100), 1)
        .await
        .unwrap()
        .config
        .uuid;
    let list = format!("analyzer:3:{}", q.hyphenated());
    s.push_entries(vec![q], vec![QueueEntry::new("first")], 1000)
        .await
        .unwrap();
    s.push_entries(vec![q], vec![QueueEntry::new("second")], 1010)
        .await
        .unwrap();
    let plain: Vec<String> = r.lrange(&list, 0, -1).await.unwrap();
    assert_eq!(
        plain,
        ["second", "first"],
        "entries stay as d4-core wrote them"
    );
    let times = format!("d4rs:queue_times:{}", q.hyphenated());
    let marks: Vec<String> = r.zrange(&times, 0, -1).await.unwrap();
    assert_eq!(marks, ["0:1000", "1:1010"]);
    assert_eq!(s.get_queue(q).await.unwrap().unwrap().oldest, Some(1000));
    // A reference analyzer pops the oldest one itself.
    let popped: Option<String> = r.rpop(&list, None).await.unwrap();
    assert_eq!(popped.as_deref(), Some("first"));
    assert_eq!(s.get_queue(q).await.unwrap().unwrap().oldest, Some(1010));
    let popped: Option<String> = r.rpop(&list, None).await.unwrap();
    assert_eq!(popped.as_deref(), Some("second"));
    assert_eq!(s.get_queue(q).await.unwrap().unwrap().oldest, None);
    s.delete_queue(q).await.unwrap();
    let left: Vec<String> = r.keys(format!("d4rs:*{}*", q.hyphenated())).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}
