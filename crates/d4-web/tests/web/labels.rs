//! Sensor names, tags and groups in the API and the pages; partner meta on the sensor page.

use crate::support::*;

async fn sensor(a: &App, third_party: bool) -> Uuid {
    let s = Uuid::new_v4();
    a.store
        .register_sensor(d4_store::SensorRegistration {
            uuid: s,
            hmac_key: None,
            mail: None,
            third_party,
            description: Some("tap".into()),
            approve: true,
        })
        .await
        .unwrap();
    s
}

pub(crate) async fn api_names_tags_and_groups(b: Backend) {
    let a = app_on(b).await;
    let admin = a.user("adm", Role::Admin).await;
    let user = a.user("viewer", Role::User).await;
    let (s1, s2) = (sensor(&a, false).await, sensor(&a, false).await);
    let (id1, id2) = (s1.simple().to_string(), s2.simple().to_string());
    // PUT: name and tags (sorted, no duplicates); other fields untouched.
    let r = a
        .api(
            "PUT",
            &format!("/sensors/{id1}"),
            Some(&admin),
            Some(json!({"name": "Tap Paris", "tags": ["tlp:green", "share", "share"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["name"], "Tap Paris");
    assert_eq!(r.json()["tags"], json!(["share", "tlp:green"]));
    assert_eq!(r.json()["description"], "tap");
    // POST name / tags.
    let r = a
        .api(
            "POST",
            &format!("/sensors/{id2}/name"),
            Some(&admin),
            Some(json!({"name": "Tap Lux"})),
        )
        .await;
    assert_eq!(r.json()["name"], "Tap Lux", "{}", r.body);
    let r = a
        .api(
            "POST",
            &format!("/sensors/{id2}/tags"),
            Some(&admin),
            Some(json!({"add": ["share", "honeypot"]})),
        )
        .await;
    assert_eq!(r.json()["tags"], json!(["honeypot", "share"]), "{}", r.body);
    let r = a
        .api(
            "POST",
            &format!("/sensors/{id2}/tags"),
            Some(&admin),
            Some(json!({"remove": ["honeypot"]})),
        )
        .await;
    assert_eq!(r.json()["tags"], json!(["share"]));
    // Refused inputs: the store's messages; a viewer may not change them.
    let r = a
        .api(
            "POST",
            &format!("/sensors/{id2}/tags"),
            Some(&admin),
            Some(json!({"add": ["two words"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["reason"].as_str().unwrap().contains("tag"),
        "{}",
        r.body
    );
    let r = a
        .api(
            "POST",
            &format!("/sensors/{id2}/name"),
            Some(&user),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Filter by tag.
    let list = a
        .api("GET", "/sensors?tag=tlp:green", Some(&user), None)
        .await;
    let got = list.json();
    let ids: Vec<&str> = got["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id1.as_str()]);
    let list = a.api("GET", "/sensors?tag=share", Some(&user), None).await;
    assert_eq!(list.json()["sensors"].as_array().unwrap().len(), 2);

    // Groups CRUD.
    let r = a
        .api(
            "POST",
            "/groups",
            Some(&admin),
            Some(json!({"name": "eu", "description": "partners", "sensors": [id2.clone()]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"name": "eu", "description": "partners", "sensors": [id2.clone()]})
    );
    let r = a
        .api("POST", "/groups", Some(&admin), Some(json!({"name": "eu"})))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = a
        .api(
            "POST",
            "/groups",
            Some(&admin),
            Some(json!({"name": "bad name"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a
        .api("POST", "/groups", Some(&user), Some(json!({"name": "x"})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = a.api("GET", "/groups", Some(&user), None).await;
    assert_eq!(r.json()["groups"][0]["name"], "eu");
    let list = a.api("GET", "/sensors?group=eu", Some(&user), None).await;
    let got = &list.json()["sensors"];
    assert_eq!(got.as_array().unwrap().len(), 1);
    assert_eq!(got[0]["uuid"], id2);
    let r = a.api("GET", "/sensors?group=none", Some(&user), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a
        .api(
            "PUT",
            "/groups/eu",
            Some(&admin),
            Some(json!({"sensors": [id1.clone(), id2.clone()]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["description"], "partners", "kept");
    assert_eq!(r.json()["sensors"].as_array().unwrap().len(), 2);
    assert_eq!(a.store.groups_of(s1).await.unwrap(), vec!["eu".to_string()]);
    // A queue fed by the group.
    let r = a
        .api(
            "POST",
            "/queues",
            Some(&admin),
            Some(json!({"kind": 8, "groups": ["eu"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["groups"], json!(["eu"]));
    let q: Uuid = r.json()["uuid"].as_str().unwrap().parse().unwrap();
    let other = Uuid::new_v4();
    assert!(a
        .store
        .queues_for(d4_store::QueueKind::Type(8), s1)
        .await
        .unwrap()
        .contains(&q));
    assert!(!a
        .store
        .queues_for(d4_store::QueueKind::Type(8), other)
        .await
        .unwrap()
        .contains(&q));
    let r = a.api("GET", "/groups/eu", Some(&user), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a.api("DELETE", "/groups/eu", Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = a.api("GET", "/groups/eu", Some(&user), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a.api("DELETE", "/groups/eu", Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

pub(crate) async fn pages_names_tags_groups_and_partner_meta(b: Backend) {
    let a = app_on(b).await;
    a.user("adm", Role::Admin).await;
    a.user("viewer", Role::User).await;
    let s = sensor(&a, true).await;
    let other = sensor(&a, false).await;
    let sid = s.simple().to_string();
    let oid = other.simple().to_string();
    let (cookie, csrf) = a.session("adm", "password-of-test").await;
    // Name and tags from the sensor page's form.
    let r = a
        .post_form(
            &format!("/sensors/{sid}/labels"),
            &cookie,
            &[
                ("csrf", &csrf),
                ("name", "Org <B>"),
                ("tags", "share tlp:green"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().contains("labels-saved"));
    let got = a.store.get_sensor(s).await.unwrap().unwrap();
    assert_eq!(got.name, "Org <B>");
    assert_eq!(got.tags, vec!["share".to_string(), "tlp:green".to_string()]);
    let r = a
        .post_form(
            &format!("/sensors/{sid}/labels"),
            &cookie,
            &[("csrf", &csrf), ("name", "x"), ("tags", "bad/tag")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // The list shows names (escaped) and tags, and filters.
    let list = a.get("/sensors", &cookie).await;
    assert!(list.body.contains("Org &lt;B&gt;"), "{}", list.body);
    assert!(list.body.contains("tlp:green"));
    assert!(list.body.contains(&oid));
    let list = a.get("/sensors?tag=share", &cookie).await;
    assert!(list.body.contains(&sid) && !list.body.contains(&oid));

    // Groups: create, list, page, edit, remove a member, filter, delete.
    let r = a
        .post_form(
            "/groups",
            &cookie,
            &[
                ("csrf", &csrf),
                ("name", "eu"),
                ("description", "partners"),
                ("sensors", &sid),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with("/groups/eu"));
    let page = a.get("/groups", &cookie).await;
    assert!(page.body.contains("/groups/eu") && page.body.contains("partners"));
    let page = a.get("/groups/eu", &cookie).await;
    assert!(
        page.body.contains(&sid) && page.body.contains("Org &lt;B&gt;"),
        "{}",
        page.body
    );
    let r = a
        .post_form(
            "/groups/eu/edit",
            &cookie,
            &[
                ("csrf", &csrf),
                ("description", "partners"),
                ("sensors", &format!("{sid} {oid}")),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        a.store
            .get_group("eu".into())
            .await
            .unwrap()
            .unwrap()
            .sensors
            .len(),
        2
    );
    let r = a
        .post_form(
            "/groups/eu/remove-sensor",
            &cookie,
            &[("csrf", &csrf), ("sensor", &oid)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        a.store
            .get_group("eu".into())
            .await
            .unwrap()
            .unwrap()
            .sensors,
        vec![s]
    );
    let list = a.get("/sensors?group=eu", &cookie).await;
    assert!(list.body.contains(&sid) && !list.body.contains(&oid));
    // The queue form takes groups.
    let r = a
        .post_form(
            "/queues",
            &cookie,
            &[
                ("csrf", &csrf),
                ("kind", "8"),
                ("max_size", "10"),
                ("groups", "eu"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let q = a.store.list_queues().await.unwrap();
    assert_eq!(q[0].config.groups, vec!["eu".to_string()]);

    // Partner meta on the sensor page; the groups it belongs to.
    a.store
        .record_partner_meta(
            s,
            d4_store::PartnerMeta {
                org: Some("55f6ea5e-2c60-40e5-964f-47a8950d210f".into()),
                tags: vec!["tlp:amber".into()],
                ext_type: Some("maltrail".into()),
                time: 1_700_000_000,
                ip: Some("192.0.2.99".parse().unwrap()),
            },
        )
        .await
        .unwrap();
    let page = a.get(&format!("/sensors/{sid}"), &cookie).await;
    for want in [
        "55f6ea5e-2c60-40e5-964f-47a8950d210f",
        "tlp:amber",
        "maltrail",
        "192.0.2.99",
        "/groups/eu",
        "Org &lt;B&gt;",
    ] {
        assert!(page.body.contains(want), "{want}: {}", page.body);
    }
    // A viewer sees, but may not change.
    let (vc, vcsrf) = a.session("viewer", "password-of-test").await;
    assert_eq!(a.get("/groups/eu", &vc).await.status, StatusCode::OK);
    let r = a
        .post_form("/groups/eu/delete", &vc, &[("csrf", &vcsrf)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = a
        .post_form("/groups/eu/delete", &cookie, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(a.store.get_group("eu".into()).await.unwrap(), None);
}
