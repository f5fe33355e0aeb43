#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Reassembly properties over real frames: random streams in both directions, cut into
//! random segments, shuffled, with retransmissions and overlaps, a random starting point
//! (capture started mid-flow) and random initial sequence numbers (wrap-around across
//! 2^32), over IPv4 and IPv6, built as raw IP frames and decoded with `decode`. The
//! delivered bytes must be the original streams from the start point, exactly once; with
//! small buffers, data and gaps must still line up with the original stream. Plus the
//! memory bounds under 100 000 half-open flows.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use d4_packet::{
    decode, flags, Config, EndReason, FlowId, FlowKey, LinkType, Reassembler, Segment, Side, Sink,
    Transport,
};
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Data(Vec<u8>),
    Gap(u64),
}

#[derive(Default)]
struct Rec {
    /// Events per (flow, side), in order.
    events: HashMap<(FlowId, Side), Vec<Ev>>,
    ends: Vec<(FlowId, EndReason)>,
    /// Flows in order of their first event.
    order: Vec<FlowId>,
}

impl Rec {
    fn note(&mut self, id: FlowId) {
        if !self.order.contains(&id) {
            self.order.push(id);
        }
    }
}

impl Sink for Rec {
    fn data(&mut self, id: FlowId, _key: &FlowKey, side: Side, _ts: u64, bytes: &[u8]) {
        assert!(!self.ends.iter().any(|(e, _)| *e == id), "data after end");
        self.note(id);
        let evs = self.events.entry((id, side)).or_default();
        match evs.last_mut() {
            Some(Ev::Data(d)) => d.extend_from_slice(bytes),
            _ => evs.push(Ev::Data(bytes.to_vec())),
        }
    }
    fn gap(&mut self, id: FlowId, _key: &FlowKey, side: Side, len: u64) {
        assert!(len > 0);
        self.note(id);
        self.events
            .entry((id, side))
            .or_default()
            .push(Ev::Gap(len));
    }
    fn end(&mut self, id: FlowId, _key: &FlowKey, reason: EndReason) {
        assert!(!self.ends.iter().any(|(e, _)| *e == id), "end twice");
        self.ends.push((id, reason));
    }
}

/// A raw IPv4 or IPv6 frame (link type 101) holding one TCP segment.
fn frame(src: (IpAddr, u16), dst: (IpAddr, u16), seq: u32, fl: u8, payload: &[u8]) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(20 + payload.len());
    tcp.extend_from_slice(&src.1.to_be_bytes());
    tcp.extend_from_slice(&dst.1.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.push(5 << 4);
    tcp.push(fl);
    tcp.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(payload);
    let mut f = Vec::new();
    match (src.0, dst.0) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => unreachable!(),
    }
    f.extend_from_slice(&tcp);
    f
}

fn push_frame(r: &mut Reassembler, ts: u64, f: &[u8], rec: &mut Rec) {
    match decode(LinkType::Raw, f) {
        Transport::Tcp(seg) => r.push(ts, &seg, rec),
        other => panic!("not decoded as TCP: {other:?}"),
    }
}

/// One direction: the stream, its ISN, how it is cut, where the capture starts.
#[derive(Debug, Clone)]
struct DirPlan {
    stream: Vec<u8>,
    isn: u32,
    cuts: Vec<usize>,
    start_seg: usize,
    /// Extra copies (start, len) of bytes at or after the start point.
    extra: Vec<(usize, usize)>,
    /// Old retransmissions: indexes of segments before the start point, sent late.
    old: Vec<usize>,
}

fn dir_plan() -> impl Strategy<Value = DirPlan> {
    (
        proptest::collection::vec(any::<u8>(), 1..1500),
        prop_oneof![any::<u32>(), (0u32..3000).prop_map(|x| u32::MAX - x)],
        proptest::collection::vec(1usize..200, 1..40),
        0usize..5,
        proptest::collection::vec((any::<u16>(), 1usize..300), 0..8),
        proptest::collection::vec(any::<u8>(), 0..3),
    )
        .prop_map(|(stream, isn, sizes, start_seg, extra, old)| {
            let mut cuts = vec![0];
            let mut at = 0;
            for s in sizes {
                at += s;
                if at >= stream.len() {
                    break;
                }
                cuts.push(at);
            }
            cuts.push(stream.len());
            let nseg = cuts.len() - 1;
            let start_seg = start_seg.min(nseg - 1);
            let s0 = cuts[start_seg];
            let rest = stream.len() - s0;
            let extra = extra
                .into_iter()
                .map(|(a, l)| {
                    let a = s0 + usize::from(a) % rest;
                    (a, l.min(stream.len() - a))
                })
                .collect();
            let old = if start_seg == 0 {
                vec![]
            } else {
                old.into_iter()
                    .map(|o| usize::from(o) % start_seg)
                    .collect()
            };
            DirPlan {
                stream,
                isn,
                cuts,
                start_seg,
                extra,
                old,
            }
        })
}

struct Pkt {
    side: usize,
    seq: u32,
    fl: u8,
    data: Vec<u8>,
}

/// The packets of one direction: its first packet (the start segment), then the rest.
fn packets(p: &DirPlan, side: usize, fin: bool) -> (Pkt, Vec<Pkt>) {
    let seq_of = |off: usize| p.isn.wrapping_add(off as u32);
    let nseg = p.cuts.len() - 1;
    let seg = |i: usize| {
        let (a, b) = (p.cuts[i], p.cuts[i + 1]);
        // A FIN on the start segment itself would close that direction before the other
        // was seen (a one-sided flow ends there): only later segments carry it.
        let last = i + 1 == nseg && i != p.start_seg;
        Pkt {
            side,
            seq: seq_of(a),
            fl: flags::ACK | if last && fin { flags::FIN } else { 0 },
            data: p.stream[a..b].to_vec(),
        }
    };
    let first = seg(p.start_seg);
    let mut rest: Vec<Pkt> = (p.start_seg + 1..nseg).map(seg).collect();
    for &(a, l) in &p.extra {
        rest.push(Pkt {
            side,
            seq: seq_of(a),
            fl: flags::ACK,
            data: p.stream[a..a + l].to_vec(),
        });
    }
    for &o in &p.old {
        let mut pk = seg(o);
        pk.fl = flags::ACK;
        rest.push(pk);
    }
    (first, rest)
}

/// Deterministic shuffle from a seed (proptest shrinks the seed).
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = ((seed >> 33) as usize) % (i + 1);
        v.swap(i, j);
    }
}

fn endpoints(v6: bool) -> [(IpAddr, u16); 2] {
    if v6 {
        [
            (
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
                443,
            ),
            (
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
                50123,
            ),
        ]
    } else {
        [
            (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 50123),
            (IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 443),
        ]
    }
}

/// Runs both directions through a reassembler; returns the recorder and the side (as
/// [`Side`]) of endpoint 0 and 1.
fn run(
    plans: &[DirPlan; 2],
    v6: bool,
    fin: bool,
    seed: u64,
    cfg: Config,
) -> (Rec, [Side; 2], Reassembler) {
    let eps = endpoints(v6);
    let (f0, r0) = packets(&plans[0], 0, fin);
    let (f1, r1) = packets(&plans[1], 1, fin);
    let mut rest: Vec<Pkt> = r0.into_iter().chain(r1).collect();
    shuffle(&mut rest, seed);
    let mut all = vec![f0, f1];
    if seed & 1 == 1 {
        all.swap(0, 1);
    }
    all.extend(rest);
    let mut r = Reassembler::new(cfg);
    let mut rec = Rec::default();
    let mut payload_in = 0u64;
    for (i, pk) in all.iter().enumerate() {
        let (s, d) = (eps[pk.side], eps[1 - pk.side]);
        let f = frame(s, d, pk.seq, pk.fl, &pk.data);
        push_frame(&mut r, i as u64, &f, &mut rec);
        payload_in += pk.data.len() as u64;
        assert!(r.buffered_bytes() <= cfg.max_total_buffer);
        assert!(r.flows() <= cfg.max_flows);
        let st = r.stats();
        assert_eq!(
            payload_in,
            st.bytes_delivered
                + st.bytes_retransmitted
                + st.bytes_overlap
                + st.bytes_ignored
                + r.buffered_bytes() as u64
        );
    }
    r.finish(&mut rec);
    assert_eq!(r.flows(), 0);
    assert_eq!(r.buffered_bytes(), 0);
    let key_side = |i: usize| {
        let seg = Segment {
            src: eps[i].0,
            dst: eps[1 - i].0,
            sport: eps[i].1,
            dport: eps[1 - i].1,
            seq: 0,
            ack: 0,
            flags: 0,
            window: 0,
            payload: &[],
        };
        FlowKey::of(&seg).1
    };
    (rec, [key_side(0), key_side(1)], r)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Large buffers: every byte from the start point, exactly once, no gap.
    #[test]
    fn streams_come_back_whole(
        a in dir_plan(), b in dir_plan(), v6 in any::<bool>(), fin in any::<bool>(), seed in any::<u64>()
    ) {
        let plans = [a, b];
        let cfg = Config { max_flows: 16, max_flow_buffer: 1 << 20, max_total_buffer: 1 << 20, idle_timeout_us: u64::MAX };
        let (rec, sides, r) = run(&plans, v6, fin, seed, cfg);
        let st = r.stats();
        let first = rec.order[0];
        // Segments after a FIN ended the flow start new (mid-flow) flows, which may hold
        // gaps; the first flow has none (checked below).
        if rec.order.len() == 1 {
            prop_assert_eq!(st.gaps, 0);
        }
        for i in 0..2 {
            let p = &plans[i];
            let want = p.stream[p.cuts[p.start_seg]..].to_vec();
            let got = rec.events.get(&(first, sides[i])).cloned().unwrap_or_default();
            prop_assert_eq!(got, vec![Ev::Data(want)]);
        }
        // Every flow ended exactly once (the recorder checks "once").
        let mut ids: Vec<FlowId> = rec.order.clone();
        ids.sort();
        let mut ended: Vec<FlowId> = rec.ends.iter().map(|e| e.0).collect();
        ended.sort();
        for id in &ids {
            prop_assert!(ended.contains(id));
        }
        // With FINs on both sides, the first flow ends by FIN, not at finish.
        let first_end = rec.ends.iter().find(|e| e.0 == first).map(|e| e.1);
        let fins = plans.iter().all(|p| p.start_seg + 2 < p.cuts.len());
        if fin && fins {
            prop_assert_eq!(first_end, Some(EndReason::Fin));
        } else {
            prop_assert_eq!(first_end, Some(EndReason::Finished));
        }
    }

    /// Small buffers: data and gaps line up with the original stream, buffers stay bounded.
    #[test]
    fn small_buffers_give_gaps_not_garbage(
        a in dir_plan(), b in dir_plan(), v6 in any::<bool>(), seed in any::<u64>(),
        flow_buf in 0usize..400, total_buf in 0usize..600,
    ) {
        let plans = [a, b];
        let cfg = Config { max_flows: 16, max_flow_buffer: flow_buf, max_total_buffer: total_buf, idle_timeout_us: u64::MAX };
        let (rec, sides, r) = run(&plans, v6, false, seed, cfg);
        let st = r.stats();
        let first = rec.order[0];
        let mut gap_bytes = 0;
        for i in 0..2 {
            let p = &plans[i];
            let want = &p.stream[p.cuts[p.start_seg]..];
            let evs = rec.events.get(&(first, sides[i])).cloned().unwrap_or_default();
            let mut at = 0usize;
            for ev in evs {
                match ev {
                    Ev::Data(d) => {
                        prop_assert_eq!(&d[..], &want[at..at + d.len()]);
                        at += d.len();
                    }
                    Ev::Gap(n) => {
                        at += n as usize;
                        gap_bytes += n;
                    }
                }
            }
            prop_assert_eq!(at, want.len());
        }
        prop_assert_eq!(gap_bytes, st.bytes_gap);
    }
}

fn seg_v4(i: u32, seq: u32, fl: u8, payload: &[u8]) -> Segment<'_> {
    Segment {
        src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
        dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        sport: 40000 + (i % 20000) as u16,
        dport: 443,
        seq,
        ack: 0,
        flags: fl,
        window: 1000,
        payload,
    }
}

#[derive(Default)]
struct Count {
    ends: HashMap<EndReason, u64>,
    gaps: u64,
    data: u64,
}

impl Sink for Count {
    fn data(&mut self, _: FlowId, _: &FlowKey, _: Side, _: u64, b: &[u8]) {
        self.data += b.len() as u64;
    }
    fn gap(&mut self, _: FlowId, _: &FlowKey, _: Side, len: u64) {
        self.gaps += len;
    }
    fn end(&mut self, _: FlowId, _: &FlowKey, reason: EndReason) {
        *self.ends.entry(reason).or_default() += 1;
    }
}

/// 100 000 half-open flows (a SYN each): the flow table stays at its limit, and every
/// flow beyond it is counted as an eviction.
#[test]
fn hundred_thousand_syns_stay_within_max_flows() {
    let cfg = Config {
        max_flows: 10_000,
        max_flow_buffer: 1000,
        max_total_buffer: 100_000,
        idle_timeout_us: 60_000_000,
    };
    let mut r = Reassembler::new(cfg);
    let mut c = Count::default();
    for i in 0..100_000u32 {
        r.push(
            u64::from(i),
            &seg_v4(i, i.wrapping_mul(7919), flags::SYN, &[]),
            &mut c,
        );
        assert!(r.flows() <= 10_000);
        assert_eq!(r.buffered_bytes(), 0);
    }
    let st = r.stats();
    assert_eq!(r.flows(), 10_000);
    assert_eq!(st.segments, 100_000);
    assert_eq!(st.flows_created, 100_000);
    assert_eq!(st.drop_flow_limit, 90_000);
    assert_eq!(st.flows_ended_evicted, 90_000);
    assert_eq!(c.ends.get(&EndReason::Evicted), Some(&90_000));
    // The oldest flows were evicted: expiring at the last flows' time + timeout ends the rest.
    r.expire(99_999 + 60_000_000, &mut c);
    assert_eq!(r.flows(), 0);
    assert_eq!(r.stats().flows_ended_idle, 10_000);
}

/// 100 000 flows each holding out-of-order bytes (a SYN, then data after a hole): the
/// total buffer limit holds, every byte is accounted for, nothing is lost silently.
#[test]
fn hundred_thousand_out_of_order_flows_stay_within_buffers() {
    for max_flows in [10_000, 200_000] {
        let cfg = Config {
            max_flows,
            max_flow_buffer: 150,
            max_total_buffer: 500_000,
            idle_timeout_us: 60_000_000,
        };
        let mut r = Reassembler::new(cfg);
        let mut c = Count::default();
        let payload = [0x16u8; 100];
        let mut payload_in = 0u64;
        for i in 0..100_000u32 {
            let isn = i.wrapping_mul(2_654_435_761);
            r.push(u64::from(i), &seg_v4(i, isn, flags::SYN, &[]), &mut c);
            // data 50 bytes after the first expected byte: a hole of 50
            r.push(
                u64::from(i),
                &seg_v4(i, isn.wrapping_add(51), flags::ACK, &payload),
                &mut c,
            );
            payload_in += 100;
            assert!(r.flows() <= max_flows);
            assert!(r.buffered_bytes() <= 500_000);
            let st = r.stats();
            assert_eq!(
                payload_in,
                st.bytes_delivered
                    + st.bytes_retransmitted
                    + st.bytes_overlap
                    + st.bytes_ignored
                    + r.buffered_bytes() as u64
            );
        }
        let st = r.stats();
        assert_eq!(st.flows_created, 100_000);
        assert_eq!(r.buffered_bytes(), 5_000.min(max_flows) * 100);
        // Each flow that could not buffer gave up its hole of 50 bytes and got its data.
        assert_eq!(st.bytes_gap, c.gaps);
        assert_eq!(st.bytes_delivered, c.data);
        if max_flows == 200_000 {
            assert_eq!(st.drop_total_buffer, 95_000);
            assert_eq!(st.drop_flow_limit, 0);
            assert_eq!(st.bytes_gap, 95_000 * 50);
            assert_eq!(st.bytes_delivered, 95_000 * 100);
        } else {
            assert_eq!(st.drop_flow_limit, 90_000);
        }
        r.finish(&mut c);
        assert_eq!(r.buffered_bytes(), 0);
        assert_eq!(r.stats().bytes_delivered, 100_000 * 100);
        assert_eq!(r.stats().bytes_gap, 100_000 * 50);
    }
}
