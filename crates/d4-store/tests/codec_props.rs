//! Property tests of the socket protocol's encoding: every request and entry survives a
//! JSON line round trip (bytes that are not UTF-8 included), and a line never contains a
//! raw newline (the framing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use d4_store::{QueueEntry, QueuePush, Request};
use proptest::prelude::*;
use uuid::Uuid;

fn entry() -> impl Strategy<Value = QueueEntry> {
    (
        proptest::option::of(any::<u128>()),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(sensor, data)| QueueEntry {
            sensor: sensor.map(Uuid::from_u128),
            data,
        })
}

proptest! {
    #[test]
    fn push_request_roundtrips(entries in proptest::collection::vec(entry(), 0..8), q in any::<u128>(), now in any::<u64>()) {
        let push = QueuePush { queues: vec![Uuid::from_u128(q)], entries: entries.clone() };
        let req = Request::PushBatch { key: None, pushes: vec![push], now };
        let line = serde_json::to_string(&req).unwrap();
        prop_assert!(!line.contains('\n'));
        match serde_json::from_str::<Request>(&line).unwrap() {
            Request::PushBatch { key: None, mut pushes, now: n } if pushes.len() == 1 => {
                let QueuePush { queues, entries: back } = pushes.remove(0);
                prop_assert_eq!(queues, vec![Uuid::from_u128(q)]);
                prop_assert_eq!(back, entries);
                prop_assert_eq!(n, now);
            }
            other => prop_assert!(false, "decoded as {:?}", other),
        }
    }

    #[test]
    fn text_entries_stay_plain_strings(s in "\\PC{0,40}") {
        let e = QueueEntry::new(s.clone());
        let v = serde_json::to_value(&e).unwrap();
        prop_assert_eq!(v["data"].as_str(), Some(s.as_str()));
    }

    #[test]
    fn arbitrary_lines_never_panic_the_decoder(line in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = serde_json::from_slice::<Request>(&line);
    }
}
