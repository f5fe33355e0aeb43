//! `d4 pibs --queue`: file paths pushed to a type-1 analyzer queue of an embedded store are
//! analysed by the real binary.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use d4_pibs::packet::PROTO_TCP;
use d4_pibs::synth::*;
use d4_store::{QueueConfig, QueueEntry, QueueKind, StoreConfig};

fn capture(victim: Ipv4Addr, ts: u64) -> Vec<u8> {
    let dark = Ipv4Addr::new(10, 9, 9, 9);
    let a = Ipv4Addr::new(10, 0, 0, 1);
    let b = Ipv4Addr::new(192, 0, 2, 80);
    pcap_file(
        1,
        &[
            (
                ts,
                eth_ip(&ipv4(a, b, PROTO_TCP, &[], &tcp_header(40000, 80, 0x02))),
            ),
            (
                ts,
                eth_ip(&ipv4(b, a, PROTO_TCP, &[], &tcp_header(80, 40000, 0x12))),
            ),
            (
                ts + 1,
                eth_ip(&ipv4(
                    victim,
                    dark,
                    PROTO_TCP,
                    &[],
                    &tcp_header(443, 7, 0x12),
                )),
            ),
        ],
    )
}

/// Creates a type-1 queue in the embedded store of `dir` and pushes `paths` to it; the
/// store is closed again (the database lock released) before returning.
fn queue_with(dir: &std::path::Path, kind: QueueKind, paths: &[String]) -> uuid::Uuid {
    let uuid = uuid::Uuid::new_v4();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = d4_store::open(&StoreConfig::new(dir)).await.unwrap();
        store
            .create_queue(
                QueueConfig {
                    uuid,
                    kind,
                    description: "pibs test".into(),
                    max_size: 100,
                    sensors: None,
                    groups: Vec::new(),
                },
                1,
            )
            .await
            .unwrap();
        let entries = paths.iter().map(|p| QueueEntry::new(p.clone())).collect();
        store.push_entries(vec![uuid], entries, 2).await.unwrap();
    });
    uuid
}

fn run_pibs(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_d4"))
        .arg("pibs")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(60));
    out
}

#[test]
fn queue_paths_are_analysed_and_bad_ones_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d4-data");
    let f1 = tmp.path().join("one.cap");
    let f2 = tmp.path().join("two.cap.gz");
    std::fs::write(&f1, capture(Ipv4Addr::new(198, 51, 100, 7), 1_700_000_000)).unwrap();
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&capture(Ipv4Addr::new(198, 51, 100, 8), 1_700_000_300))
            .unwrap();
        std::fs::write(&f2, e.finish().unwrap()).unwrap();
    }
    let missing = tmp.path().join("gone.cap");
    let q = queue_with(
        &data,
        QueueKind::Type(1),
        &[
            f1.display().to_string(),
            missing.display().to_string(),
            f2.display().to_string(),
        ],
    );
    let out = run_pibs(
        &data,
        &["--queue", &q.to_string(), "-b", "--exit-when-empty"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "#timestamp, source IP, TCP flags, source port\n\
         1700000001,198.51.100.7,18,443\n\
         1700000301,198.51.100.8,18,443\n"
    );
    assert!(stderr.contains("gone.cap"), "{stderr}");
    // The queue is drained: a second run finds nothing.
    let out = run_pibs(
        &data,
        &["--queue", &q.to_string(), "-b", "--exit-when-empty"],
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "#timestamp, source IP, TCP flags, source port\n"
    );
}

#[test]
fn queue_json_per_file_and_wrong_queue_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d4-data");
    let f1 = tmp.path().join("one.cap");
    std::fs::write(&f1, capture(Ipv4Addr::new(198, 51, 100, 7), 1_700_000_000)).unwrap();
    let q = queue_with(&data, QueueKind::Type(1), &[f1.display().to_string()]);
    let out = run_pibs(
        &data,
        &["--queue", &q.to_string(), "--json", "--exit-when-empty"],
    );
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["victim"], "198.51.100.7");
    // A passive-DNS queue is not for pibs; an unknown queue neither.
    let dns = queue_with(&data, QueueKind::Type(8), &[]);
    let out = run_pibs(&data, &["--queue", &dns.to_string(), "--exit-when-empty"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("type 1"));
    let out = run_pibs(
        &data,
        &[
            "--queue",
            &uuid::Uuid::new_v4().to_string(),
            "--exit-when-empty",
        ],
    );
    assert!(!out.status.success());
}

#[test]
fn queue_of_a_redis_store_is_consumed_too() {
    let redis = d4_testkit::RedisServer::start();
    let url = redis.url_db(0);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d4-data");
    let f1 = tmp.path().join("one.cap");
    std::fs::write(&f1, capture(Ipv4Addr::new(203, 0, 113, 9), 1_700_000_000)).unwrap();
    let q = uuid::Uuid::new_v4();
    let config = StoreConfig {
        redis_url: Some(url.clone()),
        ..StoreConfig::new(&data)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = d4_store::open(&config).await.unwrap();
        assert_eq!(store.backend(), "redis");
        store
            .create_queue(
                QueueConfig {
                    uuid: q,
                    kind: QueueKind::Type(1),
                    description: "pibs on redis".into(),
                    max_size: 100,
                    sensors: None,
                    groups: Vec::new(),
                },
                1,
            )
            .await
            .unwrap();
        store
            .push_entries(vec![q], vec![QueueEntry::new(f1.display().to_string())], 2)
            .await
            .unwrap();
    });
    let out = run_pibs(
        &data,
        &[
            "--queue",
            &q.to_string(),
            "--redis",
            &url,
            "-b",
            "--exit-when-empty",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "#timestamp, source IP, TCP flags, source port\n1700000001,203.0.113.9,18,443\n"
    );
    rt.block_on(async {
        let store = d4_store::open(&config).await.unwrap();
        assert_eq!(store.queue_len(q).await.unwrap(), 0, "the queue is drained");
    });
}
