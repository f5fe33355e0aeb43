//! Fuzz what `d4 pdns serve` parses from a request: the `/query/` and `/fquery/` values,
//! the pagination cursor or offset, and a page of a small answer at that position.
//! Never a panic; a cursor that decodes is in its one canonical form (it encodes back to
//! the same text); a page holds at most the records asked for, and its next cursor
//! decodes to itself.
#![no_main]

use d4_pdns::query::{page_at, parse_fquery, parse_position, parse_query, sort_records, Cursor};
use d4_pdns::Record;
use libfuzzer_sys::fuzz_target;

/// The sorted answer pages are cut from: built once, not per input.
fn answer() -> &'static [Record] {
    static ANSWER: std::sync::OnceLock<Vec<Record>> = std::sync::OnceLock::new();
    ANSWER.get_or_init(|| {
        let mut v: Vec<Record> = (0..40u64)
            .map(|i| Record {
                rrname: format!("host{}.example.com", i % 7),
                rrtype: [1u16, 28, 5, 16][(i % 4) as usize],
                rdata: format!("rdata-{}-{}", i % 5, "x".repeat((i % 3) as usize * 200)),
                time_first_ms: 1_000 * (i / 3),
                time_last_ms: 1_000 * (i / 2),
                count: i + 1,
                sensors: Vec::new(),
                seq: i % 4,
            })
            .collect();
        sort_records(&mut v);
        v
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_query(s);
    let _ = parse_fquery(s);
    if let Some(c) = Cursor::decode(s) {
        assert_eq!(c.encode(), s);
    }
    if let Some(pos) = parse_position(s) {
        let count = data.first().map(|&b| usize::from(b % 16) + 1);
        let page = page_at(answer(), &pos, count, 2);
        assert!(page.records.len() <= count.unwrap_or(usize::MAX));
        // The next page's cursor decodes to itself.
        if let Some(next) = page.next {
            assert_eq!(Cursor::decode(&next.encode()), Some(next));
        }
    }
});
