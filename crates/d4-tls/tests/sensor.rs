//! The sensor as a whole (sans-IO): frames in, sessions out, state within its limits.
//! Captures come from `d4_testkit::tlsgen` (real handshakes, independent expectations).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use d4_packet::LinkType;
use d4_testkit::tlsgen::{
    self, hello::ServerHelloMsg, CaptureSpec, HandshakeSpec, KeyKind, Stack, Transcript, Version,
};
use d4_tls::fingerprint::{self, Transport};
use d4_tls::quic::InitialBuilder;
use d4_tls::sensor::{Sensor, SensorConfig};
use d4_tls::session::Session;

fn spec(client: &str, server: &str, seed: u64) -> CaptureSpec {
    CaptureSpec {
        ipv6: false,
        vlan: None,
        client: client.parse().unwrap(),
        server: server.parse().unwrap(),
        seed,
        max_segment: 1400,
        reorder: false,
        retransmit: false,
        start_mid_flow: false,
        fin: false,
        start_ts_us: 1_700_000_000_000_000 + seed * 1000,
    }
}

fn run(sensor: &mut Sensor, frames: &[(u64, Vec<u8>)], out: &mut Vec<Session>) {
    for (ts, f) in frames {
        sensor.packet(ts * 1000, LinkType::Ethernet, f, out);
    }
}

/// 100,000 half-open flows: 50,000 SYNs that never go further, 50,000 that start a
/// ClientHello and never finish it. The flow table and both buffers stay within their
/// limits, and every flow is accounted for.
#[test]
fn half_open_flows_stay_within_the_limits() {
    let mut cfg = SensorConfig::default();
    cfg.reassembly.max_flows = 10_000;
    cfg.reassembly.max_total_buffer = 1 << 20;
    let mut sensor = Sensor::new(cfg);
    // a ClientHello record cut after 60 bytes: the TLS layer holds it, waiting for more
    let t = tlsgen::handshake(&HandshakeSpec::new(
        Stack::Rustls,
        Version::Tls12,
        KeyKind::EcdsaP256,
    ))
    .unwrap();
    let partial = Transcript {
        writes: vec![(true, t.client_hello_record[..60].to_vec())],
        cert_chain_der: vec![],
        client_hello_record: vec![],
    };
    let mut out = Vec::new();
    let mut max_open = 0;
    for i in 0..100_000u64 {
        let client = format!(
            "10.{}.{}.{}:{}",
            i >> 16,
            (i >> 8) & 255,
            i & 255,
            1024 + i % 60_000
        );
        let c = spec(&client, "192.0.2.1:443", i);
        let frames = tlsgen::tcp_frames(&partial, &c);
        if i % 2 == 0 {
            run(&mut sensor, &frames[..1], &mut out); // the SYN only
        } else {
            run(&mut sensor, &frames, &mut out);
        }
        max_open = max_open.max(sensor.open_flows());
    }
    let s = sensor.stats();
    assert!(out.is_empty(), "no hello was ever complete");
    assert!(max_open <= 10_000, "{max_open} TLS flows held");
    assert!(sensor.open_flows() <= 10_000);
    let r = &s.reassembly;
    assert_eq!(r["flows_created"], 100_000);
    assert_eq!(r["flows_ended_evicted"], 90_000, "{r}");
    assert_eq!(s.tls_flows, 50_000);
    // every evicted flow that had started TLS was reported as without a hello
    assert_eq!(s.flows_without_hello, 45_000, "{s:?}");
    sensor.finish(&mut out);
    assert!(out.is_empty());
    assert_eq!(sensor.open_flows(), 0);
    assert_eq!(sensor.stats().flows_without_hello, 50_000);
}

/// A flow whose first bytes are not TLS holds nothing: dropped at its first data segment,
/// its later segments only counted.
#[test]
fn a_flow_that_is_not_tls_is_dropped_at_once() {
    let http = Transcript {
        writes: vec![
            (true, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
            (false, vec![b'x'; 5000]),
            (true, b"GET /again HTTP/1.1\r\n\r\n".to_vec()),
        ],
        cert_chain_der: vec![],
        client_hello_record: vec![],
    };
    let c = CaptureSpec {
        fin: true,
        max_segment: 500,
        ..spec("10.0.0.1:40000", "192.0.2.1:80", 1)
    };
    let frames = tlsgen::tcp_frames(&http, &c);
    let mut sensor = Sensor::new(SensorConfig::default());
    let mut out = Vec::new();
    // SYN, SYN/ACK, ACK, then the request
    run(&mut sensor, &frames[..4], &mut out);
    assert_eq!(sensor.open_flows(), 0);
    assert_eq!(sensor.stats().not_tls_flows, 1);
    run(&mut sensor, &frames[4..], &mut out);
    let s = sensor.stats();
    assert!(out.is_empty());
    assert_eq!(s.tls_flows, 0);
    assert!(
        s.reassembly["segments_ignored"].as_u64().unwrap() >= 10,
        "{}",
        s.reassembly
    );
    assert_eq!(
        s.reassembly["bytes_delivered"], 27,
        "only the first request was read"
    );
}

/// The client is whoever sent the ClientHello, even when the server's packets come first in
/// the capture and the capture starts mid-flow; the record is the one of the handshake.
#[test]
fn the_client_is_who_sent_the_client_hello() {
    let t = tlsgen::handshake(&HandshakeSpec {
        chain: true,
        sni: Some("order.test".into()),
        ..HandshakeSpec::new(Stack::OpenSsl, Version::Tls12, KeyKind::Rsa2048)
    })
    .unwrap();
    let e = tlsgen::expected(&t);
    let c = CaptureSpec {
        start_mid_flow: true,
        ..spec("10.0.0.9:50000", "192.0.2.9:8443", 3)
    };
    let mut frames = tlsgen::tcp_frames(&t, &c);
    // the server's first data segment moves to the front of the capture
    let server_ip = [192u8, 0, 2, 9];
    let i = frames
        .iter()
        .position(|(_, f)| f.len() > 60 && f[26..30] == server_ip)
        .unwrap();
    let first = frames.remove(i);
    frames.insert(0, first);
    let mut sensor = Sensor::new(SensorConfig::default());
    let mut out = Vec::new();
    run(&mut sensor, &frames, &mut out);
    sensor.finish(&mut out);
    assert_eq!(out.len(), 1);
    let s = &out[0];
    assert_eq!(s.client, "10.0.0.9:50000".parse::<SocketAddr>().unwrap());
    assert_eq!(s.server, "192.0.2.9:8443".parse::<SocketAddr>().unwrap());
    assert!(s.complete);
    let ch = s.client_hello.as_ref().unwrap();
    assert_eq!(fingerprint::ja3(ch), e.ja3);
    assert_eq!(fingerprint::ja4(ch, Transport::Tcp), e.ja4);
    assert_eq!(s.certificates, t.cert_chain_der);
}

/// QUIC: a retransmitted client Initial does not make a second session, and the server's
/// Initial (keyed by the client's original DCID) adds the ServerHello.
#[test]
fn quic_sessions_join_the_server_hello_and_ignore_retransmissions() {
    let q = tlsgen::quic_initials(&tlsgen::QuicSpec::new()).unwrap();
    let spec = tlsgen::QuicSpec::new();
    let client: SocketAddr = "10.9.0.1:50000".parse().unwrap();
    let server: SocketAddr = "192.0.2.99:443".parse().unwrap();
    let server_initial = server_initial(&spec);
    let mut frames = tlsgen::udp_frames(&q.datagrams, client, server, None, 1_700_000_000_000_000);
    // the client retransmits its first Initial, then the server answers
    frames.extend(tlsgen::udp_frames(
        &q.datagrams,
        client,
        server,
        None,
        1_700_000_000_100_000,
    ));
    frames.extend(tlsgen::udp_frames(
        &[server_initial],
        server,
        client,
        None,
        1_700_000_000_200_000,
    ));
    let mut sensor = Sensor::new(SensorConfig::default());
    let mut out = Vec::new();
    run(&mut sensor, &frames, &mut out);
    sensor.finish(&mut out);
    assert_eq!(out.len(), 1, "one session");
    let s = &out[0];
    assert_eq!((s.client, s.server), (client, server));
    assert_eq!(s.transport, Transport::Quic);
    let e = tlsgen::expected_quic(&q.client_hello).unwrap();
    assert_eq!(
        fingerprint::ja4(s.client_hello.as_ref().unwrap(), Transport::Quic),
        e.ja4
    );
    let got_sh = s
        .server_hello
        .as_ref()
        .expect("the server's Initial was joined");
    assert_eq!(got_sh.cipher, 0x1301);
    assert_eq!(s.version, Some(0x0304));
    assert_eq!(fingerprint::ja3s(got_sh), "771,4865,43-51");
    let st = sensor.stats();
    assert_eq!(st.quic["client_hellos"], 1);
    assert_eq!(st.quic["server_hellos"], 1);
    assert!(
        st.quic_after_session == 0,
        "the retransmission came before the session went out"
    );
}

/// A server Initial (with its ServerHello) for the client Initials of `spec`.
fn server_initial(spec: &tlsgen::QuicSpec) -> Vec<u8> {
    let sh = ServerHelloMsg::new(
        0x0303,
        0x1301,
        vec![
            (43, vec![0x03, 0x04]),
            (
                51,
                vec![0, 29, 0, 32].into_iter().chain([9u8; 32]).collect(),
            ),
        ],
    );
    let body = sh.body();
    let mut msg = vec![2u8, 0, (body.len() >> 8) as u8, body.len() as u8];
    msg.extend_from_slice(&body);
    let crypto = [(0u64, msg.as_slice())];
    InitialBuilder {
        original_dcid: &spec.dcid,
        dcid: &spec.scid,
        scid: &[0xaa, 0xbb, 0xcc, 0xdd],
        token: &[],
        is_server: true,
        packet_number: 0,
        pn_len: 2,
        prefix_frames: &[],
        crypto: &crypto,
        pad_to: 0,
    }
    .build()
}

/// Review finding: a lost segment in the server's flight used to give two records for one
/// connection (the second dated 1970) and count the flow as TLS and not TLS at once.
#[test]
fn a_gap_gives_one_partial_record_with_the_right_time() {
    let t = tlsgen::handshake(&HandshakeSpec {
        chain: true,
        ..HandshakeSpec::new(Stack::OpenSsl, Version::Tls12, KeyKind::Rsa2048)
    })
    .unwrap();
    let c = CaptureSpec {
        max_segment: 300,
        fin: true,
        ..spec("10.0.0.5:40005", "192.0.2.5:443", 5)
    };
    let mut frames = tlsgen::tcp_frames(&t, &c);
    // drop the server's second data segment (inside its certificate chain)
    let server_ip = [192u8, 0, 2, 5];
    let data: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, (_, f))| f.len() > 80 && f[26..30] == server_ip)
        .map(|(i, _)| i)
        .collect();
    frames.remove(data[1]);
    let mut sensor = Sensor::new(SensorConfig::default());
    let mut out = Vec::new();
    run(&mut sensor, &frames, &mut out);
    sensor.finish(&mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    let s = &out[0];
    assert!(!s.complete);
    assert!(s.client_hello.is_some() && s.server_hello.is_some());
    assert!(
        s.ts_ns >= c.start_ts_us * 1000,
        "capture time, not 1970: {}",
        s.ts_ns
    );
    let st = sensor.stats();
    assert_eq!(
        (st.tls_flows, st.not_tls_flows, st.tls_gaps),
        (1, 0, 1),
        "{st:?}"
    );
    assert_eq!(st.flows_without_hello, 0);
}

/// Review finding: handshake bytes held by the TLS layer were outside every limit.
#[test]
fn handshake_buffers_of_all_flows_stay_within_max_tls_buffer() {
    let mut sensor = Sensor::new(SensorConfig {
        max_tls_buffer: 1 << 20,
        ..SensorConfig::default()
    });
    // a ClientHello announcing 60,000 bytes, of which 30,000 are sent in two records
    let mut msg = vec![0x01, 0x00, 0xea, 0x5c];
    msg.resize(30_000, 0x11);
    let mut hello = Vec::new();
    for part in msg.chunks(15_000) {
        hello.extend_from_slice(&[0x16, 0x03, 0x01, (part.len() >> 8) as u8, part.len() as u8]);
        hello.extend_from_slice(part);
    }
    let t = Transcript {
        writes: vec![(true, hello)],
        cert_chain_der: vec![],
        client_hello_record: vec![],
    };
    let mut out = Vec::new();
    for i in 0..200u64 {
        let c = spec(
            &format!("10.3.0.{}:{}", i % 250, 20_000 + i),
            "192.0.2.3:443",
            i,
        );
        run(&mut sensor, &tlsgen::tcp_frames(&t, &c), &mut out);
        let held = sensor.stats().tls_buffered;
        assert!(held <= (1 << 20) + 64 * 1024, "{held} bytes held");
    }
    let st = sensor.stats();
    assert!(st.tls_buffer_limit >= 150, "{st:?}");
    assert_eq!(st.tls_flows, 200);
}

/// Review finding: a second QUIC connection from the same client socket was never
/// fingerprinted while the first one's marker lived.
#[test]
fn a_second_quic_connection_on_the_same_addresses_is_followed() {
    let first = tlsgen::QuicSpec {
        sni: Some("first.example".into()),
        ..tlsgen::QuicSpec::new()
    };
    let second = tlsgen::QuicSpec {
        sni: Some("second.example".into()),
        dcid: vec![9, 8, 7, 6, 5, 4, 3, 2, 1],
        ..tlsgen::QuicSpec::new()
    };
    let client: SocketAddr = "10.9.0.2:50000".parse().unwrap();
    let server: SocketAddr = "192.0.2.98:443".parse().unwrap();
    let t0 = 1_700_000_000_000_000u64;
    let mut frames = tlsgen::udp_frames(
        &tlsgen::quic_initials(&first).unwrap().datagrams,
        client,
        server,
        None,
        t0,
    );
    frames.extend(tlsgen::udp_frames(
        &[server_initial(&first)],
        server,
        client,
        None,
        t0 + 1000,
    ));
    // its later (short-header) traffic keeps the marker alive
    for i in 0..20u64 {
        frames.extend(tlsgen::udp_frames(
            &[vec![0x40; 60]],
            client,
            server,
            None,
            t0 + 1_000_000 * i,
        ));
    }
    frames.extend(tlsgen::udp_frames(
        &tlsgen::quic_initials(&second).unwrap().datagrams,
        client,
        server,
        None,
        t0 + 21_000_000,
    ));
    let mut sensor = Sensor::new(SensorConfig::default());
    let mut out = Vec::new();
    run(&mut sensor, &frames, &mut out);
    sensor.finish(&mut out);
    let snis: Vec<String> = out
        .iter()
        .map(|s| {
            s.client_hello
                .as_ref()
                .unwrap()
                .server_name
                .clone()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(snis, ["first.example", "second.example"]);
    assert!(out[0].server_hello.is_some());
}

/// Review finding: a server Initial that arrived before the ClientHello was complete was
/// thrown away.
#[test]
fn a_quic_server_hello_before_the_whole_client_hello_is_kept() {
    let spec = tlsgen::QuicSpec {
        crypto_per_packet: 150,
        ..tlsgen::QuicSpec::new()
    };
    let q = tlsgen::quic_initials(&spec).unwrap();
    assert!(q.datagrams.len() >= 2);
    let client: SocketAddr = "10.9.0.3:50000".parse().unwrap();
    let server: SocketAddr = "192.0.2.97:443".parse().unwrap();
    let t0 = 1_700_000_000_000_000u64;
    let mut frames = tlsgen::udp_frames(&q.datagrams[..1], client, server, None, t0);
    frames.extend(tlsgen::udp_frames(
        &[server_initial(&spec)],
        server,
        client,
        None,
        t0 + 100,
    ));
    frames.extend(tlsgen::udp_frames(
        &q.datagrams[1..],
        client,
        server,
        None,
        t0 + 200,
    ));
    let mut sensor = Sensor::new(SensorConfig::default());
    let mut out = Vec::new();
    run(&mut sensor, &frames, &mut out);
    assert_eq!(out.len(), 1, "out as soon as both hellos are there");
    assert!(out[0].server_hello.is_some());
    assert_eq!(out[0].ts_ns, t0 * 1000, "the time of the first Initial");
}
