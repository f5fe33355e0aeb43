//! Conformance: pushes to several queues, keyed pushes (at most once), batches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use uuid::Uuid;

use super::S;
use crate::model::*;

use super::queues::{qconfig, texts};

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

/// Keyed pushes (formerly `push_entries_once`): a seq not greater than the producer's
/// recorded one pushes nothing; seqs are per producer; `forget_producer` drops the record.
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
    let key = |producer: Uuid, seq: u64| Some(PushKey { producer, seq });
    let push = |queues: Vec<Uuid>, entries: Vec<QueueEntry>| vec![QueuePush { queues, entries }];
    assert_eq!(store.pushed_seq(j).await.unwrap(), None);
    let out = store
        .push_batch(key(j, 5), push(vec![a, b], e("five")), now)
        .await
        .unwrap();
    assert_eq!(
        out,
        Some(PushOutcome {
            pushed: 2,
            trimmed: 0
        })
    );
    assert_eq!(store.pushed_seq(j).await.unwrap(), Some(5));
    // the same position again (a replay after a crash), or an older one: nothing
    for p in [5, 1, 0] {
        let again = store
            .push_batch(key(j, p), push(vec![a, b], e("dup")), now)
            .await
            .unwrap();
        assert_eq!(again, None, "position {p}");
    }
    // another journal has its own positions; large positions (> 2^53) compare exactly
    let big = (1u64 << 60) + 1;
    assert!(store
        .push_batch(key(k, big), push(vec![a], e("k1")), now)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .push_batch(key(k, big - 1), push(vec![a], e("kdup")), now)
            .await
            .unwrap(),
        None
    );
    assert!(store
        .push_batch(key(k, big + 1), push(vec![a], e("k2")), now)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .push_batch(key(j, 6), push(vec![a], e("six")), now)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        texts(&store.pop_entries(a, 10).await.unwrap()),
        ["five", "k1", "k2", "six"]
    );
    assert_eq!(texts(&store.pop_entries(b, 10).await.unwrap()), ["five"]);
    // retired journals are forgotten; forgetting twice is fine
    store.forget_producer(j).await.unwrap();
    store.forget_producer(j).await.unwrap();
    assert_eq!(store.pushed_seq(j).await.unwrap(), None);
    assert_eq!(store.pushed_seq(k).await.unwrap(), Some(big + 1));
    assert!(store
        .push_batch(key(j, 1), push(vec![a], e("new")), now)
        .await
        .unwrap()
        .is_some());
    assert_eq!(texts(&store.pop_entries(a, 10).await.unwrap()), ["new"]);
    store.forget_producer(j).await.unwrap();
    store.forget_producer(k).await.unwrap();
    store.delete_queue(a).await.unwrap();
    store.delete_queue(b).await.unwrap();
}

/// `push_batch` with several pushes: all in one call, in order (a queue named by two
/// pushes gets both, in push order); a keyed batch sent twice is pushed once; a keyed
/// batch that reaches no queue still records its seq.
pub async fn queue_push_batch(store: S) {
    let now = 7_200_000;
    let a = store
        .create_queue(qconfig(QueueKind::Type(3), 100, None), now)
        .await
        .unwrap()
        .config
        .uuid;
    let b = store
        .create_queue(qconfig(QueueKind::Ext("ja3-jl".into()), 2, None), now)
        .await
        .unwrap()
        .config
        .uuid;
    let e = |v: &[&str]| v.iter().map(|s| QueueEntry::new(s.to_string())).collect();
    let batch = vec![
        QueuePush {
            queues: vec![a],
            entries: e(&["a1", "a2"]),
        },
        QueuePush {
            queues: vec![a, b, Uuid::new_v4()],
            entries: e(&["x1", "x2", "x3"]),
        },
        QueuePush {
            queues: vec![b],
            entries: Vec::new(),
        },
    ];
    let producer = Uuid::new_v4();
    let key = Some(PushKey { producer, seq: 10 });
    let out = store.push_batch(key, batch.clone(), now).await.unwrap();
    assert_eq!(
        out,
        Some(PushOutcome {
            pushed: 8,
            trimmed: 1
        })
    );
    assert_eq!(store.pushed_seq(producer).await.unwrap(), Some(10));
    // The same batch again (a replay): nothing, nothing duplicated.
    assert_eq!(
        store.push_batch(key, batch.clone(), now).await.unwrap(),
        None
    );
    assert_eq!(store.queue_len(a).await.unwrap(), 5);
    assert_eq!(store.queue_len(b).await.unwrap(), 2);
    assert_eq!(
        texts(&store.pop_entries(a, 10).await.unwrap()),
        ["a1", "a2", "x1", "x2", "x3"]
    );
    assert_eq!(
        texts(&store.pop_entries(b, 10).await.unwrap()),
        ["x2", "x3"]
    );
    let q = store.get_queue(b).await.unwrap().unwrap();
    assert_eq!(q.trimmed, 1);
    // Without a key: always pushed.
    for _ in 0..2 {
        let out = store
            .push_batch(None, batch[..1].to_vec(), now)
            .await
            .unwrap();
        assert_eq!(
            out,
            Some(PushOutcome {
                pushed: 2,
                trimmed: 0
            })
        );
    }
    assert_eq!(store.queue_len(a).await.unwrap(), 4);
    // A keyed batch that reaches no queue records its seq all the same.
    let nowhere = vec![QueuePush {
        queues: vec![Uuid::new_v4()],
        entries: e(&["lost"]),
    }];
    let key = Some(PushKey { producer, seq: 11 });
    assert_eq!(
        store.push_batch(key, nowhere.clone(), now).await.unwrap(),
        Some(PushOutcome::default())
    );
    assert_eq!(store.pushed_seq(producer).await.unwrap(), Some(11));
    assert_eq!(store.push_batch(key, nowhere, now).await.unwrap(), None);
    store.forget_producer(producer).await.unwrap();
    assert_eq!(store.pushed_seq(producer).await.unwrap(), None);
    store.delete_queue(a).await.unwrap();
    store.delete_queue(b).await.unwrap();
}
