//! The shared vectors streamed into the real `d4 server` over TLS in random chunks land in
//! the right files and analyzer queues byte for byte; the per-day stats count them.

use std::time::Duration;

use crate::support::server::*;
use bytes::Bytes;
use d4_proto::{Decoder, HmacKey};
use d4_store::{QueueKind, StatsKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The frames a server accepts from a vector: valid HMACs up to the first bad one.
fn accepted(name: &str) -> Vec<d4_proto::Frame> {
    let m = d4_testkit::manifest();
    let case = m["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["file"] == name)
        .unwrap()
        .clone();
    let key = HmacKey::new(case["key"].as_str().unwrap().as_bytes());
    let mut input = Bytes::from(d4_testkit::vector_bytes(name));
    let mut out = Vec::new();
    for f in Decoder::new().frames(&mut input) {
        let Ok(f) = f else { break };
        if !key.verify(&f) {
            break;
        }
        out.push(f);
    }
    out
}

async fn stream_vector(addr: std::net::SocketAddr, name: &str, seed: u64) {
    let bytes = d4_testkit::vector_bytes(name);
    let mut s = connect_tls(addr).await;
    let mut rng = Rng(seed);
    // the server may close first (bad HMAC, oversize): write errors are expected then
    let _ = write_chunked(&mut s, &bytes, &mut rng, 700).await;
    let _ = s.shutdown().await;
    let mut sink = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(20), s.read(&mut sink)).await;
    assert!(r.is_ok(), "{name}: the server did not close the connection");
}

fn lines(b: &[u8]) -> Vec<String> {
    b.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_over_tls_land_in_files_and_queues() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(
        tmp.path(),
        &["--mode", "shared-secret", "--allow-reference-key"],
    );
    let tls = srv.tls.unwrap();
    let store = srv.store().await;
    let mut queues = Vec::new();
    for kind in [
        QueueKind::Type(3),
        QueueKind::Type(8),
        QueueKind::Type(1),
        QueueKind::Ext("ja3-jl".into()),
    ] {
        let q = create_queue(&store, kind.clone(), &format!("test {kind}"), 1000).await;
        queues.push((kind, q.uuid));
    }
    let queue = |k: QueueKind| queues.iter().find(|(q, _)| *q == k).unwrap().1;

    // line types: files and queue entries byte for byte
    let mut expected_q3 = Vec::new();
    for (i, (name, t)) in [
        ("single_log_line.d4", 3u8),
        ("bad_hmac_middle.d4", 3),
        ("truncated_tail.d4", 3),
        ("passivedns_csv.d4", 8),
    ]
    .into_iter()
    .enumerate()
    {
        let frames = accepted(name);
        let uuid = frames[0].header.uuid;
        let all: Vec<u8> = frames.iter().flat_map(|f| f.payload.to_vec()).collect();
        stream_vector(tls, name, 7 + i as u64).await;
        let dir = srv.dir.clone();
        let got = wait_for(20, || {
            let dir = dir.clone();
            let all = all.clone();
            async move {
                let b = sensor_bytes(&dir, uuid, t);
                (b == all).then_some(b)
            }
        })
        .await;
        assert!(
            got.is_some(),
            "{name}: files hold {:?}, expected {:?}",
            String::from_utf8_lossy(&sensor_bytes(&srv.dir, uuid, t)),
            String::from_utf8_lossy(&all)
        );
        if t == 3 {
            expected_q3.extend(lines(&all));
        } else {
            let mut got = Vec::new();
            for e in store
                .pop_entries(queue(QueueKind::Type(8)), 100)
                .await
                .unwrap()
            {
                assert_eq!(e.sensor, Some(uuid));
                got.push(e.text().into_owned());
            }
            assert_eq!(got, lines(&all), "{name}: queue");
        }
    }
    let got: Vec<String> = store
        .pop_entries(queue(QueueKind::Type(3)), 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.text().into_owned())
        .collect();
    assert_eq!(got, expected_q3, "type-3 queue");

    // meta header + ja3-jl: the JSON saved by SHA-256 and its path queued
    let frames = accepted("meta_then_254.d4");
    let uuid = frames[0].header.uuid;
    stream_vector(tls, "meta_then_254.d4", 99).await;
    let q = queue(QueueKind::Ext("ja3-jl".into()));
    let entries = wait_for(20, || {
        let store = store.clone();
        async move {
            let e = store.pop_entries(q, 10).await.ok()?;
            (!e.is_empty()).then_some(e)
        }
    })
    .await
    .expect("a ja3-jl queue entry");
    let path = std::path::PathBuf::from(entries[0].text().into_owned());
    let line = frames[1].payload.strip_suffix(b"\n").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), line);
    let meta: Vec<_> = files(&srv.dir.join(uuid.simple().to_string()).join("254"));
    assert_eq!(meta.len(), 1, "{meta:?}");
    assert_eq!(std::fs::read(&meta[0]).unwrap(), frames[0].payload);

    // type 1 vectors are not pcap: an error for that sensor, nothing queued
    for name in ["many_sizes_pcap_type.d4", "c_client_stdin.d4"] {
        let uuid = accepted(name)[0].header.uuid;
        stream_vector(tls, name, 5).await;
        let msg = wait_error(&store, uuid, "worker").await;
        assert!(msg.contains("pcap") || msg.contains("type 1"), "{msg}");
    }
    assert_eq!(store.queue_len(queue(QueueKind::Type(1))).await.unwrap(), 0);

    // oversize: refused before the payload
    stream_vector(tls, "oversize_declared.d4", 3).await;

    // stats of today for the log sensor
    let u = accepted("single_log_line.d4")[0].header.uuid;
    let day = d4_store::day_of(d4_store::now());
    let c = wait_for(10, || {
        let store = store.clone();
        async move {
            let st = store.day_stats(day).await.ok()?;
            let c = st.get(&StatsKey::Sensor { uuid: u });
            (c.frames == 1).then_some(c)
        }
    })
    .await
    .expect("stats for the sensor");
    assert_eq!(c.bytes, 49);
    let sensor = store.get_sensor(u).await.unwrap().unwrap();
    assert!(sensor.last_seen.is_some());
    assert_eq!(sensor.last_ips[0].ip.to_string(), "127.0.0.1");

    drop(store);
    assert_eq!(srv.stop(), Some(0), "clean exit on SIGTERM");
}
