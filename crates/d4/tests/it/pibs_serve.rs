//! `d4 pibs serve --queue` through the real binary: the server ingests the type-1 queue's
//! pcap files into the store it serves (one process owns the database), so an attack
//! planted in a file pushed while it runs shows up in `/attacks` and `/victim/<ip>`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use d4_store::{QueueConfig, QueueEntry, QueueKind, StoreConfig};
use serde_json::Value;

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_ingests_its_queue_while_answering() {
    use d4_pibs::synth::{pcap_file, reply_frame, Reply};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d4-data");
    std::fs::create_dir_all(&data).unwrap();
    // a capture with 40 SYN/ACKs from one victim on port 8443
    let victim = "203.0.113.44".parse().unwrap();
    let t0 = 1_700_000_000u64;
    let frames: Vec<(u64, Vec<u8>)> = (0..40u64)
        .map(|i| {
            let dark = format!("10.1.0.{}", i + 1).parse().unwrap();
            (
                t0 + i,
                reply_frame(victim, 8443, dark, 40_000, Reply::SynAck),
            )
        })
        .collect();
    let f = tmp.path().join("live.pcap");
    std::fs::write(&f, pcap_file(1, &frames)).unwrap();
    // its path waits in the type-1 queue (pushed before the server owns the d4 store)
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
                    description: "pibs serve queue".into(),
                    max_size: 100,
                    sensors: None,
                    groups: Vec::new(),
                },
                1,
            )
            .await
            .unwrap();
        let e = vec![QueueEntry::new(f.display().to_string())];
        store.push_entries(vec![uuid], e, 2).await.unwrap();
    });
    drop(rt);
    // no pibs.redb yet: --queue creates it
    let (child, port) = d4_testkit::http::spawn_listening("d4 pibs serve", |port| {
        Command::new(env!("CARGO_BIN_EXE_d4"))
            .args(["pibs", "serve", "--data-dir"])
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--queue", &uuid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    });
    let _served = Served(child);
    let get = |path: &str| -> Value {
        let r = d4_testkit::http::get(port, path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let attacks = loop {
        let a = get("/attacks");
        if a["attacks"].as_array().is_some_and(|l| !l.is_empty()) || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let list = attacks["attacks"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{attacks}");
    assert_eq!(list[0]["victim"], "203.0.113.44");
    assert_eq!(list[0]["packets"], 40);
    assert_eq!(list[0]["start"], t0);
    assert_eq!(list[0]["end"], t0 + 39);
    assert_eq!(list[0]["ports"][0]["port"], 8443);
    let v = get("/victim/203.0.113.44");
    assert_eq!(v["timeline"][0]["packets"], 40, "{v}");
}
