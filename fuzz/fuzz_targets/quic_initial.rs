//! Fuzz the QUIC v1 Initial decoder (`d4_tls::quic`). The first input byte picks a mode:
//! - raw: the rest is cut into datagrams (`[dir:1 conn:3 len:12, bytes...]*`) fed to a small
//!   tracker, and walked with `coalesced` and `frames`;
//! - frames: the rest becomes the plaintext frames of a valid encrypted Initial, so the fuzzer
//!   gets past the AEAD straight into the frame parser;
//! - crypto: the rest is CRYPTO segments (`[offset u16, len u8, bytes...]*`) sent in valid
//!   encrypted Initials, checked against a naive first-copy-wins model of the stream.
//!
//! Checks: nothing panics, the tracker stays within its limits, a decrypted packet gives back
//! exactly the plaintext it was built from, and reassembly equals the model.
#![no_main]

use d4_tls::quic::keys::open_initial;
use d4_tls::quic::{
    coalesced, frames, CryptoStream, Direction, InitialBuilder, InitialSecrets, QuicError,
    QuicHello, QuicInitials, QuicLimits,
};
use libfuzzer_sys::fuzz_target;

const DCID: &[u8] = &[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
const LIMITS: QuicLimits = QuicLimits {
    max_connections: 4,
    crypto_limit: 2048,
    max_total_bytes: 5000,
};

fn check(t: &QuicInitials<u8>) {
    assert!(t.len() <= LIMITS.max_connections);
    assert!(t.buffered_bytes() <= LIMITS.max_total_bytes);
}

fn raw(data: &[u8]) {
    let mut t = QuicInitials::new(LIMITS);
    let mut rest = data;
    while let [hi, lo, tail @ ..] = rest {
        // Header: direction bit, 3-bit connection key, 12-bit length.
        let dir = if hi & 0x80 != 0 {
            Direction::ToClient
        } else {
            Direction::ToServer
        };
        let conn = (hi >> 4) & 7;
        let len = usize::from(u16::from_be_bytes([hi & 0x0f, *lo])).min(tail.len());
        let dgram = &tail[..len];
        rest = &tail[len..];
        let _ = t.feed(&conn, dir, dgram);
        check(&t);
        for h in coalesced(dgram).flatten() {
            let keys = InitialSecrets::new(h.dcid).expect("v1 keys");
            let mut out = Vec::new();
            if open_initial(&h, &keys.client, None, &mut out).is_ok() {
                frames(&out).for_each(drop);
            }
        }
        frames(dgram).for_each(drop);
    }
}

fn spliced_frames(control: u8, data: &[u8]) {
    let pn_len = usize::from(control & 3) + 1;
    let packet = InitialBuilder {
        original_dcid: DCID,
        dcid: DCID,
        scid: &[1, 2, 3],
        token: &[],
        is_server: false,
        packet_number: u32::from(control),
        pn_len,
        prefix_frames: data,
        crypto: &[],
        pad_to: if control & 4 != 0 { 1200 } else { 0 },
    }
    .build();
    let h = coalesced(&packet)
        .next()
        .expect("one packet")
        .expect("valid header");
    let keys = InitialSecrets::new(DCID).expect("v1 keys");
    let mut out = Vec::new();
    let pn = open_initial(&h, &keys.client, None, &mut out).expect("own packet decrypts");
    assert_eq!(pn & 0xff, u64::from(control));
    assert!(out.starts_with(data));
    frames(&out).for_each(drop);
    let mut t = QuicInitials::new(LIMITS);
    let _ = t.feed(&0, Direction::ToServer, &packet);
    check(&t);
}

fn spliced_crypto(data: &[u8]) {
    let mut t = QuicInitials::new(LIMITS);
    let mut stream = CryptoStream::new(LIMITS.crypto_limit);
    let mut model: Vec<Option<u8>> = vec![None; LIMITS.crypto_limit];
    let mut rest = data;
    let mut pn = 0u32;
    let mut hello = None;
    while rest.len() >= 3 {
        let offset = u64::from(u16::from_be_bytes([rest[0], rest[1]]) % 2304);
        let len = usize::from(rest[2]).min(rest.len() - 3);
        let bytes = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let packet = d4_tls::quic::build_initial(DCID, &[], pn, &[(offset, bytes)], 0, false);
        pn += 1;
        if let Ok(Some(QuicHello::Client(m))) = t.feed(&0, Direction::ToServer, &packet) {
            hello = Some(m);
        }
        check(&t);
        // Kept: everything below the limit, unless the frame was refused as too fragmented.
        if stream.insert(offset, bytes) != Err(QuicError::CryptoFragmented) {
            for (i, b) in bytes.iter().enumerate() {
                if let Some(slot) = model.get_mut(offset as usize + i) {
                    if slot.is_none() {
                        *slot = Some(*b);
                    }
                }
            }
        }
        let prefix: Vec<u8> = model.iter().map_while(|b| *b).collect();
        assert_eq!(stream.contiguous(), prefix.as_slice());
    }
    if let Some(m) = hello {
        assert_eq!(m[0], 1);
        let len = u32::from_be_bytes([0, m[1], m[2], m[3]]) as usize;
        assert_eq!(m.len(), 4 + len);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    match control >> 6 {
        0 | 1 => raw(rest),
        2 => spliced_frames(control, rest),
        _ => spliced_crypto(rest),
    }
});
