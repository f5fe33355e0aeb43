//! Latency of `d4 pibs serve`'s `/attacks` (issue 22: p99 < 10 ms with 1,000,000 buckets):
//! the real embedded store (`store::open_embedded`) filled through its write side
//! (`aggregate::Batch` → `PibsStore::commit`, 50,000 buckets per commit) with
//! `PIBS_BENCH_BUCKETS` buckets (default 1,000,000): `PIBS_BENCH_VICTIMS` victims (default
//! 100,000, IPv4 in 10.0.0.0/8, a tenth IPv6) with consecutive buckets each (attacks of
//! 5 buckets, 30 minutes apart, so 2 attacks per victim by default), ports and packet counts
//! varying by victim. Then `PIBS_BENCH_QUERIES` requests (default 2,000) of each shape go
//! through the router (`tower::ServiceExt::oneshot`, no socket: the store, the filters, the
//! pivots and the JSON, not the kernel), with a prefix-to-AS table of 65,536 routes
//! (every /16 of 10.0.0.0/8 plus /24s), and p50/p99/max are printed per shape.
//!
//! The store is built once in `<target>/pibs-bench/` and reused while its size matches.
//! `cargo bench -p d4-pibs --bench serve`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use d4_pibs::aggregate::Batch;
use d4_pibs::pfx2as::Pfx2As;
use d4_pibs::server::{self, Pivots, ServeConfig};
use d4_pibs::store::{open_embedded, PibsStore, BUCKET_SECS};
use d4_pibs::{Backscatter, Kind};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// 2026-12-01T00:00:00Z
const T0: u64 = 20_788 * 86_400;
/// Buckets per attack, and the pause between attacks.
const RUN: u64 = 5;
const PAUSE: u64 = 1_800;

fn victim(i: u64) -> IpAddr {
    if i % 10 == 9 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            (i >> 16) as u16,
            i as u16,
            0,
            0,
            0,
            1,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::from(
            0x0a00_0000 | ((i as u32 & 0x00ff_ffff).wrapping_mul(97) % 0x0100_0000),
        ))
    }
}

/// The bucket start of victim `i`'s `k`-th bucket.
fn bucket_start(i: u64, k: u64) -> u64 {
    let offset = (i % 2_000) * BUCKET_SECS; // victims start over a week
    let attack = k / RUN;
    T0 + offset + attack * (RUN * BUCKET_SECS + PAUSE) + (k % RUN) * BUCKET_SECS
}

fn fill(store: &dyn PibsStore, victims: u64, buckets: u64) {
    let per = buckets / victims;
    let mut batch = Batch::new("bench");
    let t = Instant::now();
    let mut done = 0u64;
    for i in 0..victims {
        let v = victim(i);
        let port = [80u16, 443, 53, 22, 8080][(i % 5) as usize];
        for k in 0..per {
            let start = bucket_start(i, k);
            let packets = 1 + (i * 7 + k) % 3;
            for p in 0..packets {
                let b = Backscatter {
                    victim: v,
                    port,
                    src: v,
                    dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, (p % 250) as u8)),
                    proto: 6,
                    kind: Kind::Tcp { flags: 0x12 },
                };
                batch.add(start + p, &b);
            }
            done += 1;
            if batch.len() >= 50_000 {
                store.commit(&batch).unwrap();
                batch.clear();
                eprint!("\r  filled {done} buckets");
            }
        }
    }
    if !batch.is_empty() {
        store.commit(&batch).unwrap();
    }
    eprintln!(
        "\r  filled {done} buckets in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

fn pfx2as() -> Pfx2As {
    let mut text = String::new();
    for a in 0..256u32 {
        for b in 0..256u32 {
            if b == 0 {
                text.push_str(&format!("10.{a}.0.0\t16\t{}\n", 64_512 + a));
            } else {
                text.push_str(&format!(
                    "10.{a}.{b}.0\t24\t{}\n",
                    4_200_000_000 + a * 256 + b
                ));
            }
        }
    }
    text.push_str("2001:db8::\t32\t64496\n");
    Pfx2As::parse(text.as_bytes())
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn time(router: &axum::Router, what: &str, uris: &[String]) {
    let mut lat = Vec::with_capacity(uris.len());
    let mut items = 0usize;
    for uri in uris {
        let req = Request::get(uri.as_str())
            .header("host", "127.0.0.1")
            .body(Body::empty())
            .unwrap();
        let t = Instant::now();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        lat.push(t.elapsed());
        assert!(status.is_success(), "{uri}: {status}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        items += v["attacks"].as_array().map_or(0, Vec::len);
    }
    lat.sort();
    println!(
        "  {what:<34} p50 {:>9.2?}  p99 {:>9.2?}  max {:>9.2?}  ({:.1} attacks/answer)",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat[lat.len() - 1],
        items as f64 / uris.len() as f64
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list
    }
    let buckets = env_num("PIBS_BENCH_BUCKETS", 1_000_000);
    let victims = env_num("PIBS_BENCH_VICTIMS", 100_000).max(1);
    let queries = env_num("PIBS_BENCH_QUERIES", 2_000).max(1) as usize;
    let dir = target_dir().join("pibs-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("pibs-{buckets}-{victims}.redb"));
    // Rebuilt when missing or short (an interrupted fill).
    let complete = path.exists() && {
        let s = open_embedded(&path).unwrap();
        s.info().unwrap().buckets >= buckets / victims * victims
    };
    if !complete {
        let _ = std::fs::remove_file(&path);
        let store = open_embedded(&path).unwrap();
        fill(&store, victims, buckets);
    }
    let store = open_embedded(&path).unwrap();
    let info = store.info().unwrap();
    println!(
        "pibs serve /attacks: {} buckets, {} victims, {} attacks ({})",
        info.buckets,
        info.victims,
        info.attacks,
        path.display()
    );
    let store: Arc<dyn PibsStore> = Arc::new(store);
    let pivots = Pivots {
        pfx2as: Some(Arc::new(pfx2as())),
        names: None,
    };
    let router = server::router(store.clone(), pivots, ServeConfig::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let day = |n: u64| T0 + (n % 7) * 86_400;
    rt.block_on(async {
        let q = |f: &dyn Fn(u64) -> String| (0..queries as u64).map(f).collect::<Vec<_>>();
        time(
            &router,
            "newest (no filter)",
            &q(&|_| "/attacks".to_string()),
        )
        .await;
        time(
            &router,
            "a day (since+until)",
            &q(&|n| format!("/attacks?since={}&until={}", day(n), day(n) + 86_399)),
        )
        .await;
        time(
            &router,
            "an hour + port",
            &q(&|n| {
                format!(
                    "/attacks?since={}&until={}&port=443",
                    day(n) + 3_600 * (n % 24),
                    day(n) + 3_600 * (n % 24) + 3_599
                )
            }),
        )
        .await;
        time(
            &router,
            "min_pps=0.009",
            &q(&|_| "/attacks?min_pps=0.009".to_string()),
        )
        .await;
        time(
            &router,
            "prefix /16",
            &q(&|n| format!("/attacks?prefix=10.{}.0.0/16", n % 256)),
        )
        .await;
        time(
            &router,
            "prefix /24",
            &q(&|n| format!("/attacks?prefix=10.{}.{}.0/24", n % 256, (n / 256) % 256)),
        )
        .await;
        time(
            &router,
            "asn (a /16's origin) + day",
            &q(&|n| {
                format!(
                    "/attacks?asn={}&since={}&until={}",
                    64_512 + n % 256,
                    day(n),
                    day(n) + 86_399
                )
            }),
        )
        .await;
        // a second page (the cursor of the first)
        let req = Request::get("/attacks?limit=100")
            .header("host", "127.0.0.1")
            .body(Body::empty())
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if let Some(c) = v["next"].as_str() {
            let uris = vec![format!("/attacks?limit=100&cursor={}", enc(c)); queries];
            time(&router, "second page", &uris).await;
        }
    });
}
