//! `QuicInitials` and `CryptoStream` over Initial packets made with `build_initial`: a
//! ClientHello split across packets and datagrams, reordered, duplicated, coalesced; server
//! Initials; Retry; limits; malformed and forged packets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use d4_tls::quic::{
    build_initial, Direction, InitialBuilder, QuicError, QuicHello, QuicInitials, QuicLimits,
};

const DCID: &[u8] = &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4];
const SCID: &[u8] = &[0x5c, 0x1d];

/// A handshake message of type `ty` with a `len`-byte body of varied bytes.
fn message(ty: u8, len: usize) -> Vec<u8> {
    let mut m = vec![ty, (len >> 16) as u8, (len >> 8) as u8, len as u8];
    m.extend((0..len).map(|i| (i * 7 + 3) as u8));
    m
}

fn tracker() -> QuicInitials<u32> {
    QuicInitials::new(QuicLimits::default())
}

#[test]
fn hello_split_over_three_datagrams_out_of_order_and_duplicated() {
    let ch = message(1, 3000);
    let (a, b, c) = (&ch[..1000], &ch[1000..2100], &ch[2100..]);
    let p1 = build_initial(DCID, SCID, 0, &[(0, a)], 1200, false);
    let p2 = build_initial(DCID, SCID, 1, &[(1000, b)], 1200, false);
    let p3 = build_initial(DCID, SCID, 2, &[(2100, c)], 1200, false);
    let mut t = tracker();
    assert_eq!(t.feed(&7, Direction::ToServer, &p3), Ok(None));
    assert_eq!(t.feed(&7, Direction::ToServer, &p1), Ok(None));
    assert_eq!(t.feed(&7, Direction::ToServer, &p3), Ok(None)); // duplicate
    assert!(t.buffered_bytes() >= 3000 - 1100);
    assert_eq!(
        t.feed(&7, Direction::ToServer, &p2),
        Ok(Some(QuicHello::Client(ch.clone())))
    );
    // Once handed out, never again, and the buffers are freed.
    assert_eq!(t.feed(&7, Direction::ToServer, &p2), Ok(None));
    assert_eq!(t.buffered_bytes(), 0);
    let n = t.counters();
    assert_eq!((n.client_hellos, n.initials, n.datagrams), (1, 4, 5));
    assert_eq!(n.auth_failures + n.malformed + n.crypto_dropped, 0);
}

#[test]
fn coalesced_packets_in_one_datagram_with_overlaps_first_copy_wins() {
    let ch = message(1, 900);
    let mut forged = ch.clone();
    forged[300..500].fill(0xee);
    // Packet 1: bytes 0..500 (true). Packet 2: bytes 300..900 of a different copy: its first
    // 200 bytes overlap and must lose.
    let p1 = build_initial(DCID, SCID, 0, &[(0, &ch[..500])], 0, false);
    let p2 = build_initial(DCID, SCID, 1, &[(300, &forged[300..])], 0, false);
    let mut dgram = p1.clone();
    dgram.extend_from_slice(&p2);
    // A Handshake packet coalesced after them is skipped, padding after it ignored.
    dgram.extend_from_slice(&[0xe0, 0, 0, 0, 1, 0, 0, 0x03, 9, 9, 9]);
    dgram.extend_from_slice(&[0; 40]);
    let mut t = tracker();
    assert_eq!(
        t.feed(&1, Direction::ToServer, &dgram),
        Ok(Some(QuicHello::Client(ch)))
    );
    assert_eq!(t.counters().skipped_packets, 1);
    assert_eq!(t.counters().initials, 2);
}

#[test]
fn several_crypto_frames_in_one_packet_and_later_initials_to_the_server_cid() {
    let ch = message(1, 600);
    let server_cid = [9u8; 12];
    // The client's second flight goes to the server's CID, still keyed by the original DCID.
    let first = build_initial(
        DCID,
        SCID,
        0,
        &[(400, &ch[400..]), (0, &ch[..100])],
        1200,
        false,
    );
    let later = InitialBuilder {
        original_dcid: DCID,
        dcid: &server_cid,
        scid: SCID,
        token: &[],
        is_server: false,
        packet_number: 1,
        pn_len: 1,
        prefix_frames: &[0x02, 0x00, 0x00, 0x00, 0x00, 0x01], // ACK, PING
        crypto: &[(100, &ch[100..400])],
        pad_to: 1200,
    }
    .build();
    let mut t = tracker();
    assert_eq!(t.feed(&2, Direction::ToServer, &first), Ok(None));
    assert_eq!(
        t.feed(&2, Direction::ToServer, &later),
        Ok(Some(QuicHello::Client(ch)))
    );
}

#[test]
fn server_hello_from_a_server_initial_to_the_client_scid() {
    let ch = message(1, 300);
    let sh = message(2, 90);
    let server_cid = [0x77u8; 8];
    let client = build_initial(DCID, SCID, 0, &[(0, &ch)], 1200, false);
    let server = InitialBuilder {
        original_dcid: DCID,
        dcid: SCID,
        scid: &server_cid,
        token: &[],
        is_server: true,
        packet_number: 0,
        pn_len: 2,
        prefix_frames: &[0x02, 0x00, 0x00, 0x00, 0x00],
        crypto: &[(0, &sh)],
        pad_to: 0,
    }
    .build();
    let mut t = tracker();
    // Before the client's Initial there are no keys.
    assert_eq!(
        t.feed(&3, Direction::ToClient, &server),
        Err(QuicError::NoKeys)
    );
    assert!(matches!(
        t.feed(&3, Direction::ToServer, &client),
        Ok(Some(QuicHello::Client(_)))
    ));
    assert_eq!(
        t.feed(&3, Direction::ToClient, &server),
        Ok(Some(QuicHello::Server(sh)))
    );
    // A server Initial is not a client Initial: sent the wrong way, it fails to authenticate.
    let mut t = tracker();
    assert_eq!(
        t.feed(&4, Direction::ToServer, &server),
        Err(QuicError::AuthFailed)
    );
    assert_eq!(t.counters().auth_failures, 1);
    assert!(t.is_empty());
}

#[test]
fn retry_restarts_the_connection_with_the_new_dcid() {
    let ch = message(1, 2000);
    let new_dcid = [0x42u8; 16];
    let before = build_initial(DCID, SCID, 0, &[(0, &ch[..1000])], 1200, false);
    let after1 = build_initial(&new_dcid, SCID, 1, &[(0, &ch[..1000])], 1200, false);
    let after2 = build_initial(&new_dcid, SCID, 2, &[(1000, &ch[1000..])], 1200, false);
    let mut t = tracker();
    assert_eq!(t.feed(&5, Direction::ToServer, &before), Ok(None));
    assert_eq!(t.feed(&5, Direction::ToServer, &after1), Ok(None));
    assert_eq!(
        t.feed(&5, Direction::ToServer, &after2),
        Ok(Some(QuicHello::Client(ch)))
    );
    assert_eq!(t.len(), 1);
}

#[test]
fn forged_and_corrupted_packets_are_refused_and_counted() {
    let ch = message(1, 200);
    let good = build_initial(DCID, SCID, 0, &[(0, &ch)], 1200, false);
    let mut t = tracker();
    // Any flipped bit in the protected part fails authentication (or the header check).
    for i in [30usize, 100, 600, good.len() - 1] {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        assert_eq!(
            t.feed(&6, Direction::ToServer, &bad),
            Err(QuicError::AuthFailed)
        );
    }
    assert_eq!(t.counters().auth_failures, 4);
    assert!(!t.contains(&6));
    // A frame not allowed in an Initial (STREAM) refuses the whole packet, CRYPTO included.
    let stream_frame = InitialBuilder {
        original_dcid: DCID,
        dcid: DCID,
        scid: SCID,
        token: &[],
        is_server: false,
        packet_number: 0,
        pn_len: 4,
        prefix_frames: &[0x08, 0x00, 0x01, 0xff],
        crypto: &[(0, &ch)],
        pad_to: 1200,
    }
    .build();
    assert_eq!(
        t.feed(&6, Direction::ToServer, &stream_frame),
        Err(QuicError::UnexpectedFrame(0x08))
    );
    assert_eq!(t.counters().malformed, 1);
    // The connection exists (the packet authenticated) but holds no CRYPTO data.
    assert_eq!(t.buffered_bytes(), 0);
    assert_eq!(
        t.feed(&6, Direction::ToServer, &good),
        Ok(Some(QuicHello::Client(ch)))
    );
}

#[test]
fn truncations_bad_lengths_and_other_versions() {
    let ch = message(1, 200);
    let good = build_initial(DCID, SCID, 0, &[(0, &ch)], 1200, false);
    let mut t = tracker();
    for cut in 0..good.len() {
        let r = t.feed(&8, Direction::ToServer, &good[..cut]);
        assert!(matches!(r, Ok(None) | Err(_)), "cut {cut}: {r:?}");
        assert!(!t.contains(&8), "cut {cut}");
    }
    // Length field beyond the datagram (offset: 1 + 4 + 1 + 8 + 1 + 2 + 1 = 18).
    let mut long = good.clone();
    long[18] = 0x7f;
    assert_eq!(
        t.feed(&8, Direction::ToServer, &long),
        Err(QuicError::BadLength)
    );
    // A CID length of 21.
    let mut cid = good.clone();
    cid[5] = 21;
    assert_eq!(
        t.feed(&8, Direction::ToServer, &cid),
        Err(QuicError::ConnectionIdTooLong)
    );
    // Version negotiation, QUIC v2, draft-29, a short header: not Initials, not errors.
    let before = t.counters().not_initial;
    for version in [[0u8, 0, 0, 0], [0x6b, 0x33, 0x43, 0xcf], [0xff, 0, 0, 29]] {
        let mut other = good.clone();
        other[1..5].copy_from_slice(&version);
        assert_eq!(t.feed(&8, Direction::ToServer, &other), Ok(None));
    }
    assert_eq!(t.feed(&8, Direction::ToServer, &[0x40; 50]), Ok(None));
    assert_eq!(t.counters().not_initial, before + 4);
    assert!(t.is_empty());
}

#[test]
fn limits_connections_stream_bytes_and_unusable_streams() {
    let ch = message(1, 100);
    let limits = QuicLimits {
        max_connections: 2,
        crypto_limit: 4096,
        max_total_bytes: 6000,
    };
    let mut t = QuicInitials::new(limits);
    let partial = build_initial(DCID, SCID, 0, &[(0, &ch[..50])], 1200, false);
    assert_eq!(t.feed(&1, Direction::ToServer, &partial), Ok(None));
    assert_eq!(t.feed(&2, Direction::ToServer, &partial), Ok(None));
    assert_eq!(
        t.feed(&3, Direction::ToServer, &partial),
        Err(QuicError::TooManyConnections)
    );
    assert_eq!(t.counters().connections_refused, 1);
    assert!(t.remove(&1));
    assert_eq!(t.feed(&3, Direction::ToServer, &partial), Ok(None));

    // Beyond the stream limit: dropped and counted, memory bounded.
    let far = build_initial(DCID, SCID, 1, &[(4000, &[7u8; 200])], 1200, false);
    assert_eq!(t.feed(&3, Direction::ToServer, &far), Ok(None));
    assert_eq!(t.counters().crypto_dropped, 1);
    assert!(t.buffered_bytes() <= 4096 + 50);
    // Beyond the total: connection 2 cannot grow past the shared budget.
    let far2 = build_initial(DCID, SCID, 1, &[(3000, &[7u8; 500])], 1200, false);
    assert_eq!(t.feed(&2, Direction::ToServer, &far2), Ok(None));
    assert_eq!(t.counters().crypto_dropped, 2);
    assert!(t.buffered_bytes() <= 6000);

    // A first message that is not a ClientHello, or announces more than the limit: given up.
    let mut t = QuicInitials::new(limits);
    let not_hello = build_initial(DCID, SCID, 0, &[(0, &message(2, 10))], 1200, false);
    assert_eq!(t.feed(&1, Direction::ToServer, &not_hello), Ok(None));
    let huge = build_initial(DCID, SCID, 0, &[(0, &[1, 0, 0x20, 0])], 1200, false);
    assert_eq!(t.feed(&2, Direction::ToServer, &huge), Ok(None));
    assert_eq!(t.counters().unusable_streams, 2);
    assert_eq!(t.buffered_bytes(), 0);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any split of a ClientHello into CRYPTO frames, sent in any order with repeats, gives
    /// the ClientHello back exactly once, on the datagram that completes it.
    #[test]
    fn any_split_order_and_repeats(
        len in 1usize..5000,
        cuts in proptest::collection::vec(0usize..5000, 0..6),
        order in proptest::collection::vec(0usize..16, 1..24),
    ) {
        let ch = message(1, len);
        let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c % ch.len()).collect();
        bounds.extend([0, ch.len()]);
        bounds.sort_unstable();
        bounds.dedup();
        let packets: Vec<Vec<u8>> = bounds
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                build_initial(DCID, SCID, i as u32, &[(w[0] as u64, &ch[w[0]..w[1]])], 1200, false)
            })
            .collect();
        // `order`, then every packet once more so that all arrive.
        let sequence: Vec<usize> = order
            .iter()
            .map(|i| i % packets.len())
            .chain(0..packets.len())
            .collect();
        let mut t = tracker();
        let mut got = Vec::new();
        let mut seen = vec![false; packets.len()];
        for i in sequence {
            seen[i] = true;
            let r = t.feed(&0, Direction::ToServer, &packets[i]).unwrap();
            if let Some(h) = r {
                proptest::prop_assert!(seen.iter().all(|&s| s), "hello before all parts");
                got.push(h);
            }
        }
        proptest::prop_assert_eq!(got, vec![QuicHello::Client(ch)]);
    }
}

#[test]
fn a_hello_completed_before_a_bad_coalesced_packet_is_still_returned() {
    let ch = message(1, 300);
    let mut dgram = build_initial(DCID, SCID, 0, &[(0, &ch)], 0, false);
    // Then a v1 long header that does not parse (Length beyond the datagram).
    dgram.extend_from_slice(&[0xc0, 0, 0, 0, 1, 0, 0, 0, 0x3f]);
    let mut t = tracker();
    assert_eq!(
        t.feed(&1, Direction::ToServer, &dgram),
        Ok(Some(QuicHello::Client(ch)))
    );
    assert_eq!(t.counters().malformed, 1);
    // Without a completed hello the error is returned.
    let mut t = tracker();
    let mut partial = build_initial(DCID, SCID, 0, &[(0, &message(1, 300)[..100])], 0, false);
    partial.extend_from_slice(&[0xc0, 0, 0, 0, 1, 0, 0, 0, 0x3f]);
    assert_eq!(
        t.feed(&1, Direction::ToServer, &partial),
        Err(QuicError::BadLength)
    );
}
