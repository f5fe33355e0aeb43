//! `d4_pibs::server`'s HTTP plumbing over a tiny in-memory store (this file's `Fake`):
//! parameters reach the store as the contract says (`asn=` turned into the AS's prefixes,
//! times in three forms, paging cursors passed through), answers have the documented
//! shapes, errors are JSON with the right status, auth works. The real embedded store is
//! exercised in `serve.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use d4_pibs::pfx2as::Pfx2As;
use d4_pibs::server::{self, Credentials, Names, NamesError, Pivots, ServeConfig};
use d4_pibs::store::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

fn attack(victim: &str, start: u64, packets: u64, port: u16) -> Attack {
    Attack {
        id: format!("{victim}-{start}"),
        victim: victim.parse().unwrap(),
        start,
        end: start + 299,
        packets,
        peak_pps: packets as f64 / 300.0,
        est_attack_pps: None,
        ports: BTreeMap::from([(port, packets)]),
        protocols: BTreeMap::from([("tcp".to_string(), packets)]),
        kinds: BTreeMap::from([("syn-ack".to_string(), packets)]),
        sensors: BTreeSet::from(["s1".to_string()]),
        buckets: 1,
    }
}

/// Attacks in a list; records the last query it was asked.
struct Fake {
    attacks: Vec<Attack>,
    last: Mutex<Option<(AttackQuery, Option<String>, usize)>>,
}

fn overlaps(a: &Attack, since: Option<u64>, until: Option<u64>) -> bool {
    since.is_none_or(|s| a.end >= s) && until.is_none_or(|u| a.start <= u)
}

impl PibsStore for Fake {
    fn attacks(
        &self,
        q: &AttackQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Attack>, PibsStoreError> {
        *self.last.lock().unwrap() = Some((q.clone(), cursor.map(str::to_string), limit));
        let skip: usize = match cursor {
            Some(c) => c.parse().map_err(|_| PibsStoreError::Cursor)?,
            None => 0,
        };
        let all: Vec<Attack> = self
            .attacks
            .iter()
            .filter(|a| overlaps(a, q.since, q.until))
            .filter(|a| q.nets.is_empty() || q.nets.iter().any(|n| n.contains(&a.victim)))
            .filter(|a| q.port.is_none_or(|p| a.ports.contains_key(&p)))
            .filter(|a| q.min_pps.is_none_or(|m| a.peak_pps >= m))
            .cloned()
            .collect();
        let items: Vec<Attack> = all.iter().skip(skip).take(limit).cloned().collect();
        let next = (skip + items.len() < all.len()).then(|| (skip + items.len()).to_string());
        Ok(Page { items, next })
    }
    fn victim(
        &self,
        ip: IpAddr,
        since: u64,
        until: u64,
        _max_buckets: usize,
    ) -> Result<(Vec<Attack>, Vec<BucketStats>), PibsStoreError> {
        let list: Vec<Attack> = self
            .attacks
            .iter()
            .filter(|a| a.victim == ip && overlaps(a, Some(since), Some(until)))
            .cloned()
            .collect();
        let buckets = list
            .iter()
            .map(|a| BucketStats {
                start: a.start,
                packets: a.packets,
                darknet_addrs: 3,
                kinds: a.kinds.clone(),
                ports: a.ports.clone(),
                protocols: a.protocols.clone(),
                first_seen: a.start,
                last_seen: a.end,
                sensors: a.sensors.clone(),
            })
            .collect();
        Ok((list, buckets))
    }
    fn attacks_in(
        &self,
        since: u64,
        until: u64,
        max: usize,
    ) -> Result<Vec<Attack>, PibsStoreError> {
        Ok(self
            .attacks
            .iter()
            .filter(|a| overlaps(a, Some(since), Some(until)))
            .take(max)
            .cloned()
            .collect())
    }
    fn info(&self) -> Result<StoreInfo, PibsStoreError> {
        Ok(StoreInfo {
            victims: 4,
            attacks: self.attacks.len() as u64,
            ..StoreInfo::default()
        })
    }
    // The write side: the fake is read-only.
    fn file(&self, _id: &[u8; 32]) -> Result<Option<FileState>, PibsStoreError> {
        Ok(None)
    }
    fn commit(&self, _batch: &Batch) -> Result<CommitStats, PibsStoreError> {
        Err(PibsStoreError::Db("read-only fake".into()))
    }
    fn expire(&self, _cutoff: u64) -> Result<ExpireStats, PibsStoreError> {
        Err(PibsStoreError::Db("read-only fake".into()))
    }
    fn config(&self) -> Result<StoreConfig, PibsStoreError> {
        Ok(StoreConfig::default())
    }
    fn set_config(&self, _cfg: &StoreConfig) -> Result<(), PibsStoreError> {
        Err(PibsStoreError::Db("read-only fake".into()))
    }
}

struct FixedNames;

impl Names for FixedNames {
    fn names(&self, ip: IpAddr, _max: usize) -> Result<Vec<String>, NamesError> {
        if ip.to_string() == "192.0.2.10" {
            Ok(vec!["www.victim.example".into()])
        } else if ip.to_string() == "198.51.100.20" {
            Err(NamesError("database closed".into()))
        } else {
            Ok(Vec::new())
        }
    }
}

const PFX: &[u8] = b"192.0.2.0\t24\t64496\n198.51.100.0\t24\t64497\n10.0.0.0\t8\t64500\n10.1.0.0\t16\t64501\n2001:db8::\t32\t64510\n";

/// 2026-12-07T00:00:00Z
const DAY: u64 = 20_794 * 86_400;

fn fake() -> Arc<Fake> {
    Arc::new(Fake {
        attacks: vec![
            attack("192.0.2.10", DAY + 3600, 3000, 80),
            attack("192.0.2.10", DAY + 7200, 600, 443),
            attack("198.51.100.20", DAY + 3600, 900, 53),
            attack("10.1.2.3", DAY + 3600, 30, 22),
            attack("10.2.0.1", DAY - 86_400, 60, 22),
            attack("2001:db8::1", DAY + 100, 300, 443),
        ],
        last: Mutex::new(None),
    })
}

struct App {
    router: axum::Router,
    store: Arc<Fake>,
}

fn app(cfg: ServeConfig) -> App {
    let store = fake();
    let pivots = Pivots {
        pfx2as: Some(Arc::new(Pfx2As::parse(PFX))),
        names: Some(Arc::new(FixedNames)),
    };
    App {
        router: server::router(store.clone(), pivots, cfg),
        store,
    }
}

async fn get_h(app: &App, uri: &str, auth: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::get(uri).header("host", "127.0.0.1");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = app
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/json",
        "{uri}"
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

async fn get(app: &App, uri: &str) -> (StatusCode, Value) {
    get_h(app, uri, None).await
}

fn victims_of(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["victim"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn attacks_filters_reach_the_store() {
    let app = app(ServeConfig::default());
    let (s, v) = get(
        &app,
        "/attacks?since=2026-12-07&until=2026-12-07T23:59:59Z&port=80&min_pps=1.5&limit=5",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (q, cursor, limit) = app.store.last.lock().unwrap().clone().unwrap();
    assert_eq!(q.since, Some(DAY));
    assert_eq!(q.until, Some(DAY + 86_399));
    assert_eq!(
        (q.port, q.min_pps, cursor, limit),
        (Some(80), Some(1.5), None, 5)
    );
    assert_eq!(victims_of(&v, "attacks"), vec!["192.0.2.10"]);
    let a = &v["attacks"][0];
    assert_eq!(a["id"], format!("192.0.2.10-{}", DAY + 3600));
    assert_eq!(a["start_iso"], "2026-12-07T01:00:00Z");
    assert_eq!(a["asn"], 64496);
    assert_eq!(a["prefix"], "192.0.2.0/24");
    assert_eq!(a["ports"], json!([{"port": 80, "packets": 3000}]));
    assert!(v["next"].is_null());

    // asn= becomes the AS's prefixes, and the more specific route of another AS is left out
    let (_, v) = get(&app, "/attacks?asn=AS64500").await;
    let (q, _, _) = app.store.last.lock().unwrap().clone().unwrap();
    assert_eq!(q.nets, vec!["10.0.0.0/8".parse().unwrap()]);
    assert_eq!(victims_of(&v, "attacks"), vec!["10.2.0.1"]);
    let (_, v) = get(&app, "/attacks?asn=64501").await;
    assert_eq!(victims_of(&v, "attacks"), vec!["10.1.2.3"]);
    // an AS without prefixes matches nothing (the store is not asked for everything)
    let (s, v) = get(&app, "/attacks?asn=1").await;
    assert_eq!(
        (s, v["attacks"].as_array().unwrap().len()),
        (StatusCode::OK, 0)
    );
    let (_, v) = get(&app, "/attacks?prefix=2001:db8::/32").await;
    assert_eq!(victims_of(&v, "attacks"), vec!["2001:db8::1"]);

    // paging: the cursor goes back to the store as given
    let (_, p1) = get(&app, "/attacks?limit=4").await;
    let next = p1["next"].as_str().unwrap().to_string();
    let (_, p2) = get(&app, &format!("/attacks?limit=4&cursor={next}")).await;
    assert!(p2["next"].is_null());
    let mut all = victims_of(&p1, "attacks");
    all.extend(victims_of(&p2, "attacks"));
    assert_eq!(all.len(), 6);
}

#[tokio::test]
async fn bad_input_is_a_json_400() {
    let app = app(ServeConfig::default());
    for uri in [
        "/attacks?since=yesterday",
        "/attacks?since=2026-12-08&until=2026-12-07",
        "/attacks?port=70000",
        "/attacks?min_pps=-3",
        "/attacks?limit=0",
        "/attacks?asn=ASx",
        "/attacks?prefix=10.0.0.0/40",
        "/attacks?cursor=zzz",
        "/victim/not-an-ip",
        "/daily/2026-13-01",
        "/asn/x",
        "/prefix/10.0.0.0/99",
    ] {
        let (s, v) = get(&app, uri).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{uri}");
    }
    let (s, v) = get(&app, "/nothing").await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not found"))
    );
}

#[tokio::test]
async fn asn_needs_a_table() {
    let store = fake();
    let router = server::router(store, Pivots::default(), ServeConfig::default());
    let app = App {
        router,
        store: fake(),
    };
    let (s, v) = get(&app, "/attacks?asn=64500").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("--pfx2as"), "{v}");
    let (_, v) = get(&app, "/attacks").await;
    assert!(v["attacks"][0]["asn"].is_null());
}

#[tokio::test]
async fn victim_with_names_and_route() {
    let app = app(ServeConfig::default());
    let (s, v) = get(&app, "/victim/192.0.2.10").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["names"], json!(["www.victim.example"]));
    assert_eq!(
        (v["asn"].as_u64(), v["prefix"].as_str()),
        (Some(64496), Some("192.0.2.0/24"))
    );
    assert_eq!(v["attacks"].as_array().unwrap().len(), 2);
    let t = v["timeline"].as_array().unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0]["packets"], 3000);
    assert_eq!(t[0]["start_iso"], "2026-12-07T01:00:00Z");
    assert_eq!(t[0]["darknet_addrs"], 3);
    // the window reaches the store
    let (_, v) = get(&app, "/victim/192.0.2.10?since=2026-12-07T01:30:00Z").await;
    assert_eq!(v["attacks"].as_array().unwrap().len(), 1);
    // a failing passive DNS store: the answer comes, without names, saying why
    let (s, v) = get(&app, "/victim/198.51.100.20").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["names"], json!([]));
    assert!(v["names_error"]
        .as_str()
        .unwrap()
        .contains("database closed"));
    // IPv4-mapped is the IPv4 victim
    let (_, v) = get(&app, "/victim/::ffff:192.0.2.10").await;
    assert_eq!(v["victim"], "192.0.2.10");
}

#[tokio::test]
async fn daily_summary() {
    let app = app(ServeConfig::default());
    let (s, v) = get(&app, "/daily/2026-12-07").await;
    assert_eq!(s, StatusCode::OK);
    // the day's five attacks (10.2.0.1's was the day before)
    assert_eq!(v["attacks"], 5);
    assert_eq!(v["victims"], 4);
    assert_eq!(v["packets"], 3000 + 600 + 900 + 30 + 300);
    assert_eq!(v["top_victims"][0]["victim"], "192.0.2.10");
    assert_eq!(v["top_victims"][0]["packets"], 3600);
    assert_eq!(v["top_ports"][0], json!({"port": 80, "packets": 3000}));
    // 53 and 443 tie at 900 packets: the lower port first
    assert_eq!(v["top_ports"][1], json!({"port": 53, "packets": 900}));
    assert_eq!(v["top_ports"][2], json!({"port": 443, "packets": 900}));
    assert_eq!(
        v["top_asns"][0],
        json!({"asn": 64496, "packets": 3600, "victims": 1})
    );
    assert_eq!(v["truncated"], false);
}

#[tokio::test]
async fn reverse_pivots() {
    let app = app(ServeConfig::default());
    let (s, v) = get(&app, "/asn/64500").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["prefixes"], json!(["10.0.0.0/8"]));
    assert_eq!(victims_of(&v, "victims"), vec!["10.2.0.1"]);
    let (_, v) = get(&app, "/prefix/10.0.0.0/8").await;
    assert_eq!(victims_of(&v, "victims"), vec!["10.1.2.3", "10.2.0.1"]);
    let (_, v) = get(&app, "/prefix/192.0.2.0/24").await;
    assert_eq!(v["victims"][0]["attacks"], 2);
    assert_eq!(v["victims"][0]["packets"], 3600);
    // paging by address: one per page, every victim once
    let mut seen = Vec::new();
    let mut uri = "/prefix/0.0.0.0/0?limit=1".to_string();
    for _ in 0..10 {
        let (_, v) = get(&app, &uri).await;
        seen.extend(victims_of(&v, "victims"));
        match v["next"].as_str() {
            Some(n) => uri = format!("/prefix/0.0.0.0/0?limit=1&cursor={n}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec!["10.1.2.3", "10.2.0.1", "192.0.2.10", "198.51.100.20"]
    );
    // too many attacks to group: 422
    let small = ServeConfig {
        max_scan: 2,
        ..ServeConfig::default()
    };
    let app = self::app(small);
    let (s, _) = get(&app, "/prefix/0.0.0.0/0").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn tokens_info_and_openapi() {
    let cfg = ServeConfig {
        credentials: Credentials {
            tokens: vec!["s3cret".into()],
            basic: vec![],
        },
        ..ServeConfig::default()
    };
    let app = app(cfg);
    let (s, v) = get(&app, "/info").await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("authentication required"))
    );
    let (s, _) = get_h(&app, "/info", Some("wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = get_h(&app, "/info", Some("Bearer s3cret")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["attacks"], 6);
    assert_eq!(v["pfx2as"]["routes"], 5);
    assert_eq!(v["passive_dns"], true);
    let (s, v) = get_h(&app, "/openapi.json", Some("s3cret")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["paths"]["/attacks"].is_object());
}
