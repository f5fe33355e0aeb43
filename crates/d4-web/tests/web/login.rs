//! Logging in: the first-start admin, the lockout, fixed messages, redirects, sessions
//! that survive a restart or end with a password or role change, password resets.

use crate::support::*;

pub(crate) async fn first_start_admin_must_change_password_and_file_is_removed(b: Backend) {
    let a = app_on(b).await;
    let file = a.dir.path().join(d4_web::ADMIN_PASSWORD_FILE);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        a.admin_password
    );
    assert_eq!(a.admin_password.len(), 20);
    // A second start creates nothing.
    assert!(d4_web::ensure_admin(&a.state).await.unwrap().is_none());

    let r = a
        .login_from("admin", &a.admin_password, "/sensors", IP_A)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/password");
    let cookie = r.cookie("d4_session").unwrap();
    // Every page sends to the password page until it is changed.
    let r = a.get("/sensors", &cookie).await;
    assert_eq!(r.location(), "/password");
    let page = a.get("/password", &cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = csrf_of(&page.body);
    // Too short, mismatched, wrong current: refused, file kept.
    let r = a
        .post_form(
            "/password",
            &cookie,
            &[
                ("csrf", &csrf),
                ("current", &a.admin_password),
                ("new", "short"),
                ("repeat", "short"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a
        .post_form(
            "/password",
            &cookie,
            &[
                ("csrf", &csrf),
                ("current", "wrong"),
                ("new", "a-long-new-password"),
                ("repeat", "a-long-new-password"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(file.exists());
    let r = a
        .post_form(
            "/password",
            &cookie,
            &[
                ("csrf", &csrf),
                ("current", &a.admin_password),
                ("new", "a-long-new-password"),
                ("repeat", "a-long-new-password"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(!file.exists());
    // The change renewed the session: the old id is dead, the new cookie works.
    let renewed = r.cookie("d4_session").unwrap();
    assert!(a.get("/", &cookie).await.location().starts_with("/login"));
    let r = a.get("/", &renewed).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Dashboard"));
    // The old password no longer works, the new one does.
    let r = a.login_from("admin", &a.admin_password, "/", IP_A).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = a
        .login_from("admin", "a-long-new-password", "/", IP_A)
        .await;
    assert_eq!(r.location(), "/");
}

pub(crate) async fn login_lockout_is_per_user_and_client_ip(b: Backend) {
    let a = app_on(b).await;
    a.user("adm", Role::Admin).await;
    a.user("alice", Role::User).await;
    for i in 0..5 {
        let r = a.login_from("adm", "wrong", "/", IP_A).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // Locked: even the right password is refused for this user from this IP.
    let r = a.login_from("adm", "password-of-test", "/", IP_A).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.cookie("d4_session").is_none());
    assert!(r.body.contains("retry in"));
    // Another IP is not locked out, nor another user from the same IP (behind one proxy
    // address, a neighbour's typos lock nobody else out).
    let r = a
        .login_from("adm", "password-of-test", "/", "198.51.100.20:1234")
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = a.login_from("alice", "password-of-test", "/", IP_A).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // Unknown user names are counted (and locked) like known ones.
    for _ in 0..5 {
        a.login_from("nobody", "x", "/", "198.51.100.21:1").await;
    }
    let r = a.login_from("nobody", "x", "/", "198.51.100.21:1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

pub(crate) async fn login_and_flash_messages_are_fixed_codes(b: Backend) {
    let a = app_on(b).await;
    a.user("adm", Role::Admin).await;
    // Free text in ?error= / ?msg= is never shown; known codes show their fixed text.
    let evil = "Your%20account%20is%20suspended%3A%20call%20%2B1-555-0100";
    let r = a.get(&format!("/login?error={evil}"), "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.body.contains("suspended"), "{}", r.body);
    let r = a.get("/login?error=wrong", "").await;
    assert!(r.body.contains("Wrong user name or password."));
    let (cookie, _) = a.session("adm", "password-of-test").await;
    let r = a.get(&format!("/users?msg={evil}"), &cookie).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.body.contains("suspended"), "{}", r.body);
    let r = a.get("/users?msg=user-created", &cookie).await;
    assert!(r.body.contains("User created."), "{}", r.body);
}

pub(crate) async fn no_open_redirect_after_login(b: Backend) {
    let a = app_on(b).await;
    a.user("adm", Role::Admin).await;
    for (next, expect) in [
        ("/sensors?x=1", "/sensors?x=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ] {
        let r = a.login_from("adm", "password-of-test", next, IP_A).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.location(), expect, "{next}");
    }
    // Unauthenticated page access sends to the login page with a local next.
    let r = a.get("/sensors", "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login?next=/sensors");
}

pub(crate) async fn sessions_survive_a_restart(b: Backend) {
    let a = app_on(b).await;
    a.user("adm", Role::Admin).await;
    let (cookie, _) = a.session("adm", "password-of-test").await;
    let App {
        dir,
        store,
        state,
        router,
        redis,
        ..
    } = a;
    drop(router);
    drop(state);
    drop(store);
    // A new process: a fresh store handle on the same data (file, or Redis database).
    let store = open_store(&dir, redis.as_ref()).await;
    let b = app_with(dir, store, redis).await;
    let r = b.get("/sensors", &cookie).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.location());
}

/// A password change ends the user's other sessions and keeps the browser that made it
/// logged in (with a new session id); a role change or an API password change ends them
/// all.
pub(crate) async fn password_and_role_changes_end_other_sessions(b: Backend) {
    let a = app_on(b).await;
    let admin_token = a.user("adm", Role::Admin).await;
    let token = a.user("bob", Role::User).await;
    let (one, csrf_one) = a.session("bob", "password-of-test").await;
    let (two, _) = a.session("bob", "password-of-test").await;
    let (adm_cookie, _) = a.session("adm", "password-of-test").await;
    assert_eq!(a.get("/sensors", &two).await.status, StatusCode::OK);
    let r = a
        .post_form(
            "/password",
            &one,
            &[
                ("csrf", &csrf_one),
                ("current", "password-of-test"),
                ("new", "another-password-1"),
                ("repeat", "another-password-1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let renewed = r.cookie("d4_session").expect("a new session cookie");
    assert_ne!(renewed, one);
    // The other browser is logged out; the old id of this one is dead too.
    let r = a.get("/sensors", &two).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().starts_with("/login"), "{}", r.location());
    assert!(a
        .get("/sensors", &one)
        .await
        .location()
        .starts_with("/login"));
    // This browser goes on with its new cookie.
    assert_eq!(a.get("/sensors", &renewed).await.status, StatusCode::OK);
    // Other users are not affected.
    assert_eq!(a.get("/sensors", &adm_cookie).await.status, StatusCode::OK);
    // The API token still works (tokens are separate from sessions).
    assert_eq!(
        a.api("GET", "/me", Some(&token), None).await.status,
        StatusCode::OK
    );

    // A role change by an admin ends every session of that user.
    let r = a
        .api(
            "PUT",
            "/users/bob",
            Some(&admin_token),
            Some(json!({"role": "sensor_register"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(a
        .get("/account", &renewed)
        .await
        .location()
        .starts_with("/login"));
    assert_eq!(a.get("/sensors", &adm_cookie).await.status, StatusCode::OK);

    // A password change through the API ends the web sessions as well.
    let (three, _) = a.session("bob", "another-password-1").await;
    assert_eq!(a.get("/account", &three).await.status, StatusCode::OK);
    let r = a
        .api(
            "POST",
            "/me/password",
            Some(&token),
            Some(json!({"current": "another-password-1", "new": "third-password-1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(a
        .get("/account", &three)
        .await
        .location()
        .starts_with("/login"));

    // An admin password reset (API, then the users page) ends them as well.
    let (five, _) = a.session("bob", "third-password-1").await;
    let r = a
        .api(
            "POST",
            "/users/bob/password",
            Some(&admin_token),
            Some(json!({"password": "fourth-password-1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["password"], Value::Null, "given, not generated");
    assert!(a
        .get("/account", &five)
        .await
        .location()
        .starts_with("/login"));
    let r = a.login_from("bob", "fourth-password-1", "/", IP_A).await;
    assert_eq!(r.location(), "/password", "must be changed at next login");
    let six = r.cookie("d4_session").unwrap();
    let adm_cookie2 = {
        let r = a.login_from("adm", "password-of-test", "/", IP_A).await;
        r.cookie("d4_session").unwrap()
    };
    let page = a.get("/users", &adm_cookie2).await;
    let adm_csrf2 = csrf_of(&page.body);
    let r = a
        .post_form("/users/bob/password", &adm_cookie2, &[("csrf", &adm_csrf2)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let marker = "class=\"secret\">";
    let start = r.body.find(marker).unwrap() + marker.len();
    let generated: String = r.body[start..].chars().take(20).collect();
    assert!(a
        .get("/password", &six)
        .await
        .location()
        .starts_with("/login"));
    let r = a.login_from("bob", &generated, "/", IP_A).await;
    assert_eq!(r.location(), "/password", "{}", r.body);
    let r = a
        .api(
            "POST",
            "/users/bob/password",
            Some(&admin_token),
            Some(json!({"password": "short"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a
        .api("POST", "/users/ghost/password", Some(&admin_token), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Generated when no body is given, returned once.
    let r = a
        .api("POST", "/users/bob/password", Some(&admin_token), None)
        .await;
    assert_eq!(r.json()["password"].as_str().unwrap().len(), 20);

    // Deleting the user ends its sessions; a new user of the same name does not get them.
    let four = a
        .login_from("bob", r.json()["password"].as_str().unwrap(), "/", IP_A)
        .await
        .cookie("d4_session")
        .unwrap();
    assert_eq!(
        a.get("/account", &four).await.location(),
        "/password",
        "alive"
    );
    let r = a
        .api("DELETE", "/users/bob", Some(&admin_token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    a.user("bob", Role::User).await;
    assert!(a
        .get("/account", &four)
        .await
        .location()
        .starts_with("/login"));
}

pub(crate) async fn admin_password_reset_removes_the_first_start_password_file(b: Backend) {
    let a = app_on(b).await;
    let file = a.dir.path().join(d4_web::ADMIN_PASSWORD_FILE);
    assert!(file.exists());
    let other = a.user("adm2", Role::Admin).await;
    // Another user's reset leaves it alone.
    a.user("bob", Role::User).await;
    let r = a
        .api("POST", "/users/bob/password", Some(&other), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(file.exists());
    // The first admin's: the file's password is no longer valid, the file goes.
    let r = a
        .api("POST", "/users/admin/password", Some(&other), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!file.exists(), "stale first-start password file kept");
    let r = a.login_from("admin", &a.admin_password, "/", IP_A).await;
    assert_ne!(r.location(), "/password", "old password refused");
}
