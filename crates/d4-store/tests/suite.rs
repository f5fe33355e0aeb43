//! The store test suite against the embedded backend and against RemoteStore through a
//! real Unix-socket server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use d4_store::prelude::*;
use d4_store::{open, serve_socket, EmbeddedStore, RemoteStore, StoreConfig, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    d4_store::testsuite::run_all(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_redis() {
    let server = d4_testkit::RedisServer::start();
    let mut cfg = StoreConfig::new("/nonexistent-unused");
    cfg.redis_url = Some(server.url_db(0));
    let store = open(&cfg).await.unwrap();
    assert_eq!(store.backend(), "redis");
    d4_store::testsuite::run_all(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_redis_separate_databases() {
    let server = d4_testkit::RedisServer::start();
    let mut cfg = StoreConfig::new("/nonexistent-unused");
    cfg.redis_url = Some(server.url_db(1));
    cfg.redis_metadata_url = Some(server.url_db(2));
    cfg.redis_queue_url = Some(server.url_db(3));
    let store = open(&cfg).await.unwrap();
    d4_store::testsuite::run_all(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_remote_over_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let sock = dir.path().join("d4.sock");
    let server = serve_socket(embedded, &sock).await.unwrap();
    let remote: Arc<dyn Store> = Arc::new(RemoteStore::connect(&sock).await.unwrap());
    assert_eq!(remote.backend(), "remote");
    d4_store::testsuite::run_all(remote).await;
    server.shutdown();
    assert!(!sock.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_picks_embedded_then_socket_then_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::new(dir.path().join("data"));
    // Free: embedded (data dir created).
    let first = open(&cfg).await.unwrap();
    assert_eq!(first.backend(), "embedded");
    // Held, no socket: a clear error naming the socket.
    let err = open(&cfg).await.unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("d4.sock"), "{err}");
    // Held and served: remote.
    let server = serve_socket(first.clone(), &cfg.socket_path())
        .await
        .unwrap();
    let second = open(&cfg).await.unwrap();
    assert_eq!(second.backend(), "remote");
    // A second server on the same socket is refused.
    assert!(matches!(
        serve_socket(first.clone(), &cfg.socket_path()).await,
        Err(StoreError::AlreadyExists(_))
    ));
    server.shutdown();
    // A stale socket file (nobody answering) is replaced.
    std::fs::write(cfg.socket_path(), b"").unwrap();
    let server = serve_socket(first.clone(), &cfg.socket_path())
        .await
        .unwrap();
    assert_eq!(open(&cfg).await.unwrap().backend(), "remote");
    server.shutdown();
    // Redis: a URL nobody answers is a clear connection error.
    let mut redis = cfg.clone();
    redis.redis_url = Some("redis://127.0.0.1:1/0".into());
    assert!(matches!(open(&redis).await, Err(StoreError::Connection(_))));
    // embedded_only never falls back.
    let mut only = cfg.clone();
    only.embedded_only = true;
    assert!(matches!(open(&only).await, Err(StoreError::Locked { .. })));
    drop(first);
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let q = uuid::Uuid::new_v4();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store
            .create_queue(
                d4_store::QueueConfig {
                    uuid: q,
                    kind: d4_store::QueueKind::Type(8),
                    description: String::new(),
                    max_size: 10,
                    sensors: None,
                    groups: Vec::new(),
                },
                1,
            )
            .await
            .unwrap();
        store
            .push_entries(vec![q], vec![d4_store::QueueEntry::new("kept")], 1)
            .await
            .unwrap();
        store.set_type_accepted(1, false).await.unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.pop_entries(q, 10).await.unwrap()[0].text(), "kept");
    assert!(
        !store.accepted_types().await.unwrap().contains(&1),
        "settings not reset to defaults"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_rejects_garbage_and_keeps_serving() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let sock = dir.path().join("d4.sock");
    let server = serve_socket(embedded, &sock).await.unwrap();
    let stream = tokio::net::UnixStream::connect(&sock).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"not json\n{\"op\":\"no_such_op\"}\n{\"op\":\"ping\"}\n")
        .await
        .unwrap();
    let mut line = String::new();
    for want in ["\"err\"", "\"err\"", "pong"] {
        line.clear();
        r.read_line(&mut line).await.unwrap();
        assert!(line.contains(want), "{line}");
    }
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_client_leaving_a_blocking_pop_loses_nothing() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let sock = dir.path().join("d4.sock");
    let server = serve_socket(embedded.clone(), &sock).await.unwrap();
    let q = uuid::Uuid::new_v4();
    embedded
        .create_queue(
            d4_store::QueueConfig {
                uuid: q,
                kind: d4_store::QueueKind::Type(3),
                description: String::new(),
                max_size: 10,
                sensors: None,
                groups: Vec::new(),
            },
            1,
        )
        .await
        .unwrap();
    let req = serde_json::to_string(&d4_store::Request::PopEntriesBlocking {
        queue: q,
        max: 10,
        timeout: std::time::Duration::from_secs(30),
    })
    .unwrap();
    let mut stream = tokio::net::UnixStream::connect(&sock).await.unwrap();
    stream
        .write_all(format!("{req}\n").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(stream); // the analyzer dies while waiting
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    embedded
        .push_entries(vec![q], vec![d4_store::QueueEntry::new("keep me")], 2)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        embedded.queue_len(q).await.unwrap(),
        1,
        "the entry stays queued"
    );
    server.shutdown();
}
