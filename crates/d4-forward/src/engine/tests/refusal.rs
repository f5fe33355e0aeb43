//! A partner that refuses this server (closes every connection at once): backoff, and
//! nothing counted as forwarded.

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use d4_proto::HEADER_LEN;
use d4_store::ForwardFilter;
use uuid::Uuid;

use super::*;

/// A partner that refuses (reads the first header, then closes, as d4-core does with a
/// sensor it does not accept) until `accept` is set, then keeps every byte.
struct RefusingPartner {
    port: u16,
    accept: Arc<std::sync::atomic::AtomicBool>,
    refused: Arc<std::sync::atomic::AtomicU64>,
    conns: Conns,
}

fn refusing_partner() -> RefusingPartner {
    use std::sync::atomic::Ordering::SeqCst;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = RefusingPartner {
        port: l.local_addr().unwrap().port(),
        accept: Default::default(),
        refused: Default::default(),
        conns: Default::default(),
    };
    let (a2, r2, c2) = (p.accept.clone(), p.refused.clone(), p.conns.clone());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            if a2.load(SeqCst) {
                keep(s, &c2);
            } else {
                let mut head = [0u8; HEADER_LEN];
                let _ = s.read_exact(&mut head);
                r2.fetch_add(1, SeqCst);
                // dropped: closed
            }
        }
    });
    p
}

#[test]
fn a_partner_that_refuses_is_retried_with_backoff_and_nothing_counts_as_forwarded() {
    use std::sync::atomic::Ordering::SeqCst;
    let RefusingPartner {
        port,
        accept,
        refused,
        conns,
    } = refusing_partner();
    let data = tempfile::tempdir().unwrap();
    let jdir = tempfile::tempdir().unwrap();
    let sensor = Uuid::new_v4();
    let rule = plain_rule(
        "p",
        port,
        ForwardFilter {
            types: vec![3],
            ..Default::default()
        },
    );
    let src = Arc::new(Fixed {
        rules: vec![rule],
        sensors: [(sensor, SensorInfo::default())].into(),
        reported: Mutex::new(HashMap::new()),
    });
    let mut cfg = EngineConfig::new(data.path());
    cfg.report = Duration::from_millis(100);
    let e = Engine::start(cfg, src.clone(), src.clone()).unwrap();
    let mut a = FakeSession::new(jdir.path(), &e, sensor, 3);
    let mut want = Vec::new();
    for i in 0..300 {
        let line = format!("line {i}\n");
        a.send(&e, line.as_bytes());
        want.extend_from_slice(line.as_bytes());
    }
    a.close(&e);
    // 4 s of refusals: delays of 0.2, 0.4, 0.8, 1.6 s ... (not a reconnect loop)
    std::thread::sleep(Duration::from_secs(4));
    let n = refused.load(SeqCst);
    assert!((1..=8).contains(&n), "{n} connections in 4 s");
    // two refusals in a row (the first alone might have been a partner stopping): nothing
    // of them counts, and the error says why
    let deadline = Instant::now() + Duration::from_secs(20);
    let s = loop {
        let s = e.stats()[0].1.clone();
        if s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("refuse"))
        {
            break s;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        s.frames_forwarded, 0,
        "refused frames are not forwarded: {s:?}"
    );
    assert_eq!(s.bytes_forwarded, 0);
    assert_eq!(s.duplicates, 0);
    assert_eq!(s.last_forward_time, None);
    assert_eq!(s.frames_spooled, 300);
    // the partner accepts: everything arrives once, and the count is what it saw
    accept.store(true, SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all: Vec<Vec<u8>> = conns.lock().unwrap().clone();
        let got: Vec<u8> = all
            .iter()
            .flat_map(|c| frames(c))
            .flat_map(|(_, p)| p)
            .collect();
        let s = e.stats()[0].1.clone();
        let at_partner: u64 = all.iter().map(|c| frames(c).len() as u64).sum();
        if got == want
            && s.frames_forwarded == at_partner
            && s.frames_spooled == 0
            && s.last_error.is_none()
        {
            // (the refusal it reported is over: its error went with it)
            assert_eq!(s.duplicates, 0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} bytes, {s:?} vs {at_partner} frames at the partner",
            got.len(),
            want.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    e.shutdown();
}
