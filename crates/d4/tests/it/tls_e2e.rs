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

    // a `d4 client` config dir, as the reference's sensors have; its type, source and meta
    // header are not what d4 tls sends (ja3-jl is)
    let conf = dir.path().join("sensor");
    std::fs::create_dir(&conf).unwrap();
    for (name, value) in [
        ("uuid", uuid.to_string()),
        ("key", key.to_string()),
        ("destination", srv.tls.unwrap().to_string()),
        ("type", "1".to_string()),
        ("source", "/nonexistent/file".to_string()),
        ("metaheader.json", r#"{"type":"other"}"#.to_string()),
    ] {
        std::fs::write(conf.join(name), format!("{value}\n")).unwrap();
    }
    let out = d4()
        .arg("tls")
        .arg("-r")
        .arg(&cap_path)
        .arg("--d4")
        .arg(&conf)
        .arg("--insecure")
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

/// A collector that is away with a spool too small for the records: reading the capture
/// file pauses (nothing is dropped) until the collector comes up, then every record
/// arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_pauses_the_capture_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // a free port for the collector that is not there yet
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let all = cases();
    let (pcap, _) = capture(&all);
    let cap_path = dir.path().join("c.pcap");
    std::fs::write(&cap_path, &pcap).unwrap();
    let key = "tls sensor key";
    let uuid = uuid::Uuid::new_v4();
    let spool = dir.path().join("spool");
    let mut child = d4()
        .arg("tls")
        .arg("-r")
        .arg(&cap_path)
        .args(["--destination", &format!("127.0.0.1:{port}")])
        .args(["--uuid", &uuid.to_string(), "--key", key, "--insecure"])
        .arg("--spool-dir")
        .arg(&spool)
        .args(["--spool-max", "16384"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the records do not fit: the reader waits instead of dropping or finishing
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "d4 tls waits for room in the spool"
    );
    let spooled: u64 = std::fs::read_dir(&spool)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    assert!(spooled <= 16384 + 8192, "spool holds {spooled} bytes");

    // the collector comes up on that port: everything drains, nothing lost
    let data = dir.path().join("data");
    let srv = ServerProc::start_at(
        &data,
        &format!("127.0.0.1:{port}"),
        "127.0.0.1:0",
        &["--mode", "registration"],
        &[],
    );
    let store = srv.store().await;
    store
        .set_ext_type_accepted("ja3-jl".into(), true)
        .await
        .unwrap();
    store
        .register_sensor(d4_store::SensorRegistration {
            uuid,
            hmac_key: Some(key.into()),
            mail: None,
            third_party: false,
            description: Some("d4 tls".into()),
            approve: true,
        })
        .await
        .unwrap();
    let q = create_queue(&store, QueueKind::Ext("ja3-jl".into()), "pssl", 10_000).await;
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "d4 tls did not finish"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut log = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("spool full"), "{log}");
    let mut ports = std::collections::BTreeSet::new();
    let mut n = 0;
    let t = Instant::now();
    while ports.len() < all.len() && t.elapsed() < Duration::from_secs(60) {
        for e in store.pop_entries(q.uuid, 1000).await.unwrap() {
            let body = std::fs::read(e.text().as_ref()).unwrap();
            let r = parse_record(std::str::from_utf8(&body).unwrap().trim_end());
            ports.insert(r["ClientPort"].as_str().unwrap().to_owned());
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ports.len(), all.len(), "every record arrived: {log}");
    // the client delivers at least once (a batch cut by a connection error is resent)
    assert!(n >= all.len());
}
