//! Queue alerts in the real `d4 server`: a queue filled by real sensor frames past its
//! fill level shows in `GET /api/v1/queues/alerts`, in `/metrics` and on the Monitoring
//! page, and is logged once; its oldest entry passing a tiny age raises an age alert;
//! draining it clears both; a full queue dropping entries raises a `trimmed` alert that
//! ends after the quiet period. On the embedded store and on Redis.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::support::server::*;
use d4_proto::Encoder;
use d4_store::{QueueKind, Role, Store, User};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use uuid::Uuid;

const SENSOR_KEY: &str = "queue alerts sensor key";
const TOKEN: &str = "queue-alerts-test-token-0123456789";

/// Streams one type-3 frame per line to the plain listener, then closes.
async fn stream_lines(plain: SocketAddr, sensor: Uuid, lines: &[String]) {
    let mut c = TcpStream::connect(plain).await.unwrap();
    for l in lines {
        let f = Encoder::new(sensor, SENSOR_KEY.as_bytes(), 3)
            .encode(d4_store::now(), format!("{l}\n").as_bytes())
            .unwrap();
        c.write_all(&f).await.unwrap();
    }
    c.shutdown().await.unwrap();
    assert!(closed_within(&mut c, 10).await);
}

/// The alerts of `queue` listed by the API: (kind, value, threshold, since).
async fn api_alerts(web: SocketAddr, queue: Uuid) -> Vec<(String, f64, f64, u64)> {
    let (status, body) = http(
        web,
        "GET",
        "/api/v1/queues/alerts",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .unwrap_or_else(|| panic!("a JSON list: {body}"))
        .iter()
        .filter(|a| a["queue"] == queue.simple().to_string())
        .map(|a| {
            assert_eq!(a["name"], "alert test queue", "{a}");
            (
                a["kind"].as_str().unwrap().to_string(),
                a["value"].as_f64().unwrap(),
                a["threshold"].as_f64().unwrap(),
                a["since"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn kinds(web: SocketAddr, queue: Uuid) -> Vec<String> {
    let mut k: Vec<String> = api_alerts(web, queue)
        .await
        .into_iter()
        .map(|a| a.0)
        .collect();
    k.sort();
    k
}

/// The value of `d4_queue_alert{queue,kind}` in `/metrics`.
async fn metric_alert(web: SocketAddr, queue: Uuid, kind: &str) -> Option<u64> {
    let (status, body) = http(web, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200, "{body}");
    let series = format!(
        "d4_queue_alert{{queue=\"{}\",kind=\"{kind}\"}} ",
        queue.simple()
    );
    body.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map(|v| v.trim().parse().unwrap())
}

async fn wait_kinds(web: SocketAddr, queue: Uuid, want: &[&str], secs: u64) {
    let got = wait_for(secs, || async {
        let k = kinds(web, queue).await;
        (k == want).then_some(())
    })
    .await;
    assert!(
        got.is_some(),
        "alerts of the queue should become {want:?}, are {:?}",
        kinds(web, queue).await
    );
}

async fn api_user(store: &Arc<dyn Store>) {
    store
        .create_user(User {
            name: "alert-reader".into(),
            role: Role::User,
            password_hash: "unused".into(),
            must_change_password: false,
            api_token_hash: Some(d4_store::hash_secret(TOKEN)),
            created: d4_store::now(),
            session_epoch: 1,
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_alerts_on_the_embedded_store() {
    queue_alerts(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_alerts_on_redis() {
    let redis = d4_testkit::RedisServer::start();
    let url = redis.url_db(0);
    queue_alerts(&["--redis", &url]).await;
}

async fn queue_alerts(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--web-plain",
        "--metrics-public",
        "--queue-alert-fill",
        "0.5",
        "--queue-alert-age",
        "6",
        "--queue-alert-trimmed-quiet",
        "3",
        "--queue-alert-interval",
        "1",
    ];
    args.extend_from_slice(extra);
    let srv = ServerProc::start(dir.path(), &args);
    let web = web_addr(&srv.log_text(), "http");
    let store = srv.store().await;
    api_user(&store).await;
    let sensor = register_sensor(&store, SENSOR_KEY, "alerts").await;
    let q = create_queue(&store, QueueKind::Type(3), "alert test queue", 10)
        .await
        .uuid;
    tokio::time::sleep(Duration::from_millis(500)).await; // the gate sees the sensor

    // 4 of 10 (0.4 < 0.5): no alert.
    let lines: Vec<String> = (0..12).map(|i| format!("alert line {i}")).collect();
    stream_lines(srv.plain, sensor, &lines[..4]).await;
    let n = wait_for(20, || async {
        let n = store.queue_len(q).await.unwrap();
        (n == 4).then_some(n)
    })
    .await;
    assert_eq!(n, Some(4));
    assert_eq!(kinds(web, q).await, Vec::<String>::new());
    assert_eq!(metric_alert(web, q, "fill").await, Some(0));

    // 6 of 10 (0.6 >= 0.5): a fill alert, in the API and in /metrics.
    let pushed_at = d4_store::now();
    stream_lines(srv.plain, sensor, &lines[4..6]).await;
    let n = wait_for(20, || async {
        let n = store.queue_len(q).await.unwrap();
        (n == 6).then_some(n)
    })
    .await;
    assert_eq!(n, Some(6));
    wait_kinds(web, q, &["fill"], 20).await;
    let fill = api_alerts(web, q).await.remove(0);
    assert_eq!((fill.1, fill.2), (0.6, 0.5), "value 6/10, level 0.5");
    assert!(fill.3 >= pushed_at, "since {} >= {pushed_at}", fill.3);
    assert_eq!(metric_alert(web, q, "fill").await, Some(1));
    assert_eq!(metric_alert(web, q, "age").await, Some(0));

    // The oldest entry passes 6 s: an age alert beside it.
    wait_kinds(web, q, &["age", "fill"], 20).await;
    let age = api_alerts(web, q)
        .await
        .into_iter()
        .find(|a| a.0 == "age")
        .unwrap();
    assert!(age.1 >= 6.0 && age.2 == 6.0, "{age:?}");
    assert_eq!(metric_alert(web, q, "age").await, Some(1));
    let (_, metrics) = http(web, "GET", "/metrics", &[], "").await;
    let oldest_series = format!(
        "d4_queue_oldest_age_seconds{{queue=\"{}\",kind=\"3\"}} ",
        q.simple()
    );
    let oldest: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(oldest_series.as_str()))
        .unwrap_or_else(|| panic!("{oldest_series} in {metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(oldest >= 6, "{oldest}");

    // Drained: both clear.
    let popped = store.pop_entries(q, 100).await.unwrap();
    assert_eq!(popped.len(), 6);
    wait_kinds(web, q, &[], 20).await;
    assert_eq!(metric_alert(web, q, "fill").await, Some(0));
    assert_eq!(metric_alert(web, q, "age").await, Some(0));

    // Each episode was logged once at its start and once at its end, whatever the number
    // of evaluations (interval 1 s, several seconds per episode).
    let log = srv.log_text();
    let count = |needle: &str| {
        log.lines()
            .filter(|l| l.contains(needle) && l.contains(&q.to_string()))
            .count()
    };
    assert_eq!(count("% full (level 50%)"), 1, "{log}");
    assert_eq!(count("queue alert started: oldest entry waits"), 1, "{log}");
    assert_eq!(count("queue alert ended: fill"), 1, "{log}");
    assert_eq!(count("queue alert ended: age"), 1, "{log}");

    // 12 lines into a queue of 10: 2 dropped, a trimmed alert (and a fill one).
    stream_lines(srv.plain, sensor, &lines).await;
    let t = wait_for(20, || async {
        let t = store.get_queue(q).await.unwrap().unwrap().trimmed;
        (t == 2).then_some(t)
    })
    .await;
    assert_eq!(t, Some(2), "12 lines into an empty queue of 10");
    wait_kinds(web, q, &["fill", "trimmed"], 20).await;
    let trimmed = api_alerts(web, q)
        .await
        .into_iter()
        .find(|a| a.0 == "trimmed")
        .unwrap();
    assert_eq!(trimmed.1, 2.0, "12 lines in a queue of 10: 2 dropped");
    assert_eq!(metric_alert(web, q, "trimmed").await, Some(1));
    // Read the queue (no fill, no age); the trimmed episode ends after 3 quiet seconds.
    store.pop_entries(q, 100).await.unwrap();
    wait_kinds(web, q, &[], 20).await;
    assert_eq!(metric_alert(web, q, "trimmed").await, Some(0));
    let log = srv.log_text();
    assert_eq!(
        log.lines()
            .filter(
                |l| l.contains("queue alert started: ") && l.contains("entries dropped")
                    || l.contains("queue alert ended: trimmed")
            )
            .count(),
        2,
        "{log}"
    );
}
