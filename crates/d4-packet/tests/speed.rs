#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A rough speed check of `decode` + `Reassembler::push` (ignored by default; run with
//! `cargo test --release -p d4-packet --test speed -- --ignored --nocapture`). Mixed
//! traffic: 10 000 flows, of which 5 % are followed (their data delivered in order, with
//! some reordering) and 95 % ignored after their first bytes, as a TLS analyzer does.
//! It prints packets per second; it asserts nothing about speed (shared machines vary).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use d4_packet::{decode, flags, FlowId, FlowKey, LinkType, Reassembler, Side, Sink, Transport};

fn frame(i: u32, to_server: bool, seq: u32, fl: u8, payload: &[u8]) -> Vec<u8> {
    let c = Ipv4Addr::from(0x0a00_0000 + i).octets();
    let s = [192, 0, 2, 1];
    let (src, dst, sp, dp) = if to_server {
        (c, s, 40000 + (i % 20000) as u16, 443u16)
    } else {
        (s, c, 443, 40000 + (i % 20000) as u16)
    };
    let mut f = vec![0x45, 0];
    f.extend_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sp.to_be_bytes());
    f.extend_from_slice(&dp.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0x50, fl, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

struct Follow {
    ignore: Vec<FlowId>,
    bytes: u64,
}

impl Sink for Follow {
    fn data(&mut self, id: FlowId, key: &FlowKey, _: Side, _: u64, b: &[u8]) {
        self.bytes += b.len() as u64;
        // Follow 1 flow in 20 (by client address), ignore the others at once.
        let IpAddr::V4(a) = key.lo.ip else { return };
        if u32::from(a) % 20 != 0 {
            self.ignore.push(id);
        }
    }
}

#[test]
#[ignore]
fn packets_per_second() {
    let payload = [0x17u8; 600];
    let mut frames = Vec::new();
    for round in 0..40u32 {
        for i in 0..10_000u32 {
            let isn = i.wrapping_mul(2_654_435_761);
            let seq = isn.wrapping_add(1 + round * 600);
            if round == 0 {
                frames.push(frame(i, true, isn, flags::SYN, &[]));
            }
            frames.push(frame(i, true, seq, flags::ACK, &payload));
            frames.push(frame(i, false, 7, flags::ACK, &[]));
        }
    }
    let mut r = Reassembler::new(Default::default());
    let mut sink = Follow {
        ignore: Vec::new(),
        bytes: 0,
    };
    let t = Instant::now();
    for (n, f) in frames.iter().enumerate() {
        if let Transport::Tcp(seg) = decode(LinkType::Raw, f) {
            r.push(n as u64, &seg, &mut sink);
            for id in sink.ignore.drain(..) {
                r.ignore(id);
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let st = r.stats();
    println!(
        "{} packets in {:.3} s: {:.0} packets/s; {} flows, {} ignored segments, {} bytes delivered",
        frames.len(),
        secs,
        frames.len() as f64 / secs,
        r.flows(),
        st.segments_ignored,
        sink.bytes
    );
    assert_eq!(st.segments, frames.len() as u64);
}
