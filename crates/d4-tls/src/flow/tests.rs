//! Unit tests of the per-connection state: roles, completion rules, limits, sticky ends.

use super::*;
use crate::hello::tests::{
    certificate_body, client_hello_body, ext_alpn, ext_sni, ext_versions, msg, rec,
    server_hello_body,
};
use crate::hello::HELLO_RETRY_REQUEST_RANDOM;

fn ch_record() -> Vec<u8> {
    let body = client_hello_body(
        0x0303,
        &[0x1301, 0xc02f],
        Some(&[ext_sni("host.example"), ext_alpn(&[b"h2"])]),
    );
    rec(22, 0x0301, &msg(1, &body))
}

fn sh12() -> Vec<u8> {
    msg(2, &server_hello_body(0x0303, 0xc02f, &[(0xff01, vec![0])]))
}

fn sh13() -> Vec<u8> {
    msg(
        2,
        &server_hello_body(0x0303, 0x1301, &[(43, vec![3, 4]), (51, vec![0; 4])]),
    )
}

fn server_flight_12() -> Vec<u8> {
    let mut p = sh12();
    p.extend(msg(11, &certificate_body(&[b"leaf-der", b"ca-der"])));
    p.extend(msg(12, &[1; 20]));
    p.extend(msg(14, &[]));
    rec(22, 0x0303, &p)
}

fn cfg() -> FlowConfig {
    FlowConfig::default()
}

#[test]
fn full_tls12_handshake_client_first() {
    let mut f = TlsFlow::new(&cfg());
    assert_eq!(f.feed(Peer::A, &ch_record()), Progress::NeedMore);
    assert_eq!(f.client(), Some(Peer::A));
    assert_eq!(
        f.client_hello().unwrap().server_name.as_deref(),
        Some("host.example")
    );
    assert_eq!(f.feed(Peer::B, &server_flight_12()), Progress::Complete);
    assert!(f.is_complete());
    assert_eq!(
        f.certificates(),
        &[b"leaf-der".to_vec(), b"ca-der".to_vec()]
    );
    assert_eq!(f.version(), Some(0x0303));
    assert_eq!(f.server_hello().unwrap().cipher, 0xc02f);
    // Ignored from now on, whatever comes.
    assert_eq!(f.feed(Peer::A, b"garbage"), Progress::Complete);
}

#[test]
fn server_bytes_first_still_finds_the_client() {
    for (client, server) in [(Peer::A, Peer::B), (Peer::B, Peer::A)] {
        let mut f = TlsFlow::new(&cfg());
        assert_eq!(f.feed(server, &server_flight_12()), Progress::NeedMore);
        // Known from the ServerHello alone, before any ClientHello.
        assert_eq!(f.client(), Some(client));
        assert!(f.client_hello().is_none());
        assert_eq!(f.feed(client, &ch_record()), Progress::Complete);
        assert_eq!(f.client(), Some(client));
        assert_eq!(f.certificates().len(), 2);
    }
}

#[test]
fn one_byte_feeds_interleaved() {
    let mut f = TlsFlow::new(&cfg());
    let c = ch_record();
    let s = server_flight_12();
    let mut last = Progress::NeedMore;
    for i in 0..c.len().max(s.len()) {
        if let Some(b) = s.get(i) {
            last = f.feed(Peer::B, &[*b]);
        }
        if let Some(b) = c.get(i) {
            last = f.feed(Peer::A, &[*b]);
        }
    }
    assert_eq!(last, Progress::Complete);
    assert_eq!(f.client(), Some(Peer::A));
    assert_eq!(
        f.certificates(),
        &[b"leaf-der".to_vec(), b"ca-der".to_vec()]
    );
}

#[test]
fn certificate_split_across_records() {
    let mut f = TlsFlow::new(&cfg());
    f.feed(Peer::A, &ch_record());
    let big = vec![0x30; 5000];
    let mut p = sh12();
    p.extend(msg(11, &certificate_body(&[&big, b"ca"])));
    let mut bytes = Vec::new();
    for part in p.chunks(1500) {
        bytes.extend(rec(22, 0x0303, part));
    }
    let (head, tail) = bytes.split_at(bytes.len() - 1);
    assert_eq!(f.feed(Peer::B, head), Progress::NeedMore);
    assert_eq!(f.feed(Peer::B, tail), Progress::Complete);
    assert_eq!(f.certificates(), &[big, b"ca".to_vec()]);
}

#[test]
fn tls13_completes_without_certificates() {
    let mut f = TlsFlow::new(&cfg());
    f.feed(Peer::A, &ch_record());
    let mut s = rec(22, 0x0303, &sh13());
    s.extend(rec(20, 0x0303, &[1]));
    s.extend(rec(23, 0x0303, &[0xee; 300]));
    assert_eq!(f.feed(Peer::B, &s), Progress::Complete);
    assert_eq!(f.version(), Some(0x0304));
    assert!(f.certificates().is_empty());
}

#[test]
fn hello_retry_request_is_not_the_server_hello() {
    let mut f = TlsFlow::new(&cfg());
    f.feed(Peer::A, &ch_record());
    let mut hrr = server_hello_body(0x0303, 0x1302, &[(43, vec![3, 4])]);
    hrr[2..34].copy_from_slice(&HELLO_RETRY_REQUEST_RANDOM);
    let mut s = rec(22, 0x0303, &msg(2, &hrr));
    s.extend(rec(20, 0x0303, &[1]));
    assert_eq!(f.feed(Peer::B, &s), Progress::NeedMore);
    assert!(f.server_hello().is_none());
    // The client's second hello (after its dummy CCS) is ignored: the first one stays.
    let mut c2 = rec(20, 0x0303, &[1]);
    c2.extend(rec(
        22,
        0x0303,
        &msg(1, &client_hello_body(0x0303, &[0x1302], Some(&[]))),
    ));
    assert_eq!(f.feed(Peer::A, &c2), Progress::NeedMore);
    assert_eq!(f.client_hello().unwrap().ciphers, vec![0x1301, 0xc02f]);
    assert_eq!(
        f.feed(Peer::B, &rec(22, 0x0303, &sh13())),
        Progress::Complete
    );
    assert_eq!(f.server_hello().unwrap().cipher, 0x1301);
}

#[test]
fn abbreviated_handshake_completes_at_change_cipher_spec() {
    let mut f = TlsFlow::new(&cfg());
    f.feed(Peer::A, &ch_record());
    let mut s = rec(22, 0x0303, &sh12());
    assert_eq!(f.feed(Peer::B, &s), Progress::NeedMore);
    s = rec(20, 0x0303, &[1]);
    // Encrypted Finished after it: never parsed.
    s.extend(rec(22, 0x0303, &[0xff; 40]));
    assert_eq!(f.feed(Peer::B, &s), Progress::Complete);
    assert!(f.certificates().is_empty());
}

#[test]
fn anonymous_server_completes_at_server_key_exchange() {
    let mut f = TlsFlow::new(&cfg());
    f.feed(Peer::A, &ch_record());
    let mut p = sh12();
    p.extend(msg(12, &[1; 20]));
    assert_eq!(f.feed(Peer::B, &rec(22, 0x0303, &p)), Progress::Complete);
    assert!(f.certificates().is_empty());
}

#[test]
fn alert_completes() {
    let mut f = TlsFlow::new(&cfg());
    f.feed(Peer::A, &ch_record());
    assert_eq!(
        f.feed(Peer::B, &rec(21, 0x0303, &[2, 40])),
        Progress::Complete
    );
    assert!(f.server_hello().is_none());
    // An alert before the ClientHello was seen waits for it.
    let mut f = TlsFlow::new(&cfg());
    assert_eq!(
        f.feed(Peer::B, &rec(21, 0x0303, &[2, 40])),
        Progress::NeedMore
    );
    assert_eq!(f.feed(Peer::A, &ch_record()), Progress::Complete);
}

#[test]
fn not_tls_at_once_and_for_good() {
    let mut f = TlsFlow::new(&cfg());
    assert_eq!(f.feed(Peer::A, b"GET / HTTP/1.1\r\n"), Progress::NotTls);
    assert_eq!(f.feed(Peer::B, &server_flight_12()), Progress::NotTls);
    assert!(f.is_finished());
    let mut f = TlsFlow::new(&cfg());
    assert_eq!(f.feed(Peer::B, b"S"), Progress::NotTls);
}

#[test]
fn oversize_message_is_an_error_and_keeps_what_was_learnt() {
    let small = FlowConfig {
        max_message: 1000,
        max_buffered: 1004,
    };
    let mut f = TlsFlow::new(&small);
    f.feed(Peer::A, &ch_record());
    let mut p = sh12();
    p.extend(msg(11, &certificate_body(&[&[0; 2000]])));
    let mut bytes = Vec::new();
    for part in p.chunks(500) {
        bytes.extend(rec(22, 0x0303, part));
    }
    let e = TlsError::Record(RecordError::MessageTooLarge {
        len: 2006,
        max: 1000,
    });
    assert_eq!(f.feed(Peer::B, &bytes), Progress::Error(e.clone()));
    assert_eq!(f.feed(Peer::A, b"x"), Progress::Error(e));
    assert!(f.client_hello().is_some());
    assert!(f.server_hello().is_some());
    assert!(!f.is_complete());
}

#[test]
fn malformed_hello_is_an_error() {
    let mut f = TlsFlow::new(&cfg());
    let bad = rec(22, 0x0301, &msg(1, &[3, 3, 0]));
    assert!(matches!(
        f.feed(Peer::A, &bad),
        Progress::Error(TlsError::Hello(_))
    ));
}

#[test]
fn sslv2_client_hello_then_tls_server() {
    let mut f = TlsFlow::new(&cfg());
    let mut v2 = vec![
        0x80, 0x1f, 0x01, 0x03, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00, 0x10,
    ];
    v2.extend([0x00, 0x00, 0x04, 0x01, 0x00, 0x80]);
    v2.extend([0xaa; 16]);
    assert_eq!(f.feed(Peer::B, &v2), Progress::NeedMore);
    assert_eq!(f.client(), Some(Peer::B));
    assert_eq!(f.feed(Peer::A, &server_flight_12()), Progress::Complete);
    assert!(f.sslv2_client_hello());
    assert!(f.client_hello().is_none());
    assert_eq!(f.certificates().len(), 2);
}

#[test]
fn wrong_role_messages_are_ignored() {
    let mut f = TlsFlow::new(&cfg());
    f.feed(Peer::A, &ch_record());
    // A ServerHello from the client and a ClientHello from the server change nothing.
    assert_eq!(
        f.feed(Peer::A, &rec(22, 0x0303, &sh12())),
        Progress::NeedMore
    );
    assert!(f.server_hello().is_none());
    assert_eq!(f.feed(Peer::B, &ch_record()), Progress::NeedMore);
    assert_eq!(f.client(), Some(Peer::A));
    // A Certificate before the ServerHello is not taken.
    let cert = rec(22, 0x0303, &msg(11, &certificate_body(&[b"x"])));
    assert_eq!(f.feed(Peer::B, &cert), Progress::NeedMore);
    assert!(f.certificates().is_empty());
}

#[test]
fn tls13_version_from_drafts_and_supported_versions_extension() {
    let mut f = TlsFlow::new(&cfg());
    f.feed(
        Peer::A,
        &rec(
            22,
            0x0301,
            &msg(
                1,
                &client_hello_body(0x0303, &[1], Some(&[ext_versions(&[0x7f1c])])),
            ),
        ),
    );
    let sh = msg(
        2,
        &server_hello_body(0x0303, 0x1301, &[(43, vec![0x7f, 0x1c])]),
    );
    assert_eq!(f.feed(Peer::B, &rec(22, 0x0303, &sh)), Progress::Complete);
    assert_eq!(f.version(), Some(0x7f1c));
}

#[test]
fn bytes_after_completion_in_the_same_feed_are_not_read() {
    // The same bytes in one feed or byte by byte: garbage after the Certificate does not
    // turn a complete handshake into an error.
    let mut s = server_flight_12();
    s.extend(b"not a record at all");
    let mut f = TlsFlow::new(&cfg());
    f.feed(Peer::A, &ch_record());
    assert_eq!(f.feed(Peer::B, &s), Progress::Complete);
    let mut f = TlsFlow::new(&cfg());
    f.feed(Peer::A, &ch_record());
    let mut last = Progress::NeedMore;
    for b in &s {
        last = f.feed(Peer::B, &[*b]);
    }
    assert_eq!(last, Progress::Complete);
}

#[test]
fn a_flow_is_small() {
    // One per TCP flow carrying TLS: keep it a few hundred bytes before any allocation.
    assert!(
        std::mem::size_of::<TlsFlow>() <= 320,
        "{}",
        std::mem::size_of::<TlsFlow>()
    );
}
