//! Every refusal rule of the collector against the real `d4 server` (registration mode),
//! each with the sensor's last error recorded in the store; kick takes effect at once;
//! the pre-auth attack cannot lock a sensor out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::server::*;
use d4_proto::Encoder;
use d4_store::{Block, BlockTarget, SensorRegistration, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

async fn sensor(store: &Arc<dyn Store>, key: &str, approve: bool) -> Uuid {
    let uuid = Uuid::new_v4();
    store
        .register_sensor(SensorRegistration {
            uuid,
            hmac_key: Some(key.into()),
            mail: None,
            third_party: false,
            description: Some("test".into()),
            approve,
        })
        .await
        .unwrap();
    uuid
}

fn frame(uuid: Uuid, key: &str, t: u8, payload: &[u8]) -> Vec<u8> {
    Encoder::new(uuid, key.as_bytes(), t)
        .encode(d4_store::now(), payload)
        .unwrap()
}

/// Whether the server closes the connection within `secs`.
/// Sends bytes on a new connection and expects the server to close it.
async fn refused(addr: SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    assert!(closed_within(&mut s, 10).await, "connection not closed");
}

/// Opens a session that stays connected after one accepted frame.
async fn settle() {
    // store changes reach the server's gate through an event; give it a moment
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_rule_records_the_sensors_last_error() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(tmp.path(), &["--header-timeout", "2"]);
    let addr = srv.plain;
    let store = srv.store().await;
    let k = "sensor key";

    // bad HMAC (the sensor's own key is required, not the default key)
    let a = sensor(&store, k, true).await;
    settle().await;
    refused(addr, &frame(a, "private key to change", 3, b"x\n")).await;
    wait_error(&store, a, "[bad-hmac]").await;

    // oversize: a header declaring 2,000,000 bytes, refused before any payload
    let mut h = Encoder::new(a, k.as_bytes(), 3).header(1, b"").unwrap();
    h[58..62].copy_from_slice(&2_000_000u32.to_le_bytes());
    refused(addr, &h).await;
    wait_error(&store, a, "[oversize]").await;

    // type 254 first
    refused(addr, &frame(a, k, 254, b"{}\n")).await;
    wait_error(&store, a, "[type-254-first]").await;

    // unaccepted type
    store.set_type_accepted(6, false).await.unwrap();
    settle().await;
    refused(addr, &frame(a, k, 6, b"{}\n")).await;
    wait_error(&store, a, "[type-not-accepted]").await;
    store.set_type_accepted(6, true).await.unwrap();

    // unaccepted extended type
    store
        .set_ext_type_accepted("maltrail".into(), false)
        .await
        .unwrap();
    settle().await;
    let mut w = frame(a, k, 2, br#"{"type":"maltrail"}"#);
    w.extend(frame(a, k, 254, b"x\n"));
    refused(addr, &w).await;
    wait_error(&store, a, "[ext-type-not-accepted]").await;

    // uuid change within a connection
    let b = sensor(&store, k, true).await;
    settle().await;
    let mut w = frame(a, k, 3, b"one\n");
    w.extend(frame(b, k, 3, b"two\n"));
    refused(addr, &w).await;
    wait_error(&store, a, "[uuid-changed]").await;

    // type change other than 2 -> 254
    let mut w = frame(a, k, 3, b"one\n");
    w.extend(frame(a, k, 8, b"two\n"));
    refused(addr, &w).await;
    wait_error(&store, a, "[type-changed]").await;

    // duplicate (uuid, type) across connections; another type is fine
    let mut first = open(addr, &frame(a, k, 3, b"first\n")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    refused(addr, &frame(a, k, 3, b"second\n")).await;
    wait_error(&store, a, "[duplicate]").await;
    let mut other = open(addr, &frame(a, k, 8, b"x||y\n")).await;
    assert!(
        !closed_within(&mut other, 1).await,
        "another type is not a duplicate"
    );
    drop(other);

    // kick: effective at once, even though the sensor sends nothing; then a 30 s block
    let t = Instant::now();
    store.request_kick(a, d4_store::now()).await.unwrap();
    assert!(
        closed_within(&mut first, 5).await,
        "kick did not close the session"
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "kick took {:?}",
        t.elapsed()
    );
    wait_error(&store, a, "[kicked]").await;
    refused(addr, &frame(a, k, 3, b"again\n")).await;
    wait_error(&store, a, "[uuid-blocked]").await;

    // pending (registered, not approved) in registration mode
    let p = sensor(&store, k, false).await;
    settle().await;
    refused(addr, &frame(p, k, 3, b"x\n")).await;
    wait_error(&store, p, "[not-registered]").await;
    // an unknown uuid is refused and leaves no record in the store
    let stranger = Uuid::new_v4();
    refused(addr, &frame(stranger, k, 3, b"x\n")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(store.get_sensor(stranger).await.unwrap().is_none());

    // blocklisted UUID
    let c = sensor(&store, k, true).await;
    let block = |target| Block {
        target,
        reason: "test".into(),
        created: d4_store::now(),
        expires: None,
    };
    store.add_block(block(BlockTarget::Uuid(c))).await.unwrap();
    settle().await;
    refused(addr, &frame(c, k, 3, b"x\n")).await;
    wait_error(&store, c, "[uuid-blocked]").await;

    // header timeout (a header of a known sensor whose payload never comes)
    let d = sensor(&store, k, true).await;
    settle().await;
    let full = frame(d, k, 3, b"0123456789\n");
    let mut s = open(addr, &full[..66]).await;
    let t = Instant::now();
    assert!(closed_within(&mut s, 10).await);
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    wait_error(&store, d, "[header-timeout]").await;
    // and a socket that sends nothing at all is closed too
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut s, 10).await);

    // blocklisted IP, mid-stream (checked on every frame and on store changes)
    let mut live = open(addr, &frame(d, k, 3, b"hello\n")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ip32: ipnet::IpNet = "127.0.0.1/32".parse().unwrap();
    store.add_block(block(BlockTarget::Ip(ip32))).await.unwrap();
    assert!(
        closed_within(&mut live, 5).await,
        "IP block did not close the session"
    );
    wait_error(&store, d, "[ip-blocked]").await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut s, 5).await, "blocked IP at connect");
    store.remove_block(BlockTarget::Ip(ip32)).await.unwrap();

    // blocklisted CIDR
    let e = sensor(&store, k, true).await;
    settle().await;
    let net8: ipnet::IpNet = "127.0.0.0/8".parse().unwrap();
    let mut live = open(addr, &frame(e, k, 3, b"hello\n")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.add_block(block(BlockTarget::Ip(net8))).await.unwrap();
    assert!(
        closed_within(&mut live, 5).await,
        "CIDR block did not close the session"
    );
    wait_error(&store, e, "[ip-blocked]").await;
    store.remove_block(BlockTarget::Ip(net8)).await.unwrap();
    settle().await;

    // IPs-by-UUID: the IP presenting this uuid is refused, then blocked itself
    let f = sensor(&store, k, true).await;
    store
        .add_block(block(BlockTarget::IpsOfUuid(f)))
        .await
        .unwrap();
    settle().await;
    refused(addr, &frame(f, k, 3, b"x\n")).await;
    wait_error(&store, f, "[ip-blocked-by-uuid]").await;
    let blocks = wait_for(5, || {
        let store = store.clone();
        async move {
            let l = store.list_blocks(d4_store::now()).await.ok()?;
            l.iter()
                .any(|b| matches!(b.target, BlockTarget::Ip(n) if n.contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap())))
                .then_some(l)
        }
    })
    .await;
    assert!(
        blocks.is_some(),
        "the IP presenting the uuid was not blocked"
    );

    drop(store);
    assert_eq!(srv.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_the_key_cannot_lock_the_sensor_out() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(tmp.path(), &[]);
    let addr = srv.plain;
    let store = srv.store().await;
    let k = "the real key";
    let a = sensor(&store, k, true).await;
    settle().await;

    // the attacker knows the uuid, not the key: bad frames, and a header whose payload
    // trickles in (holding the connection open as long as it can)
    let mut hold = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let w = frame(a, "guessed key", 3, &[b'x'; 1000]);
        s.write_all(&w[..200]).await.unwrap();
        hold.push(s);
    }
    for _ in 0..5 {
        refused(addr, &frame(a, "guessed key", 3, b"evil\n")).await;
    }
    // the real sensor streams on, over TLS
    let mut real = connect_tls(srv.tls.unwrap()).await;
    let mut all = Vec::new();
    for i in 0..50 {
        let line = format!("real line {i}\n");
        real.write_all(&frame(a, k, 3, line.as_bytes()))
            .await
            .unwrap();
        all.extend_from_slice(line.as_bytes());
    }
    real.flush().await.unwrap();
    // while it streams, the attacker tries the same (uuid, type) again
    refused(addr, &frame(a, "guessed key", 3, b"evil\n")).await;
    let listed = wait_for(10, || {
        let store = store.clone();
        async move {
            let l = store.list_leases(d4_store::now()).await.ok()?;
            let mine: Vec<_> = l.into_iter().filter(|s| s.uuid == a).collect();
            (!mine.is_empty()).then_some(mine)
        }
    })
    .await
    .expect("the real sensor's session is listed");
    assert_eq!(listed.len(), 1, "{listed:?}");
    real.shutdown().await.unwrap();
    let mut b = [0u8; 8];
    let _ = tokio::time::timeout(Duration::from_secs(10), real.read(&mut b)).await;
    let dir = srv.dir.clone();
    let ok = wait_for(20, || {
        let dir = dir.clone();
        let all = all.clone();
        async move { (sensor_bytes(&dir, a, 3) == all).then_some(()) }
    })
    .await;
    assert!(ok.is_some(), "the real sensor's data did not land");
    // the attacker's tries are on record, and that is all they did
    let s = store.get_sensor(a).await.unwrap().unwrap();
    assert!(s.last_error.unwrap().message.contains("[bad-hmac]"));
    drop(hold);
    drop(store);
    assert_eq!(srv.stop(), Some(0));
}
