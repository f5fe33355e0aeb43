//! The "Backscatter" page against the real lookup server: `d4_pibs::server::router` over an
//! embedded backscatter store holding planted attacks, with a prefix-to-AS table, asked
//! through the page's HTTP client with a token. What the page must show comes from the
//! planted inputs (victims, ASes, prefixes, packet counts).

use std::net::IpAddr;

use d4_pibs::aggregate::Batch;
use d4_pibs::pfx2as::Pfx2As;
use d4_pibs::server::{Credentials, Pivots, ServeConfig};
use d4_pibs::store::{open_embedded, PibsStore};
use d4_pibs::{Backscatter, Kind};

use crate::support::*;

const TOKEN: &str = "pibs-token-1";

async fn serve(dir: &std::path::Path, planted: &[(&str, u64, u64, u16)]) -> String {
    let store = open_embedded(&dir.join("pibs.redb")).unwrap();
    let mut batch = Batch::new("s1");
    for (victim, t, packets, port) in planted {
        let v: IpAddr = victim.parse().unwrap();
        for p in 0..*packets {
            let b = Backscatter {
                victim: v,
                port: *port,
                src: v,
                dst: IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, (p % 200) as u8)),
                proto: 6,
                kind: Kind::Tcp { flags: 0x12 },
            };
            batch.add(t + p % 60, &b);
        }
    }
    store.commit(&batch).unwrap();
    let store: Arc<dyn PibsStore> = Arc::new(store);
    let pivots = Pivots {
        pfx2as: Some(Arc::new(Pfx2As::parse(
            b"192.0.2.0\t24\t64496\n2001:db8::\t32\t64510\n",
        ))),
        names: None,
    };
    let cfg = ServeConfig {
        credentials: Credentials {
            tokens: vec![TOKEN.into()],
            basic: Vec::new(),
        },
        ..ServeConfig::default()
    };
    let router = d4_pibs::server::router(store, pivots, cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pibs_page_over_the_real_lookup_server() {
    let dir = tempfile::tempdir().unwrap();
    // 2026-12-07T01:00:00Z and 02:00
    let day = 20_794 * 86_400;
    let url = serve(
        dir.path(),
        &[
            ("192.0.2.10", day + 3_600, 120, 80),
            ("2001:db8::1", day + 7_200, 45, 443),
        ],
    )
    .await;
    let a = app_configured(|c| {
        c.pibs_url = Some(url);
        c.pibs_token = Some(d4_web::pssl_client::Secret(TOKEN.into()));
    })
    .await;
    a.user("ana", Role::User).await;
    let (cookie, _) = a.session("ana", "password-of-test").await;

    let r = a.get("/pibs?q=2026-12-07", &cookie).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.body.contains("class=\"error\""), "{}", r.body);
    for w in [
        "192.0.2.10",
        "2001:db8::1",
        "AS64496",
        "AS64510",
        "192.0.2.0/24",
        "120",
        "/pibs/victim/192.0.2.10",
    ] {
        assert!(r.body.contains(w), "missing {w}: {}", r.body);
    }
    let r = a.get("/pibs/victim/192.0.2.10", &cookie).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("<svg") && r.body.contains("120 packets"),
        "{}",
        r.body
    );
    let r = a.get("/pibs?q=AS64510", &cookie).await;
    assert!(r.body.contains("2001:db8::1"), "{}", r.body);
    let r = a.get("/pibs?q=192.0.2.0%2F24", &cookie).await;
    assert!(r.body.contains("192.0.2.10"), "{}", r.body);
    let r = a.get("/pibs?q=not+a+thing", &cookie).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // without pibs_url: how to set it
    let b = app_configured(|_| {}).await;
    b.user("bo", Role::User).await;
    let (cookie, _) = b.session("bo", "password-of-test").await;
    let r = b.get("/pibs", &cookie).await;
    assert!(r.body.contains("pibs_url"), "{}", r.body);
}
