//! Records straight from a batch's entries ([`Entry`]): the bucket record and, for a victim
//! the store did not know, its attacks, encoded from the entries' counters by index without
//! building maps or names (the same bytes as [`super::codec::encode_bucket`] and
//! [`super::codec::encode_attack`] of the map form, which the commit uses when a bucket or
//! an attack has to be merged with a stored one).

use crate::aggregate::{cap_port_list, Entry, KINDS, PROTOCOLS};

use super::attacks::joins;
use super::codec::{put, put_str, VERSION};

/// [`KINDS`] indices in the order of their names (how the map form stores them).
const KINDS_BY_NAME: [usize; KINDS.len()] = [3, 4, 8, 7, 6, 11, 10, 9, 1, 2, 0, 5];
/// [`PROTOCOLS`] indices in the order of their names.
const PROTOCOLS_BY_NAME: [usize; PROTOCOLS.len()] = [2, 3, 5, 4, 0, 1];

fn put_counts(out: &mut Vec<u8>, names: &[&str], order: &[usize], counts: &[u64]) {
    put(out, counts.iter().filter(|n| **n > 0).count() as u64);
    for &i in order {
        if let (Some(name), Some(&n)) = (names.get(i), counts.get(i)) {
            if n > 0 {
                put_str(out, name);
                put(out, n);
            }
        }
    }
}

fn put_port_list(out: &mut Vec<u8>, ports: &[(u16, u64)]) {
    put(out, ports.len() as u64);
    for &(p, n) in ports {
        put(out, u64::from(p));
        put(out, n);
    }
}

/// The bucket record of `e` seen by `sensor`.
pub fn encode_entry(e: &Entry, sensor: &str, out: &mut Vec<u8>) {
    out.clear();
    out.push(VERSION);
    put(out, e.packets);
    put(out, e.first_seen);
    put(out, e.last_seen);
    put_counts(out, &KINDS, &KINDS_BY_NAME, &e.kinds);
    put_port_list(out, &e.ports);
    put_counts(out, &PROTOCOLS, &PROTOCOLS_BY_NAME, &e.protos);
    put(out, 1);
    put_str(out, sensor);
    e.distinct.encode(out);
}

/// An attack built from new buckets of one sensor (the counterpart of
/// [`super::attacks::AttackAgg`] with counters by index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub start: u64,
    pub end: u64,
    pub packets: u64,
    pub peak_packets: u64,
    pub buckets: u64,
    kinds: [u64; KINDS.len()],
    protos: [u64; PROTOCOLS.len()],
    ports: Vec<(u16, u64)>,
}

impl Run {
    fn of(e: &Entry) -> Run {
        Run {
            start: e.first_seen,
            end: e.last_seen,
            packets: e.packets,
            peak_packets: e.packets,
            buckets: 1,
            kinds: e.kinds,
            protos: e.protos,
            ports: e.ports.clone(),
        }
    }

    /// Joins the next bucket (as `AttackAgg::merge` of a one-bucket attack).
    fn join(&mut self, e: &Entry) {
        self.start = self.start.min(e.first_seen);
        self.end = self.end.max(e.last_seen);
        self.packets += e.packets;
        self.peak_packets = self.peak_packets.max(e.packets);
        self.buckets += 1;
        for (a, b) in self.kinds.iter_mut().zip(&e.kinds) {
            *a += b;
        }
        for (a, b) in self.protos.iter_mut().zip(&e.protos) {
            *a += b;
        }
        let mut ports = Vec::with_capacity(self.ports.len() + e.ports.len());
        let (mut a, mut b) = (self.ports.iter().peekable(), e.ports.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    ports.push((x.0, x.1 + y.1));
                    a.next();
                    b.next();
                }
                (Some(x), Some(y)) if x.0 < y.0 => {
                    ports.push(**x);
                    a.next();
                }
                (_, Some(y)) => {
                    ports.push(**y);
                    b.next();
                }
                (Some(x), None) => {
                    ports.push(**x);
                    a.next();
                }
                (None, None) => break,
            }
        }
        cap_port_list(&mut ports);
        self.ports = ports;
    }

    /// The attack record, seen by `sensor`.
    pub fn encode(&self, sensor: &str, out: &mut Vec<u8>) {
        out.clear();
        out.push(VERSION);
        put(out, self.end);
        put(out, self.packets);
        put(out, self.peak_packets);
        put(out, self.buckets);
        put_port_list(out, &self.ports);
        put_counts(out, &PROTOCOLS, &PROTOCOLS_BY_NAME, &self.protos);
        put_counts(out, &KINDS, &KINDS_BY_NAME, &self.kinds);
        put(out, 1);
        put_str(out, sensor);
    }
}

/// The attacks of a victim whose only buckets are `entries` (sorted by start): runs split
/// where the gap between a bucket's last packet and the next one's first is `gap` or more.
pub fn runs(entries: &[Entry], gap: u64) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for e in entries {
        match out.last_mut() {
            Some(last) if joins(last.end, e.first_seen, gap) => last.join(e),
            _ => out.push(Run::of(e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::attacks::{runs as map_runs, AttackAgg};
    use super::super::codec::{encode_attack, encode_bucket};
    use super::*;
    use crate::aggregate::Batch;
    use crate::detect::{Backscatter, Kind};
    use std::net::IpAddr;

    #[test]
    fn name_orders_are_the_maps_orders() {
        let mut k: Vec<usize> = (0..KINDS.len()).collect();
        k.sort_by_key(|i| KINDS[*i]);
        assert_eq!(k, KINDS_BY_NAME);
        let mut p: Vec<usize> = (0..PROTOCOLS.len()).collect();
        p.sort_by_key(|i| PROTOCOLS[*i]);
        assert_eq!(p, PROTOCOLS_BY_NAME);
    }

    #[test]
    fn same_bytes_as_the_map_form() {
        let mut b = Batch::new("s1");
        for i in 0..3000u64 {
            let ts = 1_000 + (i * 7) % 1000 + if i % 2 == 0 { 4000 } else { 0 };
            let kind = match i % 5 {
                0 => Kind::Tcp { flags: 0x12 },
                1 => Kind::Tcp { flags: 0x04 },
                2 => Kind::Icmp {
                    icmp_type: 3,
                    code: 3,
                    v6: false,
                },
                3 => Kind::Tcp { flags: 0x14 },
                _ => Kind::Icmp {
                    icmp_type: 11,
                    code: 0,
                    v6: true,
                },
            };
            b.add(
                ts,
                &Backscatter {
                    victim: IpAddr::from([192, 0, 2, (i % 3) as u8]),
                    port: (i % (40 + i % 1100)) as u16,
                    src: IpAddr::from([192, 0, 2, 1]),
                    dst: IpAddr::from([10, 0, (i >> 8) as u8, i as u8]),
                    proto: [6u8, 17, 1, 58, 132, 47][(i % 6) as usize],
                    kind,
                },
            );
        }
        let entries = b.entries();
        assert!(entries.len() > 6);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for e in &entries {
            encode_entry(e, "s1", &mut x);
            encode_bucket(&e.to_rec("s1"), &mut y);
            assert_eq!(x, y);
        }
        for victim in entries.chunk_by(|a, b| a.victim == b.victim) {
            let stats: Vec<_> = victim.iter().map(|e| e.to_rec("s1").stats).collect();
            let want: Vec<AttackAgg> = map_runs(&stats, 900);
            let got = runs(victim, 900);
            assert_eq!(got.len(), want.len());
            assert!(want.len() > 1);
            for (g, w) in got.iter().zip(&want) {
                g.encode("s1", &mut x);
                encode_attack(w, &mut y);
                assert_eq!(x, y);
            }
        }
    }
}
