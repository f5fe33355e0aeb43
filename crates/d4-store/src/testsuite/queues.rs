//! Conformance: analyzer queues (settings, FIFO, trimming, blocking pops).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::S;
use crate::model::*;
use crate::StoreError;

pub(super) fn qconfig(kind: QueueKind, max_size: u64, sensors: Option<Vec<Uuid>>) -> QueueConfig {
    QueueConfig {
        uuid: Uuid::new_v4(),
        kind,
        description: "test queue".into(),
        max_size,
        sensors,
        groups: Vec::new(),
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

pub(super) fn texts(v: &[QueueEntry]) -> Vec<String> {
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

/// `Queue::oldest`: the push time of the oldest queued entry, through pushes, pops,
/// trimming, leases and emptying.
pub async fn queue_oldest(store: S) {
    let q = store
        .create_queue(qconfig(QueueKind::Type(3), 3, None), 50)
        .await
        .unwrap();
    let id = q.config.uuid;
    assert_eq!(q.oldest, None, "a new queue has no oldest entry");
    let oldest = |s: S| async move { s.get_queue(id).await.unwrap().unwrap().oldest };
    let push = |s: S, data: &'static str, now: u64| async move {
        s.push_entries(vec![id], vec![QueueEntry::new(data)], now)
            .await
            .unwrap();
    };
    // seq 0 "a" and 1 "b" at 100, 2 "c" at 105.
    push(store.clone(), "a", 100).await;
    push(store.clone(), "b", 100).await;
    push(store.clone(), "c", 105).await;
    assert_eq!(oldest(store.clone()).await, Some(100));
    let listed = store.list_queues().await.unwrap();
    let listed = listed.iter().find(|x| x.config.uuid == id).unwrap();
    assert_eq!(listed.oldest, Some(100), "list_queues carries it too");
    // Pop "a": "b" (100) is the oldest; pop "b": "c" (105).
    assert_eq!(store.pop_entries(id, 1).await.unwrap()[0].data, b"a");
    assert_eq!(oldest(store.clone()).await, Some(100));
    assert_eq!(store.pop_entries(id, 1).await.unwrap()[0].data, b"b");
    assert_eq!(oldest(store.clone()).await, Some(105));
    // "d" at 110, "e" at 120: c d e; "f" at 130 trims "c": d (110) is the oldest.
    push(store.clone(), "d", 110).await;
    push(store.clone(), "e", 120).await;
    assert_eq!(oldest(store.clone()).await, Some(105));
    push(store.clone(), "f", 130).await;
    let now = store.get_queue(id).await.unwrap().unwrap();
    assert_eq!((now.len, now.trimmed, now.oldest), (3, 1, Some(110)));
    // A lease takes "d" out of the queue: "e" (120).
    let leased = store
        .lease_entries(id, "oldest-test".into(), 1, 300, 131)
        .await
        .unwrap();
    assert_eq!(leased[0].entry.data, b"d");
    assert_eq!(oldest(store.clone()).await, Some(120));
    // Emptied: none; a new push: its own time.
    store.empty_queue(id).await.unwrap();
    assert_eq!(oldest(store.clone()).await, None);
    push(store.clone(), "g", 200).await;
    assert_eq!(oldest(store.clone()).await, Some(200));
    store.delete_queue(id).await.unwrap();
}
