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
