#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The shared protocol vectors, decoded with d4-proto and fed through the workers the way
//! the server does (frames with a valid HMAC, in order, up to the first bad one): files
//! and queue entries are checked byte for byte against the payloads.

use std::collections::BTreeMap;

use bytes::Bytes;
use d4_proto::{types, Decoder, Frame, HmacKey};
use d4_worker::WorkerError;
use sha2::{Digest, Sha256};
use uuid::Uuid;

mod common;
use common::*;

/// The accepted frames of a vector, grouped per (uuid, stream type) in order.
fn accepted(name: &str) -> BTreeMap<(Uuid, u8), Vec<Frame>> {
    let manifest = d4_testkit::manifest();
    let case = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["file"] == name)
        .unwrap()
        .clone();
    let key = HmacKey::new(case["key"].as_str().unwrap().as_bytes());
    let mut input = Bytes::from(d4_testkit::vector_bytes(name));
    let mut dec = Decoder::new();
    let mut out: BTreeMap<(Uuid, u8), Vec<Frame>> = BTreeMap::new();
    for f in dec.frames(&mut input) {
        let Ok(f) = f else { break };
        if !key.verify(&f) {
            break; // the server ends the connection at a bad HMAC
        }
        let stream = if f.header.d4_type == types::EXTENDED {
            types::META_HEADER
        } else {
            f.header.d4_type
        };
        out.entry((f.header.uuid, stream)).or_default().push(f);
    }
    out
}

fn lines_of(b: &[u8]) -> Vec<String> {
    b.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

#[test]
fn line_vectors_land_in_files_and_queues_byte_for_byte() {
    for (name, d4_type, suffix, frames_expected) in [
        ("single_log_line.d4", 3u8, ".syslog.txt.gz", 1usize),
        ("passivedns_csv.d4", 8, ".passivedns.txt.gz", 1),
        ("bad_hmac_middle.d4", 3, ".syslog.txt.gz", 1),
        ("truncated_tail.d4", 3, ".syslog.txt.gz", 1),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (set, sink) = setup(tmp.path(), |_| {});
        let streams = accepted(name);
        assert_eq!(streams.len(), 1, "{name}");
        let ((uuid, t), frames) = streams.into_iter().next().unwrap();
        assert_eq!(t, d4_type);
        assert_eq!(frames.len(), frames_expected, "{name}");
        let mut w = set.worker(uuid, t).unwrap();
        let mut all = Vec::new();
        for f in &frames {
            w.handle(f, at(f.header.timestamp)).unwrap();
            all.extend_from_slice(&f.payload);
        }
        w.close(at(frames[0].header.timestamp + 1)).unwrap();
        let fs = files(tmp.path());
        assert_eq!(fs.len(), 1, "{name}: {fs:?}");
        let sid = uuid.simple().to_string();
        let r = rel(tmp.path(), &fs[0]);
        assert!(r.starts_with(&format!("{sid}/{d4_type}/")), "{r}");
        assert!(r.ends_with(suffix), "{r}");
        assert_eq!(gunzip(&fs[0]), all, "{name}: file bytes");
        assert_eq!(sink.entries(d4_type, None), lines_of(&all), "{name}: queue");
        assert!(!sink.entries(d4_type, None).is_empty());
    }
}

#[test]
fn passivedns_vector_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |_| {});
    for ((uuid, t), frames) in accepted("passivedns_csv.d4") {
        let mut w = set.worker(uuid, t).unwrap();
        for f in &frames {
            // one byte per call: chunking must not matter
            for b in f.payload.chunks(1) {
                w.handle_payload(t, b, at(f.header.timestamp)).unwrap();
            }
        }
        w.close(at(1_549_491_900)).unwrap();
    }
    assert_eq!(
        sink.entries(8, None),
        vec![
            "1549491846.123456||192.0.2.10||198.51.100.53||IN||example.com.||A||93.184.216.34||3600||1",
            "1549491847.654321||192.0.2.10||198.51.100.53||IN||www.example.com.||CNAME||example.com.||300||2",
        ]
    );
}

#[test]
fn meta_then_254_vector() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |_| {});
    let streams = accepted("meta_then_254.d4");
    let ((uuid, t), frames) = streams.into_iter().next().unwrap();
    assert_eq!(t, 2);
    let mut w = set.worker(uuid, t).unwrap();
    for f in &frames {
        w.handle(f, at(f.header.timestamp)).unwrap();
    }
    w.close(at(frames[1].header.timestamp)).unwrap();
    assert_eq!(w.ext_type(), None, "closed");
    let line = frames[1].payload.strip_suffix(b"\n").unwrap();
    let json = tmp
        .path()
        .join("datas/ja3-jl/jsons")
        .join(format!("{}.json", hex::encode(Sha256::digest(line))));
    assert_eq!(
        sink.entries(254, Some("ja3-jl")),
        vec![json.to_string_lossy().into_owned()]
    );
    assert_eq!(std::fs::read(&json).unwrap(), line);
    let sid = uuid.simple().to_string();
    let metas: Vec<_> = files(tmp.path())
        .into_iter()
        .filter(|p| rel(tmp.path(), p).starts_with(&format!("{sid}/254/")))
        .collect();
    assert_eq!(metas.len(), 1);
    assert!(rel(tmp.path(), &metas[0]).contains("/ja3-jl/"));
    assert_eq!(std::fs::read(&metas[0]).unwrap(), frames[0].payload);
}

#[test]
fn type1_vectors_are_not_pcap_and_fail_cleanly() {
    for name in ["many_sizes_pcap_type.d4", "c_client_stdin.d4"] {
        let tmp = tempfile::tempdir().unwrap();
        let (set, sink) = setup(tmp.path(), |_| {});
        for ((uuid, t), frames) in accepted(name) {
            assert_eq!(t, 1);
            let mut w = set.worker(uuid, t).unwrap();
            let mut err = None;
            for f in &frames {
                if let Err(e) = w.handle(f, at(f.header.timestamp)) {
                    err = Some(e);
                    break;
                }
            }
            assert!(matches!(err, Some(WorkerError::Pcap(_))), "{name}: {err:?}");
            w.close(at(0)).unwrap();
        }
        assert!(files(tmp.path()).is_empty(), "{name}");
        assert!(sink.all().is_empty());
    }
}
