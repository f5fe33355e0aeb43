//! Sharing between two organisations (issue #20): two `d4 server`s on loopback, A
//! forwarding to B under a rule. B's files hold exactly the shared data, transformed
//! (compared with the rule's transforms applied to what the sensors sent); B stopped for
//! 20 s mid-stream loses nothing and A's `frames_forwarded` then equals what B counted;
//! `kill -9` of A mid-stream loses nothing, duplicates only among the frames in flight,
//! and A's count exceeds B's by no more than the frames it sent again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use d4_forward::transform::StreamTransform;
use d4_proto::Encoder;
use d4_store::{
    AddressAction, ForwardFilter, ForwardRule, ForwardTls, PcapPrivacy, PdnsPrivacy, Privacy,
    QueueKind, StatsKey, Store,
};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::support::server::*;

const RULE_KEY: &str = "key of A at B";

fn pdns_lines(from: usize, n: usize, tag: &str) -> Vec<String> {
    (from..from + n)
        .map(|i| {
            format!(
                "1700000{:03}||10.{}.{}.{}||192.0.2.53||IN||{tag}{i}.example||A||198.51.100.{}||300||1\n",
                i % 1000,
                i % 200,
                (i / 7) % 250,
                1 + i % 250,
                i % 250
            )
        })
        .collect()
}

/// An Ethernet/IPv4/UDP packet between two addresses.
fn packet(src: [u8; 4], dst: [u8; 4], i: u16) -> Vec<u8> {
    let payload = format!("payload {i}");
    let udp_len = 8 + payload.len() as u16;
    let ip_len = 20 + udp_len;
    let mut p = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    p.extend([
        0x45,
        0,
        (ip_len >> 8) as u8,
        ip_len as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ]);
    p.extend(src);
    p.extend(dst);
    p.extend([0x30, 0x39, 0, 53, (udp_len >> 8) as u8, udp_len as u8, 0, 0]);
    p.extend(payload.as_bytes());
    p
}

fn pcap_stream(n: u16) -> Vec<Vec<u8>> {
    let mut header = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    header.extend([0u8; 8]);
    header.extend(65535u32.to_le_bytes());
    header.extend(1u32.to_le_bytes());
    let mut out = vec![header];
    for i in 0..n {
        let p = packet([10, 1, (i % 250) as u8, 7], [198, 51, 100, 9], i);
        let mut r = Vec::new();
        r.extend((1_700_000_000u32 + u32::from(i)).to_le_bytes());
        r.extend(0u32.to_le_bytes());
        r.extend((p.len() as u32).to_le_bytes());
        r.extend((p.len() as u32).to_le_bytes());
        r.extend(p);
        out.push(r);
    }
    out
}

/// The pcap records of a capture (global headers, one per session file, skipped).
fn records(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 16 <= b.len() {
        if b[pos..pos + 4] == [0xd4, 0xc3, 0xb2, 0xa1] {
            pos += 24;
            continue;
        }
        let len = u32::from_le_bytes([b[pos + 8], b[pos + 9], b[pos + 10], b[pos + 11]]) as usize;
        if pos + 16 + len > b.len() {
            break;
        }
        out.push(b[pos..pos + 16 + len].to_vec());
        pos += 16 + len;
    }
    out
}

/// What the rule's transform makes of a stream sent as these payloads.
fn transformed(privacy: &Privacy, t: u8, payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut tr = StreamTransform::new(privacy, t, None).unwrap();
    let mut out = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        tr.push(i as u64, p, d4_store::now(), &mut out).unwrap();
    }
    tr.finish(&mut out);
    out
}

/// Streams `payloads` as one D4 session of `sensor` into `addr` (plain TCP).
async fn stream(addr: std::net::SocketAddr, sensor: Uuid, key: &str, t: u8, payloads: &[Vec<u8>]) {
    let enc = Encoder::new(sensor, key.as_bytes(), t);
    let mut wire = Vec::new();
    for p in payloads {
        wire.extend(enc.encode(d4_store::now(), p).unwrap());
    }
    let mut s = open(addr, &wire).await;
    s.shutdown().await.unwrap();
    let _ = closed_within(&mut s, 10).await;
}

fn multiset(lines: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in lines {
        *m.entry(l).or_insert(0) += 1;
    }
    m
}

fn lines_of(b: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(b)
        .lines()
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Frames B counted today for A's UUID.
async fn b_frames(b: &Arc<dyn Store>, uuid: Uuid) -> u64 {
    let day = d4_store::day_of(d4_store::now());
    b.day_stats(day)
        .await
        .map(|s| s.get(&StatsKey::Sensor { uuid }).frames)
        .unwrap_or(0)
}

async fn a_stats(a: &Arc<dyn Store>) -> d4_store::ForwardStats {
    a.forward_stats("to-b".into())
        .await
        .ok()
        .and_then(|v| v.into_iter().next())
        .map(|s| s.stats)
        .unwrap_or_default()
}

/// Waits until B's type-8 file holds every expected line (returns its lines).
fn wait_lines(
    dir: &std::path::Path,
    uuid: Uuid,
    want: &BTreeSet<String>,
    secs: u64,
) -> Vec<String> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = lines_of(&sensor_bytes(dir, uuid, 8));
        let set: BTreeSet<String> = got.iter().cloned().collect();
        if want.is_subset(&set) {
            return got;
        }
        assert!(
            Instant::now() < end,
            "B has {} of {} lines",
            want.intersection(&set).count(),
            want.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The SHA-256 (hex) of the DER of a PEM certificate file, as `d4 forward add --pin-from`.
fn pin_of(path: &std::path::Path) -> String {
    use base64::Engine;
    use sha2::Digest;
    let pem = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("B's certificate {}: {e}", path.display()));
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap_or_else(|e| panic!("B's certificate is not PEM: {e}"));
    hex::encode(sha2::Sha256::digest(&der))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_transformed_data_across_outages_and_a_kill() {
    let bdir = tempfile::tempdir().unwrap();
    let adir = tempfile::tempdir().unwrap();
    let b_addr = format!("127.0.0.1:{}", d4_testkit::free_port());
    // B listens for the partner on TLS only; A pins B's own certificate
    let b = ServerProc::start_at(bdir.path(), &b_addr, "127.0.0.1:0", &[], &[]);
    let b_pin = pin_of(&bdir.path().join("tls/server.crt"));
    let bstore = b.store().await;
    // B knows A's rule identity as an approved sensor with its own key
    let rule_uuid = Uuid::new_v4();
    bstore
        .register_sensor(d4_store::SensorRegistration {
            uuid: rule_uuid,
            hmac_key: Some(RULE_KEY.into()),
            mail: None,
            third_party: true,
            description: Some("organisation A".into()),
            approve: true,
        })
        .await
        .unwrap();

    // B's analyzer queues: what arrives from A is queued like any sensor's data
    let bq8 = create_queue(&bstore, QueueKind::Type(8), "pdns from partners", 1 << 20).await;
    let bq1 = create_queue(&bstore, QueueKind::Type(1), "pcap from partners", 1 << 20).await;
    let bq3 = create_queue(&bstore, QueueKind::Type(3), "logs", 1 << 20).await;

    let a = ServerProc::start(adir.path(), &[]);
    let astore = a.store().await;
    let shared = register_sensor(&astore, "shared-key", "shared sensor").await;
    let other = register_sensor(&astore, "other-key", "not shared").await;
    // the rule selects by tag: only `shared` carries it, `other` stays untagged
    astore
        .update_sensor(
            shared,
            d4_store::SensorUpdate {
                tags: Some(vec!["share".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let privacy = Privacy {
        key: "ab".repeat(32),
        pdns: Some(PdnsPrivacy {
            client_ip: AddressAction::Pseudonymise,
            ..Default::default()
        }),
        pcap: Some(PcapPrivacy {
            prefixes: vec!["10.0.0.0/8".parse().unwrap()],
            truncate_payload: false,
        }),
        ..Default::default()
    };
    let rule = ForwardRule {
        name: "to-b".into(),
        enabled: true,
        description: "partner B".into(),
        destination: b_addr.clone(),
        tls: ForwardTls {
            pin_sha256: Some(b_pin.clone()),
            ..Default::default()
        },
        uuid: rule_uuid,
        hmac_key: RULE_KEY.into(),
        // sensors tagged `share` (the untagged one must not arrive)
        filter: ForwardFilter {
            types: vec![1, 8],
            tags: vec!["share".into()],
            ..Default::default()
        },
        tags: vec!["tlp:green".into()],
        privacy: privacy.clone(),
        spool_limit: 0,
        created: 0,
        updated: 0,
    };
    astore
        .create_forward_rule(rule, d4_store::now())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await; // the engine reloads its rules

    // phase 1: types 1, 3 and 8 from both sensors
    let l1 = pdns_lines(0, 400, "a");
    let p1: Vec<Vec<u8>> = l1.chunks(20).map(|c| c.concat().into_bytes()).collect();
    let pcap = pcap_stream(200);
    let logs: Vec<Vec<u8>> = vec![b"a local log line\n".to_vec(); 50];
    stream(a.plain, shared, "shared-key", 8, &p1).await;
    stream(a.plain, shared, "shared-key", 1, &pcap).await;
    stream(a.plain, shared, "shared-key", 3, &logs).await;
    let o8: Vec<Vec<u8>> = pdns_lines(0, 100, "other")
        .into_iter()
        .map(String::into_bytes)
        .collect();
    stream(a.plain, other, "other-key", 8, &o8).await;
    stream(a.plain, other, "other-key", 1, &pcap).await;

    let mut want: BTreeSet<String> = lines_of(&transformed(&privacy, 8, &p1))
        .into_iter()
        .collect();
    assert!(
        want.iter().all(|l| !l1.contains(l)),
        "client IPs pseudonymised"
    );
    let got = wait_lines(bdir.path(), rule_uuid, &want, 30);
    assert_eq!(
        got.iter().cloned().collect::<BTreeSet<_>>(),
        want,
        "nothing else"
    );
    let want_pcap = records(&transformed(&privacy, 1, &pcap));
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let got = records(&sensor_bytes(bdir.path(), rule_uuid, 1));
        if got.len() >= want_pcap.len() {
            assert_eq!(
                got.iter().collect::<BTreeSet<_>>(),
                want_pcap.iter().collect::<BTreeSet<_>>(),
                "type 1: exactly the shared records, 10/8 pseudonymised"
            );
            break;
        }
        assert!(
            Instant::now() < end,
            "type 1: {} of {} records",
            got.len(),
            want_pcap.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_ne!(
        records(&pcap.concat()[24..]),
        want_pcap,
        "addresses changed"
    );
    assert!(!bdir
        .path()
        .join(rule_uuid.simple().to_string())
        .join("3")
        .exists());
    for u in [shared, other] {
        assert!(!bdir.path().join(u.simple().to_string()).exists());
    }

    // phase 2: B stopped for 20 s while the sensor streams into A
    drop(bstore);
    assert_eq!(b.stop(), Some(0));
    let stopped = Instant::now();
    let l2 = pdns_lines(1000, 600, "b");
    let p2: Vec<Vec<u8>> = l2.chunks(20).map(|c| c.concat().into_bytes()).collect();
    for part in p2.chunks(6) {
        stream(a.plain, shared, "shared-key", 8, part).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(stopped.elapsed())).await;
    let st = a_stats(&astore).await;
    assert!(!st.connected, "{st:?}");
    let b = ServerProc::start_at(bdir.path(), &b_addr, "127.0.0.1:0", &[], &[]);
    let bstore = b.store().await;
    want.extend(lines_of(&transformed(&privacy, 8, &p2)));
    wait_lines(bdir.path(), rule_uuid, &want, 40);
    // B's stop drained A's connections (B closed its side and read on until A, seeing
    // the close, stopped writing), so nothing A counted was lost in B's sockets: after the
    // outage the count A shows is the count B saw
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let st = a_stats(&astore).await;
        let seen = b_frames(&bstore, rule_uuid).await;
        if st.frames_forwarded == seen && st.frames_spooled == 0 {
            break;
        }
        assert!(
            Instant::now() < end,
            "after B's outage A counts {st:?}, B saw {seen}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // phase 3: kill -9 of A while it forwards
    let l3 = pdns_lines(5000, 3000, "c");
    let p3: Vec<Vec<u8>> = l3.chunks(10).map(|c| c.concat().into_bytes()).collect();
    let w3: BTreeSet<String> = lines_of(&transformed(&privacy, 8, &p3))
        .into_iter()
        .collect();
    stream(a.plain, shared, "shared-key", 8, &p3).await;
    // killed as soon as B shows the first forwarded line of phase 3, while it has not all
    let end = Instant::now() + Duration::from_secs(20);
    let at_kill = loop {
        let n = lines_of(&sensor_bytes(bdir.path(), rule_uuid, 8))
            .into_iter()
            .filter(|l| w3.contains(l))
            .count();
        if n > 0 {
            break n;
        }
        assert!(Instant::now() < end, "A forwarded nothing of phase 3");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let adir_path = a.dir.clone();
    drop(astore);
    a.crash();
    // Usually B has only part of phase 3 here (seen: a few hundred of 3,000 lines). On a
    // loaded machine the 10 ms poll can wake late; the checks below hold either way, so a
    // late kill is reported, not failed (it would make the test flaky, not stronger).
    if at_kill >= w3.len() {
        eprintln!("note: the kill landed after B had every line of phase 3 ({at_kill})");
    }
    let a = ServerProc::start(&adir_path, &[]);
    let astore = a.store().await;
    // what A accepted: the frames of phase 3 in its own files once its journal is replayed
    // (frames lost between the sensor and A at the kill are the sensor's limit, not ours)
    let mut accepted: Vec<Vec<u8>> = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let stored: BTreeSet<String> = lines_of(&sensor_bytes(&a.dir, shared, 8))
            .into_iter()
            .collect();
        let now: Vec<Vec<u8>> = l3
            .chunks(10)
            .filter(|c| c.iter().all(|l| stored.contains(l)))
            .map(|c| c.concat().into_bytes())
            .collect();
        if !now.is_empty() && now == accepted {
            break;
        }
        accepted = now;
        assert!(Instant::now() < end, "A stored nothing of phase 3");
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    want.extend(lines_of(&transformed(&privacy, 8, &accepted)));
    let got = wait_lines(bdir.path(), rule_uuid, &want, 40);
    let m = multiset(got);
    assert_eq!(
        m.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "every line, nothing else"
    );
    let dups: usize = m.values().map(|n| n - 1).sum();

    // The count A shows equals the count B saw once both settle — unless a write was cut by
    // B's stop or A's kill: D4 has no acknowledgement, so frames A wrote into a connection
    // that died before B journaled them are counted by A and sent again (as duplicates).
    // Seen under load: A 939, B 900, 348 duplicates. A's surplus is bounded by its resends.
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let st = a_stats(&astore).await;
        let seen = b_frames(&bstore, rule_uuid).await;
        let settled = st.frames_forwarded >= seen
            && st.frames_forwarded - seen <= st.duplicates
            && st.frames_spooled == 0;
        if settled {
            if st.frames_forwarded != seen {
                eprintln!(
                    "note: A counted {} frames, B saw {seen}: {} written into connections that died",
                    st.frames_forwarded,
                    st.frames_forwarded - seen
                );
            }
            // every line B holds twice came in a frame A counted as a duplicate (resent
            // after a cut connection, or spooled again after the kill); a frame holds at
            // most 20 lines (phases 1 and 2; 10 in phase 3); one frame of slack for a kill
            // between a spool's consume and its sent.json save
            assert!(
                dups as u64 <= st.duplicates * 20 + 20,
                "duplicates only among frames in flight: {dups} lines, {st:?}"
            );
            break;
        }
        assert!(Instant::now() < end, "A counted {st:?}, B saw {seen}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // B's queues hold what its files hold: every type-8 line (duplicates included), the
    // type-1 files, nothing of type 3, all from A's rule identity
    let mut queued = BTreeMap::new();
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        for e in bstore.pop_entries(bq8.uuid, 10_000).await.unwrap() {
            assert_eq!(e.sensor, Some(rule_uuid), "type-8 entry of another sensor");
            let line = format!("{}\n", e.text().trim_end_matches('\n'));
            *queued.entry(line).or_insert(0) += 1;
        }
        let in_files = multiset(lines_of(&sensor_bytes(bdir.path(), rule_uuid, 8)));
        if queued == in_files {
            break;
        }
        assert!(
            Instant::now() < end,
            "B's type-8 queue holds {} lines, its files {}",
            queued.values().sum::<usize>(),
            in_files.values().sum::<usize>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // (a pcap file is queued once rotated or closed: B's stop closed the first one)
    let end = Instant::now() + Duration::from_secs(15);
    let pcaps = loop {
        let got = bstore.pop_entries(bq1.uuid, 10_000).await.unwrap();
        if !got.is_empty() {
            break got;
        }
        assert!(Instant::now() < end, "B queued no pcap file");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        pcaps.iter().all(|e| e.sensor == Some(rule_uuid)),
        "{pcaps:?}"
    );
    assert_eq!(
        bstore.queue_len(bq3.uuid).await.unwrap(),
        0,
        "type 3 is not shared"
    );

    drop(astore);
    drop(bstore);
    let (alog, blog) = (a.log.clone(), b.log.clone());
    let code = a.stop();
    assert_eq!(code, Some(0), "A: {}", alog.lock().unwrap().join("\n"));
    let code = b.stop();
    assert_eq!(code, Some(0), "B: {}", blog.lock().unwrap().join("\n"));
}
