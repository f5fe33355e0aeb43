//! `RecordStore::first_seen_between` (what was new in a period, for `d4 misp feed`) on
//! every backend: the embedded store and Redis (a real redis-server). The same lines are
//! ingested through the real ingester; the records expected in each period are worked out
//! by hand from the lines' times.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use d4_pdns::{IngestOptions, Ingester, PdnsStore, RecordError, RecordStore, RedisRecordStore};
use d4_testkit::RedisServer;

/// 2024-01-01T00:00:00Z (times compared in seconds: Redis keeps seconds)
const T0: u64 = 1_704_067_200;

fn lines() -> String {
    format!(
        "{a}.250||c||s||IN||www.example.com.||A||192.0.2.80||60||2\n\
         {b}.0||c||s||IN||www.example.com.||A||192.0.2.80||60||3\n\
         {c}.0||c||s||IN||mail.example.com.||AAAA||2001:db8::25||60||1\n\
         {d}.0||c||s||IN||Txt.Example.org.||TXT||\"Keep CASE\"||60||1\n",
        a = T0 + 10,
        b = T0 + 90_000, // a later sighting of the first record: not new then
        c = T0 + 86_399,
        d = T0 + 86_400,
    )
}

fn new_between(
    store: &dyn RecordStore,
    from: u64,
    until: u64,
) -> Vec<(String, u16, String, u64, u64, u64)> {
    let mut out = Vec::new();
    store
        .first_seen_between(from * 1000, until * 1000, 1000, &mut |r| {
            out.push((
                r.rrname,
                r.rrtype,
                r.rdata,
                r.time_first_ms / 1000,
                r.time_last_ms / 1000,
                r.count,
            ))
        })
        .unwrap();
    out.sort();
    out
}

fn check(store: Arc<dyn RecordStore>) {
    let mut ing = Ingester::new(store.clone(), IngestOptions::default());
    ing.read(lines().as_bytes(), Some("sensor")).unwrap();
    ing.flush().unwrap();
    let day1 = new_between(&*store, T0, T0 + 86_400);
    assert_eq!(
        day1,
        vec![
            (
                "mail.example.com".into(),
                28,
                "2001:db8::25".into(),
                T0 + 86_399,
                T0 + 86_399,
                1
            ),
            (
                "www.example.com".into(),
                1,
                "192.0.2.80".into(),
                T0 + 10,
                T0 + 90_000,
                5
            ),
        ]
    );
    let day2 = new_between(&*store, T0 + 86_400, T0 + 2 * 86_400);
    assert_eq!(day2.len(), 1);
    assert_eq!(
        (day2[0].0.as_str(), day2[0].1, day2[0].2.as_str()),
        ("txt.example.org", 16, "\"Keep CASE\"")
    );
    assert!(new_between(&*store, T0 + 2 * 86_400, T0 + 3 * 86_400).is_empty());
    assert!(new_between(&*store, 0, T0).is_empty());
    // The bound on records read.
    assert!(matches!(
        store.first_seen_between(0, u64::MAX / 2, 1, &mut |_| {}),
        Err(RecordError::TooManyExamined(1))
    ));
}

#[test]
fn embedded() {
    let dir = tempfile::tempdir().unwrap();
    check(Arc::new(
        PdnsStore::open(&dir.path().join("pdns.redb")).unwrap(),
    ));
}

#[test]
fn redis() {
    let server = RedisServer::start();
    check(Arc::new(
        RedisRecordStore::open(&server.url_db(4), Default::default()).unwrap(),
    ));
}
