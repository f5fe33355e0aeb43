//! The check of [`PsslStore::sessions_between`]: the scenario's sessions in a period, every
//! page walked (one item a page), the bounds inclusive at the start and exclusive at the
//! end; the expected times are the scenario's, written by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::data::T0;
use super::scenario::Scenario;
use crate::model::Session;
use crate::store::{Page, PsslStore};

fn walk(s: &dyn PsslStore, from: i64, until: i64, limit: usize) -> Vec<Session> {
    let mut out = Vec::new();
    let mut page = Page::first(limit);
    for _ in 0..100 {
        let p = s.sessions_between(from, until, &page).unwrap();
        out.extend(p.items);
        match p.next {
            Some(c) => page = Page::after(c, limit),
            None => return out,
        }
    }
    panic!("more than 100 pages");
}

fn times(mut v: Vec<Session>) -> Vec<i64> {
    v.sort_by_key(|s| s.ts);
    v.into_iter().map(|s| s.ts).collect()
}

pub fn sessions_between(s: &dyn PsslStore) {
    let sc = Scenario::new();
    s.commit(&sc.batch()).unwrap();
    // S1 T0, S4 T0+10, S5 T0+20, S2 T0+3600, S3 T0+7200.
    assert_eq!(
        times(walk(s, T0, T0 + 7201, 1000)),
        vec![T0, T0 + 10, T0 + 20, T0 + 3600, T0 + 7200]
    );
    assert_eq!(
        times(walk(s, T0 + 10, T0 + 3600, 1)),
        vec![T0 + 10, T0 + 20],
        "from inclusive, until exclusive"
    );
    assert_eq!(
        times(walk(s, T0 + 1, T0 + 3601, 1)),
        vec![T0 + 10, T0 + 20, T0 + 3600]
    );
    assert!(walk(s, T0 + 7201, T0 + 86400, 1).is_empty());
    // The sessions come back whole.
    let s3 = walk(s, T0 + 7200, T0 + 7201, 10);
    assert_eq!(s3.len(), 1);
    assert_eq!(s3[0].sni, "b.example.test");
    assert_eq!(s3[0].server_port, Some(8443));
    assert_eq!(s3[0].chain, vec![sc.certs.b.sha1.clone()]);
}
