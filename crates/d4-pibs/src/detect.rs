//! Backscatter detection: which classified packets are replies to spoofed traffic.
//!
//! Rules (issue 8, extending the reference):
//! - a source that sends a *pure SYN* (SYN without ACK, RST or FIN; the ECN-setup bits ECE
//!   and CWR are allowed, RFC 3168) is an **initiator**, and the SYN's flow is remembered;
//! - any other TCP packet is **backscatter** when its source is not an initiator, unless it
//!   belongs to a flow whose SYN was seen (either direction: a SYN/ACK, RST or data answering
//!   a SYN that was seen is a reply, not backscatter);
//! - an ICMP destination-unreachable or time-exceeded error is backscatter when the packet it
//!   quotes was never sent from here: the quoted source is not an initiator, the quoted TCP
//!   flow's SYN was not seen, and for UDP the quoted source was not seen sending UDP. The victim is the quoted destination (the
//!   host the spoofed packet was aimed at).
//!
//! State is bounded: initiators and flows are remembered for `window` seconds of capture
//! time after they were last seen, and each table holds at most `cap` entries. When a table
//! is full (or a window has passed), a sweep drops the expired entries and, if the table is
//! still more than 3/4 full, the oldest ones (counted as evictions): no abort, ever.

use std::net::IpAddr;

use hashbrown::HashMap;

use d4_packet::{flags, Packet, PROTO_TCP, PROTO_UDP};

/// Detection settings.
#[derive(Debug, Clone, Copy)]
pub struct DetectConfig {
    /// How long (seconds) an initiator or a flow is remembered after it was last seen.
    pub window_secs: u64,
    /// Most initiators remembered (and, separately, most UDP senders).
    pub max_initiators: usize,
    /// Most SYN flows remembered.
    pub max_flows: usize,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            window_secs: 3600,
            max_initiators: 2_000_000,
            max_flows: 1_000_000,
        }
    }
}

/// How a backscatter packet was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A TCP packet (SYN/ACK, RST, ...) from a host that never initiated.
    Tcp { flags: u8 },
    /// An ICMP error about a packet that was never sent from here.
    Icmp { icmp_type: u8, code: u8, v6: bool },
}

/// One backscatter packet: who is under attack, on which port, how we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backscatter {
    /// The DDoS victim: the TCP source, or the destination quoted by the ICMP error.
    pub victim: IpAddr,
    /// The victim's (attacked) port: TCP source port, or the quoted destination port (0 when
    /// the quote carries no port).
    pub port: u16,
    /// The packet's own source address (the victim for TCP, the reporting host for ICMP).
    pub src: IpAddr,
    /// The packet's destination: the darknet address that received it.
    pub dst: IpAddr,
    /// The protocol attacked: TCP for TCP backscatter, the quoted packet's protocol for ICMP.
    pub proto: u8,
    pub kind: Kind,
}

/// Addresses as `u128` (IPv4 mapped into IPv6): cheaper to hash and compare than `IpAddr`.
#[inline]
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)) | (0xFFFF << 32),
        IpAddr::V6(a) => u128::from(a),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    a: u128,
    b: u128,
    /// `ap << 16 | bp`, and the protocol above.
    ports: u64,
}

impl FlowKey {
    #[inline]
    fn new(a: IpAddr, ap: u16, b: IpAddr, bp: u16, proto: u8) -> FlowKey {
        FlowKey {
            a: key(a),
            b: key(b),
            ports: (u64::from(proto) << 32) | (u64::from(ap) << 16) | u64::from(bp),
        }
    }
}

/// A map of keys to the time they were last seen, bounded in age and size: one lookup per
/// query (expired entries are treated as absent), and a sweep, when the map is full or a
/// window has passed since the last sweep, that drops expired entries and, if that is not
/// enough, the oldest ones (counted as evicted) until it is at most 3/4 full.
struct BoundedMap<K> {
    map: HashMap<K, u64>,
    window: u64,
    cap: usize,
    last_sweep: u64,
    evicted: u64,
}

impl<K: std::hash::Hash + Eq + Copy> BoundedMap<K> {
    fn new(window: u64, cap: usize) -> Self {
        BoundedMap {
            map: HashMap::new(),
            window: window.max(1),
            cap: cap.max(4),
            last_sweep: 0,
            evicted: 0,
        }
    }

    #[cold]
    fn sweep(&mut self, now: u64) {
        self.last_sweep = now;
        let w = self.window;
        self.map.retain(|_, t| t.saturating_add(w) > now);
        let target = self.cap / 4 * 3;
        // Still too full: drop the oldest, raising the age limit step by step.
        let mut age = w / 2;
        while self.map.len() > target {
            let before = self.map.len();
            let cutoff = now.saturating_sub(age);
            self.map.retain(|_, t| *t > cutoff);
            self.evicted += (before - self.map.len()) as u64;
            if age == 0 {
                // Everything has the same time: drop arbitrary entries.
                let excess = self.map.len().saturating_sub(target);
                let victims: Vec<K> = self.map.keys().take(excess).copied().collect();
                for k in victims {
                    self.map.remove(&k);
                }
                self.evicted += excess as u64;
                break;
            }
            age /= 2;
        }
    }

    #[inline]
    fn insert(&mut self, k: K, now: u64) {
        if self.map.len() >= self.cap || now >= self.last_sweep.saturating_add(self.window) {
            self.sweep(now);
        }
        self.map.insert(k, now);
    }

    /// Whether `k` was seen less than `window` seconds before `now`.
    #[inline]
    fn contains(&self, k: &K, now: u64) -> bool {
        match self.map.get(k) {
            Some(&t) => t.saturating_add(self.window) > now,
            None => false,
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// Counters of a detector's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DetectStats {
    pub tcp: u64,
    pub syn: u64,
    pub icmp_errors: u64,
    pub backscatter_tcp: u64,
    pub backscatter_icmp: u64,
    /// Non-SYN TCP packets from a non-initiator that answered a seen SYN (per-flow rule).
    pub replies: u64,
    pub initiators_evicted: u64,
    pub flows_evicted: u64,
}

/// The stateful detector. Feed it packets in capture order with their time in seconds.
pub struct Detector {
    /// Addresses are kept as 64-bit keyed fingerprints too (16 bytes per entry).
    initiators: BoundedMap<u64>,
    /// Sources of UDP datagrams: an ICMP error about their UDP is a reply, not backscatter.
    udp_senders: BoundedMap<u64>,
    /// SYN flows, by a 64-bit keyed fingerprint of the 5-tuple (16 bytes per entry instead
    /// of 56; the per-process random key makes collisions unpredictable to senders).
    flows: BoundedMap<u64>,
    fingerprint: hashbrown::DefaultHashBuilder,
    stats: DetectStats,
}

#[inline]
fn is_pure_syn(f: u8) -> bool {
    f & (flags::SYN | flags::ACK | flags::RST | flags::FIN) == flags::SYN
}

impl Detector {
    pub fn new(cfg: DetectConfig) -> Detector {
        Detector {
            initiators: BoundedMap::new(cfg.window_secs, cfg.max_initiators),
            udp_senders: BoundedMap::new(cfg.window_secs, cfg.max_initiators),
            flows: BoundedMap::new(cfg.window_secs, cfg.max_flows),
            fingerprint: hashbrown::DefaultHashBuilder::default(),
            stats: DetectStats::default(),
        }
    }

    /// Looks at one packet seen at `now` (seconds); returns the backscatter it is, if any.
    pub fn observe(&mut self, now: u64, pkt: &Packet) -> Option<Backscatter> {
        match *pkt {
            Packet::Tcp(t) => {
                self.stats.tcp += 1;
                if is_pure_syn(t.flags) {
                    self.stats.syn += 1;
                    self.initiators.insert(self.addr(t.src), now);
                    let fp = self.flow(t.src, t.sport, t.dst, t.dport, PROTO_TCP);
                    self.flows.insert(fp, now);
                    return None;
                }
                if self.initiators.contains(&self.addr(t.src), now) {
                    return None;
                }
                // A reply to a SYN that was seen (the SYN's sender is the destination). The
                // sender's own later packets need no flow check: it is an initiator.
                let reverse = self.flow(t.dst, t.dport, t.src, t.sport, PROTO_TCP);
                if self.flows.contains(&reverse, now) {
                    self.stats.replies += 1;
                    return None;
                }
                self.stats.backscatter_tcp += 1;
                Some(Backscatter {
                    victim: t.src,
                    port: t.sport,
                    src: t.src,
                    dst: t.dst,
                    proto: PROTO_TCP,
                    kind: Kind::Tcp { flags: t.flags },
                })
            }
            Packet::Udp { src, .. } => {
                self.udp_senders.insert(self.addr(src), now);
                None
            }
            Packet::IcmpError(e) => {
                self.stats.icmp_errors += 1;
                let q = e.quoted;
                if self.initiators.contains(&self.addr(q.src), now) {
                    return None;
                }
                let reply = match (q.proto, q.sport, q.dport) {
                    (PROTO_TCP, Some(sp), Some(dp)) => {
                        let fp = self.flow(q.src, sp, q.dst, dp, PROTO_TCP);
                        self.flows.contains(&fp, now)
                    }
                    (PROTO_UDP, _, _) => self.udp_senders.contains(&self.addr(q.src), now),
                    _ => false,
                };
                if reply {
                    self.stats.replies += 1;
                    return None;
                }
                self.stats.backscatter_icmp += 1;
                Some(Backscatter {
                    victim: q.dst,
                    port: q.dport.unwrap_or(0),
                    src: e.src,
                    dst: e.dst,
                    proto: q.proto,
                    kind: Kind::Icmp {
                        icmp_type: e.icmp_type,
                        code: e.code,
                        v6: e.src.is_ipv6(),
                    },
                })
            }
            Packet::Skip(_) => None,
        }
    }

    #[inline]
    fn addr(&self, a: IpAddr) -> u64 {
        use std::hash::BuildHasher;
        self.fingerprint.hash_one(key(a))
    }

    #[inline]
    fn flow(&self, a: IpAddr, ap: u16, b: IpAddr, bp: u16, proto: u8) -> u64 {
        use std::hash::BuildHasher;
        self.fingerprint.hash_one(FlowKey::new(a, ap, b, bp, proto))
    }

    pub fn stats(&self) -> DetectStats {
        let mut s = self.stats;
        s.initiators_evicted = self.initiators.evicted;
        s.flows_evicted = self.flows.evicted;
        s
    }

    /// Entries held now (initiators, flows): bounded by the configured caps.
    pub fn state_len(&self) -> (usize, usize) {
        (self.initiators.len(), self.flows.len())
    }
}
