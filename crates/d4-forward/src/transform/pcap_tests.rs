//! Tests of the pcap stream: formats in, one format out, rewriting, failures, resuming.

use super::*;
use crate::transform::cryptopan::Pseudonymiser;
use crate::transform::packet::tests as pkt;

/// A pcap stream in the given byte order and time unit.
pub(crate) fn capture(big_endian: bool, nanos: bool, link: u32, packets: &[&[u8]]) -> Vec<u8> {
    let w32 = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut s = Vec::new();
    s.extend_from_slice(&w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    s.extend_from_slice(&w16(2));
    s.extend_from_slice(&w16(4));
    s.extend_from_slice(&[0; 8]);
    s.extend_from_slice(&w32(65535));
    s.extend_from_slice(&w32(link));
    for (i, p) in packets.iter().enumerate() {
        s.extend_from_slice(&w32(1_700_000_000 + i as u32));
        s.extend_from_slice(&w32(if nanos { 123_456_789 } else { 123_456 }));
        s.extend_from_slice(&w32(p.len() as u32));
        s.extend_from_slice(&w32(p.len() as u32 + 100));
        s.extend_from_slice(p);
    }
    s
}

/// The records of an output stream (after its global header): (ts_sec, ts_usec, data, orig).
fn records(mut b: &[u8]) -> Vec<(u32, u32, Vec<u8>, u32)> {
    let mut v = Vec::new();
    let le = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    while !b.is_empty() {
        let len = le(b, 8) as usize;
        v.push((le(b, 0), le(b, 4), b[16..16 + len].to_vec(), le(b, 12)));
        b = &b[16 + len..];
    }
    v
}

fn tcp_packet(src: &str, dst: &str) -> Vec<u8> {
    let (s, d) = (
        src.parse::<std::net::Ipv4Addr>().unwrap().octets(),
        dst.parse::<std::net::Ipv4Addr>().unwrap().octets(),
    );
    pkt::ether(
        0x0800,
        false,
        &pkt::ipv4(s, d, 6, &pkt::tcp(|_| 0, b"payload bytes")),
    )
}

fn run(s: &mut PcapStream, chunks: &[&[u8]]) -> (Vec<u8>, Pushed, Result<(), TransformError>) {
    let mut out = Vec::new();
    let mut p = Pushed::default();
    for (seq, c) in chunks.iter().enumerate() {
        if let Err(e) = s.push(seq as u64, 0, c, &mut out, &mut p) {
            return (out, p, Err(e));
        }
    }
    (out, p, Ok(()))
}

#[test]
fn every_input_format_leaves_little_endian_microseconds() {
    let a = tcp_packet("10.0.0.1", "192.0.2.1");
    let b = tcp_packet("192.0.2.1", "10.0.0.1");
    let mut outs = Vec::new();
    for (be, ns) in [(false, false), (false, true), (true, false), (true, true)] {
        let input = capture(be, ns, 1, &[&a, &b]);
        let mut s = PcapStream::new(None);
        let (out, p, r) = run(&mut s, &[&input[..10], &input[10..30], &input[30..]]);
        r.unwrap();
        assert_eq!(
            p,
            Pushed {
                units: 2,
                dropped: 0
            }
        );
        assert_eq!(s.output_header().unwrap(), output_header(65535, 1));
        assert_eq!(s.input_header().unwrap()[..], input[..24]);
        let recs = records(&out);
        assert_eq!(
            recs[0],
            (1_700_000_000, 123_456, a.clone(), a.len() as u32 + 100)
        );
        assert_eq!(recs[1].2, b);
        outs.push(out);
    }
    assert!(outs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn packets_are_rewritten_and_refused_ones_dropped() {
    let a = tcp_packet("10.0.0.1", "192.0.2.1");
    let junk = vec![0u8; 30];
    let input = capture(false, false, 1, &[&a, &junk, &a]);
    let key = crate::transform::packet::tests::KEY;
    let prefixes = vec!["10.0.0.0/8".parse().unwrap()];
    let mut s = PcapStream::new(Some(Rewriter::new(
        prefixes,
        Some(Pseudonymiser::new(&key)),
        true,
    )));
    let (out, p, r) = run(&mut s, &[&input]);
    r.unwrap();
    assert_eq!(
        p,
        Pushed {
            units: 2,
            dropped: 1
        }
    );
    let recs = records(&out);
    // cut after the TCP header; the wire length stays
    assert_eq!(recs[0].2.len(), 14 + 20 + 20);
    assert_eq!(recs[0].3, a.len() as u32 + 100);
    let pan = crate::transform::cryptopan::CryptoPan::new(&key).v4("10.0.0.1".parse().unwrap());
    assert_eq!(recs[0].2[26..30], pan.octets());
}

#[test]
fn bad_streams_fail_for_good() {
    let mut s = PcapStream::new(None);
    let (_, _, r) = run(&mut s, &[b"GET / HTTP/1.1\r\n"]);
    assert!(matches!(r, Err(TransformError::Corrupt(_))));
    let (_, _, r) = run(&mut s, &[&capture(false, false, 1, &[])]);
    assert!(matches!(r, Err(TransformError::Corrupt(_))), "stays failed");
    assert_eq!(s.held(), None);

    let mut bad_version = capture(false, false, 1, &[]);
    bad_version[4] = 3;
    let (_, _, r) = run(&mut PcapStream::new(None), &[&bad_version]);
    assert!(matches!(r, Err(TransformError::Corrupt(_))));

    let mut huge = capture(false, false, 1, &[]);
    huge.extend_from_slice(&[0; 8]);
    huge.extend_from_slice(&(MAX_RECORD + 1).to_le_bytes());
    huge.extend_from_slice(&[0; 4]);
    let (_, _, r) = run(&mut PcapStream::new(None), &[&huge]);
    assert!(matches!(r, Err(TransformError::Corrupt(_))));
}

#[test]
fn held_position_and_resuming() {
    let a = tcp_packet("10.0.0.1", "192.0.2.1");
    let input = capture(false, false, 1, &[&a, &a, &a]);
    let rec = 16 + a.len();
    // frame 0: header and one record and a half; frame 1: the rest
    let cut = 24 + rec + rec / 2;
    let mut s = PcapStream::new(None);
    let (whole, _, _) = run(&mut s, &[&input]);
    let mut s = PcapStream::new(None);
    let mut out = Vec::new();
    let mut p = Pushed::default();
    assert_eq!(s.held(), None);
    s.push(0, 0, &input[..10], &mut out, &mut p).unwrap();
    assert_eq!(s.held(), Some(Position { seq: 0, offset: 0 }));
    s.push(0, 10, &input[10..cut], &mut out, &mut p).unwrap();
    let held = s.held().unwrap();
    assert_eq!(
        held,
        Position {
            seq: 0,
            offset: 24 + rec
        }
    );
    let header = s.input_header().unwrap();
    // a crash: a new stream resumes at the held byte
    let mut r = PcapStream::new(None);
    r.resume(&header).unwrap();
    assert_eq!(r.held(), None);
    let mut out2 = out.clone();
    r.push(0, held.offset, &input[held.offset..cut], &mut out2, &mut p)
        .unwrap();
    r.push(1, 0, &input[cut..], &mut out2, &mut p).unwrap();
    assert_eq!(out2, whole);
    assert_eq!(r.finish(), 0);
    // a partial record at the end is dropped and counted
    s.push(1, 0, &input[cut..input.len() - 1], &mut out, &mut p)
        .unwrap();
    assert_eq!(s.finish(), 1);
}
