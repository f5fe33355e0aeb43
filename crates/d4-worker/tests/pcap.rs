#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Type 1: pcap streams through real files.

use d4_worker::pcap::{global_header_le, record_le};
use d4_worker::WorkerError;
use uuid::Uuid;

mod common;
use common::*;

/// Splits a pcap file into (global header, records) and checks it is well formed.
fn parse_pcap(b: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    assert!(b.len() >= 24, "no global header");
    let mut recs = Vec::new();
    let mut off = 24;
    while off < b.len() {
        assert!(off + 16 <= b.len(), "record header cut");
        let len = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        assert!(off + 16 + len <= b.len(), "record cut");
        recs.push(b[off..off + 16 + len].to_vec());
        off += 16 + len;
    }
    (b[..24].to_vec(), recs)
}

#[test]
fn every_rotated_file_is_a_valid_pcap_and_paths_are_queued() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |_| {});
    let uuid = Uuid::new_v4();
    let header = global_header_le(65535);
    let records: Vec<Vec<u8>> = (0..40u32)
        .map(|i| record_le(i, &vec![i as u8; (i as usize * 37) % 300]))
        .collect();
    let mut stream = header.to_vec();
    for r in &records {
        stream.extend_from_slice(r);
    }
    // Chunks of 7 bytes, one per frame, clock advancing 20 s per frame: many rotations,
    // always between records.
    let mut w = set.worker(uuid, 1).unwrap();
    for (i, chunk) in stream.chunks(97).enumerate() {
        w.handle_payload(1, chunk, at(T0 + 20 * i as u64)).unwrap();
    }
    w.close(at(T0 + 10_000)).unwrap();
    let fs = files(tmp.path());
    assert!(fs.len() > 3, "expected several rotations: {fs:?}");
    let mut got = Vec::new();
    for f in &fs {
        assert!(f.to_string_lossy().ends_with(".cap.gz"), "{f:?}");
        let (h, recs) = parse_pcap(&gunzip(f));
        assert_eq!(h, header);
        got.extend(recs);
    }
    assert_eq!(got, records);
    let queued = sink.entries(1, None);
    let mut expect: Vec<String> = fs
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut q = queued.clone();
    q.sort();
    expect.sort();
    assert_eq!(q, expect, "the path of each finished .cap.gz is queued");
    assert!(queued.iter().all(|p| p.starts_with('/')), "absolute paths");
}

#[test]
fn incomplete_last_record_is_dropped_at_close() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, _) = setup(tmp.path(), |_| {});
    let mut w = set.worker(Uuid::new_v4(), 1).unwrap();
    let mut stream = global_header_le(65535).to_vec();
    stream.extend(record_le(1, b"complete"));
    stream.extend(&record_le(2, b"cut short")[..20]);
    w.handle_payload(1, &stream, at(T0)).unwrap();
    w.close(at(T0)).unwrap();
    let fs = files(tmp.path());
    assert_eq!(fs.len(), 1);
    let (_, recs) = parse_pcap(&gunzip(&fs[0]));
    assert_eq!(recs, vec![record_le(1, b"complete")]);
    assert_eq!(w.stats().pcap_truncated, 20);
}

#[test]
fn non_pcap_stream_is_an_error_for_the_sensor() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |_| {});
    let mut w = set.worker(Uuid::new_v4(), 1).unwrap();
    w.handle_payload(1, b"", at(T0)).unwrap();
    let e = w
        .handle_payload(1, b"line one\nline two\n", at(T0))
        .unwrap_err();
    assert!(matches!(e, WorkerError::Pcap(_)), "{e}");
    assert!(e.is_data_error());
    assert!(e.to_string().contains("not a pcap stream"), "{e}");
    assert!(matches!(
        w.handle_payload(1, b"more", at(T0)),
        Err(WorkerError::Failed(_))
    ));
    w.close(at(T0)).unwrap();
    assert!(files(tmp.path()).is_empty());
    assert!(sink.all().is_empty());
}

#[test]
fn oversized_record_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, _) = setup(tmp.path(), |c| c.max_pcap_record = 1000);
    let mut w = set.worker(Uuid::new_v4(), 1).unwrap();
    let mut stream = global_header_le(65535).to_vec();
    stream.extend(record_le(1, &[0; 1001]));
    assert!(w.handle_payload(1, &stream, at(T0)).is_err());
    w.close(at(T0)).unwrap();
}

#[test]
fn recover_finishes_files_left_by_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let uuid = Uuid::new_v4();
    {
        let (set, _) = setup(tmp.path(), |_| {});
        let mut w = set.worker(uuid, 1).unwrap();
        let mut s = global_header_le(65535).to_vec();
        s.extend(record_le(1, b"kept"));
        s.extend(&record_le(2, b"lost in the crash")[..10]);
        w.handle_payload(1, &s, at(T0)).unwrap();
        w.flush().unwrap();
        let mut l = set.worker(uuid, 3).unwrap();
        l.handle_payload(3, b"a line\n", at(T0)).unwrap();
        l.flush().unwrap();
        // "crash": the workers are forgotten without close
        std::mem::forget(w);
        std::mem::forget(l);
    }
    // a stray .gz.tmp from an interrupted gzip
    let fs = files(tmp.path());
    assert_eq!(fs.len(), 2);
    std::fs::write(format!("{}.gz.tmp", fs[0].display()), b"partial").unwrap();

    let (set, sink) = setup(tmp.path(), |_| {});
    let report = set.recover().unwrap();
    assert_eq!(report.finished.len(), 2);
    assert_eq!(report.removed_tmp, 1);
    assert_eq!(report.pcap_truncated, 10);
    let fs = files(tmp.path());
    assert!(
        fs.iter().all(|p| p.to_string_lossy().ends_with(".gz")),
        "{fs:?}"
    );
    let cap = fs
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".cap.gz"))
        .unwrap();
    let mut expect = global_header_le(65535).to_vec();
    expect.extend(record_le(1, b"kept"));
    assert_eq!(gunzip(cap), expect);
    assert_eq!(
        sink.entries(1, None),
        vec![cap.to_string_lossy().into_owned()]
    );
    // nothing left to do the second time
    assert_eq!(set.recover().unwrap(), Default::default());
}

#[test]
fn pcapng_rotated_files_each_start_with_the_section_preamble() {
    use d4_worker::pcapng::{block_le, idb_le, shb_le};
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |_| {});
    let mut w = set.worker(Uuid::new_v4(), 5).unwrap();
    let preamble = [shb_le(), idb_le()].concat();
    let epb = |i: u8| block_le(6, &[i; 30]);
    let mut stream = preamble.clone();
    stream.extend(epb(1));
    stream.extend(epb(2));
    // first frame: preamble + 1.5 blocks; then the rest after the rotation period
    let cut = preamble.len() + epb(1).len() + 20;
    w.handle_payload(5, &stream[..cut], at(T0)).unwrap();
    w.handle_payload(5, &stream[cut..], at(T0 + 400)).unwrap(); // rotation due, not at boundary
    let idb2 = idb_le();
    w.handle_payload(5, &epb(3), at(T0 + 800)).unwrap(); // rotates before block 3
    w.handle_payload(5, &idb2, at(T0 + 1200)).unwrap(); // rotates before a new IDB
    w.handle_payload(5, &epb(4)[..10], at(T0 + 1201)).unwrap(); // incomplete at close
    w.close(at(T0 + 1202)).unwrap();
    let fs = files(tmp.path());
    assert_eq!(fs.len(), 3, "{fs:?}");
    let contents: Vec<Vec<u8>> = fs.iter().map(|f| gunzip(f)).collect();
    assert_eq!(contents[0], [preamble.clone(), epb(1), epb(2)].concat());
    assert_eq!(contents[1], [preamble.clone(), epb(3)].concat());
    assert_eq!(contents[2], [preamble.clone(), idb2].concat());
    assert_eq!(
        w.stats().pcap_truncated,
        0,
        "the partial head was never written"
    );
    assert_eq!(sink.entries(5, None).len(), 3);

    // not pcapng: an error for the sensor
    let mut w = set.worker(Uuid::new_v4(), 5).unwrap();
    let e = w
        .handle_payload(5, b"hello, not pcapng at all", at(T0))
        .unwrap_err();
    assert!(e.is_data_error(), "{e}");
    w.close(at(T0)).unwrap();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    #[test]
    fn pcap_and_pcapng_files_hold_the_stream_whatever_the_chunking(
        sizes in proptest::collection::vec(0usize..120, 1..12),
        cuts in proptest::collection::vec(0usize..2000, 0..12),
        ng in proptest::bool::ANY,
    ) {
        use d4_worker::pcapng::{block_le, idb_le, shb_le};
        let tmp = tempfile::tempdir().unwrap();
        let (set, _) = setup(tmp.path(), |_| {});
        let (t, mut stream, blocks): (u8, Vec<u8>, Vec<Vec<u8>>) = if ng {
            (5, [shb_le(), idb_le()].concat(),
             sizes.iter().map(|n| block_le(6, &vec![1u8; *n])).collect())
        } else {
            (1, global_header_le(65535).to_vec(),
             sizes.iter().enumerate().map(|(i, n)| record_le(i as u32, &vec![2u8; *n])).collect())
        };
        let head = stream.clone();
        for b in &blocks { stream.extend_from_slice(b); }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
        cuts.sort_unstable();
        let mut w = set.worker(Uuid::new_v4(), t).unwrap();
        let mut prev = 0;
        for (i, c) in cuts.iter().chain(std::iter::once(&stream.len())).enumerate() {
            // 200 s per frame: a rotation is due at about every other frame
            w.handle_payload(t, &stream[prev..*c], at(T0 + 200 * i as u64)).unwrap();
            prev = *c;
        }
        w.close(at(T0 + 100_000)).unwrap();
        let mut got = Vec::new();
        for f in files(tmp.path()) {
            let c = gunzip(&f);
            proptest::prop_assert!(c.starts_with(&head), "each file starts with the header");
            got.extend_from_slice(&c[head.len()..]);
        }
        proptest::prop_assert_eq!(got, blocks.concat());
    }
}

/// A finished pcap file's path is queued exactly once across a crash anywhere between
/// its gzip and the removal of its original: after the `.gz` was renamed into place but
/// before the push (the recovery pushes it), and after the push but before the original
/// was removed (the recovery's push repeats the key: nothing twice). The key is
/// forgotten once the original is gone.
#[test]
fn a_finished_files_path_is_queued_once_across_a_crash() {
    use d4_worker::files::{file_key, gzip_file};
    use d4_worker::{OwnedTarget, QueueSink};
    let uuid = Uuid::new_v4();
    let target = OwnedTarget {
        d4_type: 1,
        ext_type: None,
        sensor: uuid,
    };
    for pushed_before_crash in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let (set, sink) = setup(tmp.path(), |_| {});
        let mut w = set.worker(uuid, 1).unwrap();
        let mut s = global_header_le(65535).to_vec();
        s.extend(record_le(1, b"kept"));
        w.handle_payload(1, &s, at(T0)).unwrap();
        w.flush().unwrap();
        std::mem::forget(w);
        let cap = files(tmp.path()).pop().unwrap();
        // the crash came after the .gz was complete, before the original was removed
        let copy = cap.with_extension("copy");
        std::fs::copy(&cap, &copy).unwrap();
        let gz = gzip_file(&cap).unwrap();
        std::fs::rename(&copy, &cap).unwrap();
        let entry = gz.to_string_lossy().into_owned();
        if pushed_before_crash {
            assert!(sink
                .push_batch(
                    Some(file_key(&gz)),
                    vec![(target.clone(), vec![entry.clone()])]
                )
                .unwrap());
        }
        let report = set.recover().unwrap();
        assert_eq!(report.removed_originals, 1);
        assert_eq!(sink.entries(1, None), vec![entry.clone()], "queued once");
        assert!(!cap.exists());
        assert!(sink.producers().is_empty(), "the key is forgotten");
        assert_eq!(set.recover().unwrap(), Default::default());
        assert_eq!(sink.entries(1, None), vec![entry]);
    }
    // without a crash: queued once at the close, key forgotten
    let tmp = tempfile::tempdir().unwrap();
    let (set, sink) = setup(tmp.path(), |_| {});
    let mut w = set.worker(uuid, 1).unwrap();
    let mut s = global_header_le(65535).to_vec();
    s.extend(record_le(1, b"x"));
    w.handle_payload(1, &s, at(T0)).unwrap();
    w.close(at(T0)).unwrap();
    assert_eq!(sink.entries(1, None).len(), 1);
    assert!(sink.producers().is_empty());
}
