//! Fuzz the bounded TCP reassembler (`d4_packet::Reassembler`): the input picks tiny
//! limits, then a sequence of ops over four flows (three IPv4, one IPv6, both directions):
//! segments (sequence number moved by a signed step from a start near 2^32, flags, length),
//! idle expiry as time advances, and `ignore` of a flow seen so far. Every payload byte is
//! the low byte of its sequence number, so the sink can check that each direction's data,
//! with its gaps, is the stream in order with no byte twice. Checked after every op:
//! no panic, `flows() <= max_flows`, `buffered_bytes() <= max_total_buffer`, every payload
//! byte accounted for; no data after a flow's end, one end per flow.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use d4_packet::{flags, Config, EndReason, FlowId, FlowKey, Reassembler, Segment, Side, Sink};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct Check {
    /// Next expected byte per (flow, side), once its first byte was seen.
    next: HashMap<(FlowId, Side), u8>,
    ended: HashSet<FlowId>,
    seen: Vec<FlowId>,
    delivered: u64,
    gap: u64,
}

impl Check {
    fn note(&mut self, id: FlowId) {
        assert!(!self.ended.contains(&id), "event after end");
        if self.seen.last() != Some(&id) && !self.seen.contains(&id) {
            self.seen.push(id);
        }
    }
}

impl Sink for Check {
    fn data(&mut self, id: FlowId, _: &FlowKey, side: Side, _: u64, bytes: &[u8]) {
        self.note(id);
        assert!(!bytes.is_empty());
        let mut want = self.next.get(&(id, side)).copied();
        for &b in bytes {
            if let Some(w) = want {
                assert_eq!(b, w, "byte out of order or twice");
            }
            want = Some(b.wrapping_add(1));
        }
        self.next.insert((id, side), want.unwrap_or(0));
        self.delivered += bytes.len() as u64;
    }
    fn gap(&mut self, id: FlowId, _: &FlowKey, side: Side, len: u64) {
        self.note(id);
        assert!(len > 0);
        if let Some(w) = self.next.get_mut(&(id, side)) {
            *w = w.wrapping_add(len as u8);
        }
        self.gap += len;
    }
    fn end(&mut self, id: FlowId, _: &FlowKey, _: EndReason) {
        assert!(self.ended.insert(id), "end twice");
    }
}

fn endpoints(flow: usize) -> [(IpAddr, u16); 2] {
    if flow == 3 {
        [
            (IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)), 443),
            (IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), 1000),
        ]
    } else {
        [
            (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 1000 + flow as u16),
            (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 443),
        ]
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let cfg = Config {
        max_flows: 1 + usize::from(data[0] % 4),
        max_flow_buffer: usize::from(data[1] % 96),
        max_total_buffer: usize::from(data[2] % 160),
        idle_timeout_us: u64::from(data[3] % 64),
    };
    let mut r = Reassembler::new(cfg);
    let mut chk = Check::default();
    // Sequence cursor per (flow, side): starts 100 bytes before the wrap.
    let mut cursor = [[u32::MAX - 100; 2]; 4];
    let payload: Vec<u8> = (0..=255u8).cycle().take(512).collect();
    let mut now = 0u64;
    let mut payload_in = 0u64;
    let mut ops = &data[4..];
    while let Some((&op, rest)) = ops.split_first() {
        ops = rest;
        match op % 8 {
            0..=5 => {
                let [fs, d0, d1, fl, len] = match ops {
                    [a, b, c, d, e, ..] => [*a, *b, *c, *d, *e],
                    _ => break,
                };
                ops = &ops[5..];
                let flow = usize::from(fs % 4);
                let side = usize::from((fs >> 2) & 1);
                let step = i16::from_le_bytes([d0, d1]) % 200;
                let seq = cursor[flow][side].wrapping_add_signed(i32::from(step));
                if fs & 0x80 != 0 {
                    cursor[flow][side] = seq;
                }
                let mut f = fl & (flags::SYN | flags::FIN | flags::ACK | flags::PSH);
                if fl == 0xff {
                    f |= flags::RST;
                }
                let len = usize::from(len % 64);
                // Byte i of the payload is the low byte of its sequence number; a SYN's
                // data starts one after its sequence number.
                let first = seq.wrapping_add(u32::from(f & flags::SYN != 0)) as u8;
                let body = &payload[usize::from(first)..usize::from(first) + len];
                let [a, b] = endpoints(flow);
                let (src, dst) = if side == 0 { (a, b) } else { (b, a) };
                let seg = Segment {
                    src: src.0,
                    dst: dst.0,
                    sport: src.1,
                    dport: dst.1,
                    seq,
                    ack: 0,
                    flags: f,
                    window: 0,
                    payload: body,
                };
                now += u64::from(op >> 5);
                r.push(now, &seg, &mut chk);
                payload_in += len as u64;
            }
            6 => {
                now += u64::from(op >> 3);
                r.expire(now, &mut chk);
            }
            _ => {
                if !chk.seen.is_empty() {
                    let id = chk.seen[usize::from(op >> 3) % chk.seen.len()];
                    r.ignore(id);
                }
            }
        }
        assert!(r.flows() <= cfg.max_flows);
        assert!(r.buffered_bytes() <= cfg.max_total_buffer);
        let st = r.stats();
        assert_eq!(
            payload_in,
            st.bytes_delivered
                + st.bytes_retransmitted
                + st.bytes_overlap
                + st.bytes_ignored
                + r.buffered_bytes() as u64
        );
        assert_eq!(st.bytes_delivered, chk.delivered);
        assert_eq!(st.bytes_gap, chk.gap);
    }
    r.finish(&mut chk);
    let st = r.stats();
    assert_eq!(r.flows(), 0);
    assert_eq!(r.buffered_bytes(), 0);
    assert_eq!(chk.ended.len() as u64, st.flows_created);
    assert_eq!(
        st.flows_created,
        st.flows_ended_fin
            + st.flows_ended_rst
            + st.flows_ended_idle
            + st.flows_ended_evicted
            + st.flows_ended_finished
    );
});
