#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Crash test: `kill -9` the real `d4 server` in the middle of a stream, restart it on the
//! same data dir: the files and the analyzer queue hold every frame the server had
//! handled before the crash, none twice; the sensor reconnects and completes.
//!
//! The sensor is driven from the test with `d4_proto::Encoder` (it resumes from the last
//! line found on disk, as a spooling client resending what was not delivered would).

mod server_support;

use std::collections::HashSet;
use std::time::Duration;

use d4_store::{QueueConfig, QueueKind};
use server_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const N: usize = 6000;

fn line(i: usize) -> String {
    format!("seq {i:06}\n")
}

fn seqs(bytes: &[u8]) -> Vec<usize> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| l.trim_start_matches("seq ").parse().unwrap())
        .collect()
}

async fn send(addr: std::net::SocketAddr, u: Uuid, from: usize, to: usize, pace: bool) {
    let enc = d4_proto::Encoder::new(u, KEY, 3);
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    for i in from..to {
        if s.write_all(&enc.encode(i as u64, line(i).as_bytes()).unwrap())
            .await
            .is_err()
        {
            return; // the server died
        }
        if pace && i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let _ = s.shutdown().await;
    let mut b = [0u8; 4];
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read(&mut b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing_acknowledged_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--mode", "shared-secret"];
    let srv = ServerProc::start(tmp.path(), &args);
    let store = srv.store().await;
    let q = QueueConfig {
        uuid: Uuid::new_v4(),
        kind: QueueKind::Type(3),
        description: "crash".into(),
        max_size: 100_000,
        sensors: None,
    };
    store
        .create_queue(q.clone(), d4_store::now())
        .await
        .unwrap();
    let u = Uuid::new_v4();
    let addr = srv.plain;
    let sender = tokio::spawn(send(addr, u, 0, N, true));
    // wait until a good part is handled, then crash
    let seen = wait_for(60, || {
        let store = store.clone();
        async move {
            let n = store.queue_len(q.uuid).await.ok()?;
            (n >= 1500).then_some(n)
        }
    })
    .await
    .expect("the stream did not progress");
    drop(store);
    srv.crash();
    let _ = tokio::time::timeout(Duration::from_secs(30), sender).await;

    // restart: the journal is replayed
    let srv = ServerProc::start(tmp.path(), &args);
    let store = srv.store().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let on_disk = seqs(&sensor_bytes(&srv.dir, u, 3));
    let k = on_disk.len();
    assert_eq!(
        on_disk,
        (0..k).collect::<Vec<_>>(),
        "files: a gap or a duplicate"
    );
    assert!(
        k as u64 >= seen,
        "{k} lines on disk, {seen} were queued before the crash"
    );
    assert!(k < N, "the crash came too late to test anything");
    eprintln!("crash after {seen} queued; {k} lines on disk after restart and replay");

    // the sensor reconnects and completes
    send(srv.plain, u, k, N, false).await;
    let dir = srv.dir.clone();
    let done = wait_for(60, || {
        let dir = dir.clone();
        async move { (seqs(&sensor_bytes(&dir, u, 3)).len() >= N).then_some(()) }
    })
    .await;
    assert!(done.is_some(), "the stream did not complete");
    let all = seqs(&sensor_bytes(&srv.dir, u, 3));
    assert_eq!(all, (0..N).collect::<Vec<_>>(), "files after completion");
    let mut entries = Vec::new();
    loop {
        let e = store.pop_entries(q.uuid, 10_000).await.unwrap();
        if e.is_empty() {
            break;
        }
        entries.extend(e.iter().map(|e| e.text().into_owned()));
    }
    let set: HashSet<_> = entries.iter().cloned().collect();
    let expected: HashSet<_> = (0..N).map(|i| line(i).trim_end().to_string()).collect();
    assert_eq!(set, expected, "every line reached the queue");
    // Known limit (docs/server.md): a queue push is a store commit, the journal ack comes
    // right after it; a kill -9 inside that commit replays the one frame in flight, so its
    // lines may be queued twice. Files are exact. Never more than that one frame.
    let dups = entries.len() - set.len();
    eprintln!("queue entries duplicated by the crash: {dups}");
    assert!(dups <= 1, "{dups} queue entries twice");
    drop(store);
    assert_eq!(srv.stop(), Some(0));
}
