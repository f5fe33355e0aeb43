//! `d4_pibs::server` over the real embedded store (`store::open_embedded`), filled through
//! its write side with planted backscatter: the pfx2as file maps the victims to the planted
//! ASes (longest match, IPv4 and IPv6), `asn=`/`prefix=`/`/asn`/`/prefix` find them, the
//! victim's timeline holds the planted buckets, `/daily` counts the planted packets.
//! Expected values come from the planted inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use d4_pibs::aggregate::Batch;
use d4_pibs::pfx2as::Pfx2As;
use d4_pibs::server::{self, Pivots, ServeConfig};
use d4_pibs::store::{open_embedded, PibsStore};
use d4_pibs::{Backscatter, Kind};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// 2026-12-07T00:00:00Z
const DAY: u64 = 20_794 * 86_400;

/// (victim, first packet time, packets, port): each planted run stays in one bucket.
const PLANTED: &[(&str, u64, u64, u16)] = &[
    ("192.0.2.10", DAY + 3_600, 120, 80),
    ("198.51.100.20", DAY + 7_200, 60, 53),
    ("10.1.2.3", DAY + 600, 30, 22),
    ("10.2.0.1", DAY + 900, 15, 443),
    ("2001:db8::1", DAY + 1_200, 45, 443),
];

const PFX: &[u8] = b"192.0.2.0\t24\t64496\n198.51.100.0\t24\t64497\n10.0.0.0\t8\t64500\n10.1.0.0\t16\t64501_64502\n2001:db8::\t32\t64510\n";

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let req = Request::get(uri)
        .header("host", "127.0.0.1")
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

fn victims(v: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["victim"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_store_and_pivots() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(&dir.path().join("pibs.redb")).unwrap();
    let mut batch = Batch::new("sensor-1");
    for (victim, t, packets, port) in PLANTED {
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
        pfx2as: Some(Arc::new(Pfx2As::parse(PFX))),
        names: None,
    };
    let r = server::router(store, pivots, ServeConfig::default());

    // every planted victim, with its planted AS and prefix
    let (s, v) = get(&r, "/attacks?limit=100").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let want = [
        ("192.0.2.10", 64496, "192.0.2.0/24", 120),
        ("198.51.100.20", 64497, "198.51.100.0/24", 60),
        ("10.1.2.3", 64501, "10.1.0.0/16", 30),
        ("10.2.0.1", 64500, "10.0.0.0/8", 15),
        ("2001:db8::1", 64510, "2001:db8::/32", 45),
    ];
    let list = v["attacks"].as_array().unwrap();
    assert_eq!(list.len(), want.len(), "{v}");
    for (victim, asn, prefix, packets) in want {
        let a = list
            .iter()
            .find(|a| a["victim"] == victim)
            .unwrap_or_else(|| panic!("{victim} missing: {v}"));
        assert_eq!(a["asn"], asn, "{victim}");
        assert_eq!(a["prefix"], prefix, "{victim}");
        assert_eq!(a["packets"], packets, "{victim}");
    }

    // asn= and the reverse pivots (10.1.2.3 is in 10/8 but its longest match is 64501's)
    let (_, v) = get(&r, "/attacks?asn=64500").await;
    assert_eq!(victims(&v, "attacks"), vec!["10.2.0.1"]);
    let (_, v) = get(&r, "/attacks?asn=AS64502").await;
    assert_eq!(victims(&v, "attacks"), vec!["10.1.2.3"]);
    let (_, v) = get(&r, "/asn/64510").await;
    assert_eq!(victims(&v, "victims"), vec!["2001:db8::1"]);
    let (_, v) = get(&r, "/prefix/10.0.0.0/8").await;
    assert_eq!(victims(&v, "victims"), vec!["10.1.2.3", "10.2.0.1"]);
    let (_, v) = get(&r, "/attacks?port=443").await;
    assert_eq!(victims(&v, "attacks"), vec!["10.2.0.1", "2001:db8::1"]);

    // a victim's timeline: its one planted bucket
    let (s, v) = get(&r, "/victim/192.0.2.10").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let t = v["timeline"].as_array().unwrap();
    assert_eq!(t.len(), 1, "{v}");
    assert_eq!(t[0]["start"], DAY + 3_600);
    assert_eq!(t[0]["packets"], 120);
    assert_eq!(v["asn"], 64496);

    // the day
    let (_, v) = get(&r, "/daily/2026-12-07").await;
    assert_eq!(v["attacks"], 5);
    assert_eq!(v["victims"], 5);
    assert_eq!(v["packets"], 120 + 60 + 30 + 15 + 45);
    assert_eq!(v["top_victims"][0]["victim"], "192.0.2.10");
    assert_eq!(v["top_ports"][0]["port"], 80);
    let (_, v) = get(&r, "/daily/2026-12-08").await;
    assert_eq!(v["attacks"], 0);
    let (_, v) = get(&r, "/info").await;
    assert_eq!(v["victims"], 5);
}
