//! Conformance: leased consumption (lease, acknowledge, redelivery after a restart or an
//! expired lease) beside the plain pops of reference analyzers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use uuid::Uuid;

use super::queues::{qconfig, texts};
use super::S;
use crate::model::*;
use crate::StoreError;

fn data(v: &[LeasedEntry]) -> Vec<String> {
    v.iter().map(|l| l.entry.text().into_owned()).collect()
}

fn ids(v: &[LeasedEntry]) -> Vec<u64> {
    v.iter().map(|l| l.id).collect()
}

async fn queue_with(store: &S, kind: QueueKind, items: &[&str], now: u64) -> Uuid {
    let q = store
        .create_queue(qconfig(kind, 100, None), now)
        .await
        .unwrap()
        .config
        .uuid;
    let entries = items
        .iter()
        .map(|s| QueueEntry::new(s.to_string()))
        .collect();
    store.push_entries(vec![q], entries, now).await.unwrap();
    q
}

/// Lease, lease again without acknowledging (the same entries again: a consumer restarted
/// under its name), acknowledge, then the rest; leased entries leave the queue.
pub async fn lease_and_ack(store: S) {
    let now = 7_300_000;
    let q = queue_with(
        &store,
        QueueKind::Type(8),
        &["e0", "e1", "e2", "e3", "e4"],
        now,
    )
    .await;
    let a = || "pdns-a".to_string();
    let first = store.lease_entries(q, a(), 3, 60, now).await.unwrap();
    assert_eq!(data(&first), ["e0", "e1", "e2"]);
    assert_eq!(
        store.queue_len(q).await.unwrap(),
        2,
        "leased entries left the queue"
    );
    let again = store.lease_entries(q, a(), 3, 60, now + 1).await.unwrap();
    assert_eq!(again, first, "not acknowledged: delivered again, same ids");
    assert_eq!(store.queue_len(q).await.unwrap(), 2);
    assert_eq!(store.ack_entries(q, a(), ids(&first)).await.unwrap(), 3);
    assert_eq!(
        store.ack_entries(q, a(), ids(&first)).await.unwrap(),
        0,
        "acked once"
    );
    let rest = store.lease_entries(q, a(), 10, 60, now + 2).await.unwrap();
    assert_eq!(data(&rest), ["e3", "e4"]);
    let mut all = ids(&first);
    all.extend(ids(&rest));
    let mut uniq = all.clone();
    uniq.sort_unstable();
    uniq.dedup();
    assert_eq!(uniq.len(), all.len(), "ids are distinct: {all:?}");
    assert_eq!(store.ack_entries(q, a(), ids(&rest)).await.unwrap(), 2);
    assert!(store
        .lease_entries(q, a(), 10, 60, now + 3)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.queue_len(q).await.unwrap(), 0);
    // A lease that ends with leftovers and fresh entries: leftovers first.
    store
        .push_entries(
            vec![q],
            vec![QueueEntry::new("f0"), QueueEntry::new("f1")],
            now,
        )
        .await
        .unwrap();
    let one = store.lease_entries(q, a(), 1, 60, now + 4).await.unwrap();
    assert_eq!(data(&one), ["f0"]);
    let two = store.lease_entries(q, a(), 2, 60, now + 5).await.unwrap();
    assert_eq!(data(&two), ["f0", "f1"]);
    assert_eq!(two[0].id, one[0].id);
    assert_eq!(store.ack_entries(q, a(), ids(&two)).await.unwrap(), 2);
    // Errors: unknown queue, bad consumer name; max 0 leases nothing.
    assert!(matches!(
        store.lease_entries(Uuid::new_v4(), a(), 1, 60, now).await,
        Err(StoreError::NotFound(_))
    ));
    for bad in ["", "a b", "a:b", &"c".repeat(65)] {
        assert!(
            matches!(
                store.lease_entries(q, bad.to_string(), 1, 60, now).await,
                Err(StoreError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    assert!(store
        .lease_entries(q, a(), 0, 60, now)
        .await
        .unwrap()
        .is_empty());
    store.delete_queue(q).await.unwrap();
}

/// A consumer killed with its entries leased: once its lease expired, another consumer
/// gets them first; the dead consumer's late acknowledgement does nothing.
pub async fn lease_expiry_redelivers(store: S) {
    let now = 7_400_000;
    let q = queue_with(
        &store,
        QueueKind::Ext("ja3-jl".into()),
        &["x0", "x1", "x2"],
        now,
    )
    .await;
    let (a, b) = (|| "ingest-a".to_string(), || "ingest-b".to_string());
    let held = store.lease_entries(q, a(), 2, 10, now).await.unwrap();
    assert_eq!(data(&held), ["x0", "x1"]);
    store
        .push_entries(vec![q], vec![QueueEntry::new("x3")], now)
        .await
        .unwrap();
    // Before the expiry: b gets only what nobody holds.
    let got = store.lease_entries(q, b(), 10, 10, now + 5).await.unwrap();
    assert_eq!(data(&got), ["x2", "x3"]);
    assert_eq!(store.ack_entries(q, b(), ids(&got)).await.unwrap(), 2);
    store
        .push_entries(vec![q], vec![QueueEntry::new("x4")], now)
        .await
        .unwrap();
    // After: a's entries come first, then the queued one.
    let got = store.lease_entries(q, b(), 10, 10, now + 10).await.unwrap();
    assert_eq!(data(&got), ["x0", "x1", "x4"]);
    assert_eq!(
        store.ack_entries(q, a(), ids(&held)).await.unwrap(),
        0,
        "no longer a's"
    );
    assert_eq!(store.ack_entries(q, b(), ids(&got)).await.unwrap(), 3);
    assert!(store
        .lease_entries(q, a(), 10, 10, now + 11)
        .await
        .unwrap()
        .is_empty());
    store.delete_queue(q).await.unwrap();
}

/// Reference analyzers that pop keep working beside leasing consumers, and deleting a
/// queue drops its leases.
pub async fn lease_beside_pops(store: S) {
    let now = 7_500_000;
    let q = queue_with(&store, QueueKind::Type(3), &["p0", "p1", "p2", "p3"], now).await;
    let c = || "pibs".to_string();
    let held = store.lease_entries(q, c(), 2, 60, now).await.unwrap();
    assert_eq!(data(&held), ["p0", "p1"]);
    assert_eq!(
        texts(&store.pop_entries(q, 10).await.unwrap()),
        ["p2", "p3"]
    );
    assert!(
        store.pop_entries(q, 10).await.unwrap().is_empty(),
        "leased: not popped"
    );
    assert!(store.delete_queue(q).await.unwrap());
    let q2 = store
        .create_queue(
            QueueConfig {
                uuid: q,
                ..qconfig(QueueKind::Type(3), 100, None)
            },
            now,
        )
        .await
        .unwrap()
        .config
        .uuid;
    assert!(
        store
            .lease_entries(q2, c(), 10, 60, now + 100)
            .await
            .unwrap()
            .is_empty(),
        "the deleted queue's leases are gone"
    );
    store.delete_queue(q2).await.unwrap();
}
