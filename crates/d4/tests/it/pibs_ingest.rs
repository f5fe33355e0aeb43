//! `d4 pibs ingest` with the real binary: a run killed with `kill -9` in the middle of a
//! big capture, resumed, gives the same store as one clean run; reading a file again adds
//! nothing; the type-1 queue is drained through the shared consumer.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use d4_pibs::store::{open_embedded, Attack, PibsStore};
use d4_store::{QueueConfig, QueueEntry, QueueKind, StoreConfig};

fn ingest(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_d4"));
    c.args(["pibs", "ingest", "--data-dir"]).arg(data).args([
        "--sensor",
        "s1",
        "--retention-days",
        "0",
    ]);
    c
}

fn summary(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn everything(
    data: &Path,
) -> (
    d4_pibs::store::StoreInfo,
    Vec<Attack>,
    Vec<d4_pibs::store::BucketStats>,
) {
    let s = open_embedded(&data.join("pibs.redb")).unwrap();
    let mut attacks = s.attacks_in(0, u64::MAX, usize::MAX).unwrap();
    attacks.sort_by_key(|a| (a.victim, a.start));
    let mut buckets = Vec::new();
    for a in attacks.iter().step_by(37) {
        buckets.extend(s.victim(a.victim, 0, u64::MAX, 10_000).unwrap().1);
    }
    (s.info().unwrap(), attacks, buckets)
}

#[test]
fn kill_9_mid_file_then_resume_equals_one_clean_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("big.pcap");
    {
        let f = std::fs::File::create(&cap).unwrap();
        d4_pibs::synth::write_bench_pcap(std::io::BufWriter::new(f), 600_000, 9).unwrap();
    }
    let clean = tmp.path().join("clean");
    let first = summary(&ingest(&clean).arg(&cap).output().unwrap());
    assert_eq!(first["files"], 1);
    assert!(first["backscatter"].as_u64().unwrap() > 300_000);

    let killed = tmp.path().join("killed");
    let started = Instant::now();
    let mut kills = 0;
    for round in 0..2 {
        let mut child = ingest(&killed)
            .args(["-v", "--batch-records", "40000"])
            .arg(&cap)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stderr).lines() {
                let Ok(l) = l else { break };
                if l.contains("batch committed") {
                    let _ = tx.send(());
                }
            }
        });
        // kill right after the (round+1)-th commit of this run: mid-file (15 commits in all)
        for _ in 0..=round {
            rx.recv_timeout(Duration::from_secs(120)).expect("a commit");
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert_eq!(kills, 2, "the ingest was killed mid-file twice");
    let last = summary(&ingest(&killed).arg(&cap).output().unwrap());
    assert_eq!(last["files_resumed"], 1, "{last}");
    assert!(started.elapsed() < Duration::from_secs(300));

    let a = everything(&clean);
    let b = everything(&killed);
    assert_eq!(a.0, b.0, "store counters");
    assert_eq!(a.1.len(), b.1.len());
    assert!(a.1 == b.1, "attacks differ");
    assert!(a.2 == b.2, "bucket timelines differ");

    // Reading the file again (another name) adds nothing.
    let copy = tmp.path().join("copy.pcap");
    std::fs::copy(&cap, &copy).unwrap();
    let again = summary(&ingest(&clean).arg(&copy).output().unwrap());
    assert_eq!(
        (again["files"].as_u64(), again["files_skipped"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(everything(&clean).0, a.0);
}

#[test]
fn queue_paths_are_ingested_once_and_acknowledged() {
    use d4_pibs::synth::{pcap_file, reply_frame, Reply};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d4-data");
    // the server's layout: <data>/<sensor uuid>/1/YYYY/MM/DD/file
    let sensor = "15dde53e-50b5-4bbb-a761-17210179b4da";
    let dir = data.join(sensor).join("1/2023/11/14");
    std::fs::create_dir_all(&dir).unwrap();
    let victim = "198.51.100.7".parse().unwrap();
    let dark = "10.9.9.9".parse().unwrap();
    let t0 = 1_700_000_100u64;
    let frames: Vec<(u64, Vec<u8>)> = (0..50)
        .map(|i| (t0 + i, reply_frame(victim, 443, dark, 7, Reply::SynAck)))
        .collect();
    let f1 = dir.join("a.pcap");
    std::fs::write(&f1, pcap_file(1, &frames)).unwrap();
    let missing = dir.join("gone.pcap");
    let uuid = uuid::Uuid::new_v4();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let paths = [&f1, &missing, &f1];
    rt.block_on(async {
        let store = d4_store::open(&StoreConfig::new(&data)).await.unwrap();
        store
            .create_queue(
                QueueConfig {
                    uuid,
                    kind: QueueKind::Type(1),
                    description: "pibs ingest test".into(),
                    max_size: 100,
                    sensors: None,
                    groups: Vec::new(),
                },
                1,
            )
            .await
            .unwrap();
        let entries = paths
            .iter()
            .map(|p| QueueEntry::new(p.display().to_string()))
            .collect();
        store.push_entries(vec![uuid], entries, 2).await.unwrap();
    });
    let out = Command::new(env!("CARGO_BIN_EXE_d4"))
        .args(["pibs", "ingest", "--data-dir"])
        .arg(&data)
        .args([
            "--queue",
            &uuid.to_string(),
            "--until-empty",
            "--darknet-size",
            "256",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a missing file is reported: {stderr}"
    );
    assert!(stderr.contains("gone.pcap"), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (s["files"].as_u64(), s["files_skipped"].as_u64()),
        (Some(1), Some(1))
    );
    let left = rt.block_on(async {
        let store = d4_store::open(&StoreConfig::new(&data)).await.unwrap();
        store.queue_len(uuid).await.unwrap()
    });
    assert_eq!(left, 0, "the queue is acknowledged");
    let store = open_embedded(&data.join("pibs.redb")).unwrap();
    let attacks = store.attacks_in(0, u64::MAX, 10).unwrap();
    assert_eq!(attacks.len(), 1);
    let a = &attacks[0];
    assert_eq!((a.start, a.end, a.packets), (t0, t0 + 49, 50));
    assert_eq!(a.sensors.iter().collect::<Vec<_>>(), vec![sensor]);
    // 50 packets in one bucket: 1/6 packet/s, times 2^32 / 256
    assert_eq!(a.est_attack_pps, Some(50.0 / 300.0 * 16_777_216.0));
}

/// A queue entry naming a file that exists but cannot be read (here a directory): the
/// reader stops with an error and does not acknowledge the batch, so the entry comes back
/// to the next reader instead of being lost.
#[test]
fn an_unreadable_queue_file_is_not_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d4-data");
    let unreadable = tmp.path().join("a-directory.pcap");
    std::fs::create_dir_all(&unreadable).unwrap();
    let uuid = uuid::Uuid::new_v4();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = d4_store::open(&StoreConfig::new(&data)).await.unwrap();
        store
            .create_queue(
                QueueConfig {
                    uuid,
                    kind: QueueKind::Type(1),
                    description: "pibs unreadable".into(),
                    max_size: 10,
                    sensors: None,
                    groups: Vec::new(),
                },
                1,
            )
            .await
            .unwrap();
        let e = vec![QueueEntry::new(unreadable.display().to_string())];
        store.push_entries(vec![uuid], e, 2).await.unwrap();
    });
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_d4"))
            .args(["pibs", "ingest", "--data-dir"])
            .arg(&data)
            .args(["--queue", &uuid.to_string(), "--until-empty"])
            .args(["--consumer", "pibs-test"])
            .output()
            .unwrap()
    };
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("not acknowledged"), "{stderr}");
    // the same consumer gets its leased entry again: it fails the same way, nothing is lost
    let again = run();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && stderr.contains("a-directory.pcap"),
        "{stderr}"
    );
}
