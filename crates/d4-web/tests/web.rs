#![allow(clippy::unwrap_used, clippy::expect_used)]
//! API and page tests: the real router over a real store, driven with
//! `tower::ServiceExt::oneshot`. Every test runs twice: on the embedded store in a temp
//! dir (module `embedded`) and on the Redis store over a real redis-server (module
//! `redis`), since the UI must work the same on both backends.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use d4_store::{
    hash_secret, ActivityBatch, EmbeddedStore, QueueEntry, Role, SeenUpdate, Store, StoreConfig,
    User,
};
use d4_web::{WebConfig, WebState};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

struct App {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    state: WebState,
    router: Router,
    admin_password: String,
    /// The Redis server of a Redis-backed app (killed with the app).
    redis: Option<d4_testkit::RedisServer>,
}

/// The store a test runs on.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Embedded,
    Redis,
}

/// Runs each named test (an `async fn(Backend)`) on both backends: `embedded::NAME` and
/// `redis::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Embedded).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Redis).await
                }
            )*
        }
    };
}

on_both_backends!(
    admin_password_reset_removes_the_first_start_password_file,
    api_functions,
    api_role_matrix,
    csrf_is_required_on_every_form_post,
    first_start_admin_must_change_password_and_file_is_removed,
    login_lockout_is_per_user_and_client_ip,
    login_and_flash_messages_are_fixed_codes,
    metrics_need_a_token_and_include_sources,
    monitoring_threshold_form,
    no_open_redirect_after_login,
    openapi_lists_the_endpoints,
    pages_check_roles_and_escape,
    password_and_role_changes_end_other_sessions,
    register_api_matches_the_reference,
    serves_plain_http_on_a_real_socket,
    sessions_survive_a_restart,
);

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn location(&self) -> String {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                let first = v.split(';').next()?;
                let (k, val) = first.split_once('=')?;
                (k == name).then(|| val.to_string())
            })
    }
}

const IP_A: &str = "192.0.2.10:5000";

async fn app_on(backend: Backend) -> App {
    let dir = tempfile::tempdir().unwrap();
    let redis = match backend {
        Backend::Embedded => None,
        Backend::Redis => Some(d4_testkit::RedisServer::start()),
    };
    let store = open_store(&dir, redis.as_ref()).await;
    let app = app_with(dir, store, redis).await;
    // The Redis variant must not quietly fall back to the embedded file.
    assert_eq!(
        app.dir.path().join("d4.redb").exists(),
        matches!(backend, Backend::Embedded),
        "{backend:?} store"
    );
    app
}

/// The store of a test: embedded in `dir`, or in database 0 of `redis`.
async fn open_store(
    dir: &tempfile::TempDir,
    redis: Option<&d4_testkit::RedisServer>,
) -> Arc<dyn Store> {
    match redis {
        None => Arc::new(EmbeddedStore::open(dir.path()).unwrap()),
        Some(r) => {
            let mut cfg = StoreConfig::new(dir.path());
            cfg.redis_url = Some(r.url_db(0));
            d4_store::open(&cfg).await.unwrap()
        }
    }
}

async fn app_with(
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    redis: Option<d4_testkit::RedisServer>,
) -> App {
    let state = WebState::new(store.clone(), WebConfig::new(dir.path()));
    let admin_password = d4_web::ensure_admin(&state)
        .await
        .unwrap()
        .unwrap_or_default();
    let router = d4_web::router(state.clone());
    App {
        dir,
        store,
        state,
        router,
        admin_password,
        redis,
    }
}

impl App {
    async fn send(&self, req: Request<Body>) -> Resp {
        self.send_from(req, IP_A).await
    }

    async fn send_from(&self, mut req: Request<Body>, ip: &str) -> Resp {
        let addr: SocketAddr = ip.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// An API call with a token.
    async fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut b = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(format!("/api/v1{path}"));
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, t);
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    /// A user with a known password (no change required) and an API token.
    async fn user(&self, name: &str, role: Role) -> String {
        let token = d4_web::auth::random_token();
        self.store
            .create_user(User {
                name: name.into(),
                role,
                password_hash: d4_web::auth::hash_password("password-of-test").unwrap(),
                must_change_password: false,
                api_token_hash: Some(hash_secret(&token)),
                created: 1,
                session_epoch: d4_web::auth::new_epoch(),
            })
            .await
            .unwrap();
        token
    }

    async fn get(&self, path: &str, cookie: &str) -> Resp {
        self.send(
            Request::get(path)
                .header(header::COOKIE, format!("d4_session={cookie}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn post_form(&self, path: &str, cookie: &str, form: &[(&str, &str)]) -> Resp {
        let body = serde_urlencoded(form);
        self.send(
            Request::post(path)
                .header(header::COOKIE, format!("d4_session={cookie}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// Log in through the form (login CSRF cookie included); returns the response.
    async fn login_from(&self, user: &str, password: &str, next: &str, ip: &str) -> Resp {
        let form = self
            .send_from(Request::get("/login").body(Body::empty()).unwrap(), ip)
            .await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.cookie("d4_login_csrf").unwrap();
        assert!(form.body.contains(&csrf));
        let body = serde_urlencoded(&[
            ("csrf", &csrf),
            ("user", user),
            ("password", password),
            ("next", next),
        ]);
        self.send_from(
            Request::post("/login")
                .header(header::COOKIE, format!("d4_login_csrf={csrf}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
            ip,
        )
        .await
    }

    /// Logged-in session cookie and CSRF token of a user.
    async fn session(&self, user: &str, password: &str) -> (String, String) {
        let r = self.login_from(user, password, "/", IP_A).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let cookie = r.cookie("d4_session").unwrap();
        let page = self.get("/account", &cookie).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        (cookie, csrf_of(&page.body))
    }
}

fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    html[start..start + 64].to_string()
}

fn serde_urlencoded(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn v4() -> String {
    Uuid::new_v4().simple().to_string()
}

async fn first_start_admin_must_change_password_and_file_is_removed(b: Backend) {
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

async fn register_api_matches_the_reference(b: Backend) {
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
async fn api_role_matrix(b: Backend) {
    let a = app_on(b).await;
    let admin = a.user("adm", Role::Admin).await;
    let user = a.user("usr", Role::User).await;
    let reg = a.user("reg", Role::SensorRegister).await;
    a.user("victim", Role::User).await;
    let s = v4();
    let q = v4();
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

async fn endpoint_count(a: &App) -> usize {
    // Number of documented endpoints (the OpenAPI table), as clients see it.
    let doc = a.api("GET", "/openapi.json", None, None).await.json();
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum()
}

async fn openapi_lists_the_endpoints(b: Backend) {
    let a = app_on(b).await;
    let doc = a.api("GET", "/openapi.json", None, None).await.json();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/add/sensor/register"]["post"].is_object());
    assert!(doc["paths"]["/sensors/monitoring/errors"]["get"].is_object());
    assert!(endpoint_count(&a).await >= 36);
}

async fn api_functions(b: Backend) {
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

    // Activity: stats, last IPs, monitoring.
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

async fn csrf_is_required_on_every_form_post(b: Backend) {
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

async fn login_lockout_is_per_user_and_client_ip(b: Backend) {
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

async fn login_and_flash_messages_are_fixed_codes(b: Backend) {
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

async fn no_open_redirect_after_login(b: Backend) {
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

async fn pages_check_roles_and_escape(b: Backend) {
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

async fn sessions_survive_a_restart(b: Backend) {
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

struct Extra;
impl d4_web::MetricsSource for Extra {
    fn render(&self, out: &mut String) {
        out.push_str("d4_connections_total 7\n");
    }
}

async fn metrics_need_a_token_and_include_sources(b: Backend) {
    let a = app_on(b).await;
    let user = a.user("usr", Role::User).await;
    let reg = a.user("reg", Role::SensorRegister).await;
    a.state.add_metrics_source(Arc::new(Extra));
    a.store
        .create_queue(
            d4_store::QueueConfig {
                uuid: Uuid::new_v4(),
                kind: d4_store::QueueKind::Type(8),
                description: String::new(),
                max_size: 10,
                sensors: None,
            },
            1,
        )
        .await
        .unwrap();
    let get = |t: Option<&str>| {
        let mut b = Request::get("/metrics");
        if let Some(t) = t {
            b = b.header(header::AUTHORIZATION, t);
        }
        b.body(Body::empty()).unwrap()
    };
    assert_eq!(a.send(get(None)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.send(get(Some(&reg))).await.status, StatusCode::FORBIDDEN);
    let r = a.send(get(Some(&user))).await;
    assert_eq!(r.status, StatusCode::OK);
    for needle in [
        "d4_sensors{status=\"approved\"} 0",
        "d4_queue_length{",
        "d4_queue_trimmed_total{",
        "d4_connections_total 7",
        "d4_sensors_connected 0",
    ] {
        assert!(r.body.contains(needle), "{needle}\n{}", r.body);
    }
}

async fn serves_plain_http_on_a_real_socket(b: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = app_on(b).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(d4_web::serve(listener, a.router.clone(), None, async {
        let _ = rx.await;
    }));
    let mut s = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .unwrap()
    .unwrap();
    s.write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        s.read_to_string(&mut out),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("d4_login_csrf="));
    let low = out.to_ascii_lowercase();
    assert!(low.contains("x-frame-options: deny"), "{out}");
    assert!(low.contains("content-security-policy: default-src 'none'"));
    assert!(low.contains("cache-control: no-store"));
    let _ = tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// The sensor page's monitoring form: admin sets and clears the threshold, the monitoring
/// page follows it; a user sees the value but cannot post the form.
async fn monitoring_threshold_form(b: Backend) {
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

/// A password change ends the user's other sessions and keeps the browser that made it
/// logged in (with a new session id); a role change or an API password change ends them
/// all.
async fn password_and_role_changes_end_other_sessions(b: Backend) {
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

async fn admin_password_reset_removes_the_first_start_password_file(b: Backend) {
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
