#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Type 2/254: meta header and extended type handlers.

use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use d4_worker::{has_special_handler, WorkerError};

mod common;
use common::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn start(w: &mut d4_worker::Worker, meta: &str) {
    // the meta header split over two type-2 frames
    let (a, b) = meta.split_at(meta.len() / 2);
    w.handle_payload(2, a.as_bytes(), at(T0)).unwrap();
    w.handle_payload(2, b.as_bytes(), at(T0)).unwrap();
}

#[test]
fn special_handlers() {
    for e in ["ja3-jl", "filewatcher", "filewatcherjson", "maltrail"] {
        assert!(has_special_handler(e));
    }
    assert!(!has_special_handler("d4-telemetry"));
}

#[test]
fn default_ext_lines_to_queue_and_files_and_meta_saved() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |_| {});
    let uuid = Uuid::new_v4();
    let sid = uuid.simple().to_string();
    let meta = r#"{"type": "d4-telemetry", "tags": ["tlp:white"]}"#;
    let mut w = set.worker(uuid, 2).unwrap();
    start(&mut w, meta);
    assert_eq!(w.ext_type(), None);
    w.handle_payload(254, b"{\"a\":1}\n{\"b\"", at(T0 + 1))
        .unwrap();
    assert_eq!(w.ext_type(), Some("d4-telemetry"));
    w.handle_payload(254, b":2}\n", at(T0 + 2)).unwrap();
    w.close(at(T0 + 3)).unwrap();
    assert_eq!(
        sink.entries(254, Some("d4-telemetry")),
        vec!["{\"a\":1}", "{\"b\":2}"]
    );
    let fs = files(tmp.path());
    let names: Vec<String> = fs.iter().map(|p| rel(tmp.path(), p)).collect();
    assert_eq!(
        names,
        vec![
            format!("{sid}/254/2025/12/31/d4-telemetry/{sid}-2025-12-31-235001.json"),
            format!("{sid}/254/2025/12/31/d4-telemetry/{sid}-2025-12-31-235001.txt.gz"),
        ]
    );
    assert_eq!(std::fs::read(&fs[0]).unwrap(), meta.as_bytes());
    assert_eq!(gunzip(&fs[1]), b"{\"a\":1}\n{\"b\":2}\n");
}

#[test]
fn maltrail_lines_are_queued_and_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |_| {});
    let mut w = set.worker(Uuid::new_v4(), 2).unwrap();
    start(&mut w, r#"{"type":"maltrail"}"#);
    w.handle_payload(254, b"2019-01-01 trail 1\n2019-01-01 trail 2\n", at(T0))
        .unwrap();
    w.close(at(T0)).unwrap();
    assert_eq!(
        sink.entries(254, Some("maltrail")),
        vec!["2019-01-01 trail 1", "2019-01-01 trail 2"]
    );
    assert_eq!(files(tmp.path()).len(), 2);
}

#[test]
fn ja3_jl_saves_certificates_by_sha1_and_queues_json_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |_| {});
    let mut w = set.worker(Uuid::new_v4(), 2).unwrap();
    start(&mut w, r#"{"type": "ja3-jl", "encoding": "utf-8"}"#);
    let der1 = b"\x30\x82fake-der-cert-1".to_vec();
    let der2 = b"\x30\x82fake-der-cert-2".to_vec();
    let line1 = format!(
        r#"{{"Timestamp":"2019-02-06T23:02:16Z","JA3":"769,47,0,23,0","Certificates":[{{"CertHash":"x","Raw":"{}"}},{{"Raw":"{}"}}]}}"#,
        B64.encode(&der1),
        B64.encode(&der2)
    );
    let line2 = r#"{"Timestamp":"2019-02-06T23:02:17Z","JA3":"771,1,2,3,4","Certificates":null}"#;
    let payload = format!("{line1}\n{line2}\nnot json\n");
    // delivered in small chunks
    for c in payload.as_bytes().chunks(13) {
        w.handle_payload(254, c, at(T0)).unwrap();
    }
    w.close(at(T0)).unwrap();
    let base = tmp.path().to_path_buf().join("datas/ja3-jl");
    for der in [&der1, &der2] {
        let p = base
            .join("certs")
            .join(format!("{}.crt", hex::encode(Sha1::digest(der))));
        assert_eq!(&std::fs::read(&p).unwrap(), der);
    }
    let q = sink.entries(254, Some("ja3-jl"));
    assert_eq!(q.len(), 2);
    for (path, line) in q.iter().zip([line1.as_str(), line2]) {
        let expect = base
            .join("jsons")
            .join(format!("{}.json", hex::encode(Sha256::digest(line))));
        assert_eq!(path, &expect.to_string_lossy());
        assert_eq!(std::fs::read(path).unwrap(), line.as_bytes());
    }
    assert_eq!(w.stats().invalid_lines, 1);
}

#[test]
fn filewatcher_decodes_and_saves_by_sha256_with_options() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |_| {});
    let uuid = Uuid::new_v4();
    let sid = uuid.simple().to_string();
    let file1 = b"hello file\n\x00\x01binary".to_vec();
    let mut w = set.worker(uuid, 2).unwrap();
    start(&mut w, r#"{"type":"filewatcher","extension":"log"}"#);
    let payload = format!("{}\n!!notbase64!!\n", B64.encode(&file1));
    w.handle_payload(254, payload.as_bytes(), at(T0)).unwrap();
    w.close(at(T0)).unwrap();
    let q = sink.entries(254, Some("filewatcher"));
    let digest = hex::encode(Sha256::digest(&file1));
    let root = tmp.path().to_path_buf();
    let expect = root.join(format!(
        "{sid}/254/2025/12/31/filewatcher/files/{digest}.log"
    ));
    assert_eq!(q, vec![expect.to_string_lossy().into_owned()]);
    assert_eq!(std::fs::read(&expect).unwrap(), file1);
    assert_eq!(w.stats().invalid_lines, 1);

    // compress + not segregated + unsafe extension ignored
    let mut w = set.worker(Uuid::new_v4(), 2).unwrap();
    start(
        &mut w,
        r#"{"type":"filewatcher","compress":true,"segregate":false,"extension":"../x"}"#,
    );
    w.handle_payload(254, B64.encode(&file1).as_bytes(), at(T0))
        .unwrap(); // no final newline: handled at close
    w.close(at(T0)).unwrap();
    let p = root.join(format!("datas/filewatcher/files/{digest}.gz"));
    assert_eq!(gunzip(&p), file1);
    assert_eq!(
        sink.entries(254, Some("filewatcher")).last().unwrap(),
        &p.to_string_lossy()
    );
}

#[test]
fn filewatcherjson_saves_each_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |_| {});
    let uuid = Uuid::new_v4();
    let mut w = set.worker(uuid, 2).unwrap();
    start(&mut w, r#"{"type":"filewatcherjson"}"#);
    w.handle_payload(254, b"{\"x\":1}\r\n\n{\"y\":2}\n", at(T0))
        .unwrap();
    w.close(at(T0)).unwrap();
    let q = sink.entries(254, Some("filewatcherjson"));
    assert_eq!(q.len(), 2);
    assert_eq!(std::fs::read(&q[0]).unwrap(), b"{\"x\":1}");
    assert_eq!(std::fs::read(&q[1]).unwrap(), b"{\"y\":2}");
    assert!(q[0].contains("/254/2025/12/31/filewatcherjson/files/"));
}

#[test]
fn meta_header_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, _) = setup(tmp.path(), |c| {
        c.accepted_ext_types = Some(vec!["ja3-jl".into()]);
        c.max_meta = 64;
    });
    // 254 before any meta header
    let mut w = set.worker(Uuid::new_v4(), 254).unwrap();
    assert!(matches!(
        w.handle_payload(254, b"x\n", at(T0)),
        Err(WorkerError::NoMetaHeader)
    ));
    // not accepted
    let mut w = set.worker(Uuid::new_v4(), 2).unwrap();
    w.handle_payload(2, br#"{"type":"maltrail"}"#, at(T0))
        .unwrap();
    assert!(matches!(
        w.handle_payload(254, b"x\n", at(T0)),
        Err(WorkerError::ExtTypeNotAccepted(_))
    ));
    // path traversal in the type
    let mut w = set.worker(Uuid::new_v4(), 2).unwrap();
    w.handle_payload(2, br#"{"type":"../../etc"}"#, at(T0))
        .unwrap();
    assert!(matches!(
        w.handle_payload(254, b"x\n", at(T0)),
        Err(WorkerError::Meta(_))
    ));
    // too large
    let mut w = set.worker(Uuid::new_v4(), 2).unwrap();
    assert!(w.handle_payload(2, &[b' '; 65], at(T0)).is_err());
    // type 2 after 254
    let mut w = set.worker(Uuid::new_v4(), 2).unwrap();
    w.handle_payload(2, br#"{"type":"ja3-jl"}"#, at(T0))
        .unwrap();
    w.handle_payload(254, b"", at(T0)).unwrap();
    assert!(w.handle_payload(2, b"{}", at(T0)).is_err());
    for p in files(tmp.path()) {
        assert!(p.starts_with(tmp.path()));
        assert!(!p.to_string_lossy().contains(".."));
    }
}

#[test]
fn overlong_blob_lines_are_dropped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |c| c.max_blob_line = 16);
    let mut w = set.worker(Uuid::new_v4(), 2).unwrap();
    start(&mut w, r#"{"type":"filewatcherjson"}"#);
    w.handle_payload(254, b"{\"x\":\"0123456789", at(T0))
        .unwrap();
    w.handle_payload(254, b"abcdefghijklmnop\"}\n{\"ok\":1}\n", at(T0))
        .unwrap();
    w.close(at(T0)).unwrap();
    let q = sink.entries(254, Some("filewatcherjson"));
    assert_eq!(q.len(), 1);
    assert_eq!(std::fs::read(&q[0]).unwrap(), b"{\"ok\":1}");
    assert_eq!(w.stats().invalid_lines, 1);
}
