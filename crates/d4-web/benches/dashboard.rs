#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Dashboard and sensors page render time with 1,000 sensors (issue target: dashboard
//! under 200 ms). Real EmbeddedStore in a temp dir, requests through the router.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use criterion::{criterion_group, criterion_main, Criterion};
use d4_store::{ActivityBatch, EmbeddedStore, Role, SeenUpdate, StatsDelta, Store, User};
use http_body_util::BodyExt;
use tower::ServiceExt;
use uuid::Uuid;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let (router, cookie) = rt.block_on(async {
        let now = d4_store::now();
        let mut batch = ActivityBatch::default();
        for i in 0..1000u32 {
            let uuid = Uuid::new_v4();
            store
                .register_sensor(d4_store::SensorRegistration {
                    uuid,
                    hmac_key: None,
                    mail: None,
                    third_party: false,
                    description: Some(format!("sensor {i}")),
                    approve: true,
                })
                .await
                .unwrap();
            let ip = std::net::IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            for back in 0..7u64 {
                batch.stats.push(StatsDelta {
                    day: d4_store::day_of(now - back * 86_400),
                    uuid,
                    ip,
                    d4_type: (i % 8 + 1) as u8,
                    frames: 10 + u64::from(i),
                    bytes: 1000 * u64::from(i),
                });
            }
            batch.seen.push(SeenUpdate {
                uuid,
                ip,
                d4_type: (i % 8 + 1) as u8,
                ext: None,
                time: now,
                connections: 1,
            });
        }
        store.record_activity(batch).await.unwrap();
        let token = d4_web::auth::random_token();
        store
            .create_user(User {
                name: "adm".into(),
                role: Role::Admin,
                password_hash: d4_web::auth::hash_password("password-of-bench").unwrap(),
                must_change_password: false,
                api_token_hash: None,
                created: 0,
                session_epoch: 1,
            })
            .await
            .unwrap();
        let _ = token;
        let state = d4_web::WebState::new(store.clone(), d4_web::WebConfig::new(dir.path()));
        let router = d4_web::router(state);
        // Log in through the form.
        let r = router
            .clone()
            .oneshot(Request::get("/login").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let csrf = r
            .headers()
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_string();
        let r = router
            .clone()
            .oneshot(
                Request::post("/login")
                    .header(header::COOKIE, format!("d4_login_csrf={csrf}"))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(format!(
                        "csrf={csrf}&user=adm&password=password-of-bench&next=%2F"
                    )))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = r
            .headers()
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        (router, cookie)
    });
    for path in ["/", "/sensors"] {
        c.bench_function(&format!("GET {path} with 1000 sensors"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let r = router
                        .clone()
                        .oneshot(
                            Request::get(path)
                                .header(header::COOKIE, &cookie)
                                .body(Body::empty())
                                .unwrap(),
                        )
                        .await
                        .unwrap();
                    assert_eq!(r.status(), StatusCode::OK);
                    r.into_body().collect().await.unwrap().to_bytes().len()
                })
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
