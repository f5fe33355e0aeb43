//! QUIC Initial packets: the protection reproduces RFC 9001 Appendix A.2 byte for byte, the
//! generated packets decrypt (with the server's initial keys) to CRYPTO frames that
//! reassemble into the ClientHello, and its JA4 has the `q` form.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use d4_testkit::tlsgen::{
    expected_quic, protect_client_initial, quic_initials, tcp_streams, udp_frames, QuicSpec,
};
use rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
use rustls::quic::Version;
use rustls::Side;

/// RFC 9001 A.2: the client's CRYPTO frame (a ClientHello of 241 bytes).
const RFC_CRYPTO: &str = "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868\
    04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578\
    616d706c652e636f6dff01000100000a00080006001d00170018001000070005\
    04616c706e000500050100000000003300260024001d00209370b2c9caa47fba\
    baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400\
    0d0010000e0403050306030203080408050806002d00020101001c0002400100\
    3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000\
    75300901100f088394c8f03e51570806048000ffff";

#[test]
fn protection_matches_rfc9001_appendix_a2() {
    let mut payload = hex::decode(RFC_CRYPTO).unwrap();
    payload.resize(1162, 0);
    let dcid = hex::decode("8394c8f03e515708").unwrap();
    let packet = protect_client_initial(&dcid, &[], 2, &payload).unwrap();
    assert_eq!(packet.len(), 1200);
    assert_eq!(
        hex::encode(&packet[..38]),
        "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11d242b123dc9b"
    );
    assert_eq!(
        hex::encode(&packet[1200 - 48..]),
        "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241e221af44860018ab0856972e194cd934"
    );
}

#[test]
fn rfc9001_client_hello_ja4_part_a_by_hand() {
    // 2 ciphers (1301, 1302); 11 extensions; SNI example.com; ALPN "alpn"; supported_versions 0304
    let msg = &hex::decode(RFC_CRYPTO).unwrap()[4..];
    let e = expected_quic(msg).unwrap();
    assert!(e.ja4.starts_with("q13d0211an_"), "{}", e.ja4);
    assert!(e.ja4_r.starts_with("q13d0211an_1301,1302_"), "{}", e.ja4_r);
    assert_eq!(e.sni.as_deref(), Some("example.com"));
    assert_eq!(e.alpn, vec![b"alpn".to_vec()]);
    assert!(
        e.ja3
            .starts_with("771,4865-4866,0-65281-10-16-5-51-43-13-45-28-57,29-23-24,"),
        "{}",
        e.ja3
    );
}

/// Removes the protection with the server's initial keys and returns the CRYPTO frames.
fn open(dcid: &[u8], packet: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let keys = TLS13_AES_128_GCM_SHA256
        .tls13()
        .unwrap()
        .quic_suite()
        .unwrap()
        .keys(dcid, Side::Server, Version::V1);
    let mut p = packet.to_vec();
    assert_eq!(p[0] & 0xf0, 0xc0, "long header, Initial");
    assert_eq!(&p[1..5], &[0, 0, 0, 1]);
    let mut i = 5;
    i += 1 + usize::from(p[i]); // dcid
    i += 1 + usize::from(p[i]); // scid
    assert_eq!(p[i], 0, "no token");
    i += 1;
    let len = usize::from(u16::from_be_bytes([p[i], p[i + 1]]) & 0x3fff);
    i += 2;
    let pn_offset = i;
    assert_eq!(
        pn_offset + len,
        p.len(),
        "Length covers the rest of the datagram"
    );
    let sample = p[pn_offset + 4..pn_offset + 20].to_vec();
    let (first, rest) = p.split_at_mut(1);
    keys.remote
        .header
        .decrypt_in_place(
            &sample,
            &mut first[0],
            &mut rest[pn_offset - 1..pn_offset + 3],
        )
        .unwrap();
    let pn_len = usize::from(p[0] & 3) + 1;
    assert_eq!(pn_len, 4);
    let pn = u32::from_be_bytes(p[pn_offset..pn_offset + 4].try_into().unwrap());
    let (header, body) = p.split_at_mut(pn_offset + 4);
    let plain = keys
        .remote
        .packet
        .decrypt_in_place(u64::from(pn), header, body)
        .unwrap()
        .to_vec();
    let mut frames = Vec::new();
    let mut j = 0;
    let varint = |b: &[u8], j: &mut usize| -> u64 {
        let n = 1usize << (b[*j] >> 6);
        let mut v = u64::from(b[*j] & 0x3f);
        for k in 1..n {
            v = v << 8 | u64::from(b[*j + k]);
        }
        *j += n;
        v
    };
    while j < plain.len() {
        match plain[j] {
            0 => j += 1,
            6 => {
                j += 1;
                let off = varint(&plain, &mut j);
                let n = varint(&plain, &mut j) as usize;
                frames.push((off, plain[j..j + n].to_vec()));
                j += n;
            }
            t => panic!("unexpected frame type {t}"),
        }
    }
    frames
}

#[test]
fn generated_initials_decrypt_and_reassemble_into_the_client_hello() {
    for (per, reverse, grease) in [
        (0, false, false),
        (100, false, false),
        (90, true, true),
        (400, true, false),
    ] {
        let mut spec = QuicSpec::new();
        spec.crypto_per_packet = per;
        spec.reverse = reverse;
        spec.grease = grease;
        let q = quic_initials(&spec).unwrap();
        let n = if per == 0 {
            1
        } else {
            q.client_hello.len().div_ceil(per)
        };
        assert_eq!(q.datagrams.len(), n, "{spec:?}");
        let mut pieces = Vec::new();
        for d in &q.datagrams {
            assert!(d.len() >= 1200, "{spec:?}: datagram of {} bytes", d.len());
            pieces.extend(open(&spec.dcid, d));
        }
        if reverse && n > 1 {
            assert!(
                pieces[0].0 > 0,
                "{spec:?}: the first datagram carries a later offset"
            );
        }
        pieces.sort();
        let mut hello = Vec::new();
        for (off, data) in pieces {
            assert_eq!(off as usize, hello.len());
            hello.extend(data);
        }
        assert_eq!(hello, q.client_hello, "{spec:?}");
        let e = expected_quic(&q.client_hello).unwrap();
        assert!(e.ja4.starts_with("q13d"), "{}", e.ja4);
        assert_eq!(&e.ja4[8..10], "h3", "{}", e.ja4);
        assert_eq!(e.sni.as_deref(), Some("quic.example"));
        assert!(
            !e.ja3.split([',', '-']).any(|x| x == "2570" || x == "64250"),
            "{}",
            e.ja3
        );
    }
}

#[test]
fn quic_grease_keeps_the_fingerprint() {
    let mut spec = QuicSpec::new();
    let plain = expected_quic(&quic_initials(&spec).unwrap().client_hello).unwrap();
    spec.grease = true;
    let greased = expected_quic(&quic_initials(&spec).unwrap().client_hello).unwrap();
    assert_eq!(plain.ja4, greased.ja4);
    assert_eq!(plain.ja4_r, greased.ja4_r);
}

#[test]
fn udp_frames_carry_the_datagrams() {
    let mut spec = QuicSpec::new();
    spec.crypto_per_packet = 200;
    let q = quic_initials(&spec).unwrap();
    for (client, server) in [
        ("192.0.2.9:50000", "198.51.100.1:443"),
        ("[2001:db8::9]:50000", "[2001:db8::1]:443"),
    ] {
        let frames = udp_frames(
            &q.datagrams,
            client.parse().unwrap(),
            server.parse().unwrap(),
            Some(7),
            1_000,
        );
        assert_eq!(frames.len(), q.datagrams.len());
        for ((ts, f), (i, d)) in frames.iter().zip(q.datagrams.iter().enumerate()) {
            assert_eq!(*ts, 1_000 + 100 * i as u64);
            assert!(f.ends_with(d));
            assert_eq!(&f[12..14], &[0x81, 0x00]);
            let udp_at = if client.starts_with('[') {
                18 + 40
            } else {
                18 + 20
            };
            assert_eq!(u16::from_be_bytes([f[udp_at + 2], f[udp_at + 3]]), 443);
            assert_eq!(
                usize::from(u16::from_be_bytes([f[udp_at + 4], f[udp_at + 5]])),
                d.len() + 8
            );
        }
        // no TCP in them
        assert_eq!(
            tcp_streams(&frames, client.parse().unwrap()).unwrap(),
            (vec![], vec![])
        );
    }
}
