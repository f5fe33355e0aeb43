#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Arbitrary input through every worker type: errors, never panics, files stay under the
//! data dir and memory bounds hold.

use proptest::prelude::*;
use uuid::Uuid;

mod common;
use common::*;

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'['), Just(b'a')], 0..300),
        Just(
            br#"{"type":"filewatcher","compress":"yes","segregate":0,"extension":"/etc"}"#.to_vec()
        ),
        Just(br#"{"type":"ja3-jl"}"#.to_vec()),
        Just(b"{\"Certificates\":[{\"Raw\":\"AAEC\"},{\"Raw\":5},7]}\n".to_vec()),
        Just(b"aGVsbG8=\n".to_vec()),
        Just(d4_worker::pcap::global_header_le(65535).to_vec()),
        Just(d4_worker::pcapng::shb_le()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn arbitrary_frames_never_panic(
        t in prop_oneof![Just(1u8), Just(2), Just(3), Just(4), Just(5), Just(6), Just(7), Just(8), Just(254)],
        frames in proptest::collection::vec((prop_oneof![Just(0u8), Just(1), Just(2)], payload(), 0u64..400), 0..12),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let (set, _sink) = setup(tmp.path(), |c| {
            c.max_line = 64;
            c.max_blob_line = 128;
            c.max_pcap_record = 256;
            c.max_meta = 512;
        });
        let mut w = set.worker(Uuid::new_v4(), t).unwrap();
        let mut clock = T0;
        for (kind, p, dt) in frames {
            // frame type: the worker's own, or 2 / 254 for meta streams
            let ft = match (t, kind) {
                (2 | 254, 0) => 2,
                (2 | 254, _) => 254,
                (t, 2) => t.wrapping_add(1),
                (t, _) => t,
            };
            clock += dt;
            let _ = w.handle_payload(ft, &p, at(clock));
            let _ = w.tick(at(clock));
        }
        let _ = w.close(at(clock + 1));
        set.flush();
        for f in files(tmp.path()) {
            prop_assert!(f.starts_with(tmp.path()));
            prop_assert!(!f.to_string_lossy().contains("/etc"));
        }
    }
}
