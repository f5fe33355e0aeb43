//! Hostile load against the real `d4 server`: 10,000 sockets that connect and never send
//! a header keep the server's memory bounded, and a real sensor is still served.

use std::net::TcpStream;
use std::time::Duration;

use crate::support::server::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_sockets_keep_memory_bounded() {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let want = 10_200u64;
    if soft < want {
        rlimit::setrlimit(rlimit::Resource::NOFILE, want.min(hard), hard).unwrap();
    }
    let n: usize = if hard >= want {
        10_000
    } else {
        (hard as usize).saturating_sub(200)
    };
    assert!(
        n >= 1000,
        "RLIMIT_NOFILE hard limit {hard} is too low for this test"
    );
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(
        tmp.path(),
        &[
            "--mode",
            "shared-secret",
            "--allow-reference-key",
            "--header-timeout",
            "300",
            // What one idle socket costs, not the pre-authentication caps (which close
            // all but 64 of one IP's silent sockets at once: server_hardening).
            "--preauth-ip-connections",
            "20000",
            "--preauth-connections",
            "20000",
        ],
    );
    let addr = srv.plain;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = srv.rss_kb();
    let socks = tokio::task::spawn_blocking(move || {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap());
        }
        v
    })
    .await
    .unwrap();
    // let the server accept every one of them
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss1 = srv.rss_kb();
    let per_conn = (rss1.saturating_sub(rss0)) * 1024 / n as u64;
    eprintln!("RSS before {rss0} KiB, with {n} idle sockets {rss1} KiB ({per_conn} B per socket)");
    assert!(rss1 < 200 * 1024, "RSS {rss1} KiB with {n} idle sockets");
    assert!(per_conn < 12 * 1024, "{per_conn} bytes per idle socket");

    // a real sensor is still served
    let u = Uuid::new_v4();
    let enc = d4_proto::Encoder::new(u, KEY, 3);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&enc.encode(1, b"still here\n").unwrap())
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    let mut b = [0u8; 4];
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await;
    let dir = srv.dir.clone();
    let ok = wait_for(20, || {
        let dir = dir.clone();
        async move { (sensor_bytes(&dir, u, 3) == b"still here\n").then_some(()) }
    })
    .await;
    assert!(ok.is_some());
    drop(socks);
    assert_eq!(srv.stop(), Some(0));
}
