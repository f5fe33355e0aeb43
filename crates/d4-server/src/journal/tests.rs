//! Tests of the journal: replay after torn tails and damage, direct writes, the ack
//! record and the cut of unacknowledged file bytes.

use super::ack::{ack_record, parse_ack, AckRecord};
use super::replay::ReplayEnd;
use super::*;
use bytes::Bytes;
use d4_proto::{Decoder, Encoder, Frame};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

fn frame(enc: &Encoder, i: u64) -> Frame {
    let mut b = Bytes::from(enc.encode(i, format!("entry {i}\n").as_bytes()).unwrap());
    Decoder::new().decode(&mut b).unwrap().unwrap()
}

#[test]
fn replays_only_unacked_and_survives_torn_tail() {
    replays_only_unacked_and_survives_torn_tail_with(false);
}

#[test]
fn direct_replays_only_unacked_and_survives_torn_tail() {
    replays_only_unacked_and_survives_torn_tail_with(true);
}

fn replays_only_unacked_and_survives_torn_tail_with(direct: bool) {
    let dir = tempfile::tempdir().unwrap();
    let enc = Encoder::new(Uuid::new_v4(), b"k", 3);
    let s = Uuid::new_v4();
    let mut j = Journal::create_with(dir.path(), s, 200, direct).unwrap();
    assert_direct(&j, direct);
    let mut ends = Vec::new();
    for i in 0..10 {
        ends.push(j.append(&frame(&enc, i)).unwrap());
        j.sync().unwrap();
        // acknowledge the first 6, one by one (segments roll over at 200 bytes)
        if i < 6 {
            let at = AckPoint {
                off: *ends.last().unwrap(),
                seq: i + 1,
                skip: 0,
            };
            j.ack(at, None).unwrap();
        }
    }
    // a torn tail: half a frame where the next one would go (over a direct
    // journal's padding)
    let (seg, written) = (j.seg, j.written);
    drop(j);
    let f = OpenOptions::new()
        .write(true)
        .open(seg_path(dir.path(), &s, seg))
        .unwrap();
    f.write_all_at(&frame(&enc, 99).to_bytes()[..70], written)
        .unwrap();
    let left = recover(dir.path()).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].first_seq, 6);
    let mut got = Vec::new();
    let key = d4_proto::HmacKey::new(b"k");
    let end = left[0]
        .replay(
            |f| key.verify(f),
            |seq, f| {
                assert_eq!(seq, f.header.timestamp, "frame numbers follow the stream");
                got.push(f.header.timestamp);
                Ok(Replayed::default())
            },
        )
        .unwrap();
    assert_eq!(got, vec![6, 7, 8, 9]);
    assert_eq!(end.refused, None, "a torn tail is the end, not damage");
    // the replay acknowledged its progress: a second recovery has nothing left
    let again = recover(dir.path()).unwrap();
    assert_eq!(again[0].first_seq, 10);
    let mut n = 0;
    again[0]
        .replay(
            |f| key.verify(f),
            |_, _| {
                n += 1;
                Ok(Replayed::default())
            },
        )
        .unwrap();
    assert_eq!(n, 0);
    left.into_iter().next().unwrap().finish().unwrap();
    assert!(recover(dir.path()).unwrap().is_empty());
}

/// A direct journal is direct where the test's temporary folder supports `O_DIRECT`
/// (tmpfs does not: the journal is buffered there, which the tests then cover).
fn assert_direct(j: &Journal, asked: bool) {
    if asked && j.direct.is_none() {
        eprintln!("O_DIRECT is not supported in the temporary folder: buffered journal");
    }
    assert!(asked || j.direct.is_none());
}

/// The direct journal holds the same bytes as the buffered one, then zeros up to the
/// next 4 KiB; appends of single frames, of batches, of frames larger than a block
/// and of empty payloads; the zeros read back as the torn end of the journal.
#[test]
fn direct_journal_holds_the_same_bytes_then_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let enc = Encoder::new(Uuid::new_v4(), b"k", 3);
    let frames: Vec<Frame> = (0..200u64)
        .map(|i| {
            let len = [0, 1, 61, 4034, 4096, 9000, 100][i as usize % 7];
            let mut b = Bytes::from(enc.encode(i, &vec![b'a' + (i % 26) as u8; len]).unwrap());
            Decoder::new().decode(&mut b).unwrap().unwrap()
        })
        .collect();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut buffered = Journal::create_with(dir.path(), a, 1 << 30, false).unwrap();
    let mut direct = Journal::create_with(dir.path(), b, 1 << 30, true).unwrap();
    assert_direct(&direct, true);
    let (mut ends_a, mut ends_b) = (Vec::new(), Vec::new());
    let mut rest = &frames[..];
    let mut n = 1;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(n.min(rest.len()));
        if n % 3 == 0 {
            for f in now {
                ends_a.push(buffered.append(f).unwrap());
                ends_b.push(direct.append(f).unwrap());
            }
        } else {
            buffered.append_batch(now, &mut ends_a).unwrap();
            direct.append_batch(now, &mut ends_b).unwrap();
        }
        direct.sync().unwrap();
        rest = later;
        n = n % 11 + 1;
    }
    // one batch larger than the direct buffer's limit: written in pieces
    let big: Vec<Frame> = frames.iter().cycle().take(700).cloned().collect();
    assert!(big.iter().map(Frame::wire_len).sum::<usize>() > crate::direct::MAX_BUF);
    buffered.append_batch(&big, &mut ends_a).unwrap();
    direct.append_batch(&big, &mut ends_b).unwrap();
    buffered.append_batch(&frames[..3], &mut ends_a).unwrap();
    direct.append_batch(&frames[..3], &mut ends_b).unwrap();
    if let Some(d) = &direct.direct {
        assert!(
            d.capacity() <= crate::direct::MAX_BUF,
            "the buffer stays bounded"
        );
    }
    assert_eq!(ends_a, ends_b);
    let want = fs::read(seg_path(dir.path(), &a, 0)).unwrap();
    let got = fs::read(seg_path(dir.path(), &b, 0)).unwrap();
    assert_eq!(want.len() as u64, *ends_a.last().unwrap());
    assert_eq!(&got[..want.len()], &want[..]);
    if direct.direct.is_some() {
        assert_eq!(got.len() % crate::direct::ALIGN, 0);
        assert!(got.len() - want.len() < crate::direct::ALIGN);
    }
    assert!(got[want.len()..].iter().all(|&x| x == 0));
    drop(direct);
    let all: Vec<&Frame> = frames.iter().chain(&big).chain(&frames[..3]).collect();
    let left = recover(dir.path()).unwrap();
    let left = left.iter().find(|l| l.session == b).unwrap();
    let mut seen = Vec::new();
    let end = left
        .replay(
            |_| true,
            |seq, f| {
                assert_eq!(f.payload, all[seq as usize].payload);
                seen.push(seq);
                Ok(Replayed::default())
            },
        )
        .unwrap();
    assert_eq!(seen, (0..all.len() as u64).collect::<Vec<_>>());
    assert_eq!(end.refused, None);
}

/// Bytes that do not decode before the end of what was written are damage, not a
/// torn end: the replay reports the frame where it stopped.
#[test]
fn replay_refuses_a_damaged_header() {
    for direct in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let enc = Encoder::new(Uuid::new_v4(), b"k", 3);
        let s = Uuid::new_v4();
        let mut j = Journal::create_with(dir.path(), s, 1 << 20, direct).unwrap();
        let mut ends = vec![0];
        for i in 0..5 {
            ends.push(j.append(&frame(&enc, i)).unwrap());
        }
        j.sync().unwrap();
        drop(j);
        let seg = seg_path(dir.path(), &s, 0);
        let mut raw = fs::read(&seg).unwrap();
        raw[ends[3] as usize] = 9; // frame 3's version byte
        fs::write(&seg, &raw).unwrap();
        let left = recover(dir.path()).unwrap().pop().unwrap();
        let mut got = Vec::new();
        let end = left
            .replay(
                |_| true,
                |seq, _| {
                    got.push(seq);
                    Ok(Replayed::default())
                },
            )
            .unwrap();
        assert_eq!(got, [0, 1, 2], "direct: {direct}");
        assert_eq!(end.refused, Some(3), "direct: {direct}");
    }
}

#[test]
fn batch_append_writes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut enc = Encoder::new(Uuid::new_v4(), b"k", 2);
    let mut frames = vec![frame(&enc, 1)];
    enc.set_type(254);
    frames.extend((2..300).map(|i| frame(&enc, i)));
    frames.push({
        let mut b = Bytes::from(enc.encode(300, b"").unwrap());
        Decoder::new().decode(&mut b).unwrap().unwrap()
    });
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut one = Journal::create(dir.path(), a, 1 << 20).unwrap();
    let mut ends_one = Vec::new();
    for f in &frames {
        ends_one.push(one.append(f).unwrap());
    }
    let mut batch = Journal::create(dir.path(), b, 1 << 20).unwrap();
    let mut ends = Vec::new();
    batch.append_batch(&frames[..10], &mut ends).unwrap();
    batch.append_batch(&frames[10..], &mut ends).unwrap();
    assert_eq!(ends, ends_one);
    let paths: [fn(&Path, &Uuid, u64) -> PathBuf; 2] = [seg_path, |d, s, _| meta_path(d, s)];
    for p in paths {
        assert_eq!(
            fs::read(p(dir.path(), &a, 0)).unwrap(),
            fs::read(p(dir.path(), &b, 0)).unwrap()
        );
    }
}

/// A batch that reached the disk only in part after a power loss reads back with
/// zeros where its payload should be: the replay checks each frame's HMAC, stops
/// before the first that fails and keeps the session's journal aside.
#[test]
fn replay_stops_at_a_frame_whose_hmac_fails_and_keeps_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let enc = Encoder::new(Uuid::new_v4(), b"k", 3);
    let s = Uuid::new_v4();
    let mut j = Journal::create(dir.path(), s, 1 << 20).unwrap();
    let mut ends = vec![0];
    for i in 0..5 {
        ends.push(j.append(&frame(&enc, i)).unwrap());
    }
    j.sync().unwrap();
    let at = AckPoint {
        off: ends[1],
        seq: 1,
        skip: 0,
    };
    j.ack(at, None).unwrap();
    drop(j);
    // frame 3's payload is zeros on disk
    let seg = seg_path(dir.path(), &s, 0);
    let mut raw = fs::read(&seg).unwrap();
    let payload = ends[3] as usize + d4_proto::HEADER_LEN..ends[4] as usize;
    raw[payload].fill(0);
    fs::write(&seg, &raw).unwrap();

    let key = d4_proto::HmacKey::new(b"k");
    let left = recover(dir.path()).unwrap().pop().unwrap();
    let mut got = Vec::new();
    let end = left
        .replay(
            |f| key.verify(f),
            |seq, _| {
                got.push(seq);
                Ok(Replayed::default())
            },
        )
        .unwrap();
    assert_eq!(got, [1, 2], "frames before the bad one are replayed");
    assert_eq!(
        end,
        ReplayEnd {
            frames: 2,
            refused: Some(3)
        }
    );
    let kept = left.quarantine().unwrap();
    assert_eq!(kept, dir.path().join(UNVERIFIED_DIR));
    assert!(kept.join(seg.file_name().unwrap()).is_file());
    assert!(kept.join(format!("{}.ack", s.simple())).is_file());
    assert_eq!(fs::read(kept.join(seg.file_name().unwrap())).unwrap(), raw);
    // never replayed again, and the folder does not confuse the recovery
    assert!(recover(dir.path()).unwrap().is_empty());
    // a frame signed with another key fails the same way
    let other = Encoder::new(Uuid::new_v4(), b"not k", 3);
    assert!(!key.verify(&frame(&other, 0)));
    assert!(key.verify(&frame(&enc, 0)));
}

#[test]
fn meta_frames_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut enc = Encoder::new(Uuid::new_v4(), b"k", 2);
    let s = Uuid::new_v4();
    let mut j = Journal::create(dir.path(), s, 1 << 20).unwrap();
    let e = j.append(&frame(&enc, 1)).unwrap();
    enc.set_type(254);
    j.append(&frame(&enc, 2)).unwrap();
    j.sync().unwrap();
    j.ack(
        AckPoint {
            off: e,
            seq: 1,
            skip: 0,
        },
        None,
    )
    .unwrap();
    drop(j);
    let left = recover(dir.path()).unwrap();
    assert_eq!(left[0].meta_frames.len(), 1);
    assert!(left[0].meta_verifies(|f| d4_proto::HmacKey::new(b"k").verify(f)));
    assert!(!left[0].meta_verifies(|f| d4_proto::HmacKey::new(b"other").verify(f)));
    let mut n = 0;
    left[0]
        .replay(
            |_| true,
            |seq, f| {
                assert_eq!(seq, 1);
                assert_eq!(f.header.d4_type, 254);
                n += 1;
                Ok(Replayed::default())
            },
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn resume_point_covers_the_carry() {
    let mut r = RecentFrames::default();
    // frames of 10, 10 and 5 payload bytes at offsets 0, 72, 144 (seq 0, 1, 2)
    r.push(0, 0, 10, 0);
    r.push(72, 1, 10, 0);
    r.push(144, 2, 5, 0);
    let at = |off, seq, skip| AckPoint { off, seq, skip };
    assert_eq!(r.resume(211, 3, 0), at(211, 3, 0));
    r.push(0, 0, 10, 0);
    r.push(72, 1, 10, 0);
    r.push(144, 2, 5, 0);
    assert_eq!(r.resume(211, 3, 12), at(72, 1, 3));
    // older frames are forgotten, the ones holding the carry kept
    assert_eq!(r.resume(211, 3, 12), at(72, 1, 3));
    assert_eq!(r.resume(211, 3, 5), at(144, 2, 0));
    assert_eq!(r.resume(211, 3, 3), at(144, 2, 2));
    r.push(211, 3, 4, 0);
    assert_eq!(r.resume(277, 4, 6), at(144, 2, 3));
    // a replayed first frame that was given from byte 4 on
    let mut r = RecentFrames::default();
    r.push(0, 7, 6, 4);
    assert_eq!(r.resume(72, 8, 2), at(0, 7, 8));
}

#[test]
fn ack_record_roundtrip_and_old_format() {
    let mut b = Vec::new();
    let p = Path::new("/data/x/3/2026/11/22/x-2026-11-22-020000.syslog.txt");
    let at = AckPoint {
        off: 77,
        seq: 12,
        skip: 5,
    };
    ack_record(&mut b, 3, &at, Some((p, 4096)), &[]);
    let r = parse_ack(&b);
    assert_eq!(
        r,
        AckRecord {
            seg: 3,
            off: 77,
            next_seq: 12,
            skip: 5,
            file: Some((p.to_path_buf(), 4096))
        }
    );
    // a shorter record written later over a longer one: the path length decides
    let mut c = Vec::new();
    let at = AckPoint {
        off: 90,
        seq: 13,
        skip: 0,
    };
    ack_record(&mut c, 3, &at, None, &[]);
    let mut over = b.clone();
    over[..c.len()].copy_from_slice(&c);
    assert_eq!(parse_ack(&over).file, None);
    assert_eq!(parse_ack(&over).next_seq, 13);
    // the 16-byte record of earlier versions, and garbage
    let mut old = vec![0u8; 16];
    old[..8].copy_from_slice(&2u64.to_le_bytes());
    old[8..].copy_from_slice(&5u64.to_le_bytes());
    let r = parse_ack(&old);
    assert_eq!((r.seg, r.off, r.next_seq, r.file), (2, 5, 0, None));
    let _ = parse_ack(&[1, 2, 3]);
    let mut torn = b.clone();
    torn.truncate(48);
    assert_eq!(parse_ack(&torn).file, None);
}

#[test]
fn cut_uncommitted_cuts_the_recorded_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    fs::write(&out, b"acked\nnot acked\n").unwrap();
    let enc = Encoder::new(Uuid::new_v4(), b"k", 3);
    let mut j = Journal::create(&dir.path().join("j"), Uuid::new_v4(), 1 << 20).unwrap();
    let e = j.append(&frame(&enc, 0)).unwrap();
    j.append(&frame(&enc, 1)).unwrap();
    j.sync().unwrap();
    let at = AckPoint {
        off: e,
        seq: 1,
        skip: 0,
    };
    j.ack(at, Some((&out, 6))).unwrap();
    drop(j);
    assert_eq!(cut_uncommitted(&dir.path().join("j")).unwrap(), 10);
    assert_eq!(fs::read(&out).unwrap(), b"acked\n");
    // again: nothing more; a missing file (gzipped since) is fine
    assert_eq!(cut_uncommitted(&dir.path().join("j")).unwrap(), 0);
    fs::remove_file(&out).unwrap();
    assert_eq!(cut_uncommitted(&dir.path().join("j")).unwrap(), 0);
}
