//! The API's functions, one area per test: sensors, stats and monitoring, blocks, types,
//! queues, users and tokens.

use crate::support::*;

/// The admin's token and an approved sensor registered through the API.
pub(crate) async fn admin_and_sensor(a: &App) -> (String, Uuid, String) {
    let admin = a.user("adm", Role::Admin).await;
    let s = Uuid::new_v4();
    let sid = s.simple().to_string();
    let r = a
        .api("POST", "/sensors", Some(&admin), Some(json!({"uuid": sid})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (admin, s, sid)
}

/// Sensor `s` sent 3 frames (300 bytes) of type 8 today, from 203.0.113.7, last seen two
/// hours ago.
pub(crate) async fn activity_two_hours_ago(a: &App, s: Uuid) {
    let old = d4_store::now() - 7200;
    a.store
        .record_activity(ActivityBatch {
            stats: vec![d4_store::StatsDelta {
                day: d4_store::day_of(d4_store::now()),
                uuid: s,
                ip: "203.0.113.7".parse().unwrap(),
                d4_type: 8,
                frames: 3,
                bytes: 300,
            }],
            seen: vec![SeenUpdate {
                uuid: s,
                ip: "203.0.113.7".parse().unwrap(),
                d4_type: 8,
                ext: None,
                time: old,
                connections: 1,
            }],
        })
        .await
        .unwrap();
}

/// Registration by an admin, approval, keys, settings, invalid and unknown UUIDs.
pub(crate) async fn api_sensor_registration_and_settings(b: Backend) {
    let a = app_on(b).await;
    let admin = a.user("adm", Role::Admin).await;
    let t = Some(admin.as_str());
    let s = Uuid::new_v4();
    let sid = s.simple().to_string();
    // Admin registration, approved at once; the key never appears in listings.
    let r = a
        .api(
            "POST",
            "/sensors",
            t,
            Some(json!({"uuid": sid, "hmac_key": "topsecret", "approve": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = a.api("GET", "/sensors", t, None).await;
    assert!(!r.body.contains("topsecret"));
    assert_eq!(r.json()["sensors"][0]["status"], "pending");
    assert_eq!(r.json()["sensors"][0]["custom_key"], true);
    let r = a
        .api("POST", &format!("/sensors/{sid}/approve"), t, None)
        .await;
    assert_eq!(r.json()["status"], "approved");
    let r = a.api("POST", &format!("/sensors/{sid}/key"), t, None).await;
    let key = r.json()["hmac_key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 64);
    assert_eq!(
        a.store
            .get_sensor(s)
            .await
            .unwrap()
            .unwrap()
            .hmac_key
            .unwrap(),
        key
    );
    let r = a.api("GET", &format!("/sensors/{sid}"), t, None).await;
    assert!(!r.body.contains(&key));
    let r = a
        .api(
            "PUT",
            &format!("/sensors/{sid}"),
            t,
            Some(json!({"description": "<b>x</b>", "stream_limit": 5})),
        )
        .await;
    assert_eq!(r.json()["stream_limit"], 5);
    let r = a
        .api(
            "PUT",
            &format!("/sensors/{sid}"),
            t,
            Some(json!({"stream_limit": null})),
        )
        .await;
    assert_eq!(r.json()["stream_limit"], Value::Null);
    assert_eq!(r.json()["description"], "<b>x</b>");
    let r = a
        .api(
            "PUT",
            &format!("/sensors/{sid}"),
            t,
            Some(json!({"stream_limit": 0})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a.api("GET", "/sensors/nothex", t, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a.api("GET", &format!("/sensors/{}", v4()), t, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["reason"]
        .as_str()
        .unwrap()
        .contains("unknown sensor"));
    let r = a.api("POST", "/sensors", t, Some(json!("garbage"))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// Day stats, per-sensor stats and the monitoring alerts with per-sensor thresholds.
pub(crate) async fn api_stats_and_monitoring(b: Backend) {
    let a = app_on(b).await;
    let (admin, s, sid) = admin_and_sensor(&a).await;
    let t = Some(admin.as_str());
    activity_two_hours_ago(&a, s).await;
    // Activity: stats, last IPs, monitoring.
    let r = a.api("GET", "/stats", t, None).await;
    let days = r.json()["days"].as_array().unwrap().clone();
    assert_eq!(days.len(), 7);
    assert_eq!(days[6]["frames"], 3);
    assert_eq!(days[6]["sensors"], 1);
    let r = a
        .api("GET", &format!("/sensors/{sid}/stats?days=2"), t, None)
        .await;
    assert_eq!(r.json()["days"][1]["bytes"], 300);
    let r = a.api("GET", "/sensors/monitoring/errors", t, None).await;
    assert_eq!(r.json()["sensors"][0]["uuid"], sid);
    assert!(r.json()["sensors"][0]["silent_secs"].as_u64().unwrap() >= 7200);
    assert_eq!(r.json()["sensors"][0]["threshold_secs"], 3600);

    // Per-sensor monitoring threshold: silent ~7200 s; 10000 s hides it, 60 s shows it,
    // clearing falls back to the global 3600 s.
    let mon = format!("/sensors/{sid}/monitoring");
    let r = a
        .api("PUT", &mon, t, Some(json!({"threshold_secs": 10000})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["monitoring_threshold"], 10000);
    assert_eq!(r.json()["threshold_secs"], 10000);
    let r = a.api("GET", "/sensors/monitoring/errors", t, None).await;
    assert!(
        r.json()["sensors"].as_array().unwrap().is_empty(),
        "{}",
        r.body
    );
    assert_eq!(r.json()["threshold_secs"], 3600, "the global one");
    let r = a.api("GET", &format!("/sensors/{sid}"), t, None).await;
    assert_eq!(r.json()["monitoring_threshold"], 10000);
    let r = a
        .api("PUT", &mon, t, Some(json!({"threshold_secs": 0})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a
        .api("PUT", &mon, t, Some(json!({"threshold_secs": "x"})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A body without the field (here misspelt) is refused, not taken as "clear".
    let r = a.api("PUT", &mon, t, Some(json!({"threshold": 60}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = a.api("GET", &format!("/sensors/{sid}"), t, None).await;
    assert_eq!(r.json()["monitoring_threshold"], 10000, "kept");
    let r = a
        .api(
            "PUT",
            &format!("/sensors/{sid}"),
            t,
            Some(json!({"monitoring_threshold": 60})),
        )
        .await;
    assert_eq!(r.json()["monitoring_threshold"], 60);
    let r = a.api("GET", "/sensors/monitoring/errors", t, None).await;
    assert_eq!(r.json()["sensors"][0]["uuid"], sid);
    assert_eq!(r.json()["sensors"][0]["threshold_secs"], 60);
    let r = a.api("DELETE", &mon, t, None).await;
    assert_eq!(r.json()["monitoring_threshold"], Value::Null);
    assert_eq!(r.json()["threshold_secs"], 3600);
    let r = a.api("GET", "/sensors/monitoring/errors", t, None).await;
    assert_eq!(r.json()["sensors"][0]["threshold_secs"], 3600);
    let r = a
        .api(
            "PUT",
            "/sensors/ff7ba400e76c4053982dfeec42bdef38/monitoring",
            t,
            Some(json!({"threshold_secs": 5})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Kick, block (the UUID or its IPs) and the blocklist.
pub(crate) async fn api_kick_block_and_blocklist(b: Backend) {
    let a = app_on(b).await;
    let (admin, s, sid) = admin_and_sensor(&a).await;
    let t = Some(admin.as_str());
    activity_two_hours_ago(&a, s).await;
    // Kick and block (with its IPs).
    let r = a
        .api("POST", &format!("/sensors/{sid}/kick"), t, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a
        .api(
            "POST",
            &format!("/sensors/{sid}/block"),
            t,
            Some(json!({"ips": true})),
        )
        .await;
    assert_eq!(r.json()["blocked_ips"][0], "203.0.113.7");
    let blocked = a
        .store
        .check_blocked("203.0.113.7".parse().unwrap(), None, d4_store::now())
        .await
        .unwrap();
    assert!(blocked.is_some());
    let r = a.api("GET", "/blocklist", t, None).await;
    let kinds: Vec<String> = r.json()["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"ips_of_uuid".to_string()) && kinds.contains(&"ip".to_string()));
    let r = a
        .api(
            "POST",
            "/blocklist",
            t,
            Some(json!({"kind": "ip", "value": "10.9.8.7/8", "expires_in": 60})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(a
        .store
        .check_blocked("10.1.1.1".parse().unwrap(), None, d4_store::now())
        .await
        .unwrap()
        .is_some());
    let r = a
        .api(
            "DELETE",
            "/blocklist",
            t,
            Some(json!({"kind": "ip", "value": "10.0.0.0/8"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a
        .api(
            "DELETE",
            "/blocklist",
            t,
            Some(json!({"kind": "ip", "value": "10.0.0.0/8"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a
        .api(
            "POST",
            "/blocklist",
            t,
            Some(json!({"kind": "ip", "value": "not-an-ip"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// Accepted types and extended types.
pub(crate) async fn api_types(b: Backend) {
    let a = app_on(b).await;
    let admin = a.user("adm", Role::Admin).await;
    let t = Some(admin.as_str());
    // Types.
    let r = a
        .api("PUT", "/types/3", t, Some(json!({"accepted": false})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a
        .api(
            "PUT",
            "/types/ext/my-ext",
            t,
            Some(json!({"accepted": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a.api("GET", "/types", t, None).await;
    assert!(!r.json()["accepted_types"]
        .as_array()
        .unwrap()
        .contains(&json!(3)));
    assert!(r.json()["accepted_ext_types"]
        .as_array()
        .unwrap()
        .contains(&json!("my-ext")));
    let r = a
        .api("PUT", "/types/ext/.bad", t, Some(json!({"accepted": true})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a
        .api("PUT", "/types/999", t, Some(json!({"accepted": true})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// Queues: group, max size, sample, trimmed, empty, delete.
pub(crate) async fn api_queues(b: Backend) {
    let a = app_on(b).await;
    let (admin, s, sid) = admin_and_sensor(&a).await;
    let t = Some(admin.as_str());
    // Queues: group, max size, sample, trimmed, empty, delete.
    let r = a
        .api(
            "POST",
            "/queues",
            t,
            Some(json!({"kind": "8", "max_size": 2, "sensors": [sid], "description": "pdns"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let qid = r.json()["uuid"].as_str().unwrap().to_string();
    let qu = Uuid::parse_str(&qid).unwrap();
    assert_eq!(
        a.store
            .queues_for(d4_store::QueueKind::Type(8), s)
            .await
            .unwrap(),
        vec![qu]
    );
    assert!(a
        .store
        .queues_for(d4_store::QueueKind::Type(8), Uuid::new_v4())
        .await
        .unwrap()
        .is_empty());
    a.store
        .push_entries(
            vec![qu],
            vec![
                QueueEntry::new("one"),
                QueueEntry::new("two"),
                QueueEntry::new("three"),
            ],
            d4_store::now(),
        )
        .await
        .unwrap();
    let r = a
        .api("GET", &format!("/queues/{qid}/sample?n=5"), t, None)
        .await;
    assert_eq!(r.json()["entries"][0]["data"], "three");
    let r = a.api("GET", &format!("/queues/{qid}"), t, None).await;
    assert_eq!(r.json()["trimmed"], 1);
    assert_eq!(r.json()["len"], 2);
    let r = a
        .api("POST", &format!("/queues/{qid}/empty"), t, None)
        .await;
    assert_eq!(r.json()["removed"], 2);
    let r = a
        .api(
            "POST",
            "/queues",
            t,
            Some(json!({"kind": "8", "max_size": 0})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a
        .api(
            "POST",
            "/queues",
            t,
            Some(json!({"kind": "ja3-jl", "sensors": ["bad"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a.api("DELETE", &format!("/queues/{qid}"), t, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a.api("GET", &format!("/queues/{qid}"), t, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Users, tokens, the last-admin protections and unknown endpoints.
pub(crate) async fn api_users_and_tokens(b: Backend) {
    let a = app_on(b).await;
    let admin = a.user("adm", Role::Admin).await;
    let t = Some(admin.as_str());
    // Users and tokens.
    let r = a
        .api(
            "POST",
            "/users",
            t,
            Some(json!({"name": "bob", "role": "user"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["password"].as_str().unwrap().len(), 20);
    let r = a
        .api(
            "POST",
            "/users",
            t,
            Some(json!({"name": "bob", "role": "user"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = a
        .api(
            "POST",
            "/users",
            t,
            Some(json!({"name": "x", "role": "king"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a
        .api(
            "POST",
            "/users",
            t,
            Some(json!({"name": "x", "role": "user", "password": "short"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a.api("POST", "/users/bob/token", t, None).await;
    let bob = r.json()["token"].as_str().unwrap().to_string();
    let r = a.api("GET", "/me", Some(&bob), None).await;
    assert_eq!(r.json()["name"], "bob");
    // Rotation invalidates the previous token.
    let r = a.api("POST", "/me/token", Some(&bob), None).await;
    let bob2 = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        a.api("GET", "/me", Some(&bob), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        a.api("GET", "/me", Some(&bob2), None).await.status,
        StatusCode::OK
    );
    // Last admin protections.
    let r = a.api("DELETE", "/users/adm", t, None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    a.store.delete_user("admin".into()).await.unwrap();
    let r = a
        .api("PUT", "/users/adm", t, Some(json!({"role": "user"})))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = a.api("DELETE", "/users/bob", t, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        a.api("GET", "/me", Some(&bob2), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = a.api("GET", "/nothing", t, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["status"], "error");
}
