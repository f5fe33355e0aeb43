//! Scenario tests of the reassembler, with expectations written by hand.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::flags::{ACK, FIN, RST, SYN};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Data(u64, Side, Vec<u8>),
    Gap(u64, Side, u64),
    End(u64, EndReason),
}

#[derive(Default)]
struct Rec(Vec<Ev>);

impl Sink for Rec {
    fn data(&mut self, id: FlowId, _: &FlowKey, side: Side, _: u64, bytes: &[u8]) {
        self.0.push(Ev::Data(id.0, side, bytes.to_vec()));
    }
    fn gap(&mut self, id: FlowId, _: &FlowKey, side: Side, len: u64) {
        self.0.push(Ev::Gap(id.0, side, len));
    }
    fn end(&mut self, id: FlowId, _: &FlowKey, reason: EndReason) {
        self.0.push(Ev::End(id.0, reason));
    }
}

const C: (u8, u16) = (1, 50000);
const S: (u8, u16) = (2, 443);

fn ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
}

/// A segment from endpoint `from` to `to` (the client 10.0.0.1 is `Lo`, the server `Hi`).
fn seg(from: (u8, u16), to: (u8, u16), seq: u32, fl: u8, payload: &[u8]) -> Segment<'_> {
    Segment {
        src: ip(from.0),
        dst: ip(to.0),
        sport: from.1,
        dport: to.1,
        seq,
        ack: 0,
        flags: fl,
        window: 0,
        payload,
    }
}

fn big() -> Config {
    Config {
        max_flows: 100,
        max_flow_buffer: 1 << 16,
        max_total_buffer: 1 << 16,
        idle_timeout_us: 1_000,
    }
}

use Side::{Hi, Lo};

#[test]
fn handshake_data_and_fins() {
    let mut r = Reassembler::new(big());
    let mut k = Rec::default();
    r.push(1, &seg(C, S, 1000, SYN, b""), &mut k);
    r.push(2, &seg(S, C, 5000, SYN | ACK, b""), &mut k);
    r.push(3, &seg(C, S, 1001, ACK, b"hello"), &mut k);
    r.push(4, &seg(S, C, 5001, ACK, b"world"), &mut k);
    r.push(5, &seg(C, S, 1006, ACK | FIN, b""), &mut k);
    assert_eq!(r.flows(), 1, "one FIN closes one direction only");
    r.push(6, &seg(S, C, 5006, ACK | FIN, b"!"), &mut k);
    assert_eq!(
        k.0,
        vec![
            Ev::Data(1, Lo, b"hello".to_vec()),
            Ev::Data(1, Hi, b"world".to_vec()),
            Ev::Data(1, Hi, b"!".to_vec()),
            Ev::End(1, EndReason::Fin),
        ]
    );
    assert_eq!(r.flows(), 0);
    // The last ACK does not create a flow.
    r.push(7, &seg(C, S, 1007, ACK, b""), &mut k);
    assert_eq!(r.flows(), 0);
    let st = r.stats();
    assert_eq!(
        (st.flows_created, st.flows_ended_fin, st.segments_no_flow),
        (1, 1, 1)
    );
    assert_eq!(st.bytes_delivered, 11);
}

#[test]
fn out_of_order_waits_for_the_hole() {
    let mut r = Reassembler::new(big());
    let mut k = Rec::default();
    r.push(1, &seg(C, S, 99, SYN, b""), &mut k);
    r.push(2, &seg(C, S, 103, ACK, b"def"), &mut k);
    r.push(3, &seg(C, S, 106, ACK, b"ghi"), &mut k);
    assert!(k.0.is_empty());
    assert_eq!(r.buffered_bytes(), 6);
    r.push(4, &seg(C, S, 100, ACK, b"abc"), &mut k);
    assert_eq!(
        k.0,
        vec![
            Ev::Data(1, Lo, b"abc".to_vec()),
            Ev::Data(1, Lo, b"defghi".to_vec()), // two adjacent chunks were joined
        ]
    );
    assert_eq!(r.buffered_bytes(), 0);
}

#[test]
fn first_copy_wins_over_later_overlaps() {
    let mut r = Reassembler::new(big());
    let mut k = Rec::default();
    // Capture starts mid-flow at seq 500: stream offset 0.
    r.push(1, &seg(C, S, 500, ACK, b"AB"), &mut k);
    // offsets 4..7 buffered first as "XYZ"
    r.push(2, &seg(C, S, 504, ACK, b"XYZ"), &mut k);
    // a later copy of offsets 3..9 with other bytes: only 3 and 7..9 are new
    r.push(3, &seg(C, S, 503, ACK, b"dxyzhi"), &mut k);
    assert!(k.0.len() == 1, "offset 2 is still missing");
    // offsets 1..4: 1 was delivered (retransmitted), 2 is new, 3 buffered (overlap)
    r.push(4, &seg(C, S, 501, ACK, b"bcD"), &mut k);
    let mut all = Vec::new();
    for e in &k.0 {
        if let Ev::Data(_, _, d) = e {
            all.extend_from_slice(d);
        }
    }
    assert_eq!(all, b"ABcdXYZhi".to_vec());
    let st = r.stats();
    assert_eq!(st.bytes_delivered, 9);
    assert_eq!(st.bytes_retransmitted, 1); // 'b'
    assert_eq!(st.bytes_overlap, 3 + 1); // "xyz" then 'D'
    assert_eq!(r.buffered_bytes(), 0);
}

#[test]
fn data_before_the_base_is_a_retransmission() {
    let mut r = Reassembler::new(big());
    let mut k = Rec::default();
    r.push(1, &seg(C, S, 1000, ACK, b"late"), &mut k);
    r.push(2, &seg(C, S, 990, ACK, b"0123456789"), &mut k);
    r.push(3, &seg(C, S, 996, ACK, b"6789late!"), &mut k);
    assert_eq!(
        k.0,
        vec![
            Ev::Data(1, Lo, b"late".to_vec()),
            Ev::Data(1, Lo, b"!".to_vec())
        ]
    );
    assert_eq!(r.stats().bytes_retransmitted, 10 + 8);
}

#[test]
fn sequence_numbers_wrap() {
    let mut r = Reassembler::new(big());
    let mut k = Rec::default();
    r.push(1, &seg(C, S, u32::MAX - 2, SYN, b""), &mut k); // data starts at MAX - 1
    r.push(2, &seg(C, S, 2, ACK, b"efgh"), &mut k); // offset 4 (after the wrap)
    r.push(3, &seg(C, S, u32::MAX - 1, ACK, b"abcd"), &mut k); // offsets 0..4 across 0
    r.push(4, &seg(C, S, u32::MAX, ACK, b"bcdef"), &mut k); // retransmission across 0
    assert_eq!(
        k.0,
        vec![
            Ev::Data(1, Lo, b"abcd".to_vec()),
            Ev::Data(1, Lo, b"efgh".to_vec())
        ]
    );
    assert_eq!(r.stats().bytes_retransmitted, 5);
}

#[test]
fn ipv6_flow_keys_are_canonical() {
    let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9));
    let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    let mut s = seg(C, S, 7, ACK, b"x");
    s.src = a;
    s.dst = b;
    let (k1, side1) = FlowKey::of(&s);
    std::mem::swap(&mut s.src, &mut s.dst);
    std::mem::swap(&mut s.sport, &mut s.dport);
    let (k2, side2) = FlowKey::of(&s);
    assert_eq!(k1, k2);
    assert_eq!((side1, side2), (Hi, Lo)); // ::1 < ::9
    assert_eq!(k1.lo.ip, b);
    assert_eq!(k1.endpoint(Hi).port, C.1);
}

#[test]
fn rst_idle_finish_and_fin_after_a_hole() {
    let mut r = Reassembler::new(big());
    let mut k = Rec::default();
    r.push(10, &seg(C, S, 1, ACK, b"a"), &mut k); // flow 1
    r.push(10, &seg(S, C, 1, ACK | RST, b""), &mut k);
    assert_eq!(k.0.last(), Some(&Ev::End(1, EndReason::Rst)));

    r.push(20, &seg(C, S, 1, ACK, b"a"), &mut k); // flow 2
    r.push(20, &seg(C, S, 3, ACK | FIN, b"c"), &mut k); // FIN after a hole at offset 1
    r.push(20, &seg(S, C, 9, ACK | FIN, b""), &mut k); // server closes (nothing sent)
    assert_eq!(r.flows(), 1, "client not closed: offset 1 missing");
    r.push(21, &seg(C, S, 2, ACK, b"b"), &mut k);
    assert_eq!(r.flows(), 0);
    assert_eq!(k.0.last(), Some(&Ev::End(2, EndReason::Fin)));

    r.push(100, &seg(C, S, 1, ACK, b"x"), &mut k); // flow 3
    r.push(100, &seg(C, S, 5, ACK, b"y"), &mut k); // buffered after a hole of 3
    r.push(500, &seg(C, 7u16.into_endpoint(), 1, ACK, b"z"), &mut k); // flow 4
    r.expire(1_099, &mut k);
    assert_eq!(r.flows(), 2);
    r.expire(1_100, &mut k);
    assert_eq!(r.flows(), 1);
    let n = k.0.len();
    assert_eq!(
        k.0[n - 3..].to_vec(),
        vec![
            Ev::Gap(3, Lo, 3),
            Ev::Data(3, Lo, b"y".to_vec()),
            Ev::End(3, EndReason::Idle)
        ]
    );
    r.finish(&mut k);
    assert_eq!(k.0.last(), Some(&Ev::End(4, EndReason::Finished)));
    let st = r.stats();
    assert_eq!(
        (
            st.flows_ended_rst,
            st.flows_ended_fin,
            st.flows_ended_idle,
            st.flows_ended_finished
        ),
        (1, 1, 1, 1)
    );
}

trait IntoEndpoint {
    fn into_endpoint(self) -> (u8, u16);
}
impl IntoEndpoint for u16 {
    fn into_endpoint(self) -> (u8, u16) {
        (3, self)
    }
}

#[test]
fn least_recently_used_flow_is_evicted() {
    let mut r = Reassembler::new(Config {
        max_flows: 2,
        ..big()
    });
    let mut k = Rec::default();
    r.push(1, &seg(C, S, 1, SYN, b""), &mut k); // flow 1
    r.push(2, &seg(C, (3, 80), 1, SYN, b""), &mut k); // flow 2
    r.push(3, &seg(S, C, 1, SYN | ACK, b""), &mut k); // flow 1 is now the most recent
    r.push(4, &seg(C, (4, 80), 1, SYN, b""), &mut k); // flow 3 evicts flow 2
    assert_eq!(k.0, vec![Ev::End(2, EndReason::Evicted)]);
    assert_eq!(r.flows(), 2);
    assert_eq!(r.stats().drop_flow_limit, 1);
}

#[test]
fn a_full_buffer_gives_up_the_hole() {
    let mut r = Reassembler::new(Config {
        max_flow_buffer: 10,
        ..big()
    });
    let mut k = Rec::default();
    r.push(1, &seg(C, S, 0, ACK, b"01234"), &mut k);
    // offsets 5..10 lost; 10..20 buffered (the limit)
    r.push(2, &seg(C, S, 10, ACK, b"abcde"), &mut k);
    r.push(3, &seg(C, S, 15, ACK, b"fghij"), &mut k);
    assert_eq!(r.buffered_bytes(), 10);
    // 5 more do not fit: the hole 5..10 is given up, 10..25 delivered
    r.push(4, &seg(C, S, 20, ACK, b"klmno"), &mut k);
    assert_eq!(
        k.0,
        vec![
            Ev::Data(1, Lo, b"01234".to_vec()),
            Ev::Gap(1, Lo, 5),
            Ev::Data(1, Lo, b"abcdefghij".to_vec()),
            Ev::Data(1, Lo, b"klmno".to_vec()),
        ]
    );
    assert_eq!(r.buffered_bytes(), 0);
    // a segment of the lost hole arriving now is a retransmission
    r.push(5, &seg(C, S, 5, ACK, b"56789"), &mut k);
    let st = r.stats();
    assert_eq!((st.drop_flow_buffer, st.gaps, st.bytes_gap), (1, 1, 5));
    assert_eq!(st.bytes_retransmitted, 5);
    // a single out-of-order segment larger than the limit skips its hole at once
    r.push(6, &seg(C, S, 30, ACK, b"0123456789AB"), &mut k);
    assert_eq!(
        k.0[4..].to_vec(),
        vec![Ev::Gap(1, Lo, 5), Ev::Data(1, Lo, b"0123456789AB".to_vec())]
    );
}

#[test]
fn the_total_limit_holds_across_flows() {
    let mut r = Reassembler::new(Config {
        max_total_buffer: 8,
        ..big()
    });
    let mut k = Rec::default();
    r.push(1, &seg(C, S, 0, ACK, b"a"), &mut k);
    r.push(1, &seg(C, S, 2, ACK, b"cdef"), &mut k); // flow 1 buffers 4
    r.push(1, &seg(C, (5, 1), 0, ACK, b"a"), &mut k);
    r.push(1, &seg(C, (5, 1), 2, ACK, b"cdef"), &mut k); // flow 2 buffers 4
    r.push(1, &seg(C, (6, 1), 0, ACK, b"a"), &mut k);
    r.push(1, &seg(C, (6, 1), 3, ACK, b"d"), &mut k); // flow 3: total full, hole given up
    assert_eq!(r.buffered_bytes(), 8);
    assert_eq!(
        k.0[k.0.len() - 2..].to_vec(),
        vec![Ev::Gap(3, Lo, 2), Ev::Data(3, Lo, b"d".to_vec())]
    );
    assert_eq!(r.stats().drop_total_buffer, 1);
}

#[test]
fn ignored_flows_are_cheap_and_not_recreated() {
    let mut r = Reassembler::new(big());
    let mut k = Rec::default();
    r.push(1, &seg(C, S, 0, ACK, b"GET "), &mut k);
    r.push(1, &seg(C, S, 10, ACK, b"later"), &mut k);
    assert_eq!(r.buffered_bytes(), 5);
    r.ignore(FlowId(1));
    r.ignore(FlowId(1));
    r.ignore(FlowId(99)); // unknown: nothing happens
    assert_eq!(r.buffered_bytes(), 0);
    r.push(2, &seg(C, S, 4, ACK, b"/ HTTP/1.1"), &mut k);
    r.push(2, &seg(S, C, 0, ACK, b"HTTP/1.1 200"), &mut k);
    assert_eq!(r.flows(), 1);
    r.push(3, &seg(C, S, 15, ACK | FIN, b""), &mut k);
    r.push(3, &seg(S, C, 12, ACK | FIN, b""), &mut k);
    assert_eq!(r.flows(), 0);
    assert_eq!(
        k.0,
        vec![
            Ev::Data(1, Lo, b"GET ".to_vec()),
            Ev::End(1, EndReason::Fin)
        ]
    );
    let st = r.stats();
    assert_eq!(st.flows_ignored, 1);
    assert_eq!(st.segments_ignored, 4);
    assert_eq!(st.bytes_ignored, 5 + 10 + 12);
}

#[test]
fn flow_ids_are_never_reused() {
    let mut r = Reassembler::new(Config {
        max_flows: 1,
        ..big()
    });
    let mut k = Rec::default();
    for i in 0..5u16 {
        r.push(1, &seg(C, (9, i), 0, SYN, b""), &mut k);
    }
    r.finish(&mut k);
    let ids: Vec<u64> =
        k.0.iter()
            .map(|e| match e {
                Ev::End(id, _) => *id,
                _ => 0,
            })
            .collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_new_syn_on_the_same_ports_replaces_the_flow() {
    let mut r = Reassembler::new(big());
    let mut k = Rec::default();
    r.push(1, &seg(C, S, 100, SYN, b""), &mut k); // flow 1
    r.push(1, &seg(S, C, 900, SYN | ACK, b""), &mut k);
    r.push(2, &seg(C, S, 101, ACK, b"not tls"), &mut k);
    r.ignore(FlowId(1));
    r.push(3, &seg(C, S, 100, SYN, b""), &mut k); // retransmitted SYN: same flow
    r.push(3, &seg(S, C, 900, SYN | ACK, b""), &mut k); // SYN-ACK never replaces
    assert_eq!(r.flows(), 1);
    assert_eq!(r.stats().flows_reused, 0);
    r.push(4, &seg(C, S, 5000, SYN, b""), &mut k); // another connection: flow 2
    r.push(5, &seg(C, S, 5001, ACK, b"\x16\x03\x01"), &mut k);
    assert_eq!(
        k.0,
        vec![
            Ev::Data(1, Lo, b"not tls".to_vec()),
            Ev::End(1, EndReason::Evicted),
            Ev::Data(2, Lo, b"\x16\x03\x01".to_vec()),
        ]
    );
    let st = r.stats();
    assert_eq!(
        (st.flows_reused, st.flows_ended_evicted, st.drop_flow_limit),
        (1, 1, 0)
    );
}
