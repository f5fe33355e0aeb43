//! Crash tests of the delivery path across file rotations: the real `d4 server` rotates
//! its type-3 files every few frames (`--rotation-bytes`) and dies between a rotation and
//! the next journal acknowledgement, by the test hook `D4_TEST_CRASH_AFTER_PUSH` (abort
//! right after a queue push, before the acknowledgement) and by `kill -9` at a random
//! point while frames stream in. After each restart (journal replay) every journaled line
//! must be in the files and in the queue exactly once, and every file holds whole lines
//! in order.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use crate::support::server::*;
use d4_proto::Encoder;
use d4_store::QueueKind;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

fn line(i: usize) -> String {
    format!("R{i:08} {} E{i:08}\n", "y".repeat((i * 13) % 90))
}

fn parse(l: &str) -> Option<usize> {
    let a: usize = l.get(1..9)?.parse().ok()?;
    (line(a).trim_end() == l).then_some(a)
}

/// Whole lines in the session journals on disk (every frame there was accepted).
fn journaled(data: &Path) -> HashSet<usize> {
    let mut out = HashSet::new();
    for p in files(&data.join("journal")) {
        if !p.to_string_lossy().ends_with(".jnl") {
            continue;
        }
        let mut input = bytes::Bytes::from(std::fs::read(&p).unwrap());
        let mut dec = d4_proto::Decoder::with_max_payload(u32::MAX);
        while let Ok(Some(f)) = dec.decode(&mut input) {
            for l in String::from_utf8_lossy(&f.payload).lines() {
                out.extend(parse(l));
            }
        }
    }
    out
}

/// Lines per file of the sensor's type-3 tree (a file and its `.gz` twin read once).
fn lines_on_disk(data: &Path, u: Uuid) -> Vec<(String, Vec<usize>)> {
    let root = data.join(u.simple().to_string()).join("3");
    let all = files(&root);
    let names: HashSet<String> = all
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut out = Vec::new();
    for p in &all {
        let s = p.to_string_lossy().into_owned();
        if s.ends_with(".tmp") {
            continue;
        }
        if let Some(orig) = s.strip_suffix(".gz") {
            if names.contains(orig) {
                continue;
            }
        }
        let c = content(p).unwrap_or_default();
        let nums = String::from_utf8_lossy(&c)
            .lines()
            .map(|l| parse(l).unwrap_or_else(|| panic!("{s}: not a whole line: {l:?}")))
            .collect();
        out.push((s, nums));
    }
    out
}

/// Streams frames of 6 whole lines each over plain TCP until the server goes away or
/// `max` frames were sent; returns the number of frames written.
async fn stream(addr: std::net::SocketAddr, u: Uuid, max: usize, pause_every: usize) -> usize {
    let enc = Encoder::new(u, KEY, 3);
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let mut n = 0;
    for f in 0..max {
        let payload: String = (f * 6..f * 6 + 6).map(line).collect();
        let bytes = enc.encode(f as u64, payload.as_bytes()).unwrap();
        if s.write_all(&bytes).await.is_err() {
            break;
        }
        n += 1;
        if pause_every > 0 && f % pause_every == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let _ = s.flush().await;
    n
}

/// After a restart: the replay put every journaled line once in the files and once in
/// the queue, files hold lines in order, and files and queue agree.
async fn check_delivered_once(data: &Path, u: Uuid, q: Uuid, journaled: &HashSet<usize>) {
    let srv = ServerProc::start(data, &["--mode", "shared-secret", "--allow-reference-key"]);
    let store = srv.store().await;
    let mut queued: Vec<usize> = Vec::new();
    let mut idle = 0;
    while idle < 10 {
        let batch = store.pop_entries(q, 100_000).await.unwrap();
        if batch.is_empty() {
            idle += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        idle = 0;
        queued.extend(batch.iter().map(|e| parse(e.text().trim_end()).unwrap()));
    }
    drop(store);
    assert_eq!(srv.stop(), Some(0));
    let mut count: HashMap<usize, usize> = HashMap::new();
    for (file, nums) in lines_on_disk(data, u) {
        for w in nums.windows(2) {
            assert!(w[0] < w[1], "{file}: line {} then {}", w[0], w[1]);
        }
        for n in nums {
            *count.entry(n).or_default() += 1;
        }
    }
    let twice: Vec<_> = count
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, _)| *n)
        .collect();
    assert!(
        twice.is_empty(),
        "lines written twice to the files: {twice:?}"
    );
    let missing: Vec<_> = journaled
        .iter()
        .filter(|n| !count.contains_key(n))
        .collect();
    assert!(
        missing.is_empty(),
        "journaled lines missing from the files: {missing:?}"
    );
    let mut seen = HashSet::new();
    let dup_q: Vec<_> = queued.iter().filter(|n| !seen.insert(**n)).collect();
    assert!(dup_q.is_empty(), "lines queued twice: {dup_q:?}");
    let on_disk: HashSet<usize> = count.keys().copied().collect();
    assert_eq!(seen, on_disk, "files and queue disagree");
}

/// The hook aborts the server right after a queue push and before the journal
/// acknowledgement, while rotations (every ~3 frames) happened since the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_a_rotation_and_the_next_ack_duplicates_nothing() {
    for (round, at) in [("a", "7"), ("b", "23")] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let srv = ServerProc::start_at(
            &data,
            "127.0.0.1:0",
            "127.0.0.1:0",
            &[
                "--mode",
                "shared-secret",
                "--allow-reference-key",
                "--rotation-bytes",
                "1500",
            ],
            &[("D4_TEST_CRASH_AFTER_PUSH", at)],
        );
        let store = srv.store().await;
        let q = create_queue(&store, QueueKind::Type(3), "rot", 1_000_000).await;
        drop(store);
        let u = Uuid::new_v4();
        let sent = stream(srv.plain, u, 5_000, 0).await;
        let st = srv.wait_died(60);
        assert!(
            !st.success(),
            "round {round}: the hook must abort the server"
        );
        let j = journaled(&data);
        assert!(
            !j.is_empty(),
            "round {round}: nothing journaled ({sent} frames sent)"
        );
        eprintln!(
            "round {round}: {sent} frames sent, {} lines journaled",
            j.len()
        );
        check_delivered_once(&data, u, q.uuid, &j).await;
    }
}

/// `kill -9` at a random moment of a stream with a rotation every ~3 frames, three
/// times; each restart replays, and nothing is written or queued twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_files_rotate_duplicates_nothing() {
    let mut rng = Rng(0x5eed_d4d4);
    for round in 0..3 {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let srv = ServerProc::start(
            &data,
            &[
                "--mode",
                "shared-secret",
                "--allow-reference-key",
                "--rotation-bytes",
                "1500",
            ],
        );
        let store = srv.store().await;
        let q = create_queue(&store, QueueKind::Type(3), "rot", 1_000_000).await;
        drop(store);
        let u = Uuid::new_v4();
        let addr = srv.plain;
        let sender = tokio::spawn(stream(addr, u, 20_000, 10));
        tokio::time::sleep(Duration::from_millis(150 + rng.below(600))).await;
        srv.crash();
        let sent = sender.await.unwrap();
        let j = journaled(&data);
        eprintln!(
            "round {round}: {sent} frames sent, {} lines journaled",
            j.len()
        );
        check_delivered_once(&data, u, q.uuid, &j).await;
    }
}
