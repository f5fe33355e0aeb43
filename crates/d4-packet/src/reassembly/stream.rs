//! One direction of a TCP connection: where its stream starts, how far it was delivered,
//! where its FIN is, and its out-of-order chunks; with the delivery, trimming, buffering
//! and gap rules described in [`super`].
//!
//! Positions are stream offsets (`u64`, bytes since the direction's base sequence number),
//! so sequence wrap-around is handled once, when a segment's `seq` is turned into an offset
//! relative to the next expected byte (a signed 32-bit distance, as TCP itself does).

use std::collections::BTreeMap;

use super::{FlowId, FlowKey, Side, Sink, Stats};

/// The state of one direction.
#[derive(Debug, Default)]
pub(super) struct Dir {
    /// A segment of this direction was seen (its base is set).
    pub seen: bool,
    /// A FIN of this direction was seen.
    pub fin_seen: bool,
    /// Sequence number of stream offset 0.
    pub base: u32,
    /// Stream offset of the next byte to deliver (everything before it was delivered or
    /// reported as a gap).
    pub pos: u64,
    /// Stream offset the FIN occupies.
    pub fin: Option<u64>,
    /// Out-of-order chunks by stream offset: disjoint, each starting after `pos` (never at
    /// it: contiguous data is delivered at once).
    pub ooo: BTreeMap<u64, Vec<u8>>,
}

impl Dir {
    /// Sets the base from the first segment seen (a SYN's data starts at `seq + 1`).
    pub fn start(&mut self, seq: u32, syn: bool) {
        self.seen = true;
        self.base = if syn { seq.wrapping_add(1) } else { seq };
        self.pos = 0;
    }

    /// Stream offset of sequence number `seq` (negative: before the base).
    pub fn offset(&self, seq: u32) -> i64 {
        let next = self.base.wrapping_add(self.pos as u32);
        self.pos as i64 + i64::from(seq.wrapping_sub(next) as i32)
    }

    /// All bytes up to the FIN were delivered.
    pub fn closed(&self, ignored: bool) -> bool {
        self.fin_seen && (ignored || self.fin.is_some_and(|f| self.pos >= f))
    }
}

/// Where delivered bytes, gaps and buffer accounting go while one direction is worked on.
pub(super) struct Out<'a, S: Sink> {
    pub id: FlowId,
    pub key: FlowKey,
    pub side: Side,
    pub ts: u64,
    pub sink: &'a mut S,
    pub stats: &'a mut Stats,
    pub flow_buf: &'a mut usize,
    pub total_buf: &'a mut usize,
    pub max_flow: usize,
    pub max_total: usize,
}

impl<S: Sink> Out<'_, S> {
    fn deliver(&mut self, dir: &mut Dir, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.sink
            .data(self.id, &self.key, self.side, self.ts, bytes);
        self.stats.bytes_delivered += bytes.len() as u64;
        dir.pos += bytes.len() as u64;
    }

    /// Gives up the bytes from `pos` to `to` (they were never seen).
    fn gap(&mut self, dir: &mut Dir, to: u64) {
        if to > dir.pos {
            let len = to - dir.pos;
            self.sink.gap(self.id, &self.key, self.side, len);
            self.stats.gaps += 1;
            self.stats.bytes_gap += len;
            dir.pos = to;
        }
    }

    fn unbuffer(&mut self, n: usize) {
        *self.flow_buf = self.flow_buf.saturating_sub(n);
        *self.total_buf = self.total_buf.saturating_sub(n);
    }

    /// Delivers the buffered chunks that are now contiguous.
    fn drain(&mut self, dir: &mut Dir) {
        while let Some(entry) = dir.ooo.first_entry() {
            let start = *entry.key();
            if start > dir.pos {
                break;
            }
            let data = entry.remove();
            self.unbuffer(data.len());
            let skip = usize::try_from(dir.pos - start).unwrap_or(usize::MAX);
            self.stats.bytes_overlap += skip.min(data.len()) as u64;
            self.deliver(dir, data.get(skip..).unwrap_or(&[]));
        }
    }

    /// The payload of one segment whose first byte has sequence number `seq`.
    pub fn segment(&mut self, dir: &mut Dir, seq: u32, payload: &[u8]) {
        if payload.is_empty() {
            return;
        }
        let at = dir.offset(seq);
        let pos = dir.pos as i64;
        if at <= pos {
            let back = usize::try_from(pos - at).unwrap_or(usize::MAX);
            if back >= payload.len() {
                self.stats.bytes_retransmitted += payload.len() as u64;
                return;
            }
            self.stats.bytes_retransmitted += back as u64;
            self.in_order(dir, payload.get(back..).unwrap_or(&[]));
        } else {
            self.out_of_order(dir, at as u64, payload);
        }
    }

    /// `bytes` start at `pos`: deliver them, except where a buffered chunk (the first copy)
    /// covers them, then whatever became contiguous.
    fn in_order(&mut self, dir: &mut Dir, bytes: &[u8]) {
        let mut rest = bytes;
        loop {
            let first = dir.ooo.first_key_value().map(|(k, _)| *k);
            match first {
                Some(cs) if cs <= dir.pos => {
                    let Some((cs, data)) = dir.ooo.pop_first() else {
                        break;
                    };
                    self.unbuffer(data.len());
                    let skip = usize::try_from(dir.pos - cs).unwrap_or(usize::MAX);
                    self.stats.bytes_overlap += skip.min(data.len()) as u64;
                    let fresh = data.get(skip..).unwrap_or(&[]);
                    let dup = fresh.len().min(rest.len());
                    self.stats.bytes_overlap += dup as u64;
                    rest = rest.get(dup..).unwrap_or(&[]);
                    self.deliver(dir, fresh);
                }
                _ if rest.is_empty() => break,
                first => {
                    let room = first.map_or(usize::MAX, |cs| {
                        usize::try_from(cs - dir.pos).unwrap_or(usize::MAX)
                    });
                    let (now, later) = rest.split_at(rest.len().min(room));
                    self.deliver(dir, now);
                    rest = later;
                }
            }
        }
    }

    /// `bytes` start at offset `start` > `pos`: buffer the parts no chunk holds yet.
    fn out_of_order(&mut self, dir: &mut Dir, start: u64, bytes: &[u8]) {
        let end = start + bytes.len() as u64;
        let mut cur = start;
        if let Some((&cs, d)) = dir.ooo.range(..start).next_back() {
            cur = cur.max(cs + d.len() as u64);
        }
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        for (&cs, d) in dir.ooo.range(start..end) {
            if cs > cur {
                pieces.push((cur, cs));
            }
            cur = cur.max(cs + d.len() as u64);
        }
        if cur < end {
            pieces.push((cur, end));
        }
        let kept: u64 = pieces.iter().map(|(a, b)| b - a).sum();
        self.stats.bytes_overlap += bytes.len() as u64 - kept;
        for (a, b) in pieces {
            let lo = usize::try_from(a - start).unwrap_or(usize::MAX);
            let hi = usize::try_from(b - start).unwrap_or(usize::MAX);
            self.place(dir, a, bytes.get(lo..hi).unwrap_or(&[]));
        }
    }

    /// Buffers `bytes` (no chunk overlaps them) at offset `at`, giving up holes before them
    /// while a limit is hit.
    fn place(&mut self, dir: &mut Dir, at: u64, bytes: &[u8]) {
        let n = bytes.len();
        loop {
            if at <= dir.pos {
                // Earlier holes were given up up to here: the bytes are in order now.
                let skip = usize::try_from(dir.pos - at).unwrap_or(usize::MAX);
                self.stats.bytes_overlap += skip.min(n) as u64;
                self.deliver(dir, bytes.get(skip..).unwrap_or(&[]));
                self.drain(dir);
                return;
            }
            let flow_full = self.flow_buf.saturating_add(n) > self.max_flow;
            let total_full = self.total_buf.saturating_add(n) > self.max_total;
            if !flow_full && !total_full {
                break;
            }
            if flow_full {
                self.stats.drop_flow_buffer += 1;
            } else {
                self.stats.drop_total_buffer += 1;
            }
            match dir.ooo.first_key_value().map(|(k, _)| *k) {
                // Give up the first hole; deliver what follows it.
                Some(cs) if cs < at => {
                    self.gap(dir, cs);
                    self.drain(dir);
                }
                // Nothing buffered before these bytes: give up the hole before them.
                _ => self.gap(dir, at),
            }
        }
        *self.flow_buf += n;
        *self.total_buf += n;
        if let Some((&ps, prev)) = dir.ooo.range_mut(..at).next_back() {
            if ps + prev.len() as u64 == at {
                prev.extend_from_slice(bytes);
                return;
            }
        }
        dir.ooo.insert(at, bytes.to_vec());
    }

    /// At flow end: delivers every buffered chunk, each after a gap for the hole before it.
    pub fn flush(&mut self, dir: &mut Dir) {
        while let Some(cs) = dir.ooo.first_key_value().map(|(k, _)| *k) {
            self.gap(dir, cs);
            self.drain(dir);
        }
    }
}
