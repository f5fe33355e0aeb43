//! Bounded TCP stream reassembly for IPv4 and IPv6, sans-IO: [`Segment`]s in (with their
//! capture time), in-order bytes of each direction out through a [`Sink`], as soon as they
//! are contiguous. Built for a TLS analyzer that looks at the first bytes of every flow and
//! drops most flows at once ([`Reassembler::ignore`]).
//!
//! Policies:
//! - **Flows.** Both directions of a connection are one flow, keyed by [`FlowKey`] (the two
//!   endpoints ordered, so [`Side`] says which one sent the bytes). A flow is created by a
//!   SYN or by a segment carrying data; a segment without data, SYN or flow (a late ACK,
//!   FIN or RST) is only counted (`segments_no_flow`). Every flow gets a [`FlowId`] that is
//!   never reused, and exactly one [`Sink::end`] call.
//! - **Start.** A SYN sets its direction's base to `seq + 1`. Without a SYN (capture started
//!   mid-flow) the first segment seen in a direction sets the base to its `seq`. Bytes before
//!   the base or before the next expected byte are retransmissions: dropped and counted
//!   (`bytes_retransmitted`). Sequence numbers wrap around 2^32 (distances are signed 32-bit,
//!   as in TCP).
//! - **Overlaps: the first copy wins**, as most IDSs do: bytes already delivered or already
//!   buffered are never replaced by a later segment; its overlapping bytes are counted
//!   (`bytes_overlap`) and every byte is delivered exactly once.
//! - **Out-of-order** segments are buffered (their payload bytes are what the limits count;
//!   adjacent chunks are joined, so a run after one lost packet is one allocation) and
//!   delivered when the hole before them fills. A segment up to 2^31 bytes ahead is out of
//!   order, anything behind the next expected byte a retransmission.
//! - **Buffer limits and gaps.** `max_flow_buffer` bounds the out-of-order bytes of a flow
//!   (both directions), `max_total_buffer` those of all flows. When new out-of-order bytes
//!   would exceed a limit, the direction gives up its first hole instead of dropping data:
//!   [`Sink::gap`] reports the hole's length, the buffered bytes after it are delivered, and
//!   so on until the new bytes fit (or are in order). A lost packet therefore costs one gap,
//!   never a stalled stream. Each hole given up is counted (`drop_flow_buffer` or
//!   `drop_total_buffer`), its bytes in `bytes_gap`.
//! - **End.** RST ends the flow at once ([`EndReason::Rst`]). A direction is closed once its
//!   FIN was seen and every byte before it delivered; the flow ends ([`EndReason::Fin`]) when
//!   both directions are closed, or one is and the other never sent anything (one-sided
//!   capture). Flows idle for `idle_timeout_us` end in [`Reassembler::expire`]
//!   ([`EndReason::Idle`]), all flows in [`Reassembler::finish`] ([`EndReason::Finished`]).
//!   Whenever a flow ends, its buffered bytes are delivered first, each chunk after a gap.
//! - **Port reuse.** A SYN without ACK whose sequence number is not the one its direction
//!   started with begins another connection: the old flow ends ([`EndReason::Evicted`],
//!   counted in `flows_reused`) and a new one starts, so a stale or ignored flow never hides
//!   a new handshake on the same ports. A retransmitted SYN changes nothing.
//! - **Flow limit: the least recently used flow is evicted** ([`EndReason::Evicted`],
//!   `drop_flow_limit`) to admit a new one once `max_flows` are tracked: handshakes happen at
//!   the start of connections, so new flows matter more than old quiet ones, and a flood of
//!   new flows cannot freeze the table.
//! - **Ignored flows** ([`Reassembler::ignore`]) free their buffers at once and stay in the
//!   table as a small record, so later segments of the connection are counted
//!   (`segments_ignored`, `bytes_ignored`) and never re-create it, until FIN, RST, idle
//!   expiry or eviction ends it (with an [`Sink::end`] call like any flow).
//!
//! Accounting: every payload byte pushed is exactly one of `bytes_delivered`,
//! `bytes_retransmitted`, `bytes_overlap`, `bytes_ignored`, or still buffered
//! ([`Reassembler::buffered_bytes`]).
//!
//! Cost: one hash lookup and an O(1) move in a recency list per segment; in-order data is
//! delivered straight from the segment's slice (no copy, no allocation); only out-of-order
//! bytes are copied. The recency list also orders flows by last activity, so `expire` only
//! looks at flows that are due.

mod stream;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use hashbrown::{DefaultHashBuilder, HashMap};

use crate::flags;
use crate::Segment;
use stream::{Dir, Out};

/// One end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

/// Canonical flow key: `lo` < `hi` (ordered by (ip, port)), so both directions map to one
/// flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
}

impl FlowKey {
    /// The key of a segment from `src` to `dst`, and which side sent it.
    pub fn new(src: Endpoint, dst: Endpoint) -> (FlowKey, Side) {
        if src <= dst {
            (FlowKey { lo: src, hi: dst }, Side::Lo)
        } else {
            (FlowKey { lo: dst, hi: src }, Side::Hi)
        }
    }

    /// The key of `seg`'s connection, and which side sent it.
    pub fn of(seg: &Segment<'_>) -> (FlowKey, Side) {
        FlowKey::new(
            Endpoint {
                ip: seg.src,
                port: seg.sport,
            },
            Endpoint {
                ip: seg.dst,
                port: seg.dport,
            },
        )
    }

    /// The endpoint on `side`.
    pub fn endpoint(&self, side: Side) -> Endpoint {
        match side {
            Side::Lo => self.lo,
            Side::Hi => self.hi,
        }
    }
}

/// Which endpoint of a [`FlowKey`] sent the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Lo,
    Hi,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Lo => Side::Hi,
            Side::Hi => Side::Lo,
        }
    }

    fn index(self) -> usize {
        match self {
            Side::Lo => 0,
            Side::Hi => 1,
        }
    }
}

/// Identifies one flow for its lifetime; never reused by the same [`Reassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u64);

/// Limits. The defaults hold about 260 000 flows (roughly 300 bytes of state each, about
/// 75 MiB when full), 256 KiB out of order per flow (a handshake with a certificate chain
/// and heavy reordering fits) and 64 MiB out of order in all; flows idle for 2 minutes end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Flows tracked at once (at least 1); beyond it the least recently used is evicted.
    pub max_flows: usize,
    /// Out-of-order bytes buffered per flow (both directions).
    pub max_flow_buffer: usize,
    /// Out-of-order bytes buffered in all flows.
    pub max_total_buffer: usize,
    /// A flow without a segment for this long ends in [`Reassembler::expire`].
    pub idle_timeout_us: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_flows: 262_144,
            max_flow_buffer: 256 * 1024,
            max_total_buffer: 64 * 1024 * 1024,
            idle_timeout_us: 120_000_000,
        }
    }
}

/// Why a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Both directions closed by FIN (or one, when the other never sent anything).
    Fin,
    Rst,
    /// No segment for `idle_timeout_us`.
    Idle,
    /// Evicted to admit a new flow (`max_flows`), or replaced by a new connection on the
    /// same ports (`flows_reused`).
    Evicted,
    /// [`Reassembler::finish`]: end of capture.
    Finished,
}

/// Receives the reassembled streams.
pub trait Sink {
    /// In-order bytes of one direction, delivered as soon as they are contiguous.
    fn data(&mut self, id: FlowId, key: &FlowKey, side: Side, ts_us: u64, bytes: &[u8]);
    /// `len` bytes of one direction were lost (gap given up, or buffer limit hit).
    fn gap(&mut self, id: FlowId, key: &FlowKey, side: Side, len: u64) {
        let _ = (id, key, side, len);
    }
    /// The flow ended; called exactly once per flow, after its last `data`.
    fn end(&mut self, id: FlowId, key: &FlowKey, reason: EndReason) {
        let _ = (id, key, reason);
    }
}

/// Counters. Every segment, flow and payload byte is accounted for (see the module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Segments pushed.
    pub segments: u64,
    /// Segments without a flow that did not create one (no SYN and no data, or RST).
    pub segments_no_flow: u64,
    /// Segments of ignored flows.
    pub segments_ignored: u64,
    pub flows_created: u64,
    /// Flows the consumer ignored ([`Reassembler::ignore`]).
    pub flows_ignored: u64,
    pub flows_ended_fin: u64,
    pub flows_ended_rst: u64,
    pub flows_ended_idle: u64,
    pub flows_ended_evicted: u64,
    pub flows_ended_finished: u64,
    pub bytes_delivered: u64,
    /// Bytes before the next expected byte (already delivered, or before the base).
    pub bytes_retransmitted: u64,
    /// Bytes already buffered when a later copy arrived (first copy wins).
    pub bytes_overlap: u64,
    /// Payload bytes of ignored flows (and their buffers freed by `ignore`), and of RST
    /// segments without a flow.
    pub bytes_ignored: u64,
    /// Holes given up ([`Sink::gap`] calls) and their bytes.
    pub gaps: u64,
    pub bytes_gap: u64,
    /// Flows ended ([`EndReason::Evicted`]) by a SYN (without ACK) of another connection on
    /// the same ports: its sequence number is not the one that direction started with.
    pub flows_reused: u64,
    /// Flows evicted because `max_flows` were tracked.
    pub drop_flow_limit: u64,
    /// Holes given up because the flow's buffer limit was hit.
    pub drop_flow_buffer: u64,
    /// Holes given up because the total buffer limit was hit.
    pub drop_total_buffer: u64,
}

const NIL: u32 = u32::MAX;

/// One tracked flow (a slot of the slab; linked in the recency list).
#[derive(Debug)]
struct Flow {
    key: FlowKey,
    id: u64,
    last_seen: u64,
    prev: u32,
    next: u32,
    ignored: bool,
    /// Out-of-order bytes of both directions.
    buffered: usize,
    dirs: [Dir; 2],
}

/// The reassembler: a flow table with limits. See the module doc for its policies.
#[derive(Debug)]
pub struct Reassembler {
    cfg: Config,
    by_key: HashMap<FlowKey, u32, DefaultHashBuilder>,
    by_id: HashMap<u64, u32, DefaultHashBuilder>,
    slab: Vec<Flow>,
    free: Vec<u32>,
    /// Least recently used flow (recency list head) and most recent (tail).
    head: u32,
    tail: u32,
    next_id: u64,
    total_buf: usize,
    stats: Stats,
}

impl Reassembler {
    pub fn new(cfg: Config) -> Self {
        let max_flows = cfg.max_flows.clamp(1, NIL as usize - 1);
        Reassembler {
            cfg: Config { max_flows, ..cfg },
            by_key: HashMap::default(),
            by_id: HashMap::default(),
            slab: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            next_id: 1,
            total_buf: 0,
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Flows tracked now (ignored ones included).
    pub fn flows(&self) -> usize {
        self.by_key.len()
    }

    /// Out-of-order payload bytes buffered now, in all flows.
    pub fn buffered_bytes(&self) -> usize {
        self.total_buf
    }

    /// One TCP segment captured at `ts_us`.
    pub fn push<S: Sink>(&mut self, ts_us: u64, seg: &Segment<'_>, sink: &mut S) {
        self.stats.segments += 1;
        let (key, side) = FlowKey::of(seg);
        let syn = seg.flags & flags::SYN != 0;
        let fin = seg.flags & flags::FIN != 0;
        let rst = seg.flags & flags::RST != 0;
        let slot = match self.by_key.get(&key) {
            Some(&s)
                if syn && seg.flags & flags::ACK == 0 && self.new_connection(s, side, seg.seq) =>
            {
                // A SYN starting another connection on the same ports (port reuse, or
                // the old one's FIN/RST was never seen): the old flow makes way.
                self.stats.flows_reused += 1;
                self.end(s, EndReason::Evicted, sink);
                self.create(key, sink)
            }
            Some(&s) => s,
            None => {
                if rst || (!syn && seg.payload.is_empty()) {
                    self.stats.segments_no_flow += 1;
                    self.stats.bytes_ignored += seg.payload.len() as u64;
                    return;
                }
                self.create(key, sink)
            }
        };
        self.touch(slot, ts_us);
        let Some(flow) = self.slab.get_mut(slot as usize) else {
            return;
        };
        let [lo, hi] = &mut flow.dirs;
        let (dir, other) = match side {
            Side::Lo => (lo, hi),
            Side::Hi => (hi, lo),
        };
        if !dir.seen {
            dir.start(seg.seq, syn);
        }
        let data_seq = seg.seq.wrapping_add(u32::from(syn));
        if fin && !dir.fin_seen {
            dir.fin_seen = true;
            let f = dir.offset(data_seq) + seg.payload.len() as i64;
            dir.fin = u64::try_from(f).ok();
        }
        if flow.ignored {
            self.stats.segments_ignored += 1;
            self.stats.bytes_ignored += seg.payload.len() as u64;
        } else {
            let mut out = Out {
                id: FlowId(flow.id),
                key,
                side,
                ts: ts_us,
                sink: &mut *sink,
                stats: &mut self.stats,
                flow_buf: &mut flow.buffered,
                total_buf: &mut self.total_buf,
                max_flow: self.cfg.max_flow_buffer,
                max_total: self.cfg.max_total_buffer,
            };
            out.segment(dir, data_seq, seg.payload);
        }
        let ignored = flow.ignored;
        if rst {
            self.end(slot, EndReason::Rst, sink);
        } else if dir.closed(ignored) && (other.closed(ignored) || !other.seen) {
            self.end(slot, EndReason::Fin, sink);
        }
    }

    /// The consumer is done with this flow: its buffers are freed now, and later segments
    /// of the connection are only counted until FIN, RST or idle expiry ends it.
    pub fn ignore(&mut self, id: FlowId) {
        let Some(&slot) = self.by_id.get(&id.0) else {
            return;
        };
        let Some(flow) = self.slab.get_mut(slot as usize) else {
            return;
        };
        if flow.ignored {
            return;
        }
        flow.ignored = true;
        self.stats.flows_ignored += 1;
        self.stats.bytes_ignored += flow.buffered as u64;
        self.total_buf = self.total_buf.saturating_sub(flow.buffered);
        flow.buffered = 0;
        for d in &mut flow.dirs {
            d.ooo = Default::default();
        }
    }

    /// Ends the flows idle since `now_us - idle_timeout_us` or longer. Cheap when none is:
    /// flows are kept in order of last activity.
    pub fn expire<S: Sink>(&mut self, now_us: u64, sink: &mut S) {
        while let Some(flow) = self.slab.get(self.head as usize) {
            if flow.last_seen.saturating_add(self.cfg.idle_timeout_us) > now_us {
                break;
            }
            self.end(self.head, EndReason::Idle, sink);
        }
    }

    /// End of capture: ends every flow (least recently used first).
    pub fn finish<S: Sink>(&mut self, sink: &mut S) {
        while self.head != NIL {
            self.end(self.head, EndReason::Finished, sink);
        }
    }

    /// `seq` of a SYN from `side` is not its direction's start: another connection.
    fn new_connection(&self, slot: u32, side: Side, seq: u32) -> bool {
        self.slab
            .get(slot as usize)
            .and_then(|f| f.dirs.get(side.index()))
            .is_some_and(|d| d.seen && d.base != seq.wrapping_add(1))
    }

    /// A new flow in a free slot, evicting the least recently used one at the limit.
    fn create<S: Sink>(&mut self, key: FlowKey, sink: &mut S) -> u32 {
        if self.by_key.len() >= self.cfg.max_flows && self.head != NIL {
            self.stats.drop_flow_limit += 1;
            self.end(self.head, EndReason::Evicted, sink);
        }
        let id = self.next_id;
        self.next_id += 1;
        let flow = Flow {
            key,
            id,
            last_seen: 0,
            prev: NIL,
            next: NIL,
            ignored: false,
            buffered: 0,
            dirs: Default::default(),
        };
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(f) = self.slab.get_mut(s as usize) {
                    *f = flow;
                }
                s
            }
            None => {
                self.slab.push(flow);
                (self.slab.len() - 1) as u32
            }
        };
        self.by_key.insert(key, slot);
        self.by_id.insert(id, slot);
        self.stats.flows_created += 1;
        self.link_tail(slot);
        slot
    }

    /// Marks `slot` as the most recently used.
    fn touch(&mut self, slot: u32, ts_us: u64) {
        if let Some(f) = self.slab.get_mut(slot as usize) {
            f.last_seen = f.last_seen.max(ts_us);
        }
        if self.tail != slot {
            self.unlink(slot);
            self.link_tail(slot);
        }
    }

    fn link_tail(&mut self, slot: u32) {
        let tail = self.tail;
        if let Some(f) = self.slab.get_mut(slot as usize) {
            f.prev = tail;
            f.next = NIL;
        }
        match self.slab.get_mut(tail as usize) {
            Some(t) => t.next = slot,
            None => self.head = slot,
        }
        self.tail = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let Some(f) = self.slab.get(slot as usize) else {
            return;
        };
        let (prev, next) = (f.prev, f.next);
        match self.slab.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.slab.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    /// Ends the flow in `slot`: delivers its buffered bytes (after gaps), tells the sink,
    /// frees the slot.
    fn end<S: Sink>(&mut self, slot: u32, reason: EndReason, sink: &mut S) {
        self.unlink(slot);
        let Some(flow) = self.slab.get_mut(slot as usize) else {
            return;
        };
        let id = FlowId(flow.id);
        let key = flow.key;
        for side in [Side::Lo, Side::Hi] {
            let Some(dir) = flow.dirs.get_mut(side.index()) else {
                continue;
            };
            if dir.ooo.is_empty() {
                continue;
            }
            let mut out = Out {
                id,
                key,
                side,
                ts: flow.last_seen,
                sink: &mut *sink,
                stats: &mut self.stats,
                flow_buf: &mut flow.buffered,
                total_buf: &mut self.total_buf,
                max_flow: self.cfg.max_flow_buffer,
                max_total: self.cfg.max_total_buffer,
            };
            out.flush(dir);
        }
        for d in &mut flow.dirs {
            *d = Dir::default();
        }
        sink.end(id, &key, reason);
        let counter = match reason {
            EndReason::Fin => &mut self.stats.flows_ended_fin,
            EndReason::Rst => &mut self.stats.flows_ended_rst,
            EndReason::Idle => &mut self.stats.flows_ended_idle,
            EndReason::Evicted => &mut self.stats.flows_ended_evicted,
            EndReason::Finished => &mut self.stats.flows_ended_finished,
        };
        *counter += 1;
        self.by_key.remove(&key);
        self.by_id.remove(&id.0);
        self.free.push(slot);
    }
}
