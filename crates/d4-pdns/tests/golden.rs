//! Golden tests of the passivedns CSV parser on real-shaped lines, and of the store built
//! from them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use d4_pdns::parse::{parse_line, LineError};
use d4_pdns::store::{Filter, Lookup};
use d4_pdns::{IngestOptions, Ingester, PdnsStore};

/// (line, expected: Ok((rrname, rrtype, rdata, time_ms, count, rcode)) or Err(kind)).
type Expect = Result<(&'static str, u16, &'static str, u64, u64, bool), &'static str>;

const GOLDEN: &[(&str, Expect)] = &[
    (
        "1322849924.408856||10.1.1.1||8.8.8.8||IN||upload.youtube.com.||A||74.125.43.117||46587||5",
        Ok(("upload.youtube.com", 1, "74.125.43.117", 1_322_849_924_408, 5, false)),
    ),
    (
        "1548624738.280922||192.168.1.12||8.8.8.8||IN||www-google-analytics.l.google.com.||AAAA||2a00:1450:400e:801::200e||299||12",
        Ok(("www-google-analytics.l.google.com", 28, "2a00:1450:400e:801::200e", 1_548_624_738_280, 12, false)),
    ),
    // IPv6 in a non-canonical form is normalized (RFC 5952).
    (
        "1548624738.000001||192.168.1.12||8.8.8.8||IN||V6.Example.ORG.||AAAA||2001:0DB8:0000:0000:0000:0000:0000:0001||60||1",
        Ok(("v6.example.org", 28, "2001:db8::1", 1_548_624_738_000, 1, false)),
    ),
    // CNAME chain: both names normalized.
    (
        "1549491847.654321||192.0.2.10||198.51.100.53||IN||WWW.Example.com.||CNAME||Edge.Example.NET.||300||2",
        Ok(("www.example.com", 5, "edge.example.net", 1_549_491_847_654, 2, false)),
    ),
    (
        "1549491847.654321||192.0.2.10||198.51.100.53||IN||edge.example.net.||CNAME||e1.cdn.example.||300||2",
        Ok(("edge.example.net", 5, "e1.cdn.example", 1_549_491_847_654, 2, false)),
    ),
    // TXT: case and quotes kept, `||` inside the quoted answer is part of it.
    (
        "1549491848.000000||192.0.2.10||198.51.100.53||IN||Example.com.||TXT||\"v=spf1 include:_SPF.Google.com ~all\"||300||1",
        Ok(("example.com", 16, "\"v=spf1 include:_SPF.Google.com ~all\"", 1_549_491_848_000, 1, false)),
    ),
    (
        "1549491848.5||192.0.2.10||198.51.100.53||IN||t.example.com.||TXT||\"a||b\" \"C||D\"||300||3",
        Ok(("t.example.com", 16, "\"a||b\" \"C||D\"", 1_549_491_848_500, 3, false)),
    ),
    // MX and SRV: the target name is normalized, the numbers kept.
    (
        "1549491849.1||192.0.2.10||198.51.100.53||IN||example.com.||MX||10 MX1.Example.com.||300||1",
        Ok(("example.com", 15, "10 mx1.example.com", 1_549_491_849_100, 1, false)),
    ),
    (
        "1549491849.1||192.0.2.10||198.51.100.53||IN||_sip._tcp.example.com.||SRV||0 5 5060 SIP.example.com.||300||1",
        Ok(("_sip._tcp.example.com", 33, "0 5 5060 sip.example.com", 1_549_491_849_100, 1, false)),
    ),
    // Numeric and RFC 3597 types.
    (
        "1549491849||192.0.2.10||198.51.100.53||IN||example.com.||65||1 . alpn=h2||300||1",
        Ok(("example.com", 65, "1 . alpn=h2", 1_549_491_849_000, 1, false)),
    ),
    (
        "1549491849||192.0.2.10||198.51.100.53||IN||example.com.||TYPE65280||\\# 2 abcd||300||1",
        Ok(("example.com", 65280, "\\# 2 abcd", 1_549_491_849_000, 1, false)),
    ),
    // NXDOMAIN line.
    (
        "1549491850.000001||192.0.2.10||198.51.100.53||IN||nope.example.com.||A||NXDOMAIN||0||1",
        Ok(("nope.example.com", 1, "NXDOMAIN", 1_549_491_850_000, 1, true)),
    ),
    // Windows line end.
    (
        "1549491851.0||192.0.2.10||198.51.100.53||IN||crlf.example.com.||A||192.0.2.1||60||1\r\n",
        Ok(("crlf.example.com", 1, "192.0.2.1", 1_549_491_851_000, 1, false)),
    ),
    // Malformed lines.
    ("1549491846.123456||192.0.2.10||198.51.100.53||IN||example.com.||A||93.184.216.34||3600", Err("too_few_fields")),
    ("1549491846.123456||192.0.2.10", Err("too_few_fields")),
    ("garbage", Err("too_few_fields")),
    ("1549491846.123456||192.0.2.10||198.51.100.53||IN||example.com.||A||1.2.3.4||extra||3600||1", Err("too_many_fields")),
    ("notatime||192.0.2.10||198.51.100.53||IN||example.com.||A||93.184.216.34||3600||1", Err("bad_timestamp")),
    ("-1549491846||192.0.2.10||198.51.100.53||IN||example.com.||A||93.184.216.34||3600||1", Err("bad_timestamp")),
    ("1549491846.12.3||192.0.2.10||198.51.100.53||IN||example.com.||A||93.184.216.34||3600||1", Err("bad_timestamp")),
    ("1549491846||192.0.2.10||198.51.100.53||IN||example.com.||BOGUS||x||3600||1", Err("unknown_type")),
    ("1549491846||192.0.2.10||198.51.100.53||IN||example.com.||A||not-an-ip||3600||1", Err("bad_rdata")),
    ("1549491846||192.0.2.10||198.51.100.53||IN||example.com.||AAAA||1.2.3.4||3600||1", Err("bad_rdata")),
    ("1549491846||192.0.2.10||198.51.100.53||IN||bad name.||A||1.2.3.4||3600||1", Err("bad_name")),
    ("1549491846||192.0.2.10||198.51.100.53||IN||example.com.||A||1.2.3.4||x||1", Err("bad_ttl")),
    ("1549491846||192.0.2.10||198.51.100.53||IN||example.com.||A||1.2.3.4||60||many", Err("bad_count")),
];

#[test]
fn golden_lines() {
    for (line, expect) in GOLDEN {
        let got = parse_line(line.as_bytes());
        match (expect, &got) {
            (Ok((name, t, rdata, ms, count, rcode)), Ok(o)) => {
                assert_eq!(o.rrname, *name, "{line}");
                assert_eq!(o.rrtype, *t, "{line}");
                assert_eq!(o.rdata, *rdata, "{line}");
                assert_eq!(o.time_ms, *ms, "{line}");
                assert_eq!(o.count, *count, "{line}");
                assert_eq!(o.rcode, *rcode, "{line}");
            }
            (Err(kind), Err(e)) => assert_eq!(e.kind(), *kind, "{line}: {e}"),
            _ => panic!("{line}: expected {expect:?}, got {got:?}"),
        }
    }
}

#[test]
fn non_utf8_is_rejected() {
    let line = b"1549491846||a||b||IN||ex\xffample.com.||A||1.2.3.4||60||1";
    assert_eq!(parse_line(line), Err(LineError::NotUtf8));
}

#[test]
fn the_shared_vector_lines_parse() {
    let bytes = d4_testkit::vector_bytes("passivedns_csv.d4");
    let payload = &bytes[62..];
    let lines: Vec<_> = payload
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in lines {
        parse_line(l).unwrap();
    }
}

fn ingest_golden() -> (tempfile::TempDir, Arc<PdnsStore>, Ingester) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(PdnsStore::open(&dir.path().join("pdns.redb")).unwrap());
    let mut ing = Ingester::new(store.clone(), IngestOptions::default());
    let mut all = String::new();
    for (l, _) in GOLDEN {
        all.push_str(l.trim_end());
        all.push('\n');
    }
    ing.read(all.as_bytes(), Some("sensor-a")).unwrap();
    ing.flush().unwrap();
    (dir, store, ing)
}

#[test]
fn bad_lines_are_counted_by_reason_and_good_ones_stored() {
    let (_d, store, ing) = ingest_golden();
    let s = ing.stats();
    let bad = GOLDEN.iter().filter(|(_, e)| e.is_err()).count() as u64;
    assert_eq!(s.lines_bad, bad);
    assert_eq!(s.bad_by_reason["too_few_fields"], 3);
    assert_eq!(s.rcode_lines, 1);
    let info = store.info().unwrap();
    assert_eq!(info.lines_rejected.values().sum::<u64>(), bad);
    assert_eq!(info.rcode_records, 1);
    // NXDOMAIN is kept apart: not a record of nope.example.com.
    let r = store
        .lookup(
            &Lookup::Name("nope.example.com".into()),
            &Filter::default(),
            100,
        )
        .unwrap();
    assert!(r.is_empty());
    assert_eq!(info.records, store.len().unwrap());
}

#[test]
fn aggregation_min_max_sum_and_sensors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(PdnsStore::open(&dir.path().join("pdns.redb")).unwrap());
    let mut ing = Ingester::new(
        store.clone(),
        IngestOptions {
            batch_lines: 2,
            ..IngestOptions::default()
        },
    );
    let l = |ts: &str, n: u64| format!("{ts}||c||s||IN||Agg.Example.com.||A||192.0.2.7||60||{n}\n");
    ing.chunk(l("200.5", 2).as_bytes(), Some("s1")).unwrap();
    ing.chunk(l("100.25", 3).as_bytes(), Some("s2")).unwrap();
    ing.chunk(l("300", 4).as_bytes(), Some("s1")).unwrap();
    ing.chunk(l("150", 1).as_bytes(), None).unwrap();
    ing.flush().unwrap();
    let r = store
        .lookup(
            &Lookup::Name("agg.example.com".into()),
            &Filter::default(),
            10,
        )
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].time_first_ms, 100_250);
    assert_eq!(r[0].time_last_ms, 300_000);
    assert_eq!(r[0].count, 10);
    assert_eq!(r[0].sensors, vec!["s1".to_string(), "s2".to_string()]);
    assert!(ing.stats().commits >= 2);
    assert_eq!(store.info().unwrap().records, 1);
}

#[test]
fn indexes_wildcard_prefix_reverse_cidr_and_expiry() {
    let (_d, store, _ing) = ingest_golden();
    let f = Filter::default();
    let names = |l: Lookup| {
        let mut v: Vec<String> = store
            .lookup(&l, &f, 1000)
            .unwrap()
            .into_iter()
            .map(|r| format!("{} {} {}", r.rrname, r.rrtype, r.rdata))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(Lookup::Suffix("example.com".into())),
        vec![
            "_sip._tcp.example.com 33 0 5 5060 sip.example.com",
            "crlf.example.com 1 192.0.2.1",
            "t.example.com 16 \"a||b\" \"C||D\"",
            "www.example.com 5 edge.example.net",
        ]
    );
    assert_eq!(
        names(Lookup::Prefix("www".into())),
        vec![
            "www-google-analytics.l.google.com 28 2a00:1450:400e:801::200e",
            "www.example.com 5 edge.example.net",
        ]
    );
    assert_eq!(
        names(Lookup::Rdata(vec!["edge.example.net".into()])),
        vec!["www.example.com 5 edge.example.net"]
    );
    assert_eq!(
        names(Lookup::Cidr("74.125.0.0/16".parse().unwrap())),
        vec!["upload.youtube.com 1 74.125.43.117"]
    );
    assert_eq!(
        names(Lookup::Cidr("2001:db8::/32".parse().unwrap())),
        vec!["v6.example.org 28 2001:db8::1"]
    );
    assert!(names(Lookup::Cidr("10.0.0.0/8".parse().unwrap())).is_empty());
    // Filters.
    let only_txt = Filter {
        rrtypes: vec![16],
        ..Filter::default()
    };
    assert_eq!(
        store
            .lookup(&Lookup::Name("example.com".into()), &only_txt, 10)
            .unwrap()
            .len(),
        1
    );
    // No silent cap.
    assert!(store
        .lookup(&Lookup::Suffix("example.com".into()), &f, 2)
        .is_err());
    // Expiry per type: TXT records older than 1 s are removed, the rest stays.
    let before = store.len().unwrap();
    let ttl = [(16u16, 1u64)].into_iter().collect();
    let removed = store.expire(u64::MAX / 2, &ttl).unwrap();
    assert_eq!(removed, 2);
    assert_eq!(store.len().unwrap(), before - 2);
    assert!(names(Lookup::Rdata(vec!["\"a||b\" \"C||D\"".into()])).is_empty());
}
