//! Tests of the public transform API: which types are taken, settings errors, and the
//! properties every kind keeps: any cutting of the input gives the same output, and a new
//! transform resuming at `held_at` finishes the output exactly.

use d4_store::{AddressAction, JsonPrivacy, LogPrivacy, PcapPrivacy, PdnsPrivacy, Privacy};
use proptest::prelude::*;

use super::*;
use crate::transform::pcap::tests::capture;

/// The key of the Crypto-PAn reference sample.
const KEY_HEX: &str = "1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202";

fn key() -> String {
    KEY_HEX.to_string()
}

fn full_privacy() -> Privacy {
    Privacy {
        key: key(),
        pdns: Some(PdnsPrivacy {
            client_ip: AddressAction::Pseudonymise,
            round_secs: 10,
            aggregate_secs: 0,
        }),
        pcap: Some(PcapPrivacy {
            prefixes: vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            truncate_payload: false,
        }),
        json: Some(JsonPrivacy {
            drop: vec!["secret".into()],
            pseudonymise: vec!["src_ip".into()],
        }),
        log: Some(LogPrivacy {
            redact: vec![r"user=\w+".into()],
            replacement: String::new(),
        }),
    }
}

#[test]
fn types_taken_and_refused() {
    let p = full_privacy();
    for t in [1, 3, 4, 6, 8, 254] {
        assert!(
            StreamTransform::new(&p, t, Some("ja3-jl")).is_ok(),
            "type {t}"
        );
    }
    for t in [0, 2, 5, 7, 9, 253, 255] {
        assert_eq!(
            StreamTransform::new(&p, t, None).err(),
            Some(TransformError::Unsupported(t))
        );
    }
}

#[test]
fn settings_errors() {
    let mut p = full_privacy();
    p.key = String::new();
    for t in [1, 6, 8] {
        assert!(matches!(
            StreamTransform::new(&p, t, None),
            Err(TransformError::Settings(_))
        ));
    }
    // no key needed for redaction, dropping, truncation
    let q = Privacy {
        pcap: Some(PcapPrivacy {
            prefixes: vec![],
            truncate_payload: true,
        }),
        log: p.log.clone(),
        ..Privacy::default()
    };
    assert!(StreamTransform::new(&q, 1, None).is_ok());
    assert!(StreamTransform::new(&q, 3, None).is_ok());
    p.key = "abcd".into();
    assert!(matches!(
        StreamTransform::new(&p, 8, None),
        Err(TransformError::Settings(_))
    ));
    let bad_re = Privacy {
        log: Some(LogPrivacy {
            redact: vec!["[".into()],
            replacement: String::new(),
        }),
        ..Privacy::default()
    };
    assert!(matches!(
        StreamTransform::new(&bad_re, 3, None),
        Err(TransformError::Settings(_))
    ));
}

#[test]
fn each_kind_end_to_end() {
    let p = full_privacy();
    let run = |t: u8, ext: Option<&str>, input: &[u8]| {
        let mut x = StreamTransform::new(&p, t, ext).unwrap();
        let mut out = Vec::new();
        let mut pushed = x.push(0, input, 0, &mut out).unwrap();
        pushed.add(x.finish(&mut out));
        (String::from_utf8_lossy(&out).into_owned(), pushed)
    };
    let (out, p8) = run(
        8,
        None,
        b"1322849924.408856||128.11.68.132||8.8.8.8||IN||a.org.||A||1.2.3.4||60||1\nbroken\n",
    );
    assert_eq!(
        out,
        "1322849920.000000||135.242.180.132||8.8.8.8||IN||a.org.||A||1.2.3.4||60||1\n"
    );
    assert_eq!((p8.units, p8.dropped), (1, 1));
    let (out, _) = run(6, None, b"{\"secret\":1,\"src_ip\":\"128.11.68.132\"}\n");
    assert_eq!(out, "{\"src_ip\":\"135.242.180.132\"}\n");
    let (out, _) = run(254, Some("filewatcherjson"), b"{\"secret\":1}\n");
    assert_eq!(out, "{}\n");
    let (out, _) = run(254, Some("maltrail"), b"x user=bob y\n");
    assert_eq!(out, "x [REDACTED] y\n");
    let (out, p3) = run(3, None, b"user=alice\npartial");
    assert_eq!(out, "[REDACTED]\n");
    assert_eq!((p3.units, p3.dropped), (1, 1));
    // identity still cuts into whole lines
    let mut id = StreamTransform::new(&Privacy::default(), 8, None).unwrap();
    let mut out = Vec::new();
    let pushed = id.push(3, b"a\r\nb\nc", 0, &mut out).unwrap();
    assert_eq!((out.as_slice(), pushed.units), (&b"a\r\nb\n"[..], 2));
    assert_eq!(id.held_from(), Some(3));
    assert_eq!(id.pcap_header(), None);
}

#[test]
fn pcap_header_once_seen() {
    let mut x = StreamTransform::new(&full_privacy(), 1, None).unwrap();
    assert_eq!(x.pcap_header(), None);
    let mut out = Vec::new();
    x.push(0, &capture(true, true, 1, &[]), 0, &mut out)
        .unwrap();
    assert!(out.is_empty());
    assert_eq!(x.pcap_header(), Some(pcap::output_header(65535, 1)));
}

/// Lines of every kind, good and bad.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"1322849924.408856||10.1.1.1||8.8.8.8||IN||a.org.||A||1.2.3.4||60||1".to_vec()),
        Just(b"1322849931.1||2001:db8::5||8.8.8.8||IN||b.org.||AAAA||::1||60||3".to_vec()),
        Just(b"1322849950.0||||8.8.8.8||IN||a.org.||A||1.2.3.4||60||2".to_vec()),
        Just(b"{\"secret\":1,\"src_ip\":\"10.1.1.1\",\"n\":[1,2]}".to_vec()),
        Just(b"{\"a\":\"user=joe\"}\r".to_vec()),
        Just(b"".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(line(), 0..12).prop_map(|ls| {
        let mut s = Vec::new();
        for l in ls {
            s.extend_from_slice(&l);
            s.push(b'\n');
        }
        s
    })
}

fn packets() -> impl Strategy<Value = Vec<u8>> {
    use crate::transform::packet::tests as pkt;
    let one = prop_oneof![
        Just(pkt::ether(
            0x0800,
            false,
            &pkt::ipv4([10, 1, 2, 3], [192, 0, 2, 1], 6, &pkt::tcp(|_| 0, b"hello"))
        )),
        Just(pkt::ether(
            0x0800,
            true,
            &pkt::ipv4([192, 0, 2, 1], [10, 9, 9, 9], 17, &[0; 12])
        )),
        proptest::collection::vec(any::<u8>(), 0..80),
    ];
    (
        proptest::collection::vec(one, 0..6),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(ps, be, ns)| {
            let refs: Vec<&[u8]> = ps.iter().map(|p| p.as_slice()).collect();
            capture(be, ns, 1, &refs)
        })
}

fn cut(data: &[u8], cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut v = Vec::new();
    let mut last = 0;
    for c in cuts.into_iter().chain([data.len()]) {
        v.push((last, c));
        last = c;
    }
    v
}

/// Output and counts of the stream pushed as frames cut at `cuts` (each frame numbered).
fn feed(x: &mut StreamTransform, data: &[u8], frames: &[(usize, usize)]) -> (Vec<u8>, Pushed) {
    let mut out = Vec::new();
    let mut p = Pushed::default();
    for (seq, (a, b)) in frames.iter().enumerate() {
        match x.push(seq as u64, &data[*a..*b], 0, &mut out) {
            Ok(q) => p.add(q),
            Err(_) => break,
        }
    }
    p.add(x.finish(&mut out));
    (out, p)
}

/// Any cutting gives the same output; resuming at `held_at` after frame `stop` gives the
/// rest of it exactly.
fn check(
    privacy: &Privacy,
    t: u8,
    ext: Option<&str>,
    data: &[u8],
    cuts: &[usize],
    stop: usize,
) -> Result<(), TestCaseError> {
    let mut whole = StreamTransform::new(privacy, t, ext).unwrap();
    let (want, want_p) = feed(&mut whole, data, &[(0, data.len())]);
    let frames = cut(data, cuts);
    let mut x = StreamTransform::new(privacy, t, ext).unwrap();
    let (got, got_p) = feed(&mut x, data, &frames);
    prop_assert_eq!(&got, &want);
    prop_assert_eq!(got_p, want_p);

    // crash after frame `stop`, resume in a new transform
    let stop = stop % frames.len();
    let mut x = StreamTransform::new(privacy, t, ext).unwrap();
    let mut out = Vec::new();
    for (seq, (a, b)) in frames[..=stop].iter().enumerate() {
        if x.push(seq as u64, &data[*a..*b], 0, &mut out).is_err() {
            return Ok(());
        }
    }
    let mut y = StreamTransform::new(privacy, t, ext).unwrap();
    if let Some(h) = x.pcap_input_header() {
        y.resume_pcap(&h).unwrap();
    }
    let from = x.held_at().unwrap_or(Position {
        seq: stop as u64 + 1,
        offset: 0,
    });
    for (seq, (a, b)) in frames.iter().enumerate().skip(from.seq as usize) {
        let (start, data) = if seq as u64 == from.seq {
            (from.offset, &data[a + from.offset..*b])
        } else {
            (0, &data[*a..*b])
        };
        if y.push_at(seq as u64, start, data, 0, &mut out).is_err() {
            return Ok(());
        }
    }
    y.finish(&mut out);
    prop_assert_eq!(out, want);
    Ok(())
}

proptest! {
    // each case runs several transforms four times (whole, cut, crashed, resumed)
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn lines_any_cutting(data in stream(), cuts in proptest::collection::vec(any::<usize>(), 0..8), stop in any::<usize>()) {
        let p = full_privacy();
        for (t, ext) in [(8, None), (6, None), (3, None), (254, Some("ja3-jl")), (4, None)] {
            check(&p, t, ext, &data, &cuts, stop)?;
        }
        check(&Privacy::default(), 8, None, &data, &cuts, stop)?;
    }

    #[test]
    fn pcap_any_cutting(data in packets(), cuts in proptest::collection::vec(any::<usize>(), 0..8), stop in any::<usize>(), truncate in any::<bool>()) {
        let mut p = full_privacy();
        if let Some(pc) = p.pcap.as_mut() {
            pc.truncate_payload = truncate;
        }
        check(&p, 1, None, &data, &cuts, stop)?;
        check(&Privacy::default(), 1, None, &data, &cuts, stop)?;
    }

    #[test]
    fn aggregation_any_cutting(data in stream(), cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let mut p = full_privacy();
        if let Some(d) = p.pdns.as_mut() {
            d.aggregate_secs = 30;
        }
        let mut whole = StreamTransform::new(&p, 8, None).unwrap();
        let (want, want_p) = feed(&mut whole, &data, &[(0, data.len())]);
        let mut x = StreamTransform::new(&p, 8, None).unwrap();
        let (got, got_p) = feed(&mut x, &data, &cut(&data, &cuts));
        prop_assert_eq!(got, want);
        prop_assert_eq!(got_p, want_p);
    }
}

#[test]
fn a_transform_can_move_between_threads() {
    fn send<T: Send + 'static>() {}
    send::<StreamTransform>();
}

/// Output and counts of a whole stream pushed in pieces of `step` bytes, as the forward
/// reader does (a failed push ends the stream, then `finish`).
fn totals(p: &Privacy, t: u8, input: &[u8], step: usize) -> (Vec<u8>, Pushed) {
    let mut x = StreamTransform::new(p, t, None).unwrap();
    let mut out = Vec::new();
    let mut total = Pushed::default();
    for (seq, c) in input.chunks(step).enumerate() {
        match x.push(seq as u64, c, 0, &mut out) {
            Ok(q) => total.add(q),
            Err(_) => break,
        }
    }
    total.add(x.finish(&mut out));
    (out, total)
}

/// Found by the `forward_transform` fuzz target: a pcap stream whose packet the address
/// rewriter refuses (an empty record of an unknown link type), then a record header over
/// the size limit. Pushed whole, the refused packet was counted in the push that failed
/// and lost with it; pushed byte by byte, it was counted. The counts no longer depend on
/// the cutting.
#[test]
fn a_failing_push_keeps_what_it_counted_before_the_failure() {
    let mut input = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    input.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
    input.extend_from_slice(&151u32.to_le_bytes());
    // an empty record (the rewriter drops it), then a header declaring 1.5 GB
    input.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    input.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x5b, 0x5b, 0, 0, 0, 0]);
    let p = full_privacy();
    let whole = totals(&p, 1, &input, input.len());
    assert_eq!(whole.1.dropped, 1, "{whole:?}");
    for step in [1, 7, 24, 40] {
        assert_eq!(totals(&p, 1, &input, step), whole, "step {step}");
    }
}
