//! Fuzz the TLS record layer, handshake reassembly and per-flow state (`d4-tls`): the input
//! is a limit selector byte then segments `[direction and length (2 bytes), bytes...]*`
//! fed to a `TlsFlow` as the two directions of one connection; the hello and Certificate
//! parsers and the fingerprints also get the raw input. Checks: no panic; the same segments
//! cut into 1-byte feeds give the same outcome; the end states (complete, not TLS, error)
//! are sticky; what is kept stays within the configured message limit.
#![no_main]

use d4_tls::fingerprint::{ja3, ja3s, ja4, ja4_r, Transport};
use d4_tls::flow::{FlowConfig, Peer, Progress, TlsFlow};
use d4_tls::hello::{
    parse_certificate, parse_certificate13, parse_client_hello, parse_server_hello,
};
use libfuzzer_sys::fuzz_target;

/// The segments of the input: (direction, bytes).
fn segments(mut rest: &[u8]) -> Vec<(Peer, &[u8])> {
    let mut out = Vec::new();
    while rest.len() >= 2 {
        let peer = if rest[0] & 1 == 0 { Peer::A } else { Peer::B };
        let len = (usize::from(rest[0] >> 1) | usize::from(rest[1]) << 7).min(rest.len() - 2);
        out.push((peer, &rest[2..2 + len]));
        rest = &rest[2 + len..];
    }
    out
}

fn outcome(f: &TlsFlow) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        f.client(),
        f.client_hello(),
        f.server_hello(),
        f.certificates(),
        f.version(),
        f.is_complete(),
        f.is_finished(),
    )
}

fuzz_target!(|data: &[u8]| {
    // The raw parsers and fingerprints on the whole input.
    if let Ok(h) = parse_client_hello(data) {
        let _ = (ja3(&h), ja4(&h, Transport::Tcp), ja4_r(&h, Transport::Quic));
    }
    if let Ok(h) = parse_server_hello(data) {
        let _ = (ja3s(&h), h.version(), h.is_hello_retry_request());
    }
    let _ = parse_certificate(data);
    let _ = parse_certificate13(data);

    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let max_message = [16usize, 100, 1000, 64 * 1024][usize::from(sel & 3)];
    let max_buffered = max_message + 4 - usize::from(sel >> 2 & 3) * 8;
    let cfg = FlowConfig {
        max_message,
        max_buffered: max_buffered.max(4),
    };
    let segs = segments(rest);

    let mut whole = TlsFlow::new(&cfg);
    let mut last = Progress::NeedMore;
    for (peer, bytes) in &segs {
        let p = whole.feed(*peer, bytes);
        // End states are sticky.
        match &last {
            Progress::NeedMore => {}
            end => assert_eq!(&p, end),
        }
        if p == Progress::Complete {
            assert!(whole.is_complete());
        }
        last = p;
    }
    let kept: usize = whole.certificates().iter().map(Vec::len).sum();
    assert!(kept <= max_message);

    let mut bytewise = TlsFlow::new(&cfg);
    for (peer, bytes) in &segs {
        for b in bytes.chunks(1) {
            bytewise.feed(*peer, b);
        }
    }
    assert_eq!(outcome(&whole), outcome(&bytewise));
});
