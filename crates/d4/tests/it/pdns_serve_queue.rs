//! `d4 pdns serve --queue`: one process serves lookups while it consumes an analyzer queue
//! of the collector's store. The store is held by another process (`d4 store-serve`, as
//! `d4 server` would: the consumer reaches it over `<data>/d4.sock`), or lives in Redis
//! (`--store-redis`). Lines pushed while the server runs become queryable; SIGTERM stops
//! both the consumer and the HTTP server cleanly (exit 0, queue drained, data committed).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cli::wait_output;
use crate::support::wait_for_file;

use d4_store::{QueueConfig, QueueEntry, QueueKind, StoreConfig};
use serde_json::Value;

const D4: &str = env!("CARGO_BIN_EXE_d4");

/// Kills a child still running when a test fails.
struct Guard(Option<Child>);
impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// GET → (status, body); `None` when nothing listens yet.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    get_h(port, path, &[]).map(|(s, _, b)| (s, b))
}

/// GET with request headers → (status, x-dribble-cursor, body).
fn get_h(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<(u16, Option<String>, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let cursor = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("x-dribble-cursor"))
        .map(|(_, v)| v.trim().to_string());
    Some((status, cursor, body.to_string()))
}

/// Polls `/info` until `records` reaches `want` (20 s at most).
fn wait_total(port: u16, want: u64) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Some((200, body)) = get(port, "/info") {
            let info: Value = serde_json::from_str(&body).unwrap();
            if info["records"].as_u64() == Some(want) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("never reached {want} records");
}

/// Polls `/query/<name>` until it returns `want` records (20 s at most).
fn wait_records(port: u16, name: &str, want: usize) -> Vec<Value> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(20) {
        if let Some((200, body)) = get(port, &format!("/query/{name}")) {
            let recs: Vec<Value> = body
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if recs.len() == want {
                return recs;
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{name}: never got {want} records; last answer: {last:?}");
}

fn line(i: u32, name: &str) -> String {
    format!(
        "{}.5||192.0.2.1||192.0.2.53||IN||{name}.||A||192.0.2.{}||60||1",
        1_600_000_000 + i,
        i % 250
    )
}

async fn make_queue(store: &dyn d4_store::Store, queue: uuid::Uuid) {
    store
        .create_queue(
            QueueConfig {
                uuid: queue,
                kind: QueueKind::Type(8),
                description: "pdns serve --queue test".into(),
                max_size: 10_000,
                sensors: None,
                groups: Vec::new(),
            },
            1,
        )
        .await
        .unwrap();
}

/// Starts `d4 pdns serve --queue` on a free port (retrying if the port is taken).
fn start_serve(data: &Path, queue: uuid::Uuid, extra: &[&str]) -> (Guard, u16) {
    for _ in 0..5 {
        let port = d4_testkit::free_port();
        let mut child = Command::new(D4)
            .args(["pdns", "--data-dir"])
            .arg(data)
            .args(extra)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--queue", &queue.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if get(port, "/info").is_some() {
                return (Guard(Some(child)), port);
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("d4 pdns serve --queue did not come up");
}

/// Pushes lines, checks they are served, pushes more while serving, stops with SIGTERM.
/// `sensor_kept`: the queue carries sensor ids (d4-core's Redis queues hold data only).
fn exercise(data: &Path, store_cfg: &StoreConfig, extra: &[&str], sensor_kept: bool) {
    let queue = uuid::Uuid::new_v4();
    let sensor = uuid::Uuid::new_v4();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(async {
        let store = d4_store::open(store_cfg).await.unwrap();
        make_queue(store.as_ref(), queue).await;
        // Queued before the server starts.
        let entries = (0..30)
            .map(|i| QueueEntry::from_sensor(sensor, line(i, "early.example.com")))
            .collect();
        store.push_entries(vec![queue], entries, 8).await.unwrap();
        store
    });

    let (mut serve, port) = start_serve(data, queue, extra);
    let recs = wait_records(port, "early.example.com", 30);
    if sensor_kept {
        assert!(recs
            .iter()
            .all(|r| r["sensor_id"] == d4_proto::sensor_id(&sensor)));
    }

    // Pushed while it serves: consumed and queryable without a restart.
    rt.block_on(async {
        let mut entries: Vec<QueueEntry> = (0..5)
            .map(|i| QueueEntry::new(line(i, "late.example.com")))
            .collect();
        entries.push(QueueEntry::new("not a passivedns line"));
        store.push_entries(vec![queue], entries, 8).await.unwrap();
    });
    let recs = wait_records(port, "late.example.com", 5);
    assert_eq!(recs[0]["rrname"], "late.example.com");
    let start = Instant::now();
    let info: Value = loop {
        let (_, body) = get(port, "/info").unwrap();
        let info: Value = serde_json::from_str(&body).unwrap();
        if info["lines_rejected"]["too_few_fields"] == 1 || start.elapsed().as_secs() > 20 {
            break info;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(info["records"], 35, "{info}");
    assert_eq!(info["lines_rejected"]["too_few_fields"], 1, "{info}");

    // Paging (PyPDNS's headers) while the queue brings new records and updates between
    // the pages: every record present at the first page comes exactly once, except the
    // updated ones, which come at least once.
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut total = 35;
    let mut updated = Vec::new();
    let mut ended = false;
    for round in 0..20u32 {
        let mut h = vec![("dribble-paginate-count", "8")];
        if let Some(c) = &cursor {
            h.push(("dribble-paginate-cursor", c.as_str()));
        }
        let (status, next, body) = get_h(port, "/query/*.example.com", &h).unwrap();
        assert_eq!(status, 200, "{body}");
        for l in body.lines() {
            let r: Value = serde_json::from_str(l).unwrap();
            seen.push((
                r["rrname"].as_str().unwrap().to_string(),
                r["rdata"].as_str().unwrap().to_string(),
            ));
        }
        let Some(next) = next else {
            ended = true;
            break;
        };
        cursor = Some(next);
        // A new record newer than all, one older than all, and an update of an early one.
        let victim = round % 30; // not returned yet: it must not be skipped
        rt.block_on(async {
            let entries = vec![
                QueueEntry::new(line(10_000 + round, &format!("new{round}.example.com"))),
                QueueEntry::new(format!(
                    "1500000000.0||c||s||IN||old{round}.example.com.||A||198.51.100.9||60||1"
                )),
                QueueEntry::new(line(20_000 + victim, "early.example.com")),
            ];
            store.push_entries(vec![queue], entries, 8).await.unwrap();
        });
        updated.push(format!("192.0.2.{}", victim % 250));
        total += 2;
        wait_total(port, total);
    }
    assert!(ended, "pagination did not end in 20 pages");
    for i in 0..30u32 {
        let k = (
            "early.example.com".to_string(),
            format!("192.0.2.{}", i % 250),
        );
        let n = seen.iter().filter(|x| **x == k).count();
        if updated.contains(&k.1) {
            assert!(n >= 1, "{k:?} missed");
        } else {
            assert_eq!(n, 1, "{k:?} seen {n} times");
        }
    }
    for i in 0..5u32 {
        let k = (
            "late.example.com".to_string(),
            format!("192.0.2.{}", i % 250),
        );
        assert_eq!(seen.iter().filter(|x| **x == k).count(), 1, "{k:?}");
    }

    // SIGTERM: the consumer finishes its batch, the server drains, exit 0.
    let child = serve.0.take().unwrap();
    signal(&child, "-TERM");
    let out = wait_output(child, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(stderr.contains("queue consumer stopped"), "{stderr}");
    assert!(
        get(port, "/info").is_none(),
        "still listening after SIGTERM"
    );
    rt.block_on(async {
        assert_eq!(store.queue_len(queue).await.unwrap(), 0, "queue drained");
    });
    // Everything was committed: the file opens and holds the records.
    let pdns = d4_pdns::PdnsStore::open(&data.join("pdns.redb")).unwrap();
    assert_eq!(pdns.len().unwrap(), total);
}

#[test]
fn serve_consumes_a_queue_of_the_store_socket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Another process holds the collector's database and serves its socket.
    let holder = Command::new(D4)
        .arg("store-serve")
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut holder = Guard(Some(holder));
    wait_for_file(&data.join("d4.sock"));
    exercise(&data, &StoreConfig::new(&data), &[], true);
    let h = holder.0.take().unwrap();
    signal(&h, "-INT");
    assert!(wait_output(h, Duration::from_secs(20)).status.success());
}

#[test]
fn serve_consumes_a_queue_of_a_redis_store() {
    let redis = d4_testkit::RedisServer::start();
    let url = redis.url_db(0);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = StoreConfig {
        redis_url: Some(url.clone()),
        ..StoreConfig::new(&data)
    };
    exercise(&data, &cfg, &["--store-redis", &url], false);
}
