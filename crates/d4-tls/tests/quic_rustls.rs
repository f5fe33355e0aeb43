//! Real QUIC handshake messages from rustls (`rustls::quic`), protected by rustls's own
//! Initial keys (an implementation independent of ours), then decrypted and reassembled by
//! `QuicInitials`; and the same ClientHello through `build_initial`, split and reordered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use d4_tls::quic::{build_initial, Direction, QuicHello, QuicInitials, QuicLimits};
use rustls::crypto::ring::{cipher_suite, default_provider};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::quic::{self, Keys, Version};
use rustls::{Side, SupportedCipherSuite};

const DCID: &[u8] = &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99];
const CLIENT_SCID: &[u8] = &[0xc1, 0x1e];
const SERVER_SCID: &[u8] = &[0x5e, 0x7e, 0x72];
const TRANSPORT_PARAMS: &[u8] = &[0x04, 0x04, 0x80, 0x10, 0x00, 0x00];

/// The ClientHello and ServerHello of a real rustls QUIC v1 handshake (h3, SNI localhost).
fn rustls_hellos() -> (Vec<u8>, Vec<u8>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let mut client_cfg = rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_cfg.alpn_protocols = vec![b"h3".to_vec()];
    let mut server_cfg = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der())),
        )
        .unwrap();
    server_cfg.alpn_protocols = vec![b"h3".to_vec()];

    let mut client = quic::ClientConnection::new(
        Arc::new(client_cfg),
        Version::V1,
        ServerName::try_from("localhost").unwrap(),
        TRANSPORT_PARAMS.to_vec(),
    )
    .unwrap();
    let mut ch = Vec::new();
    assert!(client.write_hs(&mut ch).is_none());
    let mut server =
        quic::ServerConnection::new(Arc::new(server_cfg), Version::V1, TRANSPORT_PARAMS.to_vec())
            .unwrap();
    server.read_hs(&ch).unwrap();
    let mut sh = Vec::new();
    // The ServerHello is the Initial-level data; then come the Handshake keys.
    assert!(matches!(
        server.write_hs(&mut sh),
        Some(quic::KeyChange::Handshake { .. })
    ));
    (ch, sh)
}

fn rustls_initial_keys(side: Side) -> Keys {
    let SupportedCipherSuite::Tls13(suite) = cipher_suite::TLS13_AES_128_GCM_SHA256 else {
        panic!("TLS 1.3 suite");
    };
    Keys::initial(Version::V1, suite, suite.quic.unwrap(), DCID, side)
}

/// An Initial packet framed by hand and protected with rustls's keys.
fn rustls_initial(
    keys: &Keys,
    dcid: &[u8],
    scid: &[u8],
    pn: u32,
    offset: u16,
    data: &[u8],
) -> Vec<u8> {
    let mut payload = vec![0x06, 0x40 | (offset >> 8) as u8, offset as u8];
    payload.extend_from_slice(&(0x4000 | data.len() as u16).to_be_bytes());
    payload.extend_from_slice(data);
    payload.resize(payload.len().max(1100), 0); // PADDING
    let mut header = vec![0xc3, 0, 0, 0, 1, dcid.len() as u8];
    header.extend_from_slice(dcid);
    header.push(scid.len() as u8);
    header.extend_from_slice(scid);
    header.push(0); // no token
    let length = 4 + payload.len() + 16;
    header.extend_from_slice(&(0x4000 | length as u16).to_be_bytes());
    let pn_offset = header.len();
    header.extend_from_slice(&pn.to_be_bytes());
    let tag = keys
        .local
        .packet
        .encrypt_in_place(u64::from(pn), &header, &mut payload)
        .unwrap();
    let mut packet = header;
    packet.extend_from_slice(&payload);
    packet.extend_from_slice(tag.as_ref());
    let sample = packet[pn_offset + 4..pn_offset + 20].to_vec();
    let (first, rest) = packet.split_at_mut(1);
    keys.local
        .header
        .encrypt_in_place(
            &sample,
            &mut first[0],
            &mut rest[pn_offset - 1..pn_offset + 3],
        )
        .unwrap();
    packet
}

#[test]
fn rustls_protected_initials_give_back_the_rustls_hellos() {
    let (ch, sh) = rustls_hellos();
    assert_eq!(ch[0], 1);
    assert_eq!(sh[0], 2);
    let client_keys = rustls_initial_keys(Side::Client);
    let server_keys = rustls_initial_keys(Side::Server);
    let half = ch.len() / 2;
    let c2 = rustls_initial(&client_keys, DCID, CLIENT_SCID, 1, half as u16, &ch[half..]);
    let c1 = rustls_initial(&client_keys, DCID, CLIENT_SCID, 0, 0, &ch[..half]);
    // The server answers to the client's SCID, keyed by the client's original DCID.
    let s1 = rustls_initial(&server_keys, CLIENT_SCID, SERVER_SCID, 0, 0, &sh);

    let mut t = QuicInitials::new(QuicLimits::default());
    assert_eq!(t.feed(&"flow", Direction::ToServer, &c2), Ok(None));
    assert_eq!(
        t.feed(&"flow", Direction::ToServer, &c1),
        Ok(Some(QuicHello::Client(ch)))
    );
    assert_eq!(
        t.feed(&"flow", Direction::ToClient, &s1),
        Ok(Some(QuicHello::Server(sh)))
    );
}

#[test]
fn our_builder_is_read_by_rustls_keys_too() {
    // build_initial's packet, opened with rustls's keys: the other way round.
    let (ch, _) = rustls_hellos();
    let mut packet = build_initial(DCID, CLIENT_SCID, 5, &[(0, &ch)], 1200, false);
    assert_eq!(packet.len(), 1200);
    let keys = rustls_initial_keys(Side::Server); // the server's view: remote = client
    let pn_offset = 1 + 4 + 1 + DCID.len() + 1 + CLIENT_SCID.len() + 1 + 2;
    let sample = packet[pn_offset + 4..pn_offset + 20].to_vec();
    let (first, rest) = packet.split_at_mut(1);
    keys.remote
        .header
        .decrypt_in_place(
            &sample,
            &mut first[0],
            &mut rest[pn_offset - 1..pn_offset + 3],
        )
        .unwrap();
    assert_eq!(packet[0], 0xc3);
    assert_eq!(packet[pn_offset..pn_offset + 4], [0, 0, 0, 5]);
    let (header, payload) = packet.split_at_mut(pn_offset + 4);
    let plain = keys
        .remote
        .packet
        .decrypt_in_place(5, header, payload)
        .unwrap();
    assert_eq!(plain[0], 0x06);
    assert_eq!(&plain[4..4 + ch.len()], ch.as_slice());

    // And split in three, reordered, duplicated, through the tracker.
    let third = ch.len() / 3;
    let parts = [
        (0u64, &ch[..third]),
        (third as u64, &ch[third..2 * third]),
        (2 * third as u64, &ch[2 * third..]),
    ];
    let packets: Vec<Vec<u8>> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| build_initial(DCID, CLIENT_SCID, i as u32, &[*p], 1200, false))
        .collect();
    let mut t = QuicInitials::new(QuicLimits::default());
    for i in [2, 0, 2, 0] {
        assert_eq!(t.feed(&0u8, Direction::ToServer, &packets[i]), Ok(None));
    }
    assert_eq!(
        t.feed(&0u8, Direction::ToServer, &packets[1]),
        Ok(Some(QuicHello::Client(ch)))
    );
}
