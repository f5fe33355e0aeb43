#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Line types (3, 4, 6, 8) through real files.

use std::sync::Arc;
use std::time::Duration;

use d4_worker::{MemoryQueueSink, RotationPolicy, WorkerConfig, WorkerSet};
use uuid::Uuid;

mod common;
use common::*;

#[test]
fn syslog_lines_files_and_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |_| {});
    let uuid = Uuid::parse_str("b8a1abcd-1a69-46c7-8da4-f9fc3c6da5d7").unwrap();
    let sid = "b8a1abcd1a6946c78da4f9fc3c6da5d7";
    let mut w = set.worker(uuid, 3).unwrap();
    w.handle_payload(3, b"first li", at(T0)).unwrap();
    assert!(sink.all().is_empty(), "a partial line waits");
    w.handle_payload(3, b"ne\r\nsecond\n\nthi", at(T0 + 1))
        .unwrap();
    assert_eq!(sink.entries(3, None), vec!["first line", "second"]);
    w.close(at(T0 + 2)).unwrap();
    assert_eq!(sink.entries(3, None), vec!["first line", "second", "thi"]);
    let all = sink.all();
    assert!(all
        .iter()
        .all(|(t, _)| t.sensor == uuid && t.ext_type.is_none()));
    let fs = files(tmp.path());
    assert_eq!(fs.len(), 1, "{fs:?}");
    assert_eq!(
        rel(tmp.path(), &fs[0]),
        format!("{sid}/3/2025/12/31/{sid}-2025-12-31-235001.syslog.txt.gz")
    );
    // Files are opened at the first complete line (23:50:01).
    // The partial tail is written once (the reference wrote it twice).
    assert_eq!(gunzip(&fs[0]), b"first line\r\nsecond\n\nthi");
}

#[test]
fn rotation_by_period_and_day_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |c| {
        c.rotation = RotationPolicy {
            period: Some(Duration::from_secs(300)),
            at_day_change: true,
            max_bytes: None,
        }
    });
    let uuid = Uuid::new_v4();
    let mut w = set.worker(uuid, 8).unwrap();
    w.handle_payload(8, b"a\nb", at(T0)).unwrap(); // 23:50:00
    w.handle_payload(8, b"b\n", at(T0 + 299)).unwrap();
    w.handle_payload(8, b"c\n", at(T0 + 300)).unwrap(); // 23:55:00: rotates
    w.handle_payload(8, b"d\n", at(T0 + 540)).unwrap(); // 23:59:00
    w.tick(at(T0 + 600)).unwrap(); // 00:00:00 next day: rotates while idle
    w.handle_payload(8, b"e\n", at(T0 + 601)).unwrap();
    w.close(at(T0 + 602)).unwrap();
    let fs = files(tmp.path());
    let names: Vec<String> = fs.iter().map(|p| rel(tmp.path(), p)).collect();
    let sid = uuid.simple().to_string();
    assert_eq!(
        names,
        vec![
            format!("{sid}/8/2025/12/31/{sid}-2025-12-31-235000.passivedns.txt.gz"),
            format!("{sid}/8/2025/12/31/{sid}-2025-12-31-235500.passivedns.txt.gz"),
            format!("{sid}/8/2026/01/01/{sid}-2026-01-01-000001.passivedns.txt.gz"),
        ]
    );
    assert_eq!(gunzip(&fs[0]), b"a\nbb\n");
    assert_eq!(gunzip(&fs[1]), b"c\nd\n");
    assert_eq!(gunzip(&fs[2]), b"e\n");
    assert_eq!(sink.entries(8, None), vec!["a", "bb", "c", "d", "e"]);
}

#[test]
fn rotation_by_size_cuts_between_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |c| {
        c.rotation = RotationPolicy {
            period: None,
            at_day_change: false,
            max_bytes: Some(6),
        }
    });
    let uuid = Uuid::new_v4();
    let mut w = set.worker(uuid, 3).unwrap();
    // 12 bytes in the first file (the bound is checked before a payload, never
    // inside a line), then 7 (the partial "dd" waits for its end), then 3.
    w.handle_payload(
        3,
        b"aaaaa
bbbbb
",
        at(T0),
    )
    .unwrap();
    w.handle_payload(
        3,
        b"cc
dd",
        at(T0 + 1),
    )
    .unwrap();
    w.handle_payload(
        3,
        b"d
",
        at(T0 + 2),
    )
    .unwrap();
    w.handle_payload(
        3,
        b"ee
",
        at(T0 + 3),
    )
    .unwrap();
    w.close(at(T0 + 4)).unwrap();
    let fs = files(tmp.path());
    let contents: Vec<Vec<u8>> = fs.iter().map(|p| gunzip(p)).collect();
    assert_eq!(
        contents,
        vec![
            b"aaaaa\nbbbbb\n".to_vec(),
            b"cc\nddd\n".to_vec(),
            b"ee\n".to_vec()
        ]
    );
    assert_eq!(
        sink.entries(3, None),
        vec!["aaaaa", "bbbbb", "cc", "ddd", "ee"]
    );
}

#[test]
fn overlong_lines_are_cut_and_memory_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |c| c.max_line = 8);
    let mut w = set.worker(Uuid::new_v4(), 6).unwrap();
    for _ in 0..100 {
        w.handle_payload(6, b"0123456789", at(T0)).unwrap();
    }
    w.handle_payload(6, b"\n{\"a\":1}\n", at(T0)).unwrap();
    w.close(at(T0)).unwrap();
    let e = sink.entries(6, None);
    // 1000 bytes: 124 cut pieces, the 125th ends at its newline
    assert_eq!(e.len(), 125 + 1);
    assert!(e[..125].iter().all(|l| l.len() == 8));
    assert_eq!(e.last().unwrap(), "{\"a\":1}");
    assert_eq!(w.stats().lines_cut, 124);
}

#[test]
fn dnscap_rotates_only_before_a_bracket_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, _sink) = setup(tmp.path(), |_| {});
    let mut w = set.worker(Uuid::new_v4(), 4).unwrap();
    w.handle_payload(4, b"[1] query\n  detail\n", at(T0))
        .unwrap();
    // due now, but the next lines do not start a record
    w.handle_payload(4, b"  more\n  more2\n", at(T0 + 400))
        .unwrap();
    w.tick(at(T0 + 401)).unwrap();
    w.handle_payload(4, b"  more3\n[2] next\n  x\n", at(T0 + 402))
        .unwrap();
    w.close(at(T0 + 403)).unwrap();
    let fs = files(tmp.path());
    assert_eq!(fs.len(), 2, "{fs:?}");
    assert_eq!(
        gunzip(&fs[0]),
        b"[1] query\n  detail\n  more\n  more2\n  more3\n"
    );
    assert_eq!(gunzip(&fs[1]), b"[2] next\n  x\n");
    assert!(fs[1].to_string_lossy().contains("-235642.dnscap.txt.gz"));
}

#[test]
fn background_gzip_with_flush() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = WorkerConfig::new(tmp.path());
    cfg.rotation.period = Some(Duration::from_secs(1));
    let sink = Arc::new(MemoryQueueSink::new());
    let set = WorkerSet::new(cfg, sink.clone()).unwrap();
    let mut w = set.worker(Uuid::new_v4(), 3).unwrap();
    for i in 0..20u64 {
        w.handle_payload(3, format!("line {i}\n").as_bytes(), at(T0 + i))
            .unwrap();
    }
    w.close(at(T0 + 20)).unwrap();
    set.flush();
    let fs = files(tmp.path());
    assert_eq!(fs.len(), 20);
    let mut all = Vec::new();
    for f in &fs {
        assert!(f.to_string_lossy().ends_with(".syslog.txt.gz"));
        all.extend(gunzip(f));
    }
    let expect: String = (0..20).map(|i| format!("line {i}\n")).collect();
    assert_eq!(String::from_utf8(all).unwrap(), expect);
    set.shutdown();
}

#[test]
fn no_gzip_keeps_plain_files_and_same_second_names_do_not_clash() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, _) = setup(tmp.path(), |c| c.gzip = false);
    let uuid = Uuid::new_v4();
    for _ in 0..3 {
        let mut w = set.worker(uuid, 3).unwrap();
        w.handle_payload(3, b"x\n", at(T0)).unwrap();
        w.close(at(T0)).unwrap();
    }
    let fs = files(tmp.path());
    let names: Vec<String> = fs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let sid = uuid.simple().to_string();
    assert_eq!(
        names,
        vec![
            format!("{sid}-2025-12-31-235000-1.syslog.txt"),
            format!("{sid}-2025-12-31-235000-2.syslog.txt"),
            format!("{sid}-2025-12-31-235000.syslog.txt"),
        ]
    );
}

#[test]
fn unsupported_type_and_wrong_type() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, _) = setup(tmp.path(), |_| {});
    assert!(set.worker(Uuid::new_v4(), 0).is_err());
    assert!(set.worker(Uuid::new_v4(), 9).is_err());
    let mut w = set.worker(Uuid::new_v4(), 3).unwrap();
    assert!(w.handle_payload(8, b"x\n", at(T0)).is_err());
    assert!(w.failed().is_some());
    assert!(w.handle_payload(3, b"x\n", at(T0)).is_err());
    w.close(at(T0)).unwrap();
}

#[test]
fn raw_type_7_is_rotated_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |_| {});
    let (t, suffix) = (7u8, ".yaf.gz");
    let mut w = set.worker(Uuid::new_v4(), t).unwrap();
    w.handle_payload(t, b"\x0a\x0d\x0d\x0aabc", at(T0)).unwrap();
    w.handle_payload(t, b"", at(T0 + 1)).unwrap();
    w.handle_payload(t, b"def", at(T0 + 301)).unwrap(); // rotated before this frame
    w.close(at(T0 + 302)).unwrap();
    let fs: Vec<_> = files(tmp.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(fs.len(), 2, "{fs:?}");
    assert_eq!(gunzip(&fs[0]), b"\x0a\x0d\x0d\x0aabc");
    assert_eq!(gunzip(&fs[1]), b"def");
    // finished paths go to the type's queues
    assert_eq!(sink.entries(t, None).len(), 2);
}

#[test]
fn sink_failure_is_reported_but_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |_| {});
    let mut w = set.worker(Uuid::new_v4(), 3).unwrap();
    sink.set_failure(Some("backend down"));
    let e = w.handle_payload(3, b"a\n", at(T0)).unwrap_err();
    assert!(!e.is_data_error());
    assert!(e.to_string().contains("backend down"));
    sink.set_failure(None);
    w.handle_payload(3, b"b\n", at(T0)).unwrap();
    w.close(at(T0)).unwrap();
    assert_eq!(sink.entries(3, None), vec!["b"]);
    assert_eq!(
        gunzip(&files(tmp.path())[0]),
        b"a\nb\n",
        "the file has both"
    );
}

#[test]
fn workers_move_across_threads() {
    fn is_send<T: Send>() {}
    fn is_send_sync<T: Send + Sync>() {}
    is_send::<d4_worker::Worker>();
    is_send_sync::<WorkerSet>();
}
