//! Forwarding rules: the REST API (`/api/v1/forward`, admin only, secrets masked) and the
//! Sharing pages (list, add form, rule page, enable/disable/edit/remove with CSRF).

use crate::support::*;

const PARTNER: &str = "6a1f0b2e-8d8c-4e43-9f0e-3f5a2c1d9b7e";

fn rule_json(name: &str) -> Value {
    json!({
        "name": name,
        "destination": "127.0.0.1:4443",
        "tls": {"pin_sha256": "AB:".repeat(32).trim_end_matches(':')},
        "uuid": PARTNER,
        "filter": {"types": [8], "tags": ["share"]},
        "tags": ["tlp:green"],
        "privacy": {"pdns": {"client_ip": "pseudonymise"}}
    })
}

pub(crate) async fn api_forward_rules(b: Backend) {
    let a = app_on(b).await;
    let admin = a.user("adm", Role::Admin).await;
    let user = a.user("usr", Role::User).await;
    let t = Some(admin.as_str());
    // Admin only, even to read.
    let r = a.api("GET", "/forward", Some(&user), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = a
        .api("POST", "/forward", Some(&user), Some(rule_json("x")))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    // Create: the generated key is shown once; the rule comes back masked.
    let r = a.api("POST", "/forward", t, Some(rule_json("to-b"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let key = r.json()["hmac_key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 64);
    assert_eq!(r.json()["rule"]["hmac_key"], "********");
    assert_eq!(r.json()["rule"]["privacy"]["key"], "********");
    assert_eq!(r.json()["rule"]["tls"]["pin_sha256"], "ab".repeat(32));
    assert_eq!(r.json()["rule"]["enabled"], true);
    let stored = a
        .store
        .get_forward_rule("to-b".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.hmac_key, key);
    let privacy_key = stored.privacy.key.clone();
    assert_eq!(privacy_key.len(), 64);
    let r = a.api("POST", "/forward", t, Some(rule_json("to-b"))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    // Refusals carry the validation message.
    let mut bad = rule_json("bad");
    bad["filter"]["types"] = json!([5]);
    let r = a.api("POST", "/forward", t, Some(bad)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("type 5"), "{}", r.body);
    let mut bad = rule_json("bad");
    bad["tls"] = json!({"pin_sha256": "ab".repeat(32), "ca_pem": "-----BEGIN CERTIFICATE-----"});
    let r = a.api("POST", "/forward", t, Some(bad)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("not both"), "{}", r.body);

    // Counters appear in GET, per server and in total.
    a.store
        .record_forward_stats(
            "to-b".into(),
            "server-1".into(),
            d4_store::ForwardStats {
                frames_forwarded: 7,
                connected: true,
                ..Default::default()
            },
            d4_store::now(),
        )
        .await
        .unwrap();
    let r = a.api("GET", "/forward", t, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let rules = &r.json()["rules"];
    assert_eq!(rules[0]["rule"]["name"], "to-b");
    assert_eq!(rules[0]["rule"]["hmac_key"], "********");
    assert_eq!(rules[0]["total"]["frames_forwarded"], 7);
    assert!(!r.body.contains(&key) && !r.body.contains(&privacy_key));
    let got = a.api("GET", "/forward/to-b", t, None).await;
    assert_eq!(got.json()["servers"][0]["server_id"], "server-1");

    // PUT the GET's rule back with a change: the masked secrets keep the stored ones.
    let mut rule = got.json()["rule"].clone();
    rule["destination"] = json!("[::1]:4443");
    let r = a.api("PUT", "/forward/to-b", t, Some(rule.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let after = a
        .store
        .get_forward_rule("to-b".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.destination, "[::1]:4443");
    assert_eq!(after.hmac_key, key);
    assert_eq!(after.privacy.key, privacy_key);
    rule["name"] = json!("renamed");
    let r = a.api("PUT", "/forward/to-b", t, Some(rule.clone())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = a
        .api("PUT", "/forward/nope", t, Some(rule_json("nope")))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // A mask sent to a new rule is refused.
    let mut masked = rule_json("masked");
    masked["hmac_key"] = json!("********");
    let r = a.api("POST", "/forward", t, Some(masked)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // Enable / disable / delete.
    let r = a.api("POST", "/forward/to-b/disable", t, None).await;
    assert_eq!(r.json()["rule"]["enabled"], false);
    assert!(
        !a.store
            .get_forward_rule("to-b".into())
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    let r = a.api("POST", "/forward/to-b/enable", t, None).await;
    assert_eq!(r.json()["rule"]["enabled"], true);
    let r = a.api("POST", "/forward/nope/enable", t, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a.api("DELETE", "/forward/to-b", t, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = a.api("DELETE", "/forward/to-b", t, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a.api("GET", "/forward/bad%20name", t, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    let doc = a.api("GET", "/openapi.json", None, None).await.json();
    assert!(doc["paths"]["/forward/{name}"]["put"].is_object());
}

pub(crate) async fn sharing_pages(b: Backend) {
    let a = app_on(b).await;
    a.user("adm", Role::Admin).await;
    a.user("usr", Role::User).await;
    let (cookie, csrf) = a.session("adm", "password-of-test").await;
    let (usr, usr_csrf) = a.session("usr", "password-of-test").await;
    // Admin only: the page, the nav entry, the forms.
    assert_eq!(a.get("/sharing", &usr).await.status, StatusCode::FORBIDDEN);
    assert!(!a
        .get("/account", &usr)
        .await
        .body
        .contains("href=\"/sharing\""));
    let page = a.get("/sharing", &cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("href=\"/sharing\""), "nav entry");
    assert!(page.body.contains("No rule yet"));
    let form = [
        ("name", "to-b"),
        ("enabled", "on"),
        ("description", "<b>partner</b>"),
        ("destination", "127.0.0.1:4443"),
        ("trust", "plain"),
        ("uuid", PARTNER),
        ("hmac_key", "key-at-b"),
        ("types", "8 1"),
        ("tags", "share"),
        ("pdns_client_ip", "pseudonymise"),
        ("pcap_prefixes", "10.0.0.0/8"),
        ("log_redact", "user=\\w+"),
    ];
    let mut with_csrf = form.to_vec();
    with_csrf.push(("csrf", &usr_csrf));
    assert_eq!(
        a.post_form("/sharing", &usr, &with_csrf).await.status,
        StatusCode::FORBIDDEN
    );
    // Without the CSRF token: refused.
    let r = a.post_form("/sharing", &cookie, &form).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let mut with_csrf = form.to_vec();
    with_csrf.push(("csrf", &csrf));
    let r = a.post_form("/sharing", &cookie, &with_csrf).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/sharing/to-b?msg=rule-added");
    let rule = a
        .store
        .get_forward_rule("to-b".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rule.filter.types, vec![1, 8]);
    assert!(rule.tls.plain && rule.enabled);
    assert_eq!(rule.hmac_key, "key-at-b");

    // The list and the rule's page: counters, escaped text, no secret.
    a.store
        .record_forward_stats(
            "to-b".into(),
            "srv-1".into(),
            d4_store::ForwardStats {
                frames_forwarded: 12345,
                last_error: Some("<i>refused</i>".into()),
                ..Default::default()
            },
            d4_store::now(),
        )
        .await
        .unwrap();
    let list = a.get("/sharing", &cookie).await.body;
    assert!(list.contains("12345") && list.contains("to-b"), "{list}");
    assert!(!list.contains("<i>refused</i>") && list.contains("&lt;i&gt;refused"));
    let page = a.get("/sharing/to-b", &cookie).await.body;
    assert!(
        page.contains("srv-1") && page.contains("&lt;b&gt;partner"),
        "{page}"
    );
    assert!(!page.contains("key-at-b") && !page.contains(&rule.privacy.key));
    assert_eq!(
        a.get("/sharing/nope", &cookie).await.status,
        StatusCode::NOT_FOUND
    );

    // Edit with the secrets left empty: kept.
    let mut edit: Vec<(&str, &str)> = form
        .iter()
        .filter(|(k, _)| *k != "name" && *k != "hmac_key")
        .copied()
        .collect();
    edit.retain(|(k, _)| *k != "enabled");
    edit.push(("destination", "[::1]:4443"));
    edit.retain(|(k, v)| !(*k == "destination" && *v == "127.0.0.1:4443"));
    edit.push(("csrf", &csrf));
    let r = a.post_form("/sharing/to-b/edit", &cookie, &edit).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let after = a
        .store
        .get_forward_rule("to-b".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.destination, "[::1]:4443");
    assert_eq!(after.hmac_key, "key-at-b");
    assert_eq!(after.privacy.key, rule.privacy.key);
    assert!(!after.enabled, "the unchecked box disables");
    // A refused edit answers the validation message.
    let bad = [
        ("csrf", csrf.as_str()),
        ("destination", "nohost"),
        ("trust", "plain"),
        ("uuid", PARTNER),
    ];
    let r = a.post_form("/sharing/to-b/edit", &cookie, &bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("host:port"), "{}", r.body);

    // Enable, disable, remove.
    let c = [("csrf", csrf.as_str())];
    let r = a.post_form("/sharing/to-b/enable", &cookie, &c).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        a.store
            .get_forward_rule("to-b".into())
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    a.post_form("/sharing/to-b/disable", &cookie, &c).await;
    assert!(
        !a.store
            .get_forward_rule("to-b".into())
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    assert_eq!(
        a.post_form("/sharing/to-b/explode", &cookie, &c)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = a.post_form("/sharing/to-b/remove", &cookie, &c).await;
    assert_eq!(r.location(), "/sharing?msg=rule-removed");
    assert!(a
        .store
        .get_forward_rule("to-b".into())
        .await
        .unwrap()
        .is_none());

    // Without a key, the generated one is shown once.
    let mut without_key: Vec<(&str, &str)> = form
        .iter()
        .filter(|(k, _)| *k != "hmac_key")
        .copied()
        .collect();
    without_key.push(("csrf", &csrf));
    let r = a.post_form("/sharing", &cookie, &without_key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let key = a
        .store
        .get_forward_rule("to-b".into())
        .await
        .unwrap()
        .unwrap()
        .hmac_key;
    assert!(r.body.contains(&key));
}
