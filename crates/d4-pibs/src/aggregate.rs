//! In-memory aggregation of backscatter per (victim, 5-minute bucket), the step between the
//! detector and the store: one [`Batch`] collects a stretch of a capture file (with the
//! file's progress), then [`crate::store::PibsStore::commit`] merges it into the store in
//! one transaction. The per-packet work is one hash-table probe that lands on the bucket's
//! entry (key, counters and the first darknet fingerprints together, so one cache miss);
//! names (kinds, protocols) and sorted sets are only made when the batch is committed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::{HashMap, HashTable};

use d4_packet::{flags, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP};

use crate::detect::{Backscatter, Kind};
use crate::distinct::{fingerprint, Distinct, EXACT_MAX};
use crate::store::{BucketStats, BUCKET_SECS};

/// Reply kinds, by index.
pub const KINDS: [&str; 12] = [
    "syn-ack",
    "rst",
    "rst-ack",
    "ack",
    "fin-ack",
    "tcp-other",
    "icmp-unreach",
    "icmp-ttl",
    "icmp-other",
    "icmp6-unreach",
    "icmp6-ttl",
    "icmp6-other",
];

/// Protocols attacked, by index.
pub const PROTOCOLS: [&str; 6] = ["tcp", "udp", "icmp", "icmp6", "sctp", "other"];

/// Most distinct ports kept per bucket and per attack: beyond it the least-hit ports are
/// dropped from the port list (their packets still count in `packets`).
pub const MAX_PORTS: usize = 1024;

/// The reply kind of a backscatter packet (index into [`KINDS`]).
#[inline]
pub fn kind_index(k: Kind) -> usize {
    match k {
        Kind::Tcp { flags: f } => match f & (flags::SYN | flags::ACK | flags::RST | flags::FIN) {
            x if x == flags::SYN | flags::ACK => 0,
            x if x == flags::RST => 1,
            x if x == flags::RST | flags::ACK => 2,
            x if x == flags::ACK => 3,
            x if x == flags::FIN | flags::ACK => 4,
            _ => 5,
        },
        Kind::Icmp {
            icmp_type,
            v6: false,
            ..
        } => match icmp_type {
            3 => 6,
            11 => 7,
            _ => 8,
        },
        Kind::Icmp {
            icmp_type,
            v6: true,
            ..
        } => match icmp_type {
            1 => 9,
            3 => 10,
            _ => 11,
        },
    }
}

/// The protocol attacked (index into [`PROTOCOLS`]).
#[inline]
pub fn proto_index(p: u8) -> usize {
    match p {
        PROTO_TCP => 0,
        PROTO_UDP => 1,
        PROTO_ICMP => 2,
        PROTO_ICMPV6 => 3,
        PROTO_SCTP => 4,
        _ => 5,
    }
}

/// An address as 16 bytes (IPv4 as `::ffff:a.b.c.d`): the store's key form.
#[inline]
pub fn ip16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The address of a 16-byte key (IPv4-mapped back to IPv4).
#[inline]
pub fn from_ip16(b: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(b);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// Where a capture file's ingest stands, committed with the batch that got it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProgress {
    /// The file's identity ([`crate::ingest::file_id`]).
    pub id: [u8; 32],
    pub path: String,
    pub sensor: String,
    /// Records (packets) of the file read so far, this batch included.
    pub records: u64,
    /// The batch ends the file.
    pub done: bool,
}

/// One bucket as the store keeps it: the stats and the distinct-address counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketRec {
    pub stats: BucketStats,
    pub distinct: Distinct,
}

impl BucketRec {
    /// Adds `o` (same victim and bucket) to this one.
    pub fn merge(&mut self, o: &BucketRec) {
        let s = &mut self.stats;
        let os = &o.stats;
        if s.packets == 0 {
            s.first_seen = os.first_seen;
            s.last_seen = os.last_seen;
        } else if os.packets > 0 {
            s.first_seen = s.first_seen.min(os.first_seen);
            s.last_seen = s.last_seen.max(os.last_seen);
        }
        s.packets += os.packets;
        add_map(&mut s.kinds, &os.kinds);
        add_map(&mut s.ports, &os.ports);
        cap_ports(&mut s.ports);
        add_map(&mut s.protocols, &os.protocols);
        s.sensors.extend(os.sensors.iter().cloned());
        self.distinct.merge(&o.distinct);
        s.darknet_addrs = self.distinct.count();
    }
}

/// Adds the counts of `b` into `a`.
pub fn add_map<K: Ord + Clone>(a: &mut BTreeMap<K, u64>, b: &BTreeMap<K, u64>) {
    for (k, v) in b {
        *a.entry(k.clone()).or_default() += v;
    }
}

/// Keeps the [`MAX_PORTS`] most-hit ports (ties: the lower port).
pub fn cap_ports(ports: &mut BTreeMap<u16, u64>) {
    if ports.len() <= MAX_PORTS {
        return;
    }
    let mut v: Vec<(u16, u64)> = ports.iter().map(|(p, n)| (*p, *n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(MAX_PORTS);
    *ports = v.into_iter().collect();
}

/// A bucket while a batch is built: key and counters in one place (the per-packet update
/// touches this entry and its address list, nothing else).
#[derive(Debug, Clone)]
struct Agg {
    /// The victim as [`key128`].
    victim: u128,
    start: u64,
    /// Per-batch counts fit u32 (a batch is bounded; they saturate otherwise): a smaller
    /// entry touches fewer cache lines per packet.
    packets: u32,
    /// First and last packet, seconds after `start` (< [`BUCKET_SECS`]).
    first: u16,
    last: u16,
    kinds: [u32; KINDS.len()],
    protos: [u32; PROTOCOLS.len()],
    /// The first [`INLINE_PORTS`] ports of the bucket and their packets; more go to
    /// `Batch::ports`.
    port: [u16; INLINE_PORTS],
    port_n: [u32; INLINE_PORTS],
    nports: u8,
    distinct: Fingerprints,
}

/// Ports kept inside a bucket's entry (most victims are hit on a few): no hash lookup.
const INLINE_PORTS: usize = 4;

/// A bucket's darknet addresses while a batch is built: up to [`EXACT_MAX`] fingerprints
/// inline in the entry, unsorted (a linear scan of a few adjacent cache lines, which the
/// prefetcher streams, beats a pointer chase, a binary search's dependent loads and an
/// insert's memmove), then the sketch.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // inline on purpose: no pointer to chase per packet
enum Fingerprints {
    Exact { n: u8, v: [u32; EXACT_MAX] },
    Sketch(Box<Distinct>),
}

impl Fingerprints {
    #[inline]
    fn insert(&mut self, h: u32) {
        match self {
            Fingerprints::Exact { n, v } => {
                let len = usize::from(*n);
                if v[..len].contains(&h) {
                    return;
                }
                if len < EXACT_MAX {
                    v[len] = h;
                    *n += 1;
                } else {
                    let mut d = self.to_distinct();
                    d.insert(h);
                    *self = Fingerprints::Sketch(Box::new(d));
                }
            }
            Fingerprints::Sketch(d) => d.insert(h),
        }
    }

    fn to_distinct(&self) -> Distinct {
        match self {
            Fingerprints::Exact { n, v } => {
                let mut v = v[..usize::from(*n)].to_vec();
                v.sort_unstable();
                Distinct::Exact(v)
            }
            Fingerprints::Sketch(d) => (**d).clone(),
        }
    }
}

/// An address as a u128 (IPv4 as `::ffff:a.b.c.d`): the same order as [`ip16`].
#[inline]
pub fn key128(ip: IpAddr) -> u128 {
    u128::from_be_bytes(ip16(ip))
}

/// A cheap, well-mixed hash of a (victim, bucket) key (not exposed to senders' choice of
/// anything but the victim address; the table is bounded by the batch size).
#[inline]
fn slot_hash(victim: u128, start: u64) -> u64 {
    let mut z = (victim as u64) ^ ((victim >> 64) as u64).rotate_left(29) ^ start;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A backscatter packet reduced to what aggregation uses (32 bytes: what the ingest's
/// reading thread hands to its aggregating thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obs {
    /// The victim as [`key128`].
    pub victim: u128,
    /// Unix seconds.
    pub ts: u64,
    /// The darknet address's [`fingerprint`].
    pub fp: u32,
    pub port: u16,
    /// Index into [`KINDS`].
    pub kind: u8,
    /// Index into [`PROTOCOLS`].
    pub proto: u8,
}

impl Obs {
    #[inline]
    pub fn new(ts: u64, b: &Backscatter) -> Obs {
        Obs {
            victim: key128(b.victim),
            ts,
            fp: fingerprint(b.dst),
            port: b.port,
            kind: kind_index(b.kind) as u8,
            proto: proto_index(b.proto) as u8,
        }
    }
}

/// Backscatter of one sensor aggregated per (victim, bucket), with the progress of the
/// file it came from.
#[derive(Debug, Clone)]
pub struct Batch {
    pub sensor: String,
    /// Set by the ingester before each commit.
    pub file: Option<FileProgress>,
    /// Indices into `aggs`, hashed by [`slot_hash`] of the entry's key.
    index: HashTable<u32>,
    aggs: Vec<Agg>,
    ports: HashMap<(u32, u16), u64>,
    packets: u64,
}

impl Batch {
    pub fn new(sensor: impl Into<String>) -> Batch {
        Batch {
            sensor: sensor.into(),
            file: None,
            index: HashTable::new(),
            aggs: Vec::new(),
            ports: HashMap::new(),
            packets: 0,
        }
    }

    /// Adds one backscatter packet seen at `ts` (unix seconds).
    #[inline]
    pub fn add(&mut self, ts: u64, b: &Backscatter) {
        self.add_obs(&Obs::new(ts, b));
    }

    /// Adds one backscatter packet in its compact form.
    #[inline]
    pub fn add_obs(&mut self, o: &Obs) {
        let ts = o.ts;
        let off = ts % BUCKET_SECS;
        let start = ts - off;
        let off = off as u16;
        let victim = o.victim;
        let h = slot_hash(victim, start);
        let aggs = &mut self.aggs;
        let slot = match self.index.find(h, |&i| {
            let a = &aggs[i as usize];
            a.victim == victim && a.start == start
        }) {
            Some(&i) => i,
            None => {
                let i = aggs.len() as u32;
                aggs.push(Agg {
                    victim,
                    start,
                    packets: 0,
                    first: off,
                    last: off,
                    kinds: [0; KINDS.len()],
                    protos: [0; PROTOCOLS.len()],
                    port: [0; INLINE_PORTS],
                    port_n: [0; INLINE_PORTS],
                    nports: 0,
                    distinct: Fingerprints::Exact {
                        n: 0,
                        v: [0; EXACT_MAX],
                    },
                });
                self.index.insert_unique(h, i, |&j| {
                    let a = &aggs[j as usize];
                    slot_hash(a.victim, a.start)
                });
                i
            }
        };
        let a = &mut self.aggs[slot as usize];
        a.packets = a.packets.saturating_add(1);
        a.first = a.first.min(off);
        a.last = a.last.max(off);
        // (an index out of range counts as the last kind / protocol: no panic)
        let k = &mut a.kinds[usize::from(o.kind).min(KINDS.len() - 1)];
        *k = k.saturating_add(1);
        let p = &mut a.protos[usize::from(o.proto).min(PROTOCOLS.len() - 1)];
        *p = p.saturating_add(1);
        a.distinct.insert(o.fp);
        let n = usize::from(a.nports);
        match a.port[..n].iter().position(|p| *p == o.port) {
            Some(i) => a.port_n[i] = a.port_n[i].saturating_add(1),
            None if n < INLINE_PORTS => {
                a.port[n] = o.port;
                a.port_n[n] = 1;
                a.nports += 1;
            }
            None => *self.ports.entry((slot, o.port)).or_default() += 1,
        }
        self.packets += 1;
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.aggs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.aggs.is_empty()
    }

    /// Backscatter packets added.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Empties the batch (keeping its allocations and sensor).
    pub fn clear(&mut self) {
        self.index.clear();
        self.aggs.clear();
        self.ports.clear();
        self.packets = 0;
        self.file = None;
    }

    /// The entries, sorted by victim (as 16 bytes) then start, as the commit reads them:
    /// counters by index, ports sorted and capped, no maps or names built.
    pub fn entries(&self) -> Vec<Entry> {
        let mut extra: Vec<(u32, u16, u64)> = self
            .ports
            .iter()
            .map(|(&(slot, port), &n)| (slot, port, n))
            .collect();
        extra.sort_unstable();
        let mut extra = extra.as_slice();
        let mut order: Vec<(u128, u64, usize)> = self
            .aggs
            .iter()
            .enumerate()
            .map(|(i, a)| (a.victim, a.start, i))
            .collect();
        order.sort_unstable();
        let mut out: Vec<Option<Entry>> = Vec::with_capacity(self.aggs.len());
        for (i, a) in self.aggs.iter().enumerate() {
            out.push(Some({
                let n = usize::from(a.nports);
                let mut ports: Vec<(u16, u64)> = a.port[..n]
                    .iter()
                    .zip(&a.port_n[..n])
                    .map(|(p, n)| (*p, u64::from(*n)))
                    .collect();
                let k = extra.partition_point(|e| (e.0 as usize) <= i);
                ports.extend(extra[..k].iter().map(|e| (e.1, e.2)));
                extra = &extra[k..];
                ports.sort_unstable();
                cap_port_list(&mut ports);
                Entry {
                    victim: a.victim.to_be_bytes(),
                    start: a.start,
                    packets: u64::from(a.packets),
                    first_seen: a.start + u64::from(a.first),
                    last_seen: a.start + u64::from(a.last),
                    kinds: a.kinds.map(u64::from),
                    protos: a.protos.map(u64::from),
                    ports,
                    distinct: a.distinct.to_distinct(),
                }
            }));
        }
        order
            .iter()
            .filter_map(|&(_, _, i)| out.get_mut(i).and_then(Option::take))
            .collect()
    }

    /// The buckets, sorted by victim (as 16 bytes) then start.
    pub fn buckets(&self) -> Vec<(IpAddr, BucketRec)> {
        self.entries()
            .into_iter()
            .map(|e| (from_ip16(e.victim), e.to_rec(&self.sensor)))
            .collect()
    }
}

/// One (victim, bucket) entry of a batch, as [`Batch::entries`] gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The victim as 16 bytes ([`ip16`]).
    pub victim: [u8; 16],
    pub start: u64,
    pub packets: u64,
    pub first_seen: u64,
    pub last_seen: u64,
    /// Packets by reply kind ([`KINDS`]) and by protocol ([`PROTOCOLS`]).
    pub kinds: [u64; KINDS.len()],
    pub protos: [u64; PROTOCOLS.len()],
    /// Sorted by port, at most [`MAX_PORTS`].
    pub ports: Vec<(u16, u64)>,
    pub distinct: Distinct,
}

impl Entry {
    /// The entry as the store's bucket record (maps and names), seen by `sensor`.
    pub fn to_rec(&self, sensor: &str) -> BucketRec {
        let named = |names: &[&str], counts: &[u64]| -> BTreeMap<String, u64> {
            names
                .iter()
                .zip(counts)
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| ((*k).to_owned(), *n))
                .collect()
        };
        let stats = BucketStats {
            start: self.start,
            packets: self.packets,
            darknet_addrs: self.distinct.count(),
            kinds: named(&KINDS, &self.kinds),
            ports: self.ports.iter().copied().collect(),
            protocols: named(&PROTOCOLS, &self.protos),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            sensors: BTreeSet::from([sensor.to_owned()]),
        };
        BucketRec {
            stats,
            distinct: self.distinct.clone(),
        }
    }
}

/// [`cap_ports`] on a list sorted by port: keeps the [`MAX_PORTS`] most-hit (ties: the
/// lower port), still sorted by port.
pub fn cap_port_list(ports: &mut Vec<(u16, u64)>) {
    if ports.len() <= MAX_PORTS {
        return;
    }
    ports.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ports.truncate(MAX_PORTS);
    ports.sort_unstable();
}

/// The unspecified IPv4 address (a placeholder for empty values).
pub const NO_IP: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(victim: [u8; 4], port: u16, dst: u8, f: u8) -> Backscatter {
        Backscatter {
            victim: IpAddr::from(victim),
            port,
            src: IpAddr::from(victim),
            dst: IpAddr::from([10, 0, 0, dst]),
            proto: PROTO_TCP,
            kind: Kind::Tcp { flags: f },
        }
    }

    #[test]
    fn buckets_by_victim_and_time() {
        let mut b = Batch::new("s1");
        let v = [192, 0, 2, 1];
        b.add(1000, &tcp(v, 80, 1, 0x12)); // bucket 900
        b.add(1199, &tcp(v, 80, 2, 0x04)); // bucket 900
        b.add(1200, &tcp(v, 443, 2, 0x14)); // bucket 1200
        b.add(1100, &tcp([192, 0, 2, 2], 22, 1, 0x12));
        let out = b.buckets();
        assert_eq!(out.len(), 3);
        let (ip, r) = &out[0];
        assert_eq!(*ip, IpAddr::from(v));
        assert_eq!(r.stats.start, 900);
        assert_eq!(r.stats.packets, 2);
        assert_eq!((r.stats.first_seen, r.stats.last_seen), (1000, 1199));
        assert_eq!(r.stats.darknet_addrs, 2);
        assert_eq!(r.stats.ports, BTreeMap::from([(80, 2)]));
        assert_eq!(r.stats.kinds.get("syn-ack"), Some(&1));
        assert_eq!(r.stats.kinds.get("rst"), Some(&1));
        assert_eq!(r.stats.protocols.get("tcp"), Some(&2));
        assert_eq!(out[1].1.stats.start, 1200);
        assert_eq!(out[1].1.stats.kinds.get("rst-ack"), Some(&1));
        assert_eq!(out[2].0, IpAddr::from([192, 0, 2, 2]));
        let mut m = out[0].1.clone();
        m.merge(&out[0].1);
        assert_eq!(m.stats.packets, 4);
        assert_eq!(m.stats.darknet_addrs, 2);
        assert_eq!(m.stats.ports, BTreeMap::from([(80, 4)]));
    }

    #[test]
    fn many_ports_in_one_bucket() {
        let mut b = Batch::new("s");
        let mut want = BTreeMap::new();
        for i in 0..40u64 {
            let port = [80u16, 443, 22, 25, 53, 8080, 993][(i % 7) as usize];
            b.add(1000, &tcp([192, 0, 2, 1], port, 1, 0x12));
            *want.entry(port).or_insert(0u64) += 1;
        }
        assert_eq!(b.buckets()[0].1.stats.ports, want);
    }

    #[test]
    fn ip16_round_trip() {
        for ip in ["192.0.2.1", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap_or(NO_IP);
            assert_eq!(from_ip16(ip16(ip)), ip);
        }
    }
}
