//! The paging checks: answers of five items read one to six at a time, and a walk with
//! commits between its pages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use super::cases::ip;
use super::data::T0;
use super::scenario::{five, Scenario};
use crate::store::{Fingerprint, Page, Paged, PsslError, PsslStore, SessionQuery};

/// Walks every page at `limit`, checking page sizes and the cursor's end.
pub(super) fn walk<T: Clone>(
    limit: usize,
    mut f: impl FnMut(&Page) -> Result<Paged<T>, PsslError>,
) -> Vec<T> {
    let mut out = Vec::new();
    let mut page = Page::first(limit);
    for _ in 0..100 {
        let p = f(&page).unwrap();
        assert!(p.items.len() <= limit, "page larger than its limit");
        out.extend(p.items.iter().cloned());
        match p.next {
            Some(n) => {
                assert_eq!(p.items.len(), limit, "a short page with a next cursor");
                page = Page::after(n, limit);
            }
            None => return out,
        }
    }
    panic!("paging does not end");
}

fn check_paging<T: Clone + PartialEq + std::fmt::Debug>(
    what: &str,
    n: usize,
    mut f: impl FnMut(&Page) -> Result<Paged<T>, PsslError>,
) {
    let whole = f(&Page::first(1000)).unwrap();
    assert_eq!(whole.items.len(), n, "{what}: answer size");
    assert_eq!(whole.next, None, "{what}");
    for limit in 1..=n + 1 {
        let got = walk(limit, &mut f);
        assert_eq!(got, whole.items, "{what} at limit {limit}");
    }
}

/// Five-item answers read one to six at a time: same items, same order, no repeats.
pub fn paging(s: &dyn PsslStore) {
    let sc = Scenario::new();
    let c = &sc.certs;
    let (ja3, batch) = five(c);
    s.commit(&batch).unwrap();
    s.commit(&sc.batch()).unwrap();
    check_paging("sessions", 5, |p| {
        s.sessions(&SessionQuery::Ja3(ja3.clone()), p)
    });
    check_paging("fingerprint ips", 5, |p| {
        s.fingerprint_ips(&Fingerprint::Ja3(ja3.clone()), p)
    });
    check_paging("certificate ips", 6, |p| s.certificate_ips(&c.a.sha1, p));
    check_paging("ip certificates", 5, |p| {
        s.ip_certificates("203.0.113.0/24".parse().unwrap(), p)
    });
    check_paging("ip certificates (everything)", 8, |p| {
        s.ip_certificates("::/0".parse().unwrap(), p)
    });
    check_paging("sessions by sni", 5, |p| {
        s.sessions(&SessionQuery::Sni("five.example.test".into()), p)
    });
    check_paging("subjects", 4, |p| s.subject_search("", p));
    let sessions = walk(2, |p| s.sessions(&SessionQuery::Ja3(ja3.clone()), p));
    let times: Vec<i64> = sessions.iter().map(|x| x.ts).collect();
    assert_eq!(times, (1..=5).map(|i| T0 + i).collect::<Vec<_>>());
    let ips: Vec<IpAddr> = walk(2, |p| {
        s.ip_certificates("203.0.113.0/24".parse().unwrap(), p)
    })
    .iter()
    .map(|x| x.ip)
    .collect();
    assert_eq!(
        ips,
        (1..=5)
            .map(|i| ip(&format!("203.0.113.{i}")))
            .collect::<Vec<_>>()
    );
}

/// A walk with commits between its pages sees every item present for the whole walk
/// exactly once, in order.
pub fn paging_during_ingest(s: &dyn PsslStore) {
    let sc = Scenario::new();
    let c = &sc.certs;
    let (ja3, batch) = five(c);
    s.commit(&batch).unwrap();
    let mut pages = 0;
    let mut ips = Vec::new();
    let mut sessions = Vec::new();
    let mut page = Page::first(2);
    let mut spage = Page::first(2);
    loop {
        let p = s.certificate_ips(&c.a.sha1, &page).unwrap();
        let q = s.sessions(&SessionQuery::Ja3(ja3.clone()), &spage).unwrap();
        ips.extend(p.items.iter().map(|x| x.ip));
        sessions.extend(q.items.iter().map(|x| x.ts));
        pages += 1;
        // New certificates, links and sessions between pages: the scenario (its link of `a`,
        // 198.51.100.7, sorts before the cursor; nothing of the walk changes order).
        if pages == 1 {
            s.commit(&sc.batch()).unwrap();
        }
        match (p.next, q.next) {
            (Some(n), Some(m)) => {
                page = Page::after(n, 2);
                spage = Page::after(m, 2);
            }
            (None, None) => break,
            other => panic!("both walks have five items: {other:?}"),
        }
        assert!(pages < 10);
    }
    let mut sorted = ips.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ips.len(), "no address twice");
    for i in 1..=5 {
        assert!(ips.contains(&ip(&format!("203.0.113.{i}"))));
    }
    assert_eq!(sessions, (1..=5).map(|i| T0 + i).collect::<Vec<_>>());
}
