//! Operations: `/metrics` and serving on a real socket.

use crate::support::*;

pub(crate) struct Extra;
impl d4_web::MetricsSource for Extra {
    fn render(&self, out: &mut String) {
        out.push_str("d4_connections_total 7\n");
    }
}

pub(crate) async fn metrics_need_a_token_and_include_sources(b: Backend) {
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
                groups: Vec::new(),
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

pub(crate) async fn serves_plain_http_on_a_real_socket(b: Backend) {
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

/// A fixed alert source: one fill alert on `queue`.
struct FixedAlerts(Uuid);
impl d4_web::QueueAlertSource for FixedAlerts {
    fn alerts(&self, _now: u64) -> d4_web::AlertsFuture<'_> {
        let a = d4_store::QueueAlert {
            queue: self.0,
            name: "<b>pdns</b>".into(),
            kind: d4_store::QueueAlertKind::Fill,
            since: 1_700_000_000,
            value: 0.9,
            threshold: 0.8,
        };
        Box::pin(async move { Ok(vec![a]) })
    }
}

/// `GET /api/v1/queues/alerts`, `d4_queue_alert` in `/metrics` and the Monitoring page's
/// block, before and after the server registers its alert source.
pub(crate) async fn queue_alerts_api_metrics_and_page(b: Backend) {
    let a = app_on(b).await;
    let user = a.user("usr", Role::User).await;
    let q = a
        .store
        .create_queue(
            d4_store::QueueConfig {
                uuid: Uuid::new_v4(),
                kind: d4_store::QueueKind::Type(8),
                description: "<b>pdns</b>".into(),
                max_size: 10,
                sensors: None,
                groups: Vec::new(),
            },
            1,
        )
        .await
        .unwrap()
        .config
        .uuid;
    let (cookie, _) = a.session("usr", "password-of-test").await;
    // No source: an empty list, and the page says who evaluates them.
    let r = a.api("GET", "/queues/alerts", Some(&user), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json(), serde_json::json!([]));
    let page = a.get("/monitoring", &cookie).await;
    assert!(
        page.body.contains("Queue alerts are evaluated by"),
        "{}",
        page.body
    );
    assert_eq!(
        a.api("GET", "/queues/alerts", None, None).await.status,
        StatusCode::UNAUTHORIZED
    );

    a.state.set_queue_alert_source(Arc::new(FixedAlerts(q)));
    let r = a.api("GET", "/queues/alerts", Some(&user), None).await;
    assert_eq!(
        r.json(),
        serde_json::json!([{
            "queue": q.simple().to_string(),
            "name": "<b>pdns</b>",
            "kind": "fill",
            "since": 1_700_000_000u64,
            "value": 0.9,
            "threshold": 0.8,
        }])
    );
    let m = a
        .send(
            Request::get("/metrics")
                .header(header::AUTHORIZATION, &user)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    for (kind, v) in [("fill", 1), ("age", 0), ("trimmed", 0)] {
        let line = format!(
            "d4_queue_alert{{queue=\"{}\",kind=\"{kind}\"}} {v}",
            q.simple()
        );
        assert!(m.body.lines().any(|l| l == line), "{line}\n{}", m.body);
    }
    let page = a.get("/monitoring", &cookie).await;
    assert!(page.body.contains("1 queue alert(s)"), "{}", page.body);
    assert!(page.body.contains("90% full (level 80%)"), "{}", page.body);
    assert!(
        page.body.contains("&lt;b&gt;pdns&lt;/b&gt;"),
        "escaped name"
    );
    assert!(!page.body.contains("<b>pdns</b>"));
    assert!(page.body.contains(&format!("/queues/{}", q.simple())));
}
