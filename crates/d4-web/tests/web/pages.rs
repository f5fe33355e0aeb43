//! The pages: CSRF on every form, roles, escaping, the monitoring threshold form.

use crate::support::*;

pub(crate) async fn csrf_is_required_on_every_form_post(b: Backend) {
    let a = app_on(b).await;
    a.user("adm", Role::Admin).await;
    let (cookie, csrf) = a.session("adm", "password-of-test").await;
    let posts: &[(&str, &[(&str, &str)])] = &[
        (
            "/server/block",
            &[("kind", "ip"), ("value", "192.0.2.0/24")],
        ),
        ("/server/type", &[("type", "3"), ("accepted", "0")]),
        ("/queues", &[("kind", "8")]),
        ("/users", &[("name", "eve"), ("role", "admin")]),
        ("/account/token", &[]),
        ("/users/adm/password", &[]),
        (
            "/sensors/ff7ba400e76c4053982dfeec42bdef38/monitoring",
            &[("threshold", "60")],
        ),
        ("/logout", &[]),
        (
            "/registration",
            &[("uuid", "ff7ba400e76c4053982dfeec42bdef38")],
        ),
    ];
    for (path, fields) in posts {
        for bad in [None, Some("0".repeat(64))] {
            let mut form: Vec<(&str, &str)> = fields.to_vec();
            if let Some(b) = &bad {
                form.push(("csrf", b));
            }
            let r = a.post_form(path, &cookie, &form).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path} {bad:?}");
            assert!(r.body.contains("CSRF"), "{path}");
        }
    }
    assert!(a
        .store
        .list_blocks(d4_store::now())
        .await
        .unwrap()
        .is_empty());
    assert!(a.store.list_queues().await.unwrap().is_empty());
    assert!(a.store.get_user("eve".into()).await.unwrap().is_none());
    // With the token it works.
    let r = a
        .post_form(
            "/server/block",
            &cookie,
            &[("csrf", &csrf), ("kind", "ip"), ("value", "192.0.2.0/24")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(a.store.list_blocks(d4_store::now()).await.unwrap().len(), 1);
    // Login without the login CSRF cookie: refused.
    let body = serde_urlencoded(&[
        ("csrf", "x"),
        ("user", "adm"),
        ("password", "password-of-test"),
    ]);
    let r = a
        .send(
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.cookie("d4_session").is_none());
    // POST without any session: refused, no change.
    let r = a
        .post_form(
            "/server/block",
            "0".repeat(64).as_str(),
            &[("csrf", &csrf), ("kind", "ip"), ("value", "198.51.100.1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Logout ends the session.
    let r = a.post_form("/logout", &cookie, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = a.get("/", &cookie).await;
    assert!(r.location().starts_with("/login"));
}

pub(crate) async fn pages_check_roles_and_escape(b: Backend) {
    let a = app_on(b).await;
    a.user("adm", Role::Admin).await;
    a.user("usr", Role::User).await;
    a.user("reg", Role::SensorRegister).await;
    let s = Uuid::new_v4();
    a.store
        .register_sensor(d4_store::SensorRegistration {
            uuid: s,
            hmac_key: Some("k".into()),
            mail: None,
            third_party: false,
            description: Some("<script>alert(1)</script>".into()),
            approve: false,
        })
        .await
        .unwrap();
    let q = a
        .store
        .create_queue(
            d4_store::QueueConfig {
                uuid: Uuid::new_v4(),
                kind: d4_store::QueueKind::Type(3),
                description: "<i>q</i>".into(),
                max_size: 10,
                sensors: Some(vec![s]),
                groups: Vec::new(),
            },
            1,
        )
        .await
        .unwrap();
    a.store
        .push_entries(
            vec![q.config.uuid],
            vec![QueueEntry::from_sensor(s, "<img src=x onerror=alert(1)>")],
            1,
        )
        .await
        .unwrap();
    let sid = s.simple().to_string();
    let qid = q.config.uuid.simple().to_string();
    let (adm, adm_csrf) = a.session("adm", "password-of-test").await;
    let (usr, usr_csrf) = a.session("usr", "password-of-test").await;
    let (reg, _) = a.session("reg", "password-of-test").await;
    let read_pages = [
        "/",
        "/sensors",
        &format!("/sensors/{sid}"),
        "/registration",
        "/monitoring",
        "/server",
        "/queues",
        &format!("/queues/{qid}"),
    ];
    for p in read_pages {
        let r = a.get(p, &adm).await;
        assert_eq!(r.status, StatusCode::OK, "admin {p}");
        assert!(!r.body.contains("<script>alert"), "{p} not escaped");
        assert!(!r.body.contains("<img src=x"), "{p} not escaped");
        let r = a.get(p, &usr).await;
        assert_eq!(r.status, StatusCode::OK, "user {p}");
        let r = a.get(p, &reg).await;
        if p == "/" {
            assert_eq!(r.location(), "/account");
        } else {
            assert_eq!(r.status, StatusCode::FORBIDDEN, "sensor_register {p}");
        }
    }
    let page = a.get(&format!("/sensors/{sid}"), &adm).await.body;
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains(">k<"), "the key is never shown");
    let page = a.get(&format!("/queues/{qid}"), &usr).await.body;
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert_eq!(a.get("/users", &usr).await.status, StatusCode::FORBIDDEN);
    assert_eq!(a.get("/users", &adm).await.status, StatusCode::OK);
    assert_eq!(a.get("/account", &reg).await.status, StatusCode::OK);
    // A user with a valid CSRF token still may not change anything.
    for (path, form) in [
        (format!("/sensors/{sid}/approve"), vec![]),
        (format!("/sensors/{sid}/key"), vec![]),
        (
            "/server/block".to_string(),
            vec![("kind", "ip"), ("value", "192.0.2.1")],
        ),
        (format!("/queues/{qid}/delete"), vec![]),
        (
            "/users".to_string(),
            vec![("name", "eve"), ("role", "admin")],
        ),
    ] {
        let mut f = form.clone();
        f.push(("csrf", &usr_csrf));
        let r = a.post_form(&path, &usr, &f).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(
        a.store.get_sensor(s).await.unwrap().unwrap().status,
        d4_store::SensorStatus::Pending
    );
    // Admin: approve, key rotation shows the key once, kick, queue edit and sample.
    let r = a
        .post_form(
            &format!("/sensors/{sid}/approve"),
            &adm,
            &[("csrf", &adm_csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        a.store.get_sensor(s).await.unwrap().unwrap().status,
        d4_store::SensorStatus::Approved
    );
    let r = a
        .post_form(
            &format!("/sensors/{sid}/key"),
            &adm,
            &[("csrf", &adm_csrf), ("key", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let key = a
        .store
        .get_sensor(s)
        .await
        .unwrap()
        .unwrap()
        .hmac_key
        .unwrap();
    assert!(r.body.contains(&key) && r.body.contains("shown once"));
    assert!(!a
        .get(&format!("/sensors/{sid}"), &adm)
        .await
        .body
        .contains(&key));
    let r = a
        .post_form(
            &format!("/sensors/{sid}/limit"),
            &adm,
            &[("csrf", &adm_csrf), ("limit", "42")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        a.store.get_sensor(s).await.unwrap().unwrap().stream_limit,
        Some(42)
    );
    let r = a
        .post_form(
            &format!("/queues/{qid}/edit"),
            &adm,
            &[
                ("csrf", &adm_csrf),
                ("description", "new"),
                ("max_size", "7"),
                ("sensors", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let q2 = a.store.get_queue(q.config.uuid).await.unwrap().unwrap();
    assert_eq!((q2.config.max_size, q2.config.sensors.clone()), (7, None));
    let r = a
        .post_form(
            "/queues",
            &adm,
            &[
                ("csrf", &adm_csrf),
                ("kind", "ja3-jl"),
                ("max_size", "5"),
                ("sensors", &sid),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(a.store.list_queues().await.unwrap().len(), 2);
    let r = a
        .post_form(
            "/users",
            &adm,
            &[
                ("csrf", &adm_csrf),
                ("name", "carol"),
                ("role", "sensor_register"),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("shown once"));
    let r = a
        .post_form(
            "/registration",
            &adm,
            &[
                ("csrf", &adm_csrf),
                ("uuid", &v4()),
                ("key", ""),
                ("approve", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("HMAC key"));
}

/// The sensor page's monitoring form: admin sets and clears the threshold, the monitoring
/// page follows it; a user sees the value but cannot post the form.
pub(crate) async fn monitoring_threshold_form(b: Backend) {
    let a = app_on(b).await;
    a.user("adm", Role::Admin).await;
    a.user("viewer", Role::User).await;
    let s = Uuid::new_v4();
    let sid = s.simple().to_string();
    a.store
        .register_sensor(d4_store::SensorRegistration {
            uuid: s,
            hmac_key: None,
            mail: None,
            third_party: false,
            description: Some("quiet one".into()),
            approve: true,
        })
        .await
        .unwrap();
    a.store
        .record_activity(ActivityBatch {
            stats: vec![],
            seen: vec![SeenUpdate {
                uuid: s,
                ip: "203.0.113.9".parse().unwrap(),
                d4_type: 3,
                ext: None,
                time: d4_store::now() - 600,
                connections: 1,
            }],
        })
        .await
        .unwrap();
    let (cookie, csrf) = a.session("adm", "password-of-test").await;
    let page = a.get("/monitoring", &cookie).await;
    assert!(!page.body.contains(&sid), "600 s < global 3600 s");
    let sp = a.get(&format!("/sensors/{sid}"), &cookie).await;
    assert!(sp.body.contains("3600 s (global)"), "{}", sp.body);
    assert!(sp.body.contains(&format!("/sensors/{sid}/monitoring")));
    let r = a
        .post_form(
            &format!("/sensors/{sid}/monitoring"),
            &cookie,
            &[("csrf", &csrf), ("threshold", "300")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // Not a number: refused, the threshold stays.
    let r = a
        .post_form(
            &format!("/sensors/{sid}/monitoring"),
            &cookie,
            &[("csrf", &csrf), ("threshold", "5m")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("must be a number of seconds"), "{}", r.body);
    assert_eq!(
        a.store
            .get_sensor(s)
            .await
            .unwrap()
            .unwrap()
            .monitoring_threshold,
        Some(300)
    );
    let page = a.get("/monitoring", &cookie).await;
    assert!(page.body.contains(&sid), "600 s > own 300 s");
    assert!(page.body.contains("<td>300 s</td>"), "{}", page.body);
    // Invalid values are refused and change nothing.
    for bad in ["0", "soon", "-5"] {
        let r = a
            .post_form(
                &format!("/sensors/{sid}/monitoring"),
                &cookie,
                &[("csrf", &csrf), ("threshold", bad)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        a.store
            .get_sensor(s)
            .await
            .unwrap()
            .unwrap()
            .monitoring_threshold,
        Some(300)
    );
    // A user reads it but may not change it.
    let (ucookie, ucsrf) = a.session("viewer", "password-of-test").await;
    let sp = a.get(&format!("/sensors/{sid}"), &ucookie).await;
    assert!(sp.body.contains("300 s"));
    assert!(!sp
        .body
        .contains(&format!("action=\"/sensors/{sid}/monitoring\"")));
    let r = a
        .post_form(
            &format!("/sensors/{sid}/monitoring"),
            &ucookie,
            &[("csrf", &ucsrf), ("threshold", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        a.store
            .get_sensor(s)
            .await
            .unwrap()
            .unwrap()
            .monitoring_threshold,
        Some(300)
    );
    // Empty clears it: back to the global threshold.
    let r = a
        .post_form(
            &format!("/sensors/{sid}/monitoring"),
            &cookie,
            &[("csrf", &csrf), ("threshold", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        a.store
            .get_sensor(s)
            .await
            .unwrap()
            .unwrap()
            .monitoring_threshold,
        None
    );
    let page = a.get("/monitoring", &cookie).await;
    assert!(!page.body.contains(&sid));
}

/// A description with markup shows as text on every page that shows descriptions: the
/// sensor list, the sensor page (text and the admin's form field), monitoring, the queue
/// list and the queue's edit form.
pub(crate) async fn descriptions_are_escaped_on_every_page(b: Backend) {
    let a = app_on(b).await;
    a.user("adm", Role::Admin).await;
    let evil = "<script>alert(1)</script>";
    let shown = "&lt;script&gt;alert(1)&lt;/script&gt;";
    let s = Uuid::new_v4();
    a.store
        .register_sensor(d4_store::SensorRegistration {
            uuid: s,
            hmac_key: None,
            mail: None,
            third_party: false,
            description: Some(evil.into()),
            approve: true,
        })
        .await
        .unwrap();
    // Silent for two hours: listed by monitoring.
    a.store
        .record_activity(ActivityBatch {
            stats: vec![],
            seen: vec![SeenUpdate {
                uuid: s,
                ip: "203.0.113.9".parse().unwrap(),
                d4_type: 3,
                ext: None,
                time: d4_store::now() - 7200,
                connections: 1,
            }],
        })
        .await
        .unwrap();
    let q = a
        .store
        .create_queue(
            d4_store::QueueConfig {
                uuid: Uuid::new_v4(),
                kind: d4_store::QueueKind::Type(3),
                description: evil.into(),
                max_size: 10,
                sensors: None,
                groups: Vec::new(),
            },
            1,
        )
        .await
        .unwrap();
    let (adm, _) = a.session("adm", "password-of-test").await;
    let sid = s.simple().to_string();
    let qid = q.config.uuid.simple().to_string();
    for p in [
        "/sensors".to_string(),
        format!("/sensors/{sid}"),
        "/monitoring".to_string(),
        "/queues".to_string(),
        format!("/queues/{qid}"),
    ] {
        let r = a.get(&p, &adm).await;
        assert_eq!(r.status, StatusCode::OK, "{p}");
        assert!(!r.body.contains(evil), "{p} not escaped: {}", r.body);
        assert!(r.body.contains(shown), "{p} does not show it: {}", r.body);
    }
    let page = a.get(&format!("/sensors/{sid}"), &adm).await.body;
    assert!(
        page.contains(&format!(
            "name=\"description\" size=\"60\" value=\"{shown}\""
        )),
        "{page}"
    );
}
