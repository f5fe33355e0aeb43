//! Conformance: leases (the exclusive slot of a live D4 session).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use uuid::Uuid;

use super::{ip, S};
use crate::model::*;

/// Exclusive (uuid, type) claims, exempt types, release, leases, clearing per server.
pub async fn leases(store: S) {
    let now = 4_000_000;
    let a = Uuid::new_v4();
    let claim = |t: u8, server: &str, session: Uuid| LeaseClaim {
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
        .try_claim_lease(claim(8, "srv-a", s1), now)
        .await
        .unwrap());
    assert!(
        !store
            .try_claim_lease(claim(8, "srv-b", s2), now)
            .await
            .unwrap(),
        "slot taken"
    );
    assert!(
        store
            .try_claim_lease(claim(8, "srv-a", s1), now)
            .await
            .unwrap(),
        "re-claim by holder"
    );
    assert!(
        store
            .try_claim_lease(claim(3, "srv-b", s2), now)
            .await
            .unwrap(),
        "other type is free"
    );
    // Exempt types: any number of sessions.
    assert!(store
        .try_claim_lease(claim(254, "srv-a", s3), now)
        .await
        .unwrap());
    assert!(store
        .try_claim_lease(claim(254, "srv-b", s4), now)
        .await
        .unwrap());
    assert!(store
        .try_claim_lease(claim(2, "srv-b", s4), now)
        .await
        .unwrap());
    let mine = |v: Vec<Lease>| v.into_iter().filter(|s| s.uuid == a).collect::<Vec<_>>();
    assert_eq!(mine(store.list_leases(now).await.unwrap()).len(), 5);
    // Release by a non-holder does nothing; by the holder frees the slot.
    store.release_lease(a, 8, s2).await.unwrap();
    assert!(!store
        .try_claim_lease(claim(8, "srv-b", s2), now)
        .await
        .unwrap());
    store.release_lease(a, 8, s1).await.unwrap();
    assert!(store
        .try_claim_lease(claim(8, "srv-b", s2), now)
        .await
        .unwrap());
    // Leases: an expired claim no longer holds the slot, and is not listed.
    assert!(!store
        .try_claim_lease(claim(8, "srv-a", s1), now + 59)
        .await
        .unwrap());
    assert!(
        store
            .try_claim_lease(claim(8, "srv-a", s1), now + 60)
            .await
            .unwrap(),
        "lease expired"
    );
    // Renewal keeps a lease alive.
    assert_eq!(
        store
            .renew_leases("srv-a".into(), 60, now + 100)
            .await
            .unwrap(),
        2
    );
    assert!(!store
        .try_claim_lease(claim(8, "srv-b", s2), now + 150)
        .await
        .unwrap());
    let listed = mine(store.list_leases(now + 150).await.unwrap());
    assert_eq!(listed.len(), 2, "srv-a's two renewed sessions: {listed:?}");
    assert!(listed
        .iter()
        .all(|s| s.server_id == "srv-a" && s.expires == now + 160));
    // Clearing a server's sessions frees its slots.
    assert_eq!(store.clear_leases("srv-a".into()).await.unwrap(), 2);
    assert!(store
        .try_claim_lease(claim(8, "srv-b", s2), now + 150)
        .await
        .unwrap());
    assert_eq!(store.clear_leases("srv-b".into()).await.unwrap(), 4);
    assert!(mine(store.list_leases(now).await.unwrap()).is_empty());
}
