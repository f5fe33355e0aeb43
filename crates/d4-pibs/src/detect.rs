//! Backscatter detection: which classified packets are replies to spoofed traffic.
//!
//! Rules (issue 8, extending the reference):
//! - a source that sends a *pure SYN* (SYN without ACK, RST or FIN; the ECN-setup bits ECE
//!   and CWR are allowed, RFC 3168) is an **initiator**, and the SYN's flow is remembered;
//! - any other TCP packet is **backscatter** when its source is not an initiator, unless it
//!   belongs to a flow whose SYN was seen (either direction: a SYN/ACK, RST or data answering
//!   a SYN that was seen is a reply, not backscatter);
//! - an ICMP destination-unreachable or time-exceeded error is backscatter when the packet it
//!   quotes was never sent from here: the quoted source is not an initiator and the quoted
//!   flow (TCP SYN or UDP datagram) was not seen. The victim is the quoted destination (the
//!   host the spoofed packet was aimed at).
//!
//! State is bounded: initiators and flows live in two-generation tables. The current
//! generation is retired when it is `window` seconds old or holds `cap / 2` entries; an entry
//! found in the old generation is promoted. An entry is kept at least `window` seconds unless
//! the size cap forces an earlier eviction (counted), never longer than `2 × window` without
//! being seen again, and the tables never exceed `cap` entries: no abort, ever.

use std::net::IpAddr;

use hashbrown::HashMap;

use crate::packet::{flags, Packet, PROTO_TCP, PROTO_UDP};

/// Detection settings.
#[derive(Debug, Clone, Copy)]
pub struct DetectConfig {
    /// How long (seconds) an initiator or a flow is remembered after it was last seen.
    pub window_secs: u64,
    /// Most initiators remembered (both generations together).
    pub max_initiators: usize,
    /// Most flows remembered (both generations together).
    pub max_flows: usize,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            window_secs: 3600,
            max_initiators: 2_000_000,
            max_flows: 2_000_000,
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
    pub kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    a: IpAddr,
    b: IpAddr,
    ap: u16,
    bp: u16,
    proto: u8,
}

/// A map with two generations: bounded in size and in age (see the module doc).
struct GenMap<K> {
    cur: HashMap<K, u64>,
    old: HashMap<K, u64>,
    cur_start: u64,
    window: u64,
    half_cap: usize,
    evicted: u64,
}

impl<K: std::hash::Hash + Eq + Copy> GenMap<K> {
    fn new(window: u64, cap: usize) -> Self {
        GenMap {
            cur: HashMap::new(),
            old: HashMap::new(),
            cur_start: 0,
            window: window.max(1),
            half_cap: (cap / 2).max(1),
            evicted: 0,
        }
    }

    /// Retires the current generation when it is too old or too full.
    #[inline]
    fn maybe_rotate(&mut self, now: u64) {
        let aged = now >= self.cur_start.saturating_add(self.window);
        if aged || self.cur.len() >= self.half_cap {
            if self.cur.is_empty() && aged {
                // Nothing new for a whole window: the old generation is expired too.
                self.old.clear();
                self.cur_start = now;
                return;
            }
            // Entries of the old generation dropped before their window ran out were
            // evicted by the size cap.
            if !aged {
                let w = self.window;
                self.evicted += self
                    .old
                    .values()
                    .filter(|&&t| t.saturating_add(w) > now)
                    .count() as u64;
            }
            self.old = std::mem::take(&mut self.cur);
            self.cur_start = now;
        }
    }

    #[inline]
    fn insert(&mut self, k: K, now: u64) {
        self.maybe_rotate(now);
        self.cur.insert(k, now);
    }

    /// Whether `k` was seen within the window; promotes it from the old generation.
    #[inline]
    fn contains(&mut self, k: &K, now: u64) -> bool {
        self.maybe_rotate(now);
        if let Some(&t) = self.cur.get(k) {
            return t.saturating_add(self.window) > now;
        }
        if let Some(t) = self.old.remove(k) {
            if t.saturating_add(self.window) > now {
                // Keep its original time: promotion must not extend its life.
                self.cur.insert(*k, t);
                return true;
            }
        }
        false
    }

    fn len(&self) -> usize {
        self.cur.len() + self.old.len()
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
    initiators: GenMap<IpAddr>,
    flows: GenMap<FlowKey>,
    stats: DetectStats,
}

#[inline]
fn is_pure_syn(f: u8) -> bool {
    f & (flags::SYN | flags::ACK | flags::RST | flags::FIN) == flags::SYN
}

impl Detector {
    pub fn new(cfg: DetectConfig) -> Detector {
        Detector {
            initiators: GenMap::new(cfg.window_secs, cfg.max_initiators),
            flows: GenMap::new(cfg.window_secs, cfg.max_flows),
            stats: DetectStats::default(),
        }
    }

    /// Looks at one packet seen at `now` (seconds); returns the backscatter it is, if any.
    pub fn observe(&mut self, now: u64, pkt: &Packet) -> Option<Backscatter> {
        match *pkt {
            Packet::Tcp(t) => {
                self.stats.tcp += 1;
                let key = FlowKey {
                    a: t.src,
                    b: t.dst,
                    ap: t.sport,
                    bp: t.dport,
                    proto: PROTO_TCP,
                };
                if is_pure_syn(t.flags) {
                    self.stats.syn += 1;
                    self.initiators.insert(t.src, now);
                    self.flows.insert(key, now);
                    return None;
                }
                if self.initiators.contains(&t.src, now) {
                    return None;
                }
                let reverse = FlowKey {
                    a: t.dst,
                    b: t.src,
                    ap: t.dport,
                    bp: t.sport,
                    proto: PROTO_TCP,
                };
                if self.flows.contains(&reverse, now) || self.flows.contains(&key, now) {
                    self.stats.replies += 1;
                    return None;
                }
                self.stats.backscatter_tcp += 1;
                Some(Backscatter {
                    victim: t.src,
                    port: t.sport,
                    src: t.src,
                    kind: Kind::Tcp { flags: t.flags },
                })
            }
            Packet::Udp {
                src,
                dst,
                sport,
                dport,
            } => {
                self.flows.insert(
                    FlowKey {
                        a: src,
                        b: dst,
                        ap: sport,
                        bp: dport,
                        proto: PROTO_UDP,
                    },
                    now,
                );
                None
            }
            Packet::IcmpError(e) => {
                self.stats.icmp_errors += 1;
                let q = e.quoted;
                if self.initiators.contains(&q.src, now) {
                    return None;
                }
                if let (Some(sp), Some(dp)) = (q.sport, q.dport) {
                    if q.proto == PROTO_TCP || q.proto == PROTO_UDP {
                        let key = FlowKey {
                            a: q.src,
                            b: q.dst,
                            ap: sp,
                            bp: dp,
                            proto: q.proto,
                        };
                        if self.flows.contains(&key, now) {
                            self.stats.replies += 1;
                            return None;
                        }
                    }
                }
                self.stats.backscatter_icmp += 1;
                Some(Backscatter {
                    victim: q.dst,
                    port: q.dport.unwrap_or(0),
                    src: e.src,
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
