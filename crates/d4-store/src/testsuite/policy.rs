//! Conformance: blocklists, kicks, accepted types.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use uuid::Uuid;

use super::{ip, S};
use crate::model::*;
use crate::StoreError;

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
