//! Fuzz the privacy transforms of forwarded streams (`d4-forward`): settings from the first
//! bytes (D4 type, client IP action, rounding, aggregation, pcap prefixes and truncation,
//! JSON fields, redaction), then the stream (type 1 behind a valid pcap global header when
//! a flag says so) in arbitrary chunks. Never a panic; the output and counts are the same
//! for any chunking; a new transform resuming at `held_at` after a crash in the middle
//! completes the output exactly; pcap output is well-formed little-endian records; with
//! the client IP dropped, no passive DNS line leaves with a client.
#![no_main]

use d4_forward::transform::{Position, Pushed, StreamTransform};
use d4_store::{AddressAction, JsonPrivacy, LogPrivacy, PcapPrivacy, PdnsPrivacy, Privacy};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202";

fn privacy(flags: u8, more: u8) -> Privacy {
    let client_ip = match flags & 3 {
        0 => AddressAction::Keep,
        1 => AddressAction::Drop,
        _ => AddressAction::Pseudonymise,
    };
    let mut prefixes = Vec::new();
    if flags & 4 != 0 {
        prefixes.push("10.0.0.0/8".parse().unwrap());
        prefixes.push("2001:db8::/32".parse().unwrap());
    }
    if flags & 8 != 0 {
        prefixes.push("0.0.0.0/0".parse().unwrap());
    }
    Privacy {
        key: KEY.into(),
        pdns: (flags & 0x80 == 0).then(|| PdnsPrivacy {
            client_ip,
            round_secs: u64::from(more & 0x0f),
            aggregate_secs: u64::from(more >> 4),
        }),
        pcap: Some(PcapPrivacy {
            prefixes,
            truncate_payload: flags & 0x10 != 0,
        }),
        json: (flags & 0x20 != 0).then(|| JsonPrivacy {
            drop: vec!["a".into(), "b.c".into()],
            pseudonymise: vec!["ip".into(), "d.e".into()],
        }),
        log: (flags & 0x40 != 0).then(|| LogPrivacy {
            redact: vec![r"\d+\.\d+".into(), "x+".into()],
            replacement: "$0".into(),
        }),
    }
}

fn feed(p: &Privacy, t: u8, ext: Option<&str>, input: &[u8], step: usize) -> (Vec<u8>, Pushed) {
    let mut x = StreamTransform::new(p, t, ext).unwrap();
    let mut out = Vec::new();
    let mut pushed = Pushed::default();
    for (seq, c) in input.chunks(step.max(1)).enumerate() {
        match x.push(seq as u64, c, 7, &mut out) {
            Ok(q) => {
                pushed.units += q.units;
                pushed.dropped += q.dropped;
            }
            Err(_) => break,
        }
        let q = x.tick(7, &mut out);
        pushed.units += q.units;
        pushed.dropped += q.dropped;
    }
    let q = x.finish(&mut out);
    pushed.units += q.units;
    pushed.dropped += q.dropped;
    (out, pushed)
}

/// Crash after half the frames, resume in a new transform at `held_at`.
fn resumed(p: &Privacy, t: u8, ext: Option<&str>, input: &[u8], step: usize) -> Vec<u8> {
    let frames: Vec<&[u8]> = input.chunks(step.max(1)).collect();
    let stop = frames.len() / 2;
    let mut x = StreamTransform::new(p, t, ext).unwrap();
    let mut out = Vec::new();
    for (seq, c) in frames[..stop].iter().enumerate() {
        if x.push(seq as u64, c, 7, &mut out).is_err() {
            return Vec::new();
        }
        x.tick(7, &mut out);
    }
    let mut y = StreamTransform::new(p, t, ext).unwrap();
    if let Some(h) = x.pcap_input_header() {
        y.resume_pcap(&h).unwrap();
    }
    let from = x.held_at().unwrap_or(Position { seq: stop as u64, offset: 0 });
    for (seq, c) in frames.iter().enumerate().skip(from.seq as usize) {
        let (off, c) = if seq as u64 == from.seq { (from.offset, &c[from.offset..]) } else { (0, *c) };
        if y.push_at(seq as u64, off, c, 7, &mut out).is_err() {
            return Vec::new();
        }
        y.tick(7, &mut out);
    }
    y.finish(&mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (t, ext) = match data[0] % 6 {
        0 => (1, None),
        1 => (3, None),
        2 => (6, None),
        3 => (8, None),
        4 => (254, Some("ja3-jl")),
        _ => (4, None),
    };
    let p = privacy(data[1], data[2]);
    let step = usize::from(data[3]) + 1;
    let mut input = Vec::new();
    if t == 1 && data[0] & 0x80 != 0 {
        input.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        input.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
        input.extend_from_slice(&u32::from(data[2] % 4 * 50 + 1).to_le_bytes());
    }
    input.extend_from_slice(&data[4..]);

    let whole = feed(&p, t, ext, &input, input.len());
    assert_eq!(feed(&p, t, ext, &input, step), whole);
    assert_eq!(feed(&p, t, ext, &input, 1), whole);
    let aggregating = t == 8 && p.pdns.as_ref().is_some_and(|d| d.aggregate_secs > 0);
    if !aggregating {
        // (held lines of a window may be sent again after a crash: at least once)
        assert_eq!(resumed(&p, t, ext, &input, step), whole.0);
    }
    let out = &whole.0;
    if t == 1 {
        let mut b = out.as_slice();
        while !b.is_empty() {
            assert!(b.len() >= 16);
            let len = u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize;
            assert!(b.len() >= 16 + len);
            b = &b[16 + len..];
        }
    } else {
        assert!(out.is_empty() || out.ends_with(b"\n"));
        if t == 8 && p.pdns.as_ref().is_some_and(|d| d.client_ip == AddressAction::Drop) {
            for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                // `ts||||server||...`: the client field is empty
                let i = line.windows(2).position(|w| w == b"||").unwrap();
                assert_eq!(&line[i + 2..i + 4], b"||", "{line:?}");
            }
        }
    }
});
