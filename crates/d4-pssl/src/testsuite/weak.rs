//! The weak-key checks: findings recorded once (idempotent), listed in SPKI order across
//! pages, looked up per key; the paged walk of the RSA moduli.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::paging::walk;
use super::scenario::Scenario;
use crate::model::{Batch, PublicKey};
use crate::store::{Page, PsslError, PsslStore, WeakKey};

fn rsa_key(spki: &str, n: &str) -> PublicKey {
    PublicKey {
        spki_sha256: spki.to_string(),
        key_type: "RSA".into(),
        bits: 12,
        modulus: Some(n.to_string()),
        exponent: Some(65537),
        curve: None,
        x: None,
        y: None,
    }
}

fn finding(spki: &str, check: &str, subtest: Option<&str>, how: &str, found: i64) -> WeakKey {
    WeakKey {
        spki_sha256: spki.to_string(),
        check: check.into(),
        subtest: subtest.map(str::to_string),
        how: how.into(),
        p: None,
        q: None,
        d: None,
        partners: Vec::new(),
        found,
    }
}

/// Two RSA keys beside the scenario's ECDSA keys; findings on them recorded twice.
pub fn weak_keys(s: &dyn PsslStore) {
    let sc = Scenario::new();
    s.commit(&sc.batch()).unwrap();
    // SPKI hashes chosen by hand so that key B sorts before key A
    let a = format!("{}{}", "b".repeat(62), "01");
    let b = format!("{}{}", "0".repeat(62), "ff");
    // 3233 = 61 * 53, 3127 = 59 * 53: they share 53
    s.commit(&Batch {
        certificates: Vec::new(),
        keys: vec![rsa_key(&a, "3233"), rsa_key(&b, "3127")],
        sessions: Vec::new(),
    })
    .unwrap();

    // the RSA moduli: only those two, by SPKI
    let moduli = walk(1, |p| s.rsa_moduli(p));
    assert_eq!(
        moduli,
        vec![
            (b.clone(), "3127".to_string()),
            (a.clone(), "3233".to_string())
        ]
    );

    let mut shared_a = finding(&a, "sharedprimes", None, "batch_gcd", 100);
    shared_a.p = Some(format!("{:x}", 53));
    shared_a.q = Some(format!("{:x}", 61));
    shared_a.partners = vec![b.clone()];
    let mut fermat_a = finding(&a, "fermat", None, "check", 100);
    fermat_a.p = Some(format!("{:x}", 53));
    fermat_a.q = Some(format!("{:x}", 61));
    let mut shared_b = finding(&b, "sharedprimes", None, "batch_gcd", 100);
    shared_b.p = Some(format!("{:x}", 53));
    shared_b.q = Some(format!("{:x}", 59));
    shared_b.partners = vec![a.clone()];
    let warn_b = finding(&b, "rsawarnings", Some("small"), "check", 100);
    s.record_weak(&[shared_a.clone(), fermat_a.clone(), shared_b.clone()])
        .unwrap();
    // again, with later times and one more finding: the first ones keep their values
    let mut again = shared_a.clone();
    again.found = 500;
    again.partners = Vec::new();
    s.record_weak(&[again, warn_b.clone()]).unwrap();
    s.record_weak(&[]).unwrap();
    // a later batch GCD finds a third key sharing A's prime: A gains that partner (once,
    // sorted), keeps its first found time and factors
    let c = format!("{}{}", "7".repeat(62), "00");
    let mut later = shared_a.clone();
    later.found = 900;
    later.p = Some("ffff".into());
    later.partners = vec![c.clone(), b.clone()];
    s.record_weak(&[later]).unwrap();
    shared_a.partners = vec![b.clone(), c.clone()];
    shared_a.partners.sort();

    // by SPKI (b first), then check name (rsawarnings < sharedprimes)
    let want = vec![warn_b, shared_b, fermat_a.clone(), shared_a.clone()];
    for limit in 1..=5 {
        assert_eq!(
            walk(limit, |p| s.weak_keys(p)),
            want,
            "weak keys at limit {limit}"
        );
    }
    assert_eq!(
        s.key_weakness(&a.to_ascii_uppercase()).unwrap(),
        vec![fermat_a, shared_a]
    );
    assert_eq!(s.key_weakness(&sc.certs.a.spki_sha256).unwrap(), Vec::new());
    assert!(matches!(
        s.key_weakness("xyz"),
        Err(PsslError::Invalid { .. })
    ));
    assert!(s.weak_keys(&Page::after("zz".into(), 2)).is_err());
}
