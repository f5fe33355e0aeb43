//! The conformance suite on the embedded (redb) store, and what only it has: the layout
//! check, the lock, the bound on scanning queries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::Deref;

use d4_pssl::{EmbeddedStore, Page, PsslError, PsslStore};

struct Fresh {
    store: EmbeddedStore,
    _dir: tempfile::TempDir,
}

impl Deref for Fresh {
    type Target = EmbeddedStore;
    fn deref(&self) -> &EmbeddedStore {
        &self.store
    }
}

fn fresh() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("pssl.redb")).unwrap();
    Fresh { store, _dir: dir }
}

d4_pssl::pssl_store_suite!(fresh());

#[test]
fn reopened_store_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pssl.redb");
    let sc = d4_pssl::testsuite::scenario::Scenario::new();
    let info = {
        let s = EmbeddedStore::open(&path).unwrap();
        s.commit(&sc.batch()).unwrap();
        PsslStore::info(&s).unwrap()
    };
    let s = EmbeddedStore::open(&path).unwrap();
    assert_eq!(PsslStore::info(&s).unwrap(), info);
    assert!(s.certificate(&sc.certs.b.sha1).unwrap().is_some());
    // One process owns the file.
    assert!(matches!(
        EmbeddedStore::open(&path),
        Err(PsslError::Locked { .. })
    ));
}

#[test]
fn subject_search_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(&dir.path().join("pssl.redb"))
        .unwrap()
        .with_max_examined(2);
    let sc = d4_pssl::testsuite::scenario::Scenario::new();
    s.commit(&sc.batch()).unwrap();
    // Four subjects, none matching: more than two are read.
    assert!(matches!(
        s.subject_search("no such subject", &Page::first(10)),
        Err(PsslError::TooManyExamined(2))
    ));
}
