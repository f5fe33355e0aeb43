//! Property tests: any sequence of frames, cut into arbitrary chunks, decodes to the
//! same frames; arbitrary bytes never make the decoder panic or exceed its bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use d4_proto::{Decoder, Encoder, Frame, HmacKey, HEADER_LEN};
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone)]
struct Spec {
    d4_type: u8,
    timestamp: u64,
    payload: Vec<u8>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<u8>(),
        any::<u64>(),
        prop_oneof![
            3 => proptest::collection::vec(any::<u8>(), 0..80),
            1 => proptest::collection::vec(any::<u8>(), 0..5000),
        ],
    )
        .prop_map(|(d4_type, timestamp, payload)| Spec {
            d4_type,
            timestamp,
            payload,
        })
}

fn decode_all(wire: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < wire.len() {
        let n = if cuts.is_empty() {
            wire.len()
        } else {
            cuts[i % cuts.len()]
        }
        .clamp(1, wire.len() - pos);
        i += 1;
        let mut chunk = Bytes::copy_from_slice(&wire[pos..pos + n]);
        pos += n;
        for f in dec.frames(&mut chunk) {
            out.push(f.unwrap());
        }
        assert!(dec.buffered() <= HEADER_LEN + dec.max_payload() as usize);
    }
    dec.finish().unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn chunking_never_changes_the_frames(
        uuid in any::<[u8; 16]>(),
        key in proptest::collection::vec(any::<u8>(), 0..100),
        specs in proptest::collection::vec(spec(), 0..12),
        cuts in proptest::collection::vec(1usize..300, 0..20),
    ) {
        let uuid = Uuid::from_bytes(uuid);
        let mut wire = Vec::new();
        for s in &specs {
            let enc = Encoder::new(uuid, &key, s.d4_type);
            enc.encode_into(s.timestamp, &s.payload, &mut wire).unwrap();
        }
        let whole = decode_all(&wire, &[]);
        let chunked = decode_all(&wire, &cuts);
        prop_assert_eq!(&whole, &chunked);
        prop_assert_eq!(whole.len(), specs.len());
        let hk = HmacKey::new(&key);
        for (f, s) in whole.iter().zip(&specs) {
            prop_assert_eq!(f.header.d4_type, s.d4_type);
            prop_assert_eq!(f.header.timestamp, s.timestamp);
            prop_assert_eq!(f.header.uuid, uuid);
            prop_assert_eq!(&f.payload[..], &s.payload[..]);
            prop_assert!(hk.verify(f));
        }
        // slice input and Bytes input agree
        let mut dec = Decoder::new();
        let mut s: &[u8] = &wire;
        let mut via_slice = Vec::new();
        while let Some(f) = dec.decode_slice(&mut s).unwrap() {
            via_slice.push(f);
            if s.is_empty() && dec.buffered() == 0 { break; }
        }
        prop_assert_eq!(via_slice, whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        max in 0u32..3000,
        cuts in proptest::collection::vec(1usize..100, 1..10),
    ) {
        let mut dec = Decoder::with_max_payload(max);
        let mut pos = 0;
        let mut i = 0;
        while pos < data.len() {
            let n = cuts[i % cuts.len()].min(data.len() - pos);
            i += 1;
            let mut chunk = Bytes::copy_from_slice(&data[pos..pos + n]);
            pos += n;
            let mut failed = false;
            for r in dec.frames(&mut chunk) {
                match r {
                    Ok(f) => prop_assert!(f.payload.len() <= max as usize),
                    Err(_) => failed = true,
                }
            }
            prop_assert!(dec.buffered() <= HEADER_LEN + max as usize);
            if failed { prop_assert!(dec.is_failed()); break; }
        }
    }
}
