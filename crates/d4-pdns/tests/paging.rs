//! Pagination stays stable while records are ingested between page requests: the real
//! store (watermarks, `seq`) with the server's paging code. No record present at the first
//! request is skipped or repeated unless it changed; a changed one is never missed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use d4_pdns::query::{page_at, sort_records, Position};
use d4_pdns::store::{Filter, Lookup};
use d4_pdns::{IngestOptions, Ingester, PdnsStore, Record};

fn line(ts: u64, name: &str, ip: &str) -> String {
    format!("{ts}.0||c||s||IN||{name}.||A||{ip}||60||1\n")
}

fn answer(store: &PdnsStore) -> (Vec<Record>, u64) {
    let w = store.watermark().unwrap();
    let mut r = store
        .lookup(
            &Lookup::Suffix("example.org".into()),
            &Filter::default(),
            100_000,
        )
        .unwrap();
    sort_records(&mut r);
    (r, w)
}

type Key = (String, u16, String);

fn key(r: &Record) -> Key {
    (r.rrname.clone(), r.rrtype, r.rdata.clone())
}

#[test]
fn no_skip_no_repeat_while_ingesting() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(PdnsStore::open(&dir.path().join("pdns.redb")).unwrap());
    let mut ing = Ingester::new(store.clone(), IngestOptions::default());
    // 300 records over 30 distinct times: many ties on time_last.
    for i in 0..300u64 {
        let l = line(1_000 + i % 30, &format!("h{i}.example.org"), "192.0.2.1");
        ing.chunk(l.as_bytes(), None).unwrap();
    }
    ing.flush().unwrap();
    let (original, _) = answer(&store);
    assert_eq!(original.len(), 300);

    let mut seen: HashMap<Key, usize> = HashMap::new();
    let mut changed: Vec<Key> = Vec::new();
    let mut pos = Position::Start;
    let mut pages = 0;
    loop {
        let (records, w) = answer(&store);
        let page = page_at(&records, &pos, Some(25), w);
        for r in page.moved.iter().copied().chain(page.records.iter()) {
            *seen.entry(key(r)).or_default() += 1;
        }
        pages += 1;
        assert!(pages < 100, "pagination does not end");
        let Some(next) = page.next else { break };
        // Between two pages: new records sorting before, among and after the others,
        // and two existing records seen again later (their time_last moves up).
        let round = pages as u64;
        for (j, t) in [(0u64, 5_000u64), (1, 1_010), (2, 1_000), (3, 10)] {
            let l = line(t, &format!("new{round}-{j}.example.org"), "198.51.100.1");
            ing.chunk(l.as_bytes(), None).unwrap();
        }
        for victim in [
            format!("h{}.example.org", 299 - round),
            format!("h{}.example.org", round * 7 % 300),
        ] {
            ing.chunk(line(4_000 + round, &victim, "192.0.2.1").as_bytes(), None)
                .unwrap();
            changed.push((victim, 1, "192.0.2.1".into()));
        }
        ing.flush().unwrap();
        pos = Position::After(next);
    }
    for r in &original {
        let k = key(r);
        let n = seen.get(&k).copied().unwrap_or(0);
        if changed.contains(&k) {
            assert!(n >= 1, "{k:?} changed during paging and was missed");
        } else {
            assert_eq!(n, 1, "{k:?} returned {n} times");
        }
    }
    assert!(pages >= 12, "{pages} pages");
}
