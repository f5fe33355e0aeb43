//! Conformance: sensors, their activity and the per-day stats.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use uuid::Uuid;

use super::{ip, S};
use crate::model::*;
use crate::StoreError;

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
