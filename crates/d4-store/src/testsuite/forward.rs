//! Conformance: forwarding rules and their per-server counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use uuid::Uuid;

use super::S;
use crate::model::*;
use crate::StoreError;

fn fresh_name() -> String {
    format!("rule-{}", &Uuid::new_v4().simple().to_string()[..12])
}

/// A valid rule (pinned TLS, type 8 from tagged sensors, client IP pseudonymised).
pub fn sample_rule(name: &str) -> ForwardRule {
    ForwardRule {
        name: name.into(),
        enabled: true,
        description: "to partner B".into(),
        destination: "127.0.0.1:4443".into(),
        tls: ForwardTls {
            pin_sha256: Some("AB".repeat(32)),
            ..Default::default()
        },
        uuid: Uuid::new_v4(),
        hmac_key: "partner key".into(),
        filter: ForwardFilter {
            types: vec![8, 1],
            tags: vec!["share".into()],
            ..Default::default()
        },
        tags: vec!["tlp:green".into()],
        privacy: Privacy {
            key: String::new(),
            pdns: Some(PdnsPrivacy {
                client_ip: AddressAction::Pseudonymise,
                round_secs: 60,
                aggregate_secs: 0,
            }),
            pcap: Some(PcapPrivacy {
                prefixes: vec!["10.1.2.3/8".parse().unwrap()],
                truncate_payload: false,
            }),
            json: None,
            log: None,
        },
        spool_limit: 0,
        created: 0,
        updated: 0,
    }
}

async fn next_forward_event(events: &mut tokio::sync::broadcast::Receiver<StoreEvent>) -> bool {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(StoreEvent::ForwardRulesChanged) => return true,
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return false,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .unwrap_or(false)
}

/// Rules: create (times, generated privacy key, one spelling), refusals, get, list,
/// update (created and privacy key kept), enable/disable, delete; each change is an event.
pub async fn forward_rules(store: S) {
    let mut events = store.subscribe();
    let name = fresh_name();
    let created = store
        .create_forward_rule(sample_rule(&name), 1_000)
        .await
        .unwrap();
    assert!(next_forward_event(&mut events).await, "create event");
    assert_eq!((created.created, created.updated), (1_000, 1_000));
    assert_eq!(created.privacy.key.len(), 64, "privacy key generated");
    assert_eq!(
        created.tls.pin_sha256,
        Some("ab".repeat(32)),
        "pin lowercased"
    );
    assert_eq!(created.filter.types, vec![1, 8], "types sorted");
    assert_eq!(
        created.privacy.pcap.as_ref().unwrap().prefixes,
        vec!["10.0.0.0/8".parse::<ipnet::IpNet>().unwrap()]
    );
    assert_eq!(
        store.get_forward_rule(name.clone()).await.unwrap(),
        Some(created.clone())
    );
    assert!(matches!(
        store.create_forward_rule(sample_rule(&name), 1_001).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let other = fresh_name();
    let second = store
        .create_forward_rule(sample_rule(&other), 1_002)
        .await
        .unwrap();
    assert_ne!(second.privacy.key, created.privacy.key, "keys are random");

    // Refusals: the store checks like the front ends.
    let mut bad = sample_rule(&fresh_name());
    bad.filter.types = vec![5];
    assert!(matches!(
        store.create_forward_rule(bad, 1).await,
        Err(StoreError::Invalid(_))
    ));
    let mut bad = sample_rule(&fresh_name());
    bad.tls.ca_pem = Some("-----BEGIN CERTIFICATE-----\n".into());
    assert!(matches!(
        store.create_forward_rule(bad, 1).await,
        Err(StoreError::Invalid(_))
    ));
    let mut bad = sample_rule("bad name");
    bad.hmac_key = "k".into();
    assert!(matches!(
        store.create_forward_rule(bad, 1).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        store.get_forward_rule("bad name".into()).await.unwrap(),
        None
    );

    let list = store.list_forward_rules().await.unwrap();
    let names: Vec<&str> = list.iter().map(|r| r.name.as_str()).collect();
    assert!(names.contains(&name.as_str()) && names.contains(&other.as_str()));
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "ordered by name");

    // Update: replace by name; created and (empty) privacy key kept.
    let mut change = sample_rule(&name);
    change.destination = "[::1]:4443".into();
    change.filter.types = vec![8];
    change.created = 5;
    let updated = store
        .update_forward_rule(change.clone(), 2_000)
        .await
        .unwrap();
    assert!(next_forward_event(&mut events).await, "update event");
    assert_eq!((updated.created, updated.updated), (1_000, 2_000));
    assert_eq!(updated.privacy.key, created.privacy.key);
    assert_eq!(updated.destination, "[::1]:4443");
    assert_eq!(
        store.get_forward_rule(name.clone()).await.unwrap(),
        Some(updated.clone())
    );
    change.privacy.key = "0f".repeat(32);
    let rekeyed = store.update_forward_rule(change, 2_001).await.unwrap();
    assert_eq!(rekeyed.privacy.key, "0f".repeat(32));
    assert!(matches!(
        store
            .update_forward_rule(sample_rule(&fresh_name()), 1)
            .await,
        Err(StoreError::NotFound(_))
    ));
    let mut bad = sample_rule(&name);
    bad.destination = "nowhere".into();
    assert!(matches!(
        store.update_forward_rule(bad, 1).await,
        Err(StoreError::Invalid(_))
    ));

    // Enable / disable.
    let off = store
        .set_forward_rule_enabled(name.clone(), false)
        .await
        .unwrap();
    assert!(!off.enabled);
    assert!(next_forward_event(&mut events).await, "disable event");
    assert!(
        !store
            .get_forward_rule(name.clone())
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    assert!(
        store
            .set_forward_rule_enabled(name.clone(), true)
            .await
            .unwrap()
            .enabled
    );
    assert!(matches!(
        store.set_forward_rule_enabled(fresh_name(), true).await,
        Err(StoreError::NotFound(_))
    ));

    // Delete.
    assert!(store.delete_forward_rule(name.clone()).await.unwrap());
    assert!(next_forward_event(&mut events).await, "delete event");
    assert!(!store.delete_forward_rule(name.clone()).await.unwrap());
    assert_eq!(store.get_forward_rule(name.clone()).await.unwrap(), None);
    assert!(store.delete_forward_rule(other).await.unwrap());
}

/// Counters: one snapshot per server, replaced by the next report; dropped with the rule;
/// a report for an unknown rule is ignored; a new rule of the same name starts at zero.
pub async fn forward_rule_stats(store: S) {
    let name = fresh_name();
    store
        .create_forward_rule(sample_rule(&name), 10)
        .await
        .unwrap();
    assert!(store.forward_stats(name.clone()).await.unwrap().is_empty());
    let stats = |frames: u64| ForwardStats {
        frames_forwarded: frames,
        bytes_forwarded: frames * 100,
        frames_spooled: 3,
        connected: true,
        last_error: Some("partner refused".into()),
        last_error_time: Some(11),
        ..Default::default()
    };
    store
        .record_forward_stats(name.clone(), "server-b".into(), stats(5), 20)
        .await
        .unwrap();
    store
        .record_forward_stats(name.clone(), "server-a".into(), stats(1), 21)
        .await
        .unwrap();
    store
        .record_forward_stats(name.clone(), "server-a".into(), stats(7), 22)
        .await
        .unwrap();
    let got = store.forward_stats(name.clone()).await.unwrap();
    assert_eq!(
        got,
        vec![
            ForwardServerStats {
                server_id: "server-a".into(),
                time: 22,
                stats: stats(7),
            },
            ForwardServerStats {
                server_id: "server-b".into(),
                time: 20,
                stats: stats(5),
            },
        ]
    );
    // Unknown rule: ignored, nothing created.
    let ghost = fresh_name();
    store
        .record_forward_stats(ghost.clone(), "server-a".into(), stats(1), 23)
        .await
        .unwrap();
    assert!(store.forward_stats(ghost).await.unwrap().is_empty());
    // Deleted with the rule; a rule created again under the name starts afresh.
    assert!(store.delete_forward_rule(name.clone()).await.unwrap());
    assert!(store.forward_stats(name.clone()).await.unwrap().is_empty());
    store
        .create_forward_rule(sample_rule(&name), 30)
        .await
        .unwrap();
    assert!(store.forward_stats(name.clone()).await.unwrap().is_empty());
    assert!(store.delete_forward_rule(name).await.unwrap());
}
