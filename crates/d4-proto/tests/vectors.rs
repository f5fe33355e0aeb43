//! Every case of `../shared/vectors/manifest.json`: each frame's fields, payload SHA-256
//! and HMAC validity, the expected error, and the trailing incomplete bytes — decoded in
//! one piece and in many different chunkings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use d4_proto::{DecodeError, Decoder, Frame, HmacKey, DEFAULT_MAX_PAYLOAD};
use serde_json::Value;
use sha2::{Digest, Sha256};

struct Outcome {
    frames: Vec<Frame>,
    error: Option<DecodeError>,
    trailing: usize,
}

/// Decodes `wire` cut into chunks of the sizes `cut` yields (cycled).
fn decode_chunked(wire: &[u8], cut: &[usize]) -> Outcome {
    let mut dec = Decoder::with_max_payload(DEFAULT_MAX_PAYLOAD);
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < wire.len() {
        let n = cut[i % cut.len()].max(1).min(wire.len() - pos);
        i += 1;
        let mut chunk = Bytes::copy_from_slice(&wire[pos..pos + n]);
        pos += n;
        for r in dec.frames(&mut chunk) {
            match r {
                Ok(f) => frames.push(f),
                Err(e) => {
                    return Outcome {
                        frames,
                        error: Some(e),
                        trailing: 0,
                    };
                }
            }
        }
        assert!(
            chunk.is_empty(),
            "decoder left bytes of a chunk unused without error"
        );
    }
    let (error, trailing) = match dec.finish() {
        Ok(()) => (None, 0),
        Err(DecodeError::Truncated { buffered, .. }) => (None, buffered),
        Err(e) => (Some(e), 0),
    };
    Outcome {
        frames,
        error,
        trailing,
    }
}

fn check_case(case: &Value, out: &Outcome, how: &str) {
    let file = case["file"].as_str().unwrap();
    let key = HmacKey::new(case["key"].as_str().unwrap().as_bytes());
    let expected = case["frames"].as_array().unwrap();
    assert_eq!(
        out.frames.len(),
        expected.len(),
        "{file} ({how}): frame count"
    );
    for (i, (f, e)) in out.frames.iter().zip(expected).enumerate() {
        let ctx = format!("{file} ({how}) frame {i}");
        assert_eq!(f.header.version, 1, "{ctx}: version");
        assert_eq!(
            f.header.uuid.hyphenated().to_string(),
            e["uuid"].as_str().unwrap(),
            "{ctx}: uuid"
        );
        assert_eq!(
            u64::from(f.header.d4_type),
            e["type"].as_u64().unwrap(),
            "{ctx}: type"
        );
        assert_eq!(
            f.header.timestamp,
            e["timestamp"].as_u64().unwrap(),
            "{ctx}: timestamp"
        );
        assert_eq!(
            u64::from(f.header.size),
            e["size"].as_u64().unwrap(),
            "{ctx}: size"
        );
        assert_eq!(
            f.payload.len() as u64,
            e["size"].as_u64().unwrap(),
            "{ctx}: payload length"
        );
        assert_eq!(
            hex::encode(Sha256::digest(&f.payload)),
            e["sha256"].as_str().unwrap(),
            "{ctx}: sha256"
        );
        assert_eq!(
            key.verify(f),
            e["hmac_valid"].as_bool().unwrap(),
            "{ctx}: hmac validity"
        );
    }
    match case.get("error").and_then(Value::as_str) {
        Some("size over limit") => assert!(
            matches!(
                out.error,
                Some(DecodeError::SizeOverLimit {
                    declared: 2_000_000,
                    max: 1_000_000
                })
            ),
            "{file} ({how}): expected size over limit, got {:?}",
            out.error
        ),
        Some(other) => panic!("{file}: manifest names an error this test does not know: {other}"),
        None => assert_eq!(out.error, None, "{file} ({how}): unexpected error"),
    }
    let trailing = case
        .get("trailing_incomplete_bytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    assert_eq!(
        out.trailing as u64, trailing,
        "{file} ({how}): trailing incomplete bytes"
    );
}

#[test]
fn every_manifest_case_decodes_as_documented() {
    let manifest = d4_testkit::manifest();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(cases.len() >= 8, "manifest lists too few cases");
    let chunkings: [(&str, &[usize]); 5] = [
        ("whole", &[usize::MAX]),
        ("1-byte chunks", &[1]),
        ("61/62/63", &[61, 62, 63]),
        ("primes", &[7, 13, 4099, 3, 65537, 1]),
        ("4096", &[4096]),
    ];
    for case in cases {
        let wire = d4_testkit::vector_bytes(case["file"].as_str().unwrap());
        for (how, cut) in chunkings {
            check_case(case, &decode_chunked(&wire, cut), how);
        }
    }
}

#[test]
fn reference_c_client_stream_verifies() {
    let manifest = d4_testkit::manifest();
    let case = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["file"] == "c_client_stdin.d4")
        .expect("c_client_stdin.d4 in the manifest");
    let wire = d4_testkit::vector_bytes("c_client_stdin.d4");
    let out = decode_chunked(&wire, &[usize::MAX]);
    let key = HmacKey::new(case["key"].as_str().unwrap().as_bytes());
    assert_eq!(out.frames.len(), 6);
    assert!(out.frames.iter().all(|f| key.verify(f)));
    // re-encoding with our encoder gives the reference bytes exactly
    let mut again = Vec::new();
    for f in &out.frames {
        let enc = d4_proto::Encoder::new(
            f.header.uuid,
            case["key"].as_str().unwrap().as_bytes(),
            f.header.d4_type,
        );
        enc.encode_into(f.header.timestamp, &f.payload, &mut again)
            .unwrap();
    }
    assert_eq!(
        again, wire,
        "our encoder is not byte-compatible with the C client"
    );
}

#[test]
fn oversize_header_is_refused_before_any_payload() {
    let wire = d4_testkit::vector_bytes("oversize_declared.d4");
    let mut dec = Decoder::new();
    let mut input = Bytes::from(wire);
    assert!(matches!(
        dec.decode(&mut input),
        Err(DecodeError::SizeOverLimit { .. })
    ));
    assert_eq!(dec.buffered(), 0);
}
