//! The Redis backend against a real redis-server: an existing analyzer-d4-passivedns
//! database (written here exactly as the reference ingester writes it) is served, and
//! d4-pdns writes in the same layout (first = min, last = max, count summed, TTL per type).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use d4_pdns::store::{Filter, Lookup};
use d4_pdns::{IngestOptions, Ingester, RecordError, RecordStore, RedisRecordStore};
use d4_testkit::RedisServer;

fn cmd(con: &mut redis::Connection, args: &[&str]) -> redis::Value {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con).unwrap()
}

fn get(con: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(con).unwrap()
}

#[test]
fn serves_a_reference_database_and_writes_its_layout() {
    let server = RedisServer::start();
    let url = server.url_db(3);
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    // What pdns-ingestion.py leaves for two lines.
    for c in [
        vec!["SADD", "r:example.com:1", "93.184.216.34"],
        vec!["SADD", "v:93.184.216.34:1", "example.com"],
        vec!["SET", "s:example.com:93.184.216.34:1", "1549491846"],
        vec!["SET", "l:example.com:93.184.216.34:1", "1549491900"],
        vec!["SET", "o:example.com:93.184.216.34:1", "7"],
        vec!["SADD", "r:www.example.com:5", "example.com"],
        vec!["SADD", "v:example.com:5", "www.example.com"],
        vec!["SET", "s:www.example.com:example.com:5", "1549491847"],
        vec!["SET", "l:www.example.com:example.com:5", "1549491847"],
        vec!["SET", "o:www.example.com:example.com:5", "2"],
        vec!["HINCRBY", "dist:type", "1", "7"],
        vec!["HINCRBY", "dist:type", "5", "2"],
        vec!["SET", "stats:processed", "9"],
    ] {
        cmd(&mut con, &c);
    }
    let store =
        Arc::new(RedisRecordStore::open(&url, [(16u16, 1000u64)].into_iter().collect()).unwrap());
    let f = Filter::default();
    let r = store
        .lookup(&Lookup::Name("example.com".into()), &f, 100)
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (
            r[0].rrtype,
            r[0].rdata.as_str(),
            r[0].time_first_ms,
            r[0].time_last_ms,
            r[0].count
        ),
        (1, "93.184.216.34", 1_549_491_846_000, 1_549_491_900_000, 7)
    );
    // Reverse: only the records whose rdata is the value.
    let r = store
        .lookup(&Lookup::Rdata(vec!["example.com".into()]), &f, 100)
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].rrname.as_str(), r[0].rrtype), ("www.example.com", 5));
    let info = store.info().unwrap();
    assert_eq!(info.lines_ingested, 9);
    // Records (one `o:` key each), per type — not the observations of dist:type (issue 14).
    assert_eq!(info.records, 2);
    assert_eq!(info.rrtypes[&1], 1);
    assert!(matches!(
        store.lookup(&Lookup::Suffix("example.com".into()), &f, 100),
        Err(RecordError::Unsupported(_))
    ));

    // d4-pdns writes into the same database: an older and a newer sighting.
    let mut ing = Ingester::new(store.clone(), IngestOptions::default());
    let lines = "\
1549491000.5||c||s||IN||Example.com.||A||93.184.216.34||60||2
1549499999.5||c||s||IN||example.com.||A||93.184.216.34||60||3
1549491000.0||c||s||IN||new.example.com.||TXT||\"Keep CASE||x\"||60||1
1549491000.0||c||s||IN||gone.example.com.||A||NXDOMAIN||0||1
";
    ing.read(lines.as_bytes(), Some("sensor")).unwrap();
    ing.flush().unwrap();
    assert_eq!(ing.stats().new_records, 1);
    assert_eq!(ing.stats().updated_records, 1);
    assert_eq!(
        get(&mut con, "s:example.com:93.184.216.34:1").unwrap(),
        "1549491000"
    );
    assert_eq!(
        get(&mut con, "l:example.com:93.184.216.34:1").unwrap(),
        "1549499999"
    );
    assert_eq!(
        get(&mut con, "o:example.com:93.184.216.34:1").unwrap(),
        "12"
    );
    assert_eq!(get(&mut con, "stats:processed").unwrap(), "13");
    let txt = "\"Keep CASE||x\"";
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("r:new.example.com:16")
        .query(&mut con)
        .unwrap();
    assert_eq!(members, vec![txt.to_string()]);
    // s:/l:/o: and v: key names hold the value lower-cased, as the reference lookup
    // server builds them (issue 14); r: keeps the case.
    assert_eq!(
        get(
            &mut con,
            &format!("o:new.example.com:{}:16", txt.to_lowercase())
        )
        .as_deref(),
        Some("1")
    );
    // Expiry per type: the TXT keys carry a TTL, the A keys none.
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("l:new.example.com:{}:16", txt.to_lowercase()))
        .query(&mut con)
        .unwrap();
    assert!(ttl > 0 && ttl <= 1000, "ttl {ttl}");
    let ttl: i64 = redis::cmd("TTL")
        .arg("l:example.com:93.184.216.34:1")
        .query(&mut con)
        .unwrap();
    assert_eq!(ttl, -1);
    // Rcode lines have no place in this layout.
    let none: Vec<String> = redis::cmd("KEYS").arg("*gone*").query(&mut con).unwrap();
    assert!(none.is_empty());
    // Read back through the store, with a type filter.
    let only_txt = Filter {
        rrtypes: vec![16],
        ..Filter::default()
    };
    let r = store
        .lookup(&Lookup::Name("new.example.com".into()), &only_txt, 10)
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].rdata, txt);
    // Reverse lookup in any case finds the record with its rdata as observed.
    let r = store
        .lookup(&Lookup::Rdata(vec!["\"keep case||X\"".into()]), &f, 10)
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].rrname.as_str(), r[0].rdata.as_str()),
        ("new.example.com", txt)
    );
    // A record older d4-rs wrote with the value's case in the key names is still served.
    for c in [
        vec!["SADD", "r:old.example.com:16", "Old CASE"],
        vec!["SADD", "v:Old CASE:16", "old.example.com"],
        vec!["SET", "s:old.example.com:Old CASE:16", "1549491000"],
        vec!["SET", "l:old.example.com:Old CASE:16", "1549491001"],
        vec!["SET", "o:old.example.com:Old CASE:16", "4"],
    ] {
        cmd(&mut con, &c);
    }
    let r = store
        .lookup(&Lookup::Name("old.example.com".into()), &f, 10)
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].rdata.as_str(), r[0].count), ("Old CASE", 4));
    let r = store
        .lookup(&Lookup::Rdata(vec!["Old CASE".into()]), &f, 10)
        .unwrap();
    assert_eq!(r.len(), 1);
}

#[test]
fn huge_times_in_the_database_do_not_overflow() {
    let server = RedisServer::start();
    let url = server.url_db(4);
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    // Corrupt or hostile values: seconds whose milliseconds overflow a u64.
    for c in [
        vec!["SADD", "r:big.example:1", "192.0.2.1"],
        vec!["SADD", "v:192.0.2.1:1", "big.example"],
        vec!["SET", "s:big.example:192.0.2.1:1", "18446744073709552"],
        vec!["SET", "l:big.example:192.0.2.1:1", "18446744073709551615"],
    ] {
        cmd(&mut con, &c);
    }
    let store = RedisRecordStore::open(&url, Default::default()).unwrap();
    let r = store
        .lookup(&Lookup::Name("big.example".into()), &Filter::default(), 10)
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].time_first_ms, r[0].time_last_ms),
        (u64::MAX, u64::MAX)
    );
}
