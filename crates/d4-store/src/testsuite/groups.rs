//! Conformance: sensor names and tags, sensor groups (and the queues that name them), and
//! the partner meta kept on third-party sensors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use uuid::Uuid;

use super::queues::qconfig;
use super::S;
use crate::model::*;
use crate::StoreError;

fn fresh_name(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..12])
}

fn group(name: &str, sensors: Vec<Uuid>) -> SensorGroup {
    SensorGroup {
        name: name.to_string(),
        description: "test group".into(),
        sensors,
    }
}

/// Names and tags: set, normalised (sorted, no duplicates), kept by other updates,
/// cleared, refused when invalid.
pub async fn sensor_names_and_tags(store: S) {
    let a = Uuid::new_v4();
    let s = store
        .update_sensor(
            a,
            SensorUpdate {
                name: Some("Tap Paris 1".into()),
                tags: Some(vec!["share".into(), "tlp:green".into(), "share".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.name, "Tap Paris 1");
    assert_eq!(s.tags, vec!["share".to_string(), "tlp:green".to_string()]);
    assert_eq!(s.label(), "Tap Paris 1");
    // Other updates keep them.
    let s = store
        .update_sensor(
            a,
            SensorUpdate {
                description: Some("d".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.name, "Tap Paris 1");
    assert_eq!(s.tags.len(), 2);
    assert_eq!(store.get_sensor(a).await.unwrap().unwrap(), s);
    let listed = store.list_sensors().await.unwrap();
    assert_eq!(listed.iter().find(|x| x.uuid == a), Some(&s));
    // Invalid: refused, nothing changed.
    for bad in [
        SensorUpdate {
            tags: Some(vec!["two words".into()]),
            ..Default::default()
        },
        SensorUpdate {
            name: Some(" padded".into()),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            store.update_sensor(a, bad).await,
            Err(StoreError::Invalid(_))
        ));
    }
    assert_eq!(store.get_sensor(a).await.unwrap().unwrap(), s);
    // Cleared.
    let s = store
        .update_sensor(
            a,
            SensorUpdate {
                name: Some(String::new()),
                tags: Some(Vec::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((s.name.as_str(), s.tags.len()), ("", 0));
    assert_eq!(s.label(), a.simple().to_string());
    assert_eq!(store.get_sensor(a).await.unwrap().unwrap(), s);
}

/// Groups: create, conflicts, invalid names, get, list (by name), update, delete,
/// `groups_of`, and the `groups_changed` event.
pub async fn sensor_groups(store: S) {
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let n1 = fresh_name("g1");
    let n2 = fresh_name("g2");
    let mut events = store.subscribe();
    // Give a remote subscription time to be set up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let g1 = store.create_group(group(&n1, vec![b, a, b])).await.unwrap();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(g1.sensors, want, "sorted, no duplicates");
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await {
                Ok(StoreEvent::GroupsChanged) => return,
                Ok(_) => continue,
                Err(e) => panic!("event stream: {e}"),
            }
        }
    })
    .await;
    assert!(got.is_ok(), "groups_changed event within 5 s");
    assert!(matches!(
        store.create_group(group(&n1, vec![])).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.create_group(group("bad name", vec![])).await,
        Err(StoreError::Invalid(_))
    ));
    let g2 = store.create_group(group(&n2, vec![c])).await.unwrap();
    assert_eq!(store.get_group(n1.clone()).await.unwrap(), Some(g1.clone()));
    assert_eq!(store.get_group(fresh_name("none")).await.unwrap(), None);
    let all = store.list_groups().await.unwrap();
    let mine: Vec<&SensorGroup> = all
        .iter()
        .filter(|g| g.name == n1 || g.name == n2)
        .collect();
    assert_eq!(mine, vec![&g1, &g2], "ordered by name");
    let names: Vec<&String> = all.iter().map(|g| &g.name).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(store.groups_of(a).await.unwrap(), vec![n1.clone()]);

    // Update: replace by name.
    let mut changed = g1.clone();
    changed.sensors = vec![c];
    changed.description = "now c".into();
    let g1 = store.update_group(changed).await.unwrap();
    assert_eq!(store.get_group(n1.clone()).await.unwrap(), Some(g1.clone()));
    assert!(store.groups_of(a).await.unwrap().is_empty());
    let mut both = vec![n1.clone(), n2.clone()];
    both.sort();
    assert_eq!(store.groups_of(c).await.unwrap(), both);
    assert!(matches!(
        store.update_group(group(&fresh_name("none"), vec![])).await,
        Err(StoreError::NotFound(_))
    ));

    // Delete.
    assert!(store.delete_group(n1.clone()).await.unwrap());
    assert!(!store.delete_group(n1.clone()).await.unwrap());
    assert_eq!(store.get_group(n1.clone()).await.unwrap(), None);
    assert_eq!(store.groups_of(c).await.unwrap(), vec![n2.clone()]);
    assert!(store.delete_group(n2).await.unwrap());
}

/// Queues naming groups: fed by the groups' members (current membership), by the listed
/// sensors too when both are set; a groups-only queue is not global.
pub async fn queues_by_group(store: S) {
    let now = 6_000_000;
    let kind = QueueKind::Ext(fresh_name("grp"));
    let (a, b, c, d) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let n = fresh_name("qg");
    store.create_group(group(&n, vec![a])).await.unwrap();
    let mut only_groups = qconfig(kind.clone(), 10, None);
    only_groups.groups = vec![n.clone()];
    let q1 = store.create_queue(only_groups, now).await.unwrap();
    assert_eq!(q1.config.groups, vec![n.clone()]);
    assert!(!q1.config.is_global());
    assert_eq!(store.get_queue(q1.config.uuid).await.unwrap().unwrap(), q1);
    let mut mixed = qconfig(kind.clone(), 10, Some(vec![b]));
    mixed.groups = vec![n.clone(), fresh_name("missing")];
    let q2 = store.create_queue(mixed, now).await.unwrap();
    let global = store
        .create_queue(qconfig(kind.clone(), 10, None), now)
        .await
        .unwrap();
    let sorted = |mut v: Vec<Uuid>| {
        v.sort();
        v
    };
    let ids = |qs: &[&Queue]| sorted(qs.iter().map(|q| q.config.uuid).collect());
    assert_eq!(
        store.queues_for(kind.clone(), a).await.unwrap(),
        ids(&[&q1, &q2, &global])
    );
    assert_eq!(
        store.queues_for(kind.clone(), b).await.unwrap(),
        ids(&[&q2, &global])
    );
    assert_eq!(
        store.queues_for(kind.clone(), c).await.unwrap(),
        ids(&[&global])
    );
    // Membership changes apply at once.
    store.update_group(group(&n, vec![c])).await.unwrap();
    assert_eq!(
        store.queues_for(kind.clone(), a).await.unwrap(),
        ids(&[&global])
    );
    assert_eq!(
        store.queues_for(kind.clone(), c).await.unwrap(),
        ids(&[&q1, &q2, &global])
    );
    // The queue's groups change: the old ones no longer feed it.
    let mut cfg = q1.config.clone();
    cfg.groups = vec![];
    cfg.sensors = Some(vec![d]);
    let q1b = store.update_queue(cfg, now + 1).await.unwrap();
    assert!(q1b.config.groups.is_empty());
    assert_eq!(
        store.queues_for(kind.clone(), c).await.unwrap(),
        ids(&[&q2, &global])
    );
    assert_eq!(
        store.queues_for(kind.clone(), d).await.unwrap(),
        ids(&[&q1b, &global])
    );
    // A deleted group selects nobody; a deleted queue is gone from the index.
    assert!(store.delete_group(n.clone()).await.unwrap());
    assert_eq!(
        store.queues_for(kind.clone(), c).await.unwrap(),
        ids(&[&global])
    );
    store.create_group(group(&n, vec![c])).await.unwrap();
    assert!(store.delete_queue(q2.config.uuid).await.unwrap());
    assert_eq!(
        store.queues_for(kind.clone(), c).await.unwrap(),
        ids(&[&global])
    );
    // Invalid group names are refused.
    let mut bad = qconfig(kind.clone(), 10, None);
    bad.groups = vec!["no spaces".into()];
    assert!(matches!(
        store.create_queue(bad, now).await,
        Err(StoreError::Invalid(_))
    ));
    for q in [&q1b, &global] {
        store.delete_queue(q.config.uuid).await.unwrap();
    }
    store.delete_group(n).await.unwrap();
}

/// Partner meta: only on a known sensor, replaced by the next one, refused when invalid.
pub async fn partner_meta(store: S) {
    let meta = PartnerMeta {
        org: Some("55f6ea5e-2c60-40e5-964f-47a8950d210f".into()),
        tags: vec!["tlp:green".into(), "misp-galaxy:sector=\"Finance\"".into()],
        ext_type: Some("ja3-jl".into()),
        time: 7_000_000,
        ip: Some(super::ip("192.0.2.7")),
    };
    assert!(matches!(
        store
            .record_partner_meta(Uuid::new_v4(), meta.clone())
            .await,
        Err(StoreError::NotFound(_))
    ));
    let a = Uuid::new_v4();
    store
        .register_sensor(SensorRegistration {
            uuid: a,
            hmac_key: Some("partner key".into()),
            mail: None,
            third_party: true,
            description: Some("org B".into()),
            approve: true,
        })
        .await
        .unwrap();
    assert_eq!(store.get_sensor(a).await.unwrap().unwrap().partner, None);
    store.record_partner_meta(a, meta.clone()).await.unwrap();
    let s = store.get_sensor(a).await.unwrap().unwrap();
    assert_eq!(s.partner, Some(meta.clone()));
    assert!(s.third_party);
    let next = PartnerMeta {
        org: None,
        tags: vec![],
        ext_type: None,
        time: 7_000_100,
        ip: None,
    };
    store.record_partner_meta(a, next.clone()).await.unwrap();
    assert_eq!(
        store.get_sensor(a).await.unwrap().unwrap().partner,
        Some(next.clone())
    );
    let mut bad = meta;
    bad.tags = vec!["line\nbreak".into()];
    assert!(matches!(
        store.record_partner_meta(a, bad).await,
        Err(StoreError::Invalid(_))
    ));
    // Other updates keep it; so does the sensor list.
    store
        .update_sensor(
            a,
            SensorUpdate {
                tags: Some(vec!["partner".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let s = store.get_sensor(a).await.unwrap().unwrap();
    assert_eq!(s.partner, Some(next));
    assert_eq!(s.tags, vec!["partner".to_string()]);
}
