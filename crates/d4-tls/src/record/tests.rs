//! Unit tests of the record reader: message/record boundaries in every arrangement, limits,
//! and first bytes that are not TLS.

use super::*;

fn rec(content_type: u8, version: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![content_type];
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn msg(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![msg_type];
    v.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    v.extend_from_slice(body);
    v
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Msg(u8, Vec<u8>),
    Ccs,
    Alert,
    App,
    Hb,
    Enc,
    V2,
}

/// Feeds `chunks` and collects the events; the closure answers `answer(event)`.
fn run_with(
    cfg: RecordConfig,
    chunks: &[&[u8]],
    mut answer: impl FnMut(&Seen) -> Control,
) -> (Vec<Seen>, Result<(), RecordError>) {
    let mut r = RecordReader::new(cfg);
    let mut seen = Vec::new();
    let mut res = Ok(());
    for c in chunks {
        res = r.feed(c, |ev| {
            let s = match ev {
                Event::Handshake { msg_type, body } => Seen::Msg(msg_type, body.to_vec()),
                Event::ChangeCipherSpec => Seen::Ccs,
                Event::Alert => Seen::Alert,
                Event::ApplicationData => Seen::App,
                Event::Heartbeat => Seen::Hb,
                Event::EncryptedHandshake => Seen::Enc,
                Event::Sslv2ClientHello => Seen::V2,
            };
            let c = answer(&s);
            seen.push(s);
            c
        });
    }
    (seen, res)
}

fn run(chunks: &[&[u8]]) -> (Vec<Seen>, Result<(), RecordError>) {
    run_with(RecordConfig::default(), chunks, |_| Control::Continue)
}

#[test]
fn several_messages_in_one_record() {
    let mut payload = msg(2, &[1; 70]);
    payload.extend(msg(11, &[2; 300]));
    payload.extend(msg(14, &[]));
    let bytes = rec(22, 0x0303, &payload);
    let (seen, res) = run(&[&bytes]);
    assert_eq!(res, Ok(()));
    assert_eq!(
        seen,
        vec![
            Seen::Msg(2, vec![1; 70]),
            Seen::Msg(11, vec![2; 300]),
            Seen::Msg(14, vec![])
        ]
    );
}

#[test]
fn one_message_across_three_records() {
    let body: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let m = msg(11, &body);
    let mut bytes = rec(22, 0x0303, &m[..2]);
    bytes.extend(rec(22, 0x0303, &m[2..500]));
    bytes.extend(rec(22, 0x0303, &m[500..]));
    let (seen, res) = run(&[&bytes]);
    assert_eq!(res, Ok(()));
    assert_eq!(seen, vec![Seen::Msg(11, body)]);
}

#[test]
fn split_messages_and_whole_ones_mixed() {
    // Record 1: msg A whole + first half of B; record 2: rest of B + C whole + start of D;
    // record 3: rest of D.
    let a = msg(1, &[9; 10]);
    let b = msg(2, &[8; 40]);
    let c = msg(3, &[7; 5]);
    let d = msg(4, &[6; 20]);
    let mut r1 = a.clone();
    r1.extend(&b[..17]);
    let mut r2 = b[17..].to_vec();
    r2.extend(&c);
    r2.extend(&d[..3]);
    let r3 = d[3..].to_vec();
    let mut bytes = rec(22, 0x0301, &r1);
    bytes.extend(rec(22, 0x0301, &r2));
    bytes.extend(rec(22, 0x0301, &r3));
    let want = vec![
        Seen::Msg(1, vec![9; 10]),
        Seen::Msg(2, vec![8; 40]),
        Seen::Msg(3, vec![7; 5]),
        Seen::Msg(4, vec![6; 20]),
    ];
    assert_eq!(run(&[&bytes]), (want.clone(), Ok(())));
    // The same, one byte per feed call.
    let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(run(&chunks), (want.clone(), Ok(())));
    // And every two-way split.
    for cut in 0..bytes.len() {
        assert_eq!(run(&[&bytes[..cut], &bytes[cut..]]), (want.clone(), Ok(())));
    }
}

#[test]
fn record_split_over_one_byte_feeds() {
    let mut payload = msg(2, &[1; 70]);
    payload.extend(msg(11, &[2; 300]));
    let bytes = rec(22, 0x0303, &payload);
    let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
    let (seen, res) = run(&chunks);
    assert_eq!(res, Ok(()));
    assert_eq!(
        seen,
        vec![Seen::Msg(2, vec![1; 70]), Seen::Msg(11, vec![2; 300])]
    );
}

#[test]
fn zero_length_records() {
    let m = msg(1, &[5; 8]);
    let mut bytes = rec(22, 0x0303, &[]);
    bytes.extend(rec(22, 0x0303, &m[..3]));
    bytes.extend(rec(22, 0x0303, &[]));
    bytes.extend(rec(23, 0x0303, &[]));
    bytes.extend(rec(22, 0x0303, &m[3..]));
    bytes.extend(rec(21, 0x0303, &[]));
    let (seen, res) = run(&[&bytes]);
    assert_eq!(res, Ok(()));
    assert_eq!(seen, vec![Seen::App, Seen::Msg(1, vec![5; 8]), Seen::Alert]);
    let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(run(&chunks).0, seen);
}

#[test]
fn zero_length_handshake_message() {
    // A message with an empty body (ServerHelloDone) at the very end of a record.
    let bytes = rec(22, 0x0303, &msg(14, &[]));
    assert_eq!(run(&[&bytes]), (vec![Seen::Msg(14, vec![])], Ok(())));
}

#[test]
fn every_record_version_is_accepted() {
    for v in 0x0300..=0x0304u16 {
        let bytes = rec(22, v, &msg(1, &[1, 2, 3]));
        assert_eq!(
            run(&[&bytes]),
            (vec![Seen::Msg(1, vec![1, 2, 3])], Ok(())),
            "{v:#x}"
        );
    }
}

#[test]
fn other_record_types_are_reported_and_skipped() {
    let mut bytes = rec(20, 0x0303, &[1]);
    bytes.extend(rec(21, 0x0303, &[2, 40]));
    bytes.extend(rec(23, 0x0303, &[0xff; 1000]));
    bytes.extend(rec(24, 0x0303, &[1, 0, 0]));
    bytes.extend(rec(22, 0x0303, &msg(20, &[0; 12])));
    let (seen, res) = run(&[&bytes]);
    assert_eq!(res, Ok(()));
    assert_eq!(
        seen,
        vec![
            Seen::Ccs,
            Seen::Alert,
            Seen::App,
            Seen::Hb,
            Seen::Msg(20, vec![0; 12])
        ]
    );
}

#[test]
fn encrypted_after_change_cipher_spec() {
    let mut bytes = rec(22, 0x0303, &msg(2, &[1; 4]));
    bytes.extend(rec(20, 0x0303, &[1]));
    // Encrypted Finished: looks like garbage with a huge "length".
    bytes.extend(rec(22, 0x0303, &[0xff; 40]));
    let (seen, res) = run_with(RecordConfig::default(), &[&bytes], |s| {
        if *s == Seen::Ccs {
            Control::Encrypted
        } else {
            Control::Continue
        }
    });
    assert_eq!(res, Ok(()));
    assert_eq!(seen, vec![Seen::Msg(2, vec![1; 4]), Seen::Ccs, Seen::Enc]);
}

#[test]
fn stop_ignores_the_rest() {
    let mut payload = msg(2, &[1; 4]);
    payload.extend(msg(11, &[2; 4]));
    let mut bytes = rec(22, 0x0303, &payload);
    bytes.extend(b"garbage that is not a record");
    let (seen, res) = run_with(RecordConfig::default(), &[&bytes, b"more"], |_| {
        Control::Stop
    });
    assert_eq!(res, Ok(()));
    assert_eq!(seen, vec![Seen::Msg(2, vec![1; 4])]);
}

#[test]
fn not_tls_first_bytes() {
    for first in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"SSH-2.0-OpenSSH",
        &[0x19],
        &[0x00],
    ] {
        let mut r = RecordReader::new(RecordConfig::default());
        let res = r.feed(first, |_| Control::Continue);
        assert!(matches!(res, Err(RecordError::NotTls(_))), "{first:?}");
        assert_eq!(r.buffered(), 0);
        assert!(r.is_done());
    }
    // Decided from the first byte alone.
    let mut r = RecordReader::new(RecordConfig::default());
    assert_eq!(
        r.feed(b"G", |_| Control::Continue),
        Err(RecordError::NotTls(b"G".to_vec()))
    );
    // Plausible type but wrong major version, decided at the second byte.
    let mut r = RecordReader::new(RecordConfig::default());
    assert_eq!(r.feed(&[22], |_| Control::Continue), Ok(()));
    assert_eq!(
        r.feed(&[2], |_| Control::Continue),
        Err(RecordError::NotTls(vec![22, 2]))
    );
    // Minor version above TLS 1.3.
    let mut r = RecordReader::new(RecordConfig::default());
    assert_eq!(
        r.feed(&[22, 3, 9], |_| Control::Continue),
        Err(RecordError::NotTls(vec![22, 3, 9]))
    );
}

#[test]
fn bad_later_header_is_an_error() {
    let mut bytes = rec(22, 0x0303, &msg(1, &[1]));
    bytes.extend([0x47, 0x45, 0x54, 0x20, 0x2f]);
    let (seen, res) = run(&[&bytes]);
    assert_eq!(seen, vec![Seen::Msg(1, vec![1])]);
    assert_eq!(
        res,
        Err(RecordError::BadHeader {
            content_type: 0x47,
            version: 0x4554
        })
    );
}

#[test]
fn record_longer_than_tls_allows() {
    let bytes = [22, 3, 3, 0x48, 0x01];
    assert_eq!(run(&[&bytes]).1, Err(RecordError::RecordTooLong(0x4801)));
}

#[test]
fn oversize_message_is_an_error_not_growth() {
    let cfg = RecordConfig {
        max_message: 1000,
        max_buffered: 1004,
    };
    // Declares 1001 bytes: refused at the header, before the body arrives.
    let mut bytes = rec(22, 0x0303, &[11, 0, 0x03, 0xe9]);
    bytes.extend(rec(22, 0x0303, &[0; 100]));
    let mut r = RecordReader::new(cfg);
    let res = r.feed(&bytes, |_| Control::Continue);
    assert_eq!(
        res,
        Err(RecordError::MessageTooLarge {
            len: 1001,
            max: 1000
        })
    );
    assert_eq!(r.buffered(), 0);
    assert!(r.is_done());
    // The error stays.
    assert!(r.feed(&[22], |_| Control::Continue).is_err());
    // Exactly at the limit is fine, split across records.
    let m = msg(11, &[3; 1000]);
    let mut bytes = Vec::new();
    for part in m.chunks(300) {
        bytes.extend(rec(22, 0x0303, part));
    }
    let (seen, res) = run_with(cfg, &[&bytes], |_| Control::Continue);
    assert_eq!(res, Ok(()));
    assert_eq!(seen, vec![Seen::Msg(11, vec![3; 1000])]);
}

#[test]
fn buffer_bound_smaller_than_a_message() {
    let cfg = RecordConfig {
        max_message: 1000,
        max_buffered: 500,
    };
    let m = msg(11, &[3; 800]);
    let mut bytes = rec(22, 0x0303, &m[..400]);
    bytes.extend(rec(22, 0x0303, &m[400..]));
    let (seen, res) = run_with(cfg, &[&bytes], |_| Control::Continue);
    assert!(seen.is_empty());
    assert_eq!(res, Err(RecordError::BufferFull(500)));
    // Refused too when it arrives whole in one feed (needing no buffering): the outcome
    // never depends on how the bytes were cut.
    let (seen, res) = run_with(cfg, &[&rec(22, 0x0303, &m)], |_| Control::Continue);
    assert!(seen.is_empty());
    assert_eq!(res, Err(RecordError::BufferFull(500)));
}

#[test]
fn sslv2_compatible_client_hello() {
    // 2-byte header (high bit set), msg type 1, version 0x0301, then lengths and data.
    let mut v2 = vec![
        0x80, 0x1f, 0x01, 0x03, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00, 0x10,
    ];
    v2.extend([0x00, 0x00, 0x04, 0x01, 0x00, 0x80]);
    v2.extend([0xaa; 16]);
    assert_eq!(v2.len(), 2 + 0x1f);
    // Followed by an ordinary record (say, an alert).
    v2.extend(rec(21, 0x0301, &[1, 0]));
    assert_eq!(run(&[&v2]), (vec![Seen::V2, Seen::Alert], Ok(())));
    let chunks: Vec<&[u8]> = v2.chunks(1).collect();
    assert_eq!(run(&chunks), (vec![Seen::V2, Seen::Alert], Ok(())));
    // High bit set but not a hello.
    assert!(matches!(
        run(&[&[0x80, 0x1f, 0x02]]).1,
        Err(RecordError::NotTls(_))
    ));
    assert!(matches!(
        run(&[&[0x80, 0x02]]).1,
        Err(RecordError::NotTls(_))
    ));
}
