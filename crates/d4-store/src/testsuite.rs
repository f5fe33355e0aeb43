//! The store test suite, written once against `Arc<dyn Store>`: every backend runs it
//! ([`run_all`] on a fresh, empty store). Enable with the `testsuite` feature.
//!
//! Every test uses fresh UUIDs, so the tests do not depend on each other, except
//! [`defaults`], which needs a store nobody changed yet (run_all runs it first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::model::*;
use crate::{Store, StoreError};

type S = Arc<dyn Store>;

/// Run every test of the suite, `defaults` first. Panics on the first failure.
pub async fn run_all(store: S) {
    defaults(store.clone()).await;
    sensors(store.clone()).await;
    sensor_activity(store.clone()).await;
    stats_aggregation(store.clone()).await;
    blocklist_prefixes(store.clone()).await;
    blocklist_uuids_and_expiry(store.clone()).await;
    kick(store.clone()).await;
    types(store.clone()).await;
    sessions(store.clone()).await;
    queues_crud(store.clone()).await;
    queue_fifo_and_trim(store.clone()).await;
    queue_push_many(store.clone()).await;
    queue_push_once(store.clone()).await;
    queue_blocking_pop(store.clone()).await;
    users(store.clone()).await;
    web_sessions(store.clone()).await;
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A fresh store holds the documented defaults.
pub async fn defaults(store: S) {
    let types = store.accepted_types().await.unwrap();
    assert_eq!(types, DEFAULT_ACCEPTED_TYPES.to_vec());
    let mut ext = store.accepted_ext_types().await.unwrap();
    ext.sort();
    let mut want: Vec<String> = DEFAULT_ACCEPTED_EXT_TYPES
        .iter()
        .map(|s| s.to_string())
        .collect();
    want.sort();
    assert_eq!(ext, want);
}

/// Registration, approval, settings, errors, deletion.
pub async fn sensors(store: S) {
    let a = Uuid::new_v4();
    assert_eq!(store.get_sensor(a).await.unwrap(), None);
    let reg = SensorRegistration {
        uuid: a,
        hmac_key: Some("secret".into()),
        mail: Some("ops@example.org".into()),
        third_party: true,
        description: Some("tap 1".into()),
        approve: false,
    };
    let s = store.register_sensor(reg.clone()).await.unwrap();
    assert_eq!(s.status, SensorStatus::Pending);
    assert_eq!(s.hmac_key.as_deref(), Some("secret"));
    assert!(s.registered_at.is_some());
    // Twice: conflict.
    match store.register_sensor(reg).await {
        Err(StoreError::AlreadyExists(_)) => {}
        other => panic!("second registration: {other:?}"),
    }
    let s = store.approve_sensor(a).await.unwrap();
    assert_eq!(s.status, SensorStatus::Approved);
    assert!(matches!(
        store.approve_sensor(Uuid::new_v4()).await,
        Err(StoreError::NotFound(_))
    ));

    // Settings: key reset to default, description, limit.
    let s = store
        .update_sensor(
            a,
            SensorUpdate {
                hmac_key: Some(None),
                description: Some("new desc".into()),
                stream_limit: Some(Some(500)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.hmac_key, None);
    assert_eq!(s.description, "new desc");
    assert_eq!(s.stream_limit, Some(500));
    assert_eq!(
        s.mail.as_deref(),
        Some("ops@example.org"),
        "untouched fields stay"
    );
    let got = store.get_sensor(a).await.unwrap().unwrap();
    assert_eq!(got, s);

    // Per-sensor monitoring threshold: set, kept by other updates, refused at 0, cleared.
    assert_eq!(s.monitoring_threshold, None, "global threshold by default");
    let s = store
        .update_sensor(
            a,
            SensorUpdate {
                monitoring_threshold: Some(Some(120)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.monitoring_threshold, Some(120));
    let s = store
        .update_sensor(
            a,
            SensorUpdate {
                description: Some("new desc".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.monitoring_threshold, Some(120), "untouched");
    assert_eq!(
        store
            .get_sensor(a)
            .await
            .unwrap()
            .unwrap()
            .monitoring_threshold,
        Some(120)
    );
    assert!(store
        .list_sensors()
        .await
        .unwrap()
        .iter()
        .any(|x| x.uuid == a && x.monitoring_threshold == Some(120)));
    assert!(matches!(
        store
            .update_sensor(
                a,
                SensorUpdate {
                    monitoring_threshold: Some(Some(0)),
                    ..Default::default()
                },
            )
            .await,
        Err(StoreError::Invalid(_))
    ));
    let s = store
        .update_sensor(
            a,
            SensorUpdate {
                monitoring_threshold: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.monitoring_threshold, None);
    assert_eq!(
        store
            .get_sensor(a)
            .await
            .unwrap()
            .unwrap()
            .monitoring_threshold,
        None
    );
    let s = store
        .update_sensor(
            a,
            SensorUpdate {
                monitoring_threshold: Some(Some(7200)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.monitoring_threshold, Some(7200));

    // update_sensor on an unknown sensor creates an unregistered record, which can
    // then be registered.
    let b = Uuid::new_v4();
    let s = store
        .update_sensor(
            b,
            SensorUpdate {
                hmac_key: Some(Some("k2".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.status, SensorStatus::Unregistered);
    let s = store
        .register_sensor(SensorRegistration {
            uuid: b,
            hmac_key: Some("k3".into()),
            mail: None,
            third_party: false,
            description: None,
            approve: true,
        })
        .await
        .unwrap();
    assert_eq!(s.status, SensorStatus::Approved);
    assert_eq!(s.hmac_key.as_deref(), Some("k3"));

    // Errors.
    store
        .record_sensor_error(a, 1234, "bad hmac".into())
        .await
        .unwrap();
    let s = store.get_sensor(a).await.unwrap().unwrap();
    assert_eq!(
        s.last_error,
        Some(SensorError {
            time: 1234,
            message: "bad hmac".into()
        })
    );
    let c = Uuid::new_v4();
    store
        .record_sensor_error(c, 1, "unknown sensor".into())
        .await
        .unwrap();
    assert_eq!(
        store.get_sensor(c).await.unwrap().unwrap().status,
        SensorStatus::Unregistered
    );

    let list = store.list_sensors().await.unwrap();
    for u in [a, b, c] {
        assert!(list.iter().any(|s| s.uuid == u), "{u} listed");
    }
    assert!(store.delete_sensor(b).await.unwrap());
    assert!(!store.delete_sensor(b).await.unwrap());
    assert_eq!(store.get_sensor(b).await.unwrap(), None);
}

/// First/last seen, last 16 IPs, types seen.
pub async fn sensor_activity(store: S) {
    let a = Uuid::new_v4();
    let mut batch = ActivityBatch::default();
    for i in 0..20u64 {
        batch.seen.push(SeenUpdate {
            uuid: a,
            ip: IpAddr::from([10, 0, 0, i as u8]),
            d4_type: 8,
            ext: None,
            time: 1000 + i,
            connections: 1,
        });
    }
    store.record_activity(batch).await.unwrap();
    let mut batch = ActivityBatch::default();
    batch.seen.push(SeenUpdate {
        uuid: a,
        ip: ip("10.0.0.3"),
        d4_type: 254,
        ext: Some("ja3-jl".into()),
        time: 2000,
        connections: 1,
    });
    batch.seen.push(SeenUpdate {
        uuid: a,
        ip: ip("::1"),
        d4_type: 8,
        ext: None,
        time: 500,
        connections: 1,
    });
    store.record_activity(batch).await.unwrap();
    let s = store.get_sensor(a).await.unwrap().unwrap();
    assert_eq!(s.first_seen, Some(500));
    assert_eq!(s.last_seen, Some(2000));
    assert_eq!(s.last_ips.len(), LAST_IPS);
    assert_eq!(
        s.last_ips[0],
        IpSeen {
            ip: ip("10.0.0.3"),
            time: 2000
        },
        "most recent first"
    );
    assert_eq!(s.last_ips[1].ip, ip("10.0.0.19"));
    let unique: std::collections::HashSet<_> = s.last_ips.iter().map(|x| x.ip).collect();
    assert_eq!(unique.len(), LAST_IPS, "one entry per IP");
    assert!(
        !s.last_ips.iter().any(|x| x.ip == ip("::1")),
        "an old time does not push out newer IPs"
    );
    assert_eq!(s.types.len(), 2);
    assert_eq!(
        s.types[0],
        TypeSeen {
            d4_type: 8,
            ext: None,
            first_seen: 500,
            last_seen: 1019
        }
    );
    assert_eq!(
        s.types[1],
        TypeSeen {
            d4_type: 254,
            ext: Some("ja3-jl".into()),
            first_seen: 2000,
            last_seen: 2000
        }
    );
    assert_eq!(s.status, SensorStatus::Unregistered);
}

/// Every per-day aggregate, summed over batches, separated by day.
pub async fn stats_aggregation(store: S) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    // A day far from the other tests' days.
    let day = 20_990_101 + (a.as_u128() % 27) as u32;
    let d = |uuid, ipa: &str, t, frames, bytes| StatsDelta {
        day,
        uuid,
        ip: ip(ipa),
        d4_type: t,
        frames,
        bytes,
    };
    let batch1 = ActivityBatch {
        stats: vec![
            d(a, "192.0.2.1", 8, 10, 1000),
            d(a, "192.0.2.2", 8, 1, 10),
            d(b, "192.0.2.1", 3, 5, 50),
        ],
        seen: vec![],
    };
    let batch2 = ActivityBatch {
        stats: vec![
            d(a, "192.0.2.1", 8, 2, 200),
            d(a, "192.0.2.1", 1, 1, 1),
            StatsDelta {
                day: day + 1,
                uuid: a,
                ip: ip("192.0.2.1"),
                d4_type: 8,
                frames: 7,
                bytes: 7,
            },
        ],
        seen: vec![],
    };
    store.record_activity(batch1).await.unwrap();
    store.record_activity(batch2).await.unwrap();
    let st = store.day_stats(day).await.unwrap();
    assert_eq!(st.day, day);
    let c = |frames, bytes| Counter { frames, bytes };
    assert_eq!(st.get(&StatsKey::Sensor { uuid: a }), c(14, 1211));
    assert_eq!(st.get(&StatsKey::Sensor { uuid: b }), c(5, 50));
    assert_eq!(
        st.get(&StatsKey::Ip {
            ip: ip("192.0.2.1")
        }),
        c(18, 1251)
    );
    assert_eq!(
        st.get(&StatsKey::Ip {
            ip: ip("192.0.2.2")
        }),
        c(1, 10)
    );
    assert_eq!(st.get(&StatsKey::Type { d4_type: 8 }), c(13, 1210));
    assert_eq!(st.get(&StatsKey::Type { d4_type: 3 }), c(5, 50));
    assert_eq!(st.get(&StatsKey::Type { d4_type: 1 }), c(1, 1));
    assert_eq!(
        st.get(&StatsKey::SensorIp {
            uuid: a,
            ip: ip("192.0.2.1")
        }),
        c(13, 1201)
    );
    assert_eq!(
        st.get(&StatsKey::SensorType {
            uuid: a,
            d4_type: 8
        }),
        c(13, 1210)
    );
    assert_eq!(
        st.get(&StatsKey::SensorType {
            uuid: b,
            d4_type: 8
        }),
        c(0, 0)
    );
    assert_eq!(st.entries.len(), 2 + 2 + 3 + 3 + 3);
    let next = store.day_stats(day + 1).await.unwrap();
    assert_eq!(next.get(&StatsKey::Sensor { uuid: a }), c(7, 7));
    assert_eq!(next.entries.len(), 5);
}

/// IP prefixes v4/v6, normalization, removal.
pub async fn blocklist_prefixes(store: S) {
    let now = 1_000_000;
    let block = |net: &str| Block {
        target: BlockTarget::Ip(net.parse().unwrap()),
        reason: "test".into(),
        created: now,
        expires: None,
    };
    store.add_block(block("198.51.100.7/24")).await.unwrap(); // normalized to .0/24
    store.add_block(block("2001:db8:42::/48")).await.unwrap();
    store.add_block(block("203.0.113.9/32")).await.unwrap();
    let hit = store
        .check_blocked(ip("198.51.100.200"), None, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        hit.target,
        BlockTarget::Ip("198.51.100.0/24".parse().unwrap())
    );
    assert!(store
        .check_blocked(ip("198.51.101.1"), None, now)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .check_blocked(ip("2001:db8:42:ffff::1"), None, now)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .check_blocked(ip("2001:db8:43::1"), None, now)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .check_blocked(ip("203.0.113.9"), None, now)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .check_blocked(ip("203.0.113.10"), None, now)
        .await
        .unwrap()
        .is_none());
    let list = store.list_blocks(now).await.unwrap();
    assert!(list
        .iter()
        .any(|b| b.target == BlockTarget::Ip("198.51.100.0/24".parse().unwrap())));
    // Removal with the un-normalized form works too.
    assert!(store
        .remove_block(BlockTarget::Ip("198.51.100.1/24".parse().unwrap()))
        .await
        .unwrap());
    assert!(!store
        .remove_block(BlockTarget::Ip("198.51.100.0/24".parse().unwrap()))
        .await
        .unwrap());
    assert!(store
        .check_blocked(ip("198.51.100.200"), None, now)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .remove_block(BlockTarget::Ip("2001:db8:42::/48".parse().unwrap()))
        .await
        .unwrap());
    assert!(store
        .remove_block(BlockTarget::Ip("203.0.113.9/32".parse().unwrap()))
        .await
        .unwrap());
}

/// UUID blocks, IPs-of-UUID blocks, temporary blocks expire.
pub async fn blocklist_uuids_and_expiry(store: S) {
    let now = 2_000_000;
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let any = ip("127.0.0.2");
    store
        .add_block(Block {
            target: BlockTarget::Uuid(a),
            reason: "admin".into(),
            created: now,
            expires: None,
        })
        .await
        .unwrap();
    store
        .add_block(Block {
            target: BlockTarget::IpsOfUuid(b),
            reason: "admin".into(),
            created: now,
            expires: None,
        })
        .await
        .unwrap();
    store
        .add_block(Block {
            target: BlockTarget::Uuid(c),
            reason: "temp".into(),
            created: now,
            expires: Some(now + 30),
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .check_blocked(any, Some(a), now)
            .await
            .unwrap()
            .unwrap()
            .target,
        BlockTarget::Uuid(a)
    );
    assert_eq!(
        store
            .check_blocked(any, Some(b), now)
            .await
            .unwrap()
            .unwrap()
            .target,
        BlockTarget::IpsOfUuid(b)
    );
    assert!(store
        .check_blocked(any, Some(Uuid::new_v4()), now)
        .await
        .unwrap()
        .is_none());
    assert!(store.check_blocked(any, None, now).await.unwrap().is_none());
    // Temporary: in force until expiry, then ignored and not listed.
    assert!(store
        .check_blocked(any, Some(c), now + 29)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .check_blocked(any, Some(c), now + 30)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .list_blocks(now)
        .await
        .unwrap()
        .iter()
        .any(|b| b.target == BlockTarget::Uuid(c)));
    assert!(!store
        .list_blocks(now + 31)
        .await
        .unwrap()
        .iter()
        .any(|b| b.target == BlockTarget::Uuid(c)));
    // Purge removes it for good; permanent ones stay.
    store.purge_expired(now + 31).await.unwrap();
    assert!(!store
        .list_blocks(now)
        .await
        .unwrap()
        .iter()
        .any(|b| b.target == BlockTarget::Uuid(c)));
    assert!(store
        .list_blocks(now + 1_000_000)
        .await
        .unwrap()
        .iter()
        .any(|b| b.target == BlockTarget::Uuid(a)));
    assert!(store.remove_block(BlockTarget::Uuid(a)).await.unwrap());
    assert!(store.remove_block(BlockTarget::IpsOfUuid(b)).await.unwrap());
    assert!(store
        .check_blocked(any, Some(a), now)
        .await
        .unwrap()
        .is_none());
}

/// A kick sets a 30 s block and reaches subscribers at once; it never shortens a
/// permanent block.
pub async fn kick(store: S) {
    let now = 3_000_000;
    let a = Uuid::new_v4();
    let mut events = store.subscribe();
    // Give a remote subscription time to be set up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    store.request_kick(a, now).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await {
                Ok(StoreEvent::Kick { uuid }) if uuid == a => return,
                Ok(_) => continue,
                Err(e) => panic!("event stream: {e}"),
            }
        }
    })
    .await;
    assert!(got.is_ok(), "kick event received within 5 s");
    let b = store
        .check_blocked(ip("127.0.0.1"), Some(a), now + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.expires, Some(now + KICK_BLOCK_SECS));
    assert!(store
        .check_blocked(ip("127.0.0.1"), Some(a), now + KICK_BLOCK_SECS)
        .await
        .unwrap()
        .is_none());
    // Permanent block survives a kick.
    let p = Uuid::new_v4();
    store
        .add_block(Block {
            target: BlockTarget::Uuid(p),
            reason: "admin".into(),
            created: now,
            expires: None,
        })
        .await
        .unwrap();
    store.request_kick(p, now).await.unwrap();
    let b = store
        .check_blocked(ip("127.0.0.1"), Some(p), now + 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.expires, None);
    store.remove_block(BlockTarget::Uuid(p)).await.unwrap();
}

/// Accepted types and extended types.
pub async fn types(store: S) {
    store.set_type_accepted(5, false).await.unwrap();
    assert!(!store.accepted_types().await.unwrap().contains(&5));
    store.set_type_accepted(5, false).await.unwrap(); // idempotent
    store.set_type_accepted(5, true).await.unwrap();
    store.set_type_accepted(5, true).await.unwrap();
    let t = store.accepted_types().await.unwrap();
    assert_eq!(t.iter().filter(|&&x| x == 5).count(), 1);
    store
        .set_ext_type_accepted("my-ext.v1".into(), true)
        .await
        .unwrap();
    assert!(store
        .accepted_ext_types()
        .await
        .unwrap()
        .contains(&"my-ext.v1".to_string()));
    store
        .set_ext_type_accepted("my-ext.v1".into(), false)
        .await
        .unwrap();
    assert!(!store
        .accepted_ext_types()
        .await
        .unwrap()
        .contains(&"my-ext.v1".to_string()));
    for bad in ["", ".hidden", "a/b", "sp ace", &"x".repeat(65)] {
        assert!(
            matches!(
                store.set_ext_type_accepted(bad.to_string(), true).await,
                Err(StoreError::Invalid(_))
            ),
            "{bad:?} refused"
        );
    }
}

/// Exclusive (uuid, type) claims, exempt types, release, leases, clearing per server.
pub async fn sessions(store: S) {
    let now = 4_000_000;
    let a = Uuid::new_v4();
    let claim = |t: u8, server: &str, session: Uuid| SessionClaim {
        uuid: a,
        d4_type: t,
        session_id: session,
        server_id: server.into(),
        ip: ip("127.0.0.1"),
        lease_secs: 60,
    };
    let (s1, s2, s3, s4) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    assert!(store
        .try_claim_session(claim(8, "srv-a", s1), now)
        .await
        .unwrap());
    assert!(
        !store
            .try_claim_session(claim(8, "srv-b", s2), now)
            .await
            .unwrap(),
        "slot taken"
    );
    assert!(
        store
            .try_claim_session(claim(8, "srv-a", s1), now)
            .await
            .unwrap(),
        "re-claim by holder"
    );
    assert!(
        store
            .try_claim_session(claim(3, "srv-b", s2), now)
            .await
            .unwrap(),
        "other type is free"
    );
    // Exempt types: any number of sessions.
    assert!(store
        .try_claim_session(claim(254, "srv-a", s3), now)
        .await
        .unwrap());
    assert!(store
        .try_claim_session(claim(254, "srv-b", s4), now)
        .await
        .unwrap());
    assert!(store
        .try_claim_session(claim(2, "srv-b", s4), now)
        .await
        .unwrap());
    let mine = |v: Vec<ActiveSession>| v.into_iter().filter(|s| s.uuid == a).collect::<Vec<_>>();
    assert_eq!(mine(store.list_sessions(now).await.unwrap()).len(), 5);
    // Release by a non-holder does nothing; by the holder frees the slot.
    store.release_session(a, 8, s2).await.unwrap();
    assert!(!store
        .try_claim_session(claim(8, "srv-b", s2), now)
        .await
        .unwrap());
    store.release_session(a, 8, s1).await.unwrap();
    assert!(store
        .try_claim_session(claim(8, "srv-b", s2), now)
        .await
        .unwrap());
    // Leases: an expired claim no longer holds the slot, and is not listed.
    assert!(!store
        .try_claim_session(claim(8, "srv-a", s1), now + 59)
        .await
        .unwrap());
    assert!(
        store
            .try_claim_session(claim(8, "srv-a", s1), now + 60)
            .await
            .unwrap(),
        "lease expired"
    );
    // Renewal keeps a lease alive.
    assert_eq!(
        store
            .renew_sessions("srv-a".into(), 60, now + 100)
            .await
            .unwrap(),
        2
    );
    assert!(!store
        .try_claim_session(claim(8, "srv-b", s2), now + 150)
        .await
        .unwrap());
    let listed = mine(store.list_sessions(now + 150).await.unwrap());
    assert_eq!(listed.len(), 2, "srv-a's two renewed sessions: {listed:?}");
    assert!(listed
        .iter()
        .all(|s| s.server_id == "srv-a" && s.expires == now + 160));
    // Clearing a server's sessions frees its slots.
    assert_eq!(store.clear_sessions("srv-a".into()).await.unwrap(), 2);
    assert!(store
        .try_claim_session(claim(8, "srv-b", s2), now + 150)
        .await
        .unwrap());
    assert_eq!(store.clear_sessions("srv-b".into()).await.unwrap(), 4);
    assert!(mine(store.list_sessions(now).await.unwrap()).is_empty());
}

fn qconfig(kind: QueueKind, max_size: u64, sensors: Option<Vec<Uuid>>) -> QueueConfig {
    QueueConfig {
        uuid: Uuid::new_v4(),
        kind,
        description: "test queue".into(),
        max_size,
        sensors,
    }
}

/// Create, get, list, update, delete, queues_for with groups.
pub async fn queues_crud(store: S) {
    let now = 5_000_000;
    let sensor = Uuid::new_v4();
    let other = Uuid::new_v4();
    let g = store
        .create_queue(qconfig(QueueKind::Type(8), 100, None), now)
        .await
        .unwrap();
    assert_eq!((g.len, g.trimmed, g.created), (0, 0, now));
    let grp = store
        .create_queue(qconfig(QueueKind::Type(8), 100, Some(vec![sensor])), now)
        .await
        .unwrap();
    let ext = store
        .create_queue(qconfig(QueueKind::Ext("ja3-jl".into()), 100, None), now)
        .await
        .unwrap();
    assert!(matches!(
        store.create_queue(g.config.clone(), now).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store
            .create_queue(qconfig(QueueKind::Type(8), 0, None), now)
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .create_queue(qconfig(QueueKind::Ext("../x".into()), 10, None), now)
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.get_queue(g.config.uuid).await.unwrap().unwrap(), g);
    assert_eq!(store.get_queue(Uuid::new_v4()).await.unwrap(), None);
    let all = store.list_queues().await.unwrap();
    for q in [&g, &grp, &ext] {
        assert!(all.iter().any(|x| x.config.uuid == q.config.uuid));
    }
    let mut f = store.queues_for(QueueKind::Type(8), sensor).await.unwrap();
    f.sort();
    let mut want = [g.config.uuid, grp.config.uuid];
    want.sort();
    assert!(
        want.iter().all(|u| f.contains(u)),
        "global and group queue for the member"
    );
    let f = store.queues_for(QueueKind::Type(8), other).await.unwrap();
    assert!(
        f.contains(&g.config.uuid) && !f.contains(&grp.config.uuid),
        "group excludes others"
    );
    let f = store
        .queues_for(QueueKind::Ext("ja3-jl".into()), other)
        .await
        .unwrap();
    assert!(f.contains(&ext.config.uuid) && !f.contains(&g.config.uuid));
    assert!(!store
        .queues_for(QueueKind::Type(3), sensor)
        .await
        .unwrap()
        .contains(&g.config.uuid));

    // Update: description, group.
    let mut c = grp.config.clone();
    c.description = "changed".into();
    c.sensors = Some(vec![sensor, other]);
    let u = store.update_queue(c.clone(), now + 5).await.unwrap();
    assert_eq!(u.config, c);
    assert_eq!(u.last_updated, now + 5);
    assert!(store
        .queues_for(QueueKind::Type(8), other)
        .await
        .unwrap()
        .contains(&grp.config.uuid));
    assert!(matches!(
        store
            .update_queue(qconfig(QueueKind::Type(1), 1, None), now)
            .await,
        Err(StoreError::NotFound(_))
    ));
    for q in [&g, &grp, &ext] {
        assert!(store.delete_queue(q.config.uuid).await.unwrap());
        assert!(!store.delete_queue(q.config.uuid).await.unwrap());
    }
    assert!(!store
        .queues_for(QueueKind::Type(8), sensor)
        .await
        .unwrap()
        .contains(&g.config.uuid));
    assert!(matches!(
        store.pop_entries(g.config.uuid, 1).await,
        Err(StoreError::NotFound(_))
    ));
}

fn texts(v: &[QueueEntry]) -> Vec<String> {
    v.iter().map(|e| e.text().into_owned()).collect()
}

/// FIFO order, trimming drops the oldest and counts them, sample, empty, binary data.
pub async fn queue_fifo_and_trim(store: S) {
    let now = 6_000_000;
    let sensor = Uuid::new_v4();
    let q = store
        .create_queue(qconfig(QueueKind::Type(3), 5, None), now)
        .await
        .unwrap()
        .config
        .uuid;
    let entries = |r: std::ops::Range<u32>| {
        r.map(|i| QueueEntry::from_sensor(sensor, format!("line {i}")))
            .collect()
    };
    let out = store
        .push_entries(vec![q], entries(0..3), now + 1)
        .await
        .unwrap();
    assert_eq!(
        out,
        PushOutcome {
            pushed: 3,
            trimmed: 0
        }
    );
    assert_eq!(store.queue_len(q).await.unwrap(), 3);
    let out = store
        .push_entries(vec![q], entries(3..7), now + 2)
        .await
        .unwrap();
    assert_eq!(
        out,
        PushOutcome {
            pushed: 4,
            trimmed: 2
        }
    );
    let info = store.get_queue(q).await.unwrap().unwrap();
    assert_eq!((info.len, info.trimmed, info.last_updated), (5, 2, now + 2));
    // Sample: newest first, not removed.
    assert_eq!(
        texts(&store.queue_sample(q, 2).await.unwrap()),
        ["line 6", "line 5"]
    );
    assert_eq!(store.queue_sample(q, 100).await.unwrap().len(), 5);
    // Pop: oldest first; the oldest two were trimmed.
    let got = store.pop_entries(q, 2).await.unwrap();
    assert_eq!(texts(&got), ["line 2", "line 3"]);
    // The Redis backend stores d4-core's raw lines (analyzers RPOP them): no sensor.
    if store.backend() != "redis" {
        assert_eq!(got[0].sensor, Some(sensor));
    }
    // A batch larger than the queue keeps only its newest entries.
    let out = store
        .push_entries(vec![q], entries(100..112), now + 3)
        .await
        .unwrap();
    assert_eq!(
        out,
        PushOutcome {
            pushed: 12,
            trimmed: 10
        }
    ); // 3 old + 7 of the batch
    assert_eq!(store.get_queue(q).await.unwrap().unwrap().trimmed, 12);
    let got = store.pop_entries(q, 100).await.unwrap();
    assert_eq!(
        texts(&got),
        ["line 107", "line 108", "line 109", "line 110", "line 111"]
    );
    assert!(store.pop_entries(q, 100).await.unwrap().is_empty());
    assert_eq!(store.queue_len(q).await.unwrap(), 0);
    // Binary data and entries without a sensor survive.
    let bin = QueueEntry::new(vec![0u8, 0xff, b'\n', 0x80]);
    store
        .push_entries(vec![q], vec![bin.clone(), QueueEntry::new("")], now)
        .await
        .unwrap();
    assert_eq!(
        store.pop_entries(q, 10).await.unwrap(),
        vec![bin, QueueEntry::new("")]
    );
    // Empty.
    store
        .push_entries(vec![q], entries(0..4), now)
        .await
        .unwrap();
    assert_eq!(store.empty_queue(q).await.unwrap(), 4);
    assert_eq!(store.queue_len(q).await.unwrap(), 0);
    assert!(store.pop_entries(q, 10).await.unwrap().is_empty());
    // Lowering the max size trims at once (and counts).
    store
        .push_entries(vec![q], entries(0..5), now)
        .await
        .unwrap();
    let before = store.get_queue(q).await.unwrap().unwrap().trimmed;
    let mut c = store.get_queue(q).await.unwrap().unwrap().config;
    c.max_size = 2;
    let info = store.update_queue(c, now).await.unwrap();
    assert_eq!((info.len, info.trimmed), (2, before + 3));
    assert_eq!(
        texts(&store.pop_entries(q, 10).await.unwrap()),
        ["line 3", "line 4"]
    );
    assert!(matches!(
        store.queue_len(Uuid::new_v4()).await,
        Err(StoreError::NotFound(_))
    ));
    store.delete_queue(q).await.unwrap();
}

/// One push to several queues; unknown queues are skipped; duplicates count once.
pub async fn queue_push_many(store: S) {
    let now = 7_000_000;
    let a = store
        .create_queue(qconfig(QueueKind::Type(8), 10, None), now)
        .await
        .unwrap()
        .config
        .uuid;
    let b = store
        .create_queue(qconfig(QueueKind::Type(8), 2, None), now)
        .await
        .unwrap()
        .config
        .uuid;
    let entries: Vec<_> = (0..3).map(|i| QueueEntry::new(format!("e{i}"))).collect();
    let out = store
        .push_entries(vec![a, b, Uuid::new_v4(), a], entries, now)
        .await
        .unwrap();
    assert_eq!(
        out,
        PushOutcome {
            pushed: 6,
            trimmed: 1
        }
    );
    assert_eq!(
        texts(&store.pop_entries(a, 10).await.unwrap()),
        ["e0", "e1", "e2"]
    );
    assert_eq!(
        texts(&store.pop_entries(b, 10).await.unwrap()),
        ["e1", "e2"]
    );
    // Many entries in one call.
    let many: Vec<_> = (0..2000)
        .map(|i| QueueEntry::new(format!("{i:06}")))
        .collect();
    store.push_entries(vec![a], many, now).await.unwrap();
    let got = store.pop_entries(a, 5000).await.unwrap();
    assert_eq!(got.len(), 10);
    assert_eq!(got[0].text(), "001990");
    store.delete_queue(a).await.unwrap();
    store.delete_queue(b).await.unwrap();
}

/// `push_entries_once`: a position not greater than the journal's recorded one pushes
/// nothing; positions are per journal; `forget_journal` drops the record.
pub async fn queue_push_once(store: S) {
    let now = 7_100_000;
    let a = store
        .create_queue(qconfig(QueueKind::Type(3), 100, None), now)
        .await
        .unwrap()
        .config
        .uuid;
    let b = store
        .create_queue(qconfig(QueueKind::Type(3), 100, None), now)
        .await
        .unwrap()
        .config
        .uuid;
    let j = Uuid::new_v4();
    let k = Uuid::new_v4();
    let e = |s: &str| vec![QueueEntry::new(s.to_string())];
    assert_eq!(store.journal_position(j).await.unwrap(), None);
    let out = store
        .push_entries_once(j, 5, vec![a, b], e("five"), now)
        .await
        .unwrap();
    assert_eq!(
        out,
        Some(PushOutcome {
            pushed: 2,
            trimmed: 0
        })
    );
    assert_eq!(store.journal_position(j).await.unwrap(), Some(5));
    // the same position again (a replay after a crash), or an older one: nothing
    for p in [5, 1, 0] {
        let again = store
            .push_entries_once(j, p, vec![a, b], e("dup"), now)
            .await
            .unwrap();
        assert_eq!(again, None, "position {p}");
    }
    // another journal has its own positions; large positions (> 2^53) compare exactly
    let big = (1u64 << 60) + 1;
    assert!(store
        .push_entries_once(k, big, vec![a], e("k1"), now)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .push_entries_once(k, big - 1, vec![a], e("kdup"), now)
            .await
            .unwrap(),
        None
    );
    assert!(store
        .push_entries_once(k, big + 1, vec![a], e("k2"), now)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .push_entries_once(j, 6, vec![a], e("six"), now)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        texts(&store.pop_entries(a, 10).await.unwrap()),
        ["five", "k1", "k2", "six"]
    );
    assert_eq!(texts(&store.pop_entries(b, 10).await.unwrap()), ["five"]);
    // retired journals are forgotten; forgetting twice is fine
    store.forget_journal(j).await.unwrap();
    store.forget_journal(j).await.unwrap();
    assert_eq!(store.journal_position(j).await.unwrap(), None);
    assert_eq!(store.journal_position(k).await.unwrap(), Some(big + 1));
    assert!(store
        .push_entries_once(j, 1, vec![a], e("new"), now)
        .await
        .unwrap()
        .is_some());
    assert_eq!(texts(&store.pop_entries(a, 10).await.unwrap()), ["new"]);
    store.forget_journal(j).await.unwrap();
    store.forget_journal(k).await.unwrap();
    store.delete_queue(a).await.unwrap();
    store.delete_queue(b).await.unwrap();
}

/// A blocking pop waits, wakes up at once on a push, and times out when nothing comes.
pub async fn queue_blocking_pop(store: S) {
    let now = 8_000_000;
    let q = store
        .create_queue(qconfig(QueueKind::Type(8), 10, None), now)
        .await
        .unwrap()
        .config
        .uuid;
    // Timeout, empty.
    let t0 = Instant::now();
    let got = store
        .pop_entries_blocking(q, 10, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(got.is_empty());
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "waited {:?}",
        t0.elapsed()
    );
    // Immediate when entries are there.
    store
        .push_entries(vec![q], vec![QueueEntry::new("ready")], now)
        .await
        .unwrap();
    let got = store
        .pop_entries_blocking(q, 10, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(texts(&got), ["ready"]);
    // Woken by a push from another task, long before the timeout.
    let popper = {
        let store = store.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let got = store
                .pop_entries_blocking(q, 10, Duration::from_secs(20))
                .await
                .unwrap();
            (got, t0.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    store
        .push_entries(vec![q], vec![QueueEntry::new("late")], now)
        .await
        .unwrap();
    let (got, waited) = tokio::time::timeout(Duration::from_secs(10), popper)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(texts(&got), ["late"]);
    assert!(
        waited < Duration::from_secs(5),
        "woken at once, waited {waited:?}"
    );
    assert!(matches!(
        store
            .pop_entries_blocking(Uuid::new_v4(), 1, Duration::from_millis(10))
            .await,
        Err(StoreError::NotFound(_))
    ));
    store.delete_queue(q).await.unwrap();
}

fn user(name: &str, role: Role) -> User {
    User {
        name: name.into(),
        role,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        must_change_password: true,
        api_token_hash: None,
        created: 42,
        session_epoch: 0,
    }
}

/// Users: create, get, list, update (token index), delete.
pub async fn users(store: S) {
    let name = format!("admin-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let mut u = user(&name, Role::Admin);
    store.create_user(u.clone()).await.unwrap();
    assert!(matches!(
        store.create_user(u.clone()).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.create_user(user("bad name", Role::User)).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.get_user(name.clone()).await.unwrap(), Some(u.clone()));
    assert!(store
        .list_users()
        .await
        .unwrap()
        .iter()
        .any(|x| x.name == name));
    let h1 = crate::hash_secret("token-1");
    u.api_token_hash = Some(h1.clone());
    u.role = Role::User;
    u.must_change_password = false;
    store.update_user(u.clone()).await.unwrap();
    assert_eq!(
        store.user_by_token_hash(h1.clone()).await.unwrap(),
        Some(u.clone())
    );
    // Rotation: the old token stops working.
    let h2 = crate::hash_secret("token-2");
    u.api_token_hash = Some(h2.clone());
    store.update_user(u.clone()).await.unwrap();
    assert_eq!(store.user_by_token_hash(h1).await.unwrap(), None);
    assert_eq!(
        store
            .user_by_token_hash(h2.clone())
            .await
            .unwrap()
            .unwrap()
            .name,
        name
    );
    // The session epoch is kept as stored.
    u.session_epoch = 0xdead_beef_cafe;
    store.update_user(u.clone()).await.unwrap();
    assert_eq!(
        store
            .get_user(name.clone())
            .await
            .unwrap()
            .unwrap()
            .session_epoch,
        0xdead_beef_cafe
    );
    assert!(matches!(
        store.update_user(user("ghost", Role::User)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.delete_user(name.clone()).await.unwrap());
    assert!(!store.delete_user(name.clone()).await.unwrap());
    assert_eq!(store.get_user(name).await.unwrap(), None);
    assert_eq!(store.user_by_token_hash(h2).await.unwrap(), None);
}

/// Web sessions: expiry, deletion, purge, removal with their user.
pub async fn web_sessions(store: S) {
    let now = 9_000_000;
    let name = format!("u-{}", &Uuid::new_v4().simple().to_string()[..8]);
    store.create_user(user(&name, Role::User)).await.unwrap();
    let ws = |id: &str, expires| WebSession {
        id_hash: crate::hash_secret(id),
        user: name.clone(),
        csrf_token: "csrf".into(),
        created: now,
        expires,
        epoch: 77,
    };
    let (a, b, c) = (
        ws(&format!("{name}a"), now + 10),
        ws(&format!("{name}b"), now + 100),
        ws(&format!("{name}c"), now + 100),
    );
    for s in [&a, &b, &c] {
        store.create_web_session(s.clone()).await.unwrap();
    }
    assert_eq!(
        store.get_web_session(a.id_hash.clone(), now).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store
            .get_web_session(a.id_hash.clone(), now + 10)
            .await
            .unwrap(),
        None,
        "expired"
    );
    assert!(store.purge_expired(now + 50).await.unwrap() >= 1);
    assert_eq!(
        store.get_web_session(a.id_hash.clone(), now).await.unwrap(),
        None,
        "purged"
    );
    assert!(store.delete_web_session(b.id_hash.clone()).await.unwrap());
    assert!(!store.delete_web_session(b.id_hash.clone()).await.unwrap());
    assert!(store
        .get_web_session(c.id_hash.clone(), now)
        .await
        .unwrap()
        .is_some());
    store.delete_user(name).await.unwrap();
    assert_eq!(
        store.get_web_session(c.id_hash.clone(), now).await.unwrap(),
        None,
        "gone with its user"
    );
}
