//! The JSON API: d4-core's registration endpoint, the role matrix, the OpenAPI document.

use crate::support::*;

pub(crate) async fn register_api_matches_the_reference(b: Backend) {
    let a = app_on(b).await;
    let reg = a.user("reg", Role::SensorRegister).await;
    let id = Uuid::new_v4();
    let body = json!({"uuid": id.hyphenated().to_string(), "hmac_key": "secret", "mail": "a@b.c", "third_party": true});
    let r = a
        .api("POST", "/add/sensor/register", None, Some(body.clone()))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // d4-core's 401 bodies, word for word.
    assert_eq!(
        r.json(),
        json!({"status": "error", "reason": "Authentication needed"})
    );
    let r = a
        .api(
            "POST",
            "/add/sensor/register",
            Some("wrong"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json(),
        json!({"status": "error", "reason": "Invalid Token"})
    );
    let r = a
        .api(
            "POST",
            "/add/sensor/register",
            Some(&reg),
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json(), json!({"uuid": id.simple().to_string()}));
    let s = a.store.get_sensor(id).await.unwrap().unwrap();
    assert_eq!(s.status, d4_store::SensorStatus::Pending);
    assert_eq!(s.hmac_key.as_deref(), Some("secret"));
    assert_eq!(s.mail.as_deref(), Some("a@b.c"));
    assert!(s.third_party);
    // Again (Bearer form): 409.
    let r = a
        .api(
            "POST",
            "/add/sensor/register",
            Some(&format!("Bearer {reg}")),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.json(),
        json!({"status": "error", "reason": "Sensor already registered"})
    );
    // Invalid uuid, not v4, missing: 400 Invalid uuid.
    for bad in [
        json!({"uuid": "nope", "hmac_key": "k"}),
        json!({"hmac_key": "k"}),
        json!({"uuid": "ff7ba400e76c1053982dfeec42bdef38", "hmac_key": "k"}),
    ] {
        let r = a
            .api("POST", "/add/sensor/register", Some(&reg), Some(bad))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            r.json(),
            json!({"status": "error", "reason": "Invalid uuid"})
        );
    }
    let r = a
        .api(
            "POST",
            "/add/sensor/register",
            Some(&reg),
            Some(json!({"uuid": v4()})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json(),
        json!({"status": "error", "reason": "Mandatory parameter(s) not provided"})
    );
    // Keys are cut at 100 characters like the reference.
    let id2 = Uuid::new_v4();
    let r = a
        .api(
            "POST",
            "/add/sensor/register",
            Some(&reg),
            Some(json!({"uuid": id2.simple().to_string(), "hmac_key": "k".repeat(150)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        a.store
            .get_sensor(id2)
            .await
            .unwrap()
            .unwrap()
            .hmac_key
            .unwrap()
            .len(),
        100
    );
}

/// Every API endpoint with every role: refused ones get 403 (401 without a token),
/// allowed ones never do.
pub(crate) async fn api_role_matrix(b: Backend) {
    let a = app_on(b).await;
    let admin = a.user("adm", Role::Admin).await;
    let user = a.user("usr", Role::User).await;
    let reg = a.user("reg", Role::SensorRegister).await;
    a.user("victim", Role::User).await;
    let s = v4();
    let q = v4();
    let forward_rule = json!({"name": "f1", "destination": "127.0.0.1:4443",
        "tls": {"plain": true}, "uuid": v4(), "hmac_key": "k"});
    let cases: Vec<(&str, String, Option<Value>, &str)> = vec![
        (
            "POST",
            "/add/sensor/register".into(),
            Some(json!({"uuid": v4(), "hmac_key": "k"})),
            "register",
        ),
        ("GET", "/sensors/monitoring/errors".into(), None, "read"),
        ("GET", "/me".into(), None, "any"),
        ("GET", "/sensors".into(), None, "read"),
        (
            "POST",
            "/sensors".into(),
            Some(json!({"uuid": s, "hmac_key": "k"})),
            "admin",
        ),
        ("GET", format!("/sensors/{s}"), None, "read"),
        (
            "PUT",
            format!("/sensors/{s}"),
            Some(json!({"description": "d"})),
            "admin",
        ),
        ("POST", format!("/sensors/{s}/approve"), None, "admin"),
        (
            "POST",
            format!("/sensors/{s}/name"),
            Some(json!({"name": "n"})),
            "admin",
        ),
        (
            "POST",
            format!("/sensors/{s}/tags"),
            Some(json!({"add": ["t"]})),
            "admin",
        ),
        ("GET", "/groups".into(), None, "read"),
        (
            "POST",
            "/groups".into(),
            Some(json!({"name": "g"})),
            "admin",
        ),
        ("GET", "/groups/g".into(), None, "read"),
        (
            "PUT",
            "/groups/g".into(),
            Some(json!({"description": "d"})),
            "admin",
        ),
        ("DELETE", "/groups/g".into(), None, "admin"),
        ("POST", format!("/sensors/{s}/key"), None, "admin"),
        (
            "PUT",
            format!("/sensors/{s}/monitoring"),
            Some(json!({"threshold_secs": 600})),
            "admin",
        ),
        ("DELETE", format!("/sensors/{s}/monitoring"), None, "admin"),
        ("POST", format!("/sensors/{s}/kick"), None, "admin"),
        (
            "POST",
            format!("/sensors/{s}/block"),
            Some(json!({"ips": true})),
            "admin",
        ),
        ("GET", format!("/sensors/{s}/stats"), None, "read"),
        ("GET", "/blocklist".into(), None, "read"),
        (
            "POST",
            "/blocklist".into(),
            Some(json!({"kind": "ip", "value": "198.51.100.0/24"})),
            "admin",
        ),
        (
            "DELETE",
            "/blocklist".into(),
            Some(json!({"kind": "ip", "value": "198.51.100.0/24"})),
            "admin",
        ),
        ("GET", "/types".into(), None, "read"),
        (
            "PUT",
            "/types/9".into(),
            Some(json!({"accepted": true})),
            "admin",
        ),
        (
            "PUT",
            "/types/ext/foo".into(),
            Some(json!({"accepted": true})),
            "admin",
        ),
        ("GET", "/queues".into(), None, "read"),
        ("GET", "/queues/alerts".into(), None, "read"),
        (
            "POST",
            "/queues".into(),
            Some(json!({"uuid": q, "kind": 8})),
            "admin",
        ),
        ("GET", format!("/queues/{q}"), None, "read"),
        (
            "PUT",
            format!("/queues/{q}"),
            Some(json!({"kind": 8, "max_size": 5})),
            "admin",
        ),
        ("POST", format!("/queues/{q}/empty"), None, "admin"),
        ("GET", format!("/queues/{q}/sample"), None, "read"),
        ("DELETE", format!("/queues/{q}"), None, "admin"),
        ("GET", "/users".into(), None, "admin"),
        (
            "POST",
            "/users".into(),
            Some(json!({"name": "newbie", "role": "user"})),
            "admin",
        ),
        (
            "PUT",
            "/users/victim".into(),
            Some(json!({"role": "sensor_register"})),
            "admin",
        ),
        ("POST", "/users/victim/token".into(), None, "admin"),
        (
            "POST",
            "/users/victim/password".into(),
            Some(json!({"password": "reset-password-1"})),
            "admin",
        ),
        ("DELETE", "/users/victim/token".into(), None, "admin"),
        ("DELETE", "/users/victim".into(), None, "admin"),
        (
            "POST",
            "/forward".into(),
            Some(forward_rule.clone()),
            "admin",
        ),
        ("GET", "/forward".into(), None, "admin"),
        ("GET", "/forward/f1".into(), None, "admin"),
        (
            "PUT",
            "/forward/f1".into(),
            Some(forward_rule.clone()),
            "admin",
        ),
        ("POST", "/forward/f1/disable".into(), None, "admin"),
        ("POST", "/forward/f1/enable".into(), None, "admin"),
        ("DELETE", "/forward/f1".into(), None, "admin"),
        ("GET", "/stats".into(), None, "read"),
        ("GET", "/sessions".into(), None, "read"),
        ("DELETE", format!("/sensors/{s}"), None, "admin"),
        // Last: it rotates the caller's token.
        ("POST", "/me/token".into(), None, "any"),
    ];
    // Every documented endpoint but openapi.json and /me/password (tested elsewhere).
    assert_eq!(
        cases.len(),
        endpoint_count(&a).await - 1,
        "every endpoint is covered"
    );
    for (method, path, body, need) in &cases {
        let r = a.api(method, path, None, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without token"
        );
        for (role, token) in [
            ("sensor_register", &reg),
            ("user", &user),
            ("admin", &admin),
        ] {
            let allowed = match *need {
                "any" | "register" => true,
                "read" => role != "sensor_register",
                _ => role == "admin",
            };
            // Refused first, then the allowed call (admin last) really runs.
            let r = a.api(method, path, Some(token), body.clone()).await;
            if allowed {
                assert!(
                    r.status != StatusCode::FORBIDDEN && r.status != StatusCode::UNAUTHORIZED,
                    "{method} {path} as {role}: {} {}",
                    r.status,
                    r.body
                );
                // (register: the earlier roles already registered that uuid: 409)
                if role == "admin" && *need != "register" {
                    assert!(
                        r.status.is_success(),
                        "{method} {path} as admin: {} {}",
                        r.status,
                        r.body
                    );
                }
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} as {role}: {}",
                    r.body
                );
                assert!(r.json()["reason"].as_str().unwrap().contains("forbidden"));
            }
        }
    }
}

pub(crate) async fn endpoint_count(a: &App) -> usize {
    // Number of documented endpoints (the OpenAPI table), as clients see it.
    let doc = a.api("GET", "/openapi.json", None, None).await.json();
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum()
}

pub(crate) async fn openapi_lists_the_endpoints(b: Backend) {
    let a = app_on(b).await;
    let doc = a.api("GET", "/openapi.json", None, None).await.json();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/add/sensor/register"]["post"].is_object());
    assert!(doc["paths"]["/sensors/monitoring/errors"]["get"].is_object());
    assert!(endpoint_count(&a).await >= 36);
}
