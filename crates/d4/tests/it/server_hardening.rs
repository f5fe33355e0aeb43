//! Attacks on the sensor port of the real `d4 server`, from loopback addresses other than
//! the real sensor's (127.0.0.2 and up), each bounded in time and count: what a peer can
//! hold before it shows a valid frame stays under the documented bounds, a real sensor
//! keeps streaming meanwhile, and the server is healthy after.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::server::*;
use d4_proto::Encoder;
use d4_store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use uuid::Uuid;

const SENSOR_KEY: &str = "hardening test sensor key";

async fn register(store: &Arc<dyn Store>) -> Uuid {
    register_sensor(store, SENSOR_KEY, "hardening test").await
}

/// A connection to `to` from the loopback address `from`.
async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(from, 0))?;
    s.connect(to).await
}

fn attacker_ip(i: usize) -> IpAddr {
    IpAddr::from([127, 0, 0, 2 + (i % 200) as u8])
}

/// A real sensor: streams numbered lines (type 3) from 127.0.0.1 for `secs` seconds.
async fn sensor(addr: SocketAddr, u: Uuid, secs: u64) -> Vec<u8> {
    let enc = Encoder::new(u, SENSOR_KEY.as_bytes(), 3);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut sent = Vec::new();
    let t0 = Instant::now();
    let mut i = 0u64;
    while t0.elapsed() < Duration::from_secs(secs) {
        let line = format!("line {i} of the real sensor\n");
        s.write_all(&enc.encode(d4_store::now(), line.as_bytes()).unwrap())
            .await
            .unwrap();
        sent.extend_from_slice(line.as_bytes());
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.shutdown().await.unwrap();
    sent
}

/// Waits until the sensor's files hold `want`.
async fn arrived(dir: &std::path::Path, u: Uuid, want: &[u8]) -> bool {
    wait_for(20, || async move {
        (sensor_bytes(dir, u, 3) == want).then_some(())
    })
    .await
    .is_some()
}

/// The attack of the issue: connections that present a real sensor's UUID (not a secret)
/// with a wrong HMAC, declare a payload of almost `max_payload` and send most of it, then
/// stall. Without a bound each held its payload until the header timeout (~1 MB each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_payload_flood_holds_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(tmp.path(), &["--header-timeout", "60"]);
    let store = srv.store().await;
    let u = register(&store).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let addr = srv.plain;
    let real = tokio::spawn(sensor(addr, u, 8));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = srv.rss_kb();

    let wrong = Encoder::new(u, b"not the sensor's key", 3);
    let frame = wrong.encode(d4_store::now(), &vec![b'x'; 990_000]).unwrap();
    let frame = Arc::new(frame[..62 + 900_000].to_vec());
    let mut attackers = Vec::new();
    for i in 0..300 {
        let frame = frame.clone();
        attackers.push(tokio::spawn(async move {
            let Ok(mut s) = connect_from(attacker_ip(i % 20), addr).await else {
                return None;
            };
            let _ = s.write_all(&frame).await;
            Some(s) // stalled: kept open
        }));
    }
    let mut peak = 0;
    let mut held = Vec::new();
    for a in attackers {
        if let Some(s) = a.await.unwrap() {
            held.push(s);
        }
        peak = peak.max(srv.rss_kb());
    }
    for _ in 0..20 {
        peak = peak.max(srv.rss_kb());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let grew_mb = peak.saturating_sub(base) / 1024;
    eprintln!("keyless flood: RSS {base} kB before, peak {peak} kB (+{grew_mb} MB)");
    assert!(
        grew_mb < 64,
        "RSS grew by {grew_mb} MB during the keyless flood"
    );

    let sent = real.await.unwrap();
    assert!(
        arrived(tmp.path(), u, &sent).await,
        "the real sensor lost data"
    );
    drop(held);
    // Healthy after: a new session of the sensor goes through.
    let after = sensor(addr, u, 1).await;
    let mut all = sent.clone();
    all.extend_from_slice(&after);
    assert!(arrived(tmp.path(), u, &all).await);
    let m = srv.log_text();
    assert!(
        m.contains("preauth-memory"),
        "no refusal logged for the budget"
    );
    assert_eq!(srv.stop(), Some(0));
}

/// Connections that never send a byte: per source IP at most `--preauth-ip-connections`
/// stay open; the rest are closed at once instead of piling up to the fd limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_capped_per_ip() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(
        tmp.path(),
        &["--header-timeout", "60", "--preauth-ip-connections", "16"],
    );
    let store = srv.store().await;
    let u = register(&store).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let addr = srv.plain;
    let fds0 = open_fds(srv.pid());
    let from = attacker_ip(7);
    let mut conns = Vec::new();
    for _ in 0..200 {
        if let Ok(s) = connect_from(from, addr).await {
            conns.push(s);
        }
    }
    // Those over the cap are closed by the server: their read sees the end at once.
    let mut closed = 0;
    for s in conns.iter_mut() {
        let mut b = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(50), s.read(&mut b)).await
        {
            closed += 1;
        }
    }
    let fds = open_fds(srv.pid());
    eprintln!(
        "stalled flood: {closed} of {} closed, server fds {fds0} -> {fds}",
        conns.len()
    );
    assert!(closed >= 200 - 16 - 2, "only {closed} closed");
    assert!(fds < fds0 + 40, "server fds {fds0} -> {fds}");
    // A real sensor (another IP) is not affected.
    let sent = sensor(addr, u, 2).await;
    assert!(arrived(tmp.path(), u, &sent).await);
    let log = srv.log_text();
    let warned = log.matches("too many unauthenticated connections").count();
    assert!(warned <= 2, "{warned} warnings for one IP's flood");
    drop(conns);
    assert_eq!(srv.stop(), Some(0));
}

/// A known UUID with a bad HMAC: the sensor's last error is written once per (sensor, IP)
/// and minute, not at every connection (which let anyone overwrite it at will).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hmac_floods_do_not_rewrite_the_last_error() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(tmp.path(), &[]);
    let store = srv.store().await;
    let u = register(&store).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let addr = srv.plain;
    let wrong = Encoder::new(u, b"wrong key", 3)
        .encode(d4_store::now(), b"x\n")
        .unwrap();
    let hit = |ip: IpAddr| {
        let wrong = wrong.clone();
        async move {
            let mut s = connect_from(ip, addr).await.unwrap();
            let _ = s.write_all(&wrong).await;
            let mut b = [0u8; 16];
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await;
        }
    };
    let a = attacker_ip(1);
    let b = attacker_ip(2);
    hit(a).await;
    let st = &store;
    let first = wait_for(10, || async move {
        let e = st.get_sensor(u).await.ok()??.last_error?;
        e.message.contains(&a.to_string()).then_some(e)
    })
    .await
    .expect("the first bad HMAC is recorded");
    assert!(first.message.contains("bad-hmac"), "{first:?}");
    hit(b).await;
    let second = wait_for(10, || async move {
        let e = st.get_sensor(u).await.ok()??.last_error?;
        e.message.contains(&b.to_string()).then_some(e)
    })
    .await
    .expect("another IP is recorded");
    for _ in 0..100 {
        hit(a).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let last = store
        .get_sensor(u)
        .await
        .unwrap()
        .unwrap()
        .last_error
        .unwrap();
    assert_eq!(last, second, "the flood from {a} rewrote the last error");
    let warned = srv.log_text().matches("bad HMAC").count();
    assert!(warned <= 3, "{warned} warnings for 102 bad HMACs");
    assert!(!srv.log_text().contains("panicked"));
    assert_eq!(srv.stop(), Some(0));
}
