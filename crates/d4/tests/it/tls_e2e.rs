//! `d4 tls -r` → `d4 server` (`ja3-jl`) → analyzer queue: the records reach the queue as
//! file paths of JSON records (what analyzer-d4-passivessl reads), whole and unchanged,
//! and the certificates are saved by the collector under their SHA-1.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use d4_store::QueueKind;
use serde_json::Value;

use crate::support::server::{create_queue, register_sensor, ServerProc};
use crate::tls_cli::{capture, cases, check, d4, parse_record, records};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_reach_the_ja3_jl_queue() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = ServerProc::start(&data, &["--mode", "registration"]);
    let store = srv.store().await;
    store
        .set_ext_type_accepted("ja3-jl".into(), true)
        .await
        .unwrap();
    let key = "tls sensor key";
    let uuid = register_sensor(&store, key, "d4 tls").await;
    let q = create_queue(&store, QueueKind::Ext("ja3-jl".into()), "pssl", 10_000).await;

    let all: Vec<_> = cases().into_iter().step_by(2).collect();
    let (pcap, want) = capture(&all);
    let cap_path = dir.path().join("c.pcap");
    std::fs::write(&cap_path, &pcap).unwrap();
    // what the sensor prints for the same capture: the records the queue must hold
    let local = d4().arg("tls").arg("-r").arg(&cap_path).output().unwrap();
    assert!(local.status.success());
    let expected = records(&local.stdout);
    assert_eq!(expected.len(), all.len());

    let out = d4()
        .arg("tls")
        .arg("-r")
        .arg(&cap_path)
        .args(["--destination", &srv.tls.unwrap().to_string()])
        .args(["--uuid", &uuid.to_string(), "--key", key, "--insecure"])
        .arg("--spool-dir")
        .arg(dir.path().join("spool"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    assert!(
        out.stdout.is_empty(),
        "records went to the collector, not stdout"
    );

    // the queue holds one JSON file path per record
    let mut got: Vec<Value> = Vec::new();
    let t = Instant::now();
    while got.len() < all.len() && t.elapsed() < Duration::from_secs(60) {
        for e in store.pop_entries(q.uuid, 1000).await.unwrap() {
            let path = e.text().into_owned();
            assert!(path.ends_with(".json"), "{path}");
            let body = std::fs::read(&path).unwrap();
            got.push(parse_record(std::str::from_utf8(&body).unwrap().trim_end()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got.len(), all.len(), "server log:\n{}", srv.log_text());
    let by_port = |v: &[Value]| -> HashMap<String, Value> {
        v.iter()
            .map(|r| (r["ClientPort"].as_str().unwrap().to_owned(), r.clone()))
            .collect()
    };
    let (got, expected) = (by_port(&got), by_port(&expected));
    assert_eq!(
        got, expected,
        "the queue holds exactly what the sensor found"
    );
    for (port, r) in &got {
        let port: u16 = port.parse().unwrap();
        let case = all.iter().find(|c| c.cap.client.port() == port).unwrap();
        let (t, e) = &want[&port];
        check(r, t, e, &case.cap);
        // the collector saved each certificate under its SHA-1
        for c in r["Certificates"].as_array().into_iter().flatten() {
            let sha1 = c["CertHash"].as_str().unwrap();
            let p = data.join("datas/ja3-jl/certs").join(format!("{sha1}.crt"));
            assert!(p.exists(), "{} missing", p.display());
        }
    }
}
