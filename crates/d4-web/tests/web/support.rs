//! The test harness: an [`App`] (router + store + state) on a backend, requests with
//! cookies, tokens and forms, and small helpers.

pub(crate) use std::net::SocketAddr;
pub(crate) use std::sync::Arc;

pub(crate) use axum::body::Body;
pub(crate) use axum::extract::ConnectInfo;
pub(crate) use axum::http::{header, Method, Request, StatusCode};
pub(crate) use axum::Router;
pub(crate) use d4_store::{
    hash_secret, ActivityBatch, EmbeddedStore, QueueEntry, Role, SeenUpdate, Store, StoreConfig,
    User,
};
pub(crate) use d4_web::{WebConfig, WebState};
pub(crate) use http_body_util::BodyExt;
pub(crate) use serde_json::{json, Value};
pub(crate) use tower::ServiceExt;
pub(crate) use uuid::Uuid;

pub(crate) struct App {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) state: WebState,
    pub(crate) router: Router,
    pub(crate) admin_password: String,
    /// The Redis server of a Redis-backed app (killed with the app).
    pub(crate) redis: Option<d4_testkit::RedisServer>,
}

/// The store a test runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    Embedded,
    Redis,
}
pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) body: String,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    pub(crate) fn location(&self) -> String {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
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

pub(crate) const IP_A: &str = "192.0.2.10:5000";

pub(crate) async fn app_on(backend: Backend) -> App {
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
pub(crate) async fn open_store(
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

pub(crate) async fn app_with(
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    redis: Option<d4_testkit::RedisServer>,
) -> App {
    app_with_config(dir, store, redis, |_| {}).await
}

/// An embedded-store app whose settings `set` changes.
pub(crate) async fn app_configured(set: impl FnOnce(&mut WebConfig)) -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir, None).await;
    app_with_config(dir, store, None, set).await
}

pub(crate) async fn app_with_config(
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    redis: Option<d4_testkit::RedisServer>,
    set: impl FnOnce(&mut WebConfig),
) -> App {
    let mut cfg = WebConfig::new(dir.path());
    set(&mut cfg);
    let state = WebState::new(store.clone(), cfg);
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
    pub(crate) async fn send(&self, req: Request<Body>) -> Resp {
        self.send_from(req, IP_A).await
    }

    pub(crate) async fn send_from(&self, mut req: Request<Body>, ip: &str) -> Resp {
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
    pub(crate) async fn api(
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
    pub(crate) async fn user(&self, name: &str, role: Role) -> String {
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

    pub(crate) async fn get(&self, path: &str, cookie: &str) -> Resp {
        self.send(
            Request::get(path)
                .header(header::COOKIE, format!("d4_session={cookie}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub(crate) async fn post_form(&self, path: &str, cookie: &str, form: &[(&str, &str)]) -> Resp {
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
    pub(crate) async fn login_from(
        &self,
        user: &str,
        password: &str,
        next: &str,
        ip: &str,
    ) -> Resp {
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
    pub(crate) async fn session(&self, user: &str, password: &str) -> (String, String) {
        let r = self.login_from(user, password, "/", IP_A).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let cookie = r.cookie("d4_session").unwrap();
        let page = self.get("/account", &cookie).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        (cookie, csrf_of(&page.body))
    }
}

pub(crate) fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    html[start..start + 64].to_string()
}

pub(crate) fn serde_urlencoded(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) fn enc(s: &str) -> String {
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

pub(crate) fn v4() -> String {
    Uuid::new_v4().simple().to_string()
}
