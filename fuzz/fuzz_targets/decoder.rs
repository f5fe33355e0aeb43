//! Fuzz the streaming decoder: the first bytes choose the payload limit and how the rest
//! is cut into chunks; the decoder must never panic, never hold more than a header plus
//! the limit, and agree with a one-piece decode.
#![no_main]

use bytes::Bytes;
use d4_proto::{Decoder, HmacKey, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = u32::from(u16::from_le_bytes([data[0], data[1]])) * 16;
    let step = usize::from(data[2]) + 1;
    let stream = &data[3..];
    let key = HmacKey::new(b"fuzz");

    let mut whole = Decoder::with_max_payload(max);
    let mut input = Bytes::copy_from_slice(stream);
    let mut expected = Vec::new();
    let mut expected_err = None;
    for r in whole.frames(&mut input) {
        match r {
            Ok(f) => {
                let _ = key.verify(&f);
                expected.push(f);
            }
            Err(e) => expected_err = Some(e),
        }
    }

    let mut chunked = Decoder::with_max_payload(max);
    let mut got = Vec::new();
    let mut got_err = None;
    'outer: for piece in stream.chunks(step) {
        let mut s: &[u8] = piece;
        loop {
            match chunked.decode_slice(&mut s) {
                Ok(Some(f)) => got.push(f),
                Ok(None) => break,
                Err(e) => {
                    got_err = Some(e);
                    break 'outer;
                }
            }
        }
        assert!(chunked.buffered() <= HEADER_LEN + max as usize);
    }
    assert_eq!(expected, got);
    assert_eq!(expected_err, got_err);
    assert_eq!(whole.finish(), chunked.finish());
});
