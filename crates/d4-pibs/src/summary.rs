//! Per-victim aggregation for `--json`: who is attacked, on which ports, when, how hard.
//! Bounded: at most `max_victims` victims (more are counted, not kept), `MAX_PORTS` ports
//! and `MAX_BUCKETS` time buckets per victim (the oldest bucket goes first).

use std::collections::BTreeMap;
use std::net::IpAddr;

use hashbrown::HashMap;
use serde::Serialize;

use crate::detect::{Backscatter, Kind};
use d4_packet::flags;

const MAX_PORTS: usize = 1024;
const MAX_BUCKETS: usize = 4096;

/// Aggregation settings.
#[derive(Debug, Clone, Copy)]
pub struct SummaryConfig {
    /// Width of a time bucket in seconds (default 300).
    pub bucket_secs: u64,
    /// A victim's bucket is reported when it holds at least this many packets.
    pub threshold: u64,
    /// Most victims tracked at once.
    pub max_victims: usize,
}

impl Default for SummaryConfig {
    fn default() -> Self {
        SummaryConfig {
            bucket_secs: 300,
            threshold: 1,
            max_victims: 100_000,
        }
    }
}

#[derive(Default)]
struct Victim {
    first: u64,
    last: u64,
    packets: u64,
    tcp: u64,
    icmp: u64,
    ports: HashMap<u16, u64>,
    other_ports: u64,
    flags: BTreeMap<u8, u64>,
    icmp_types: BTreeMap<(u8, u8), u64>,
    buckets: BTreeMap<u64, u64>,
}

/// One victim in the JSON report.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct VictimReport {
    pub victim: String,
    pub first_seen: u64,
    pub last_seen: u64,
    pub packets: u64,
    pub tcp: u64,
    pub icmp: u64,
    /// Attacked ports, most packets first.
    pub ports: Vec<PortCount>,
    /// Packets on ports beyond the per-victim port limit.
    pub other_ports: u64,
    /// TCP flags histogram: `"SYN,ACK"` → packets.
    pub tcp_flags: BTreeMap<String, u64>,
    /// ICMP errors: `"type/code"` → packets.
    pub icmp_types: BTreeMap<String, u64>,
    /// Time buckets at or over the threshold (start epoch, packets), in time order.
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PortCount {
    pub port: u16,
    pub packets: u64,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Bucket {
    pub start: u64,
    pub packets: u64,
}

/// The aggregator.
pub struct Summary {
    cfg: SummaryConfig,
    victims: HashMap<IpAddr, Victim>,
    dropped_victims: u64,
}

impl Summary {
    pub fn new(cfg: SummaryConfig) -> Summary {
        Summary {
            cfg: SummaryConfig {
                bucket_secs: cfg.bucket_secs.max(1),
                ..cfg
            },
            victims: HashMap::new(),
            dropped_victims: 0,
        }
    }

    pub fn add(&mut self, ts: u64, b: &Backscatter) {
        let full = self.victims.len() >= self.cfg.max_victims;
        let v = match self.victims.get_mut(&b.victim) {
            Some(v) => v,
            None if full => {
                self.dropped_victims += 1;
                return;
            }
            None => self.victims.entry(b.victim).or_insert_with(|| Victim {
                first: ts,
                last: ts,
                ..Victim::default()
            }),
        };
        v.first = v.first.min(ts);
        v.last = v.last.max(ts);
        v.packets += 1;
        match b.kind {
            Kind::Tcp { flags } => {
                v.tcp += 1;
                *v.flags.entry(flags).or_default() += 1;
            }
            Kind::Icmp {
                icmp_type, code, ..
            } => {
                v.icmp += 1;
                *v.icmp_types.entry((icmp_type, code)).or_default() += 1;
            }
        }
        if let Some(c) = v.ports.get_mut(&b.port) {
            *c += 1;
        } else if v.ports.len() < MAX_PORTS {
            v.ports.insert(b.port, 1);
        } else {
            v.other_ports += 1;
        }
        let start = ts / self.cfg.bucket_secs * self.cfg.bucket_secs;
        *v.buckets.entry(start).or_default() += 1;
        if v.buckets.len() > MAX_BUCKETS {
            v.buckets.pop_first();
        }
    }

    /// Victims turned away because `max_victims` were already tracked.
    pub fn dropped_victims(&self) -> u64 {
        self.dropped_victims
    }

    pub fn is_empty(&self) -> bool {
        self.victims.is_empty()
    }

    /// The report: victims with at least one bucket at or over the threshold, most packets
    /// first (ties by address).
    pub fn report(&self) -> Vec<VictimReport> {
        let mut out: Vec<VictimReport> = self
            .victims
            .iter()
            .filter_map(|(ip, v)| {
                let buckets: Vec<Bucket> = v
                    .buckets
                    .iter()
                    .filter(|(_, &n)| n >= self.cfg.threshold)
                    .map(|(&start, &packets)| Bucket { start, packets })
                    .collect();
                if buckets.is_empty() {
                    return None;
                }
                let mut ports: Vec<PortCount> = v
                    .ports
                    .iter()
                    .map(|(&port, &packets)| PortCount { port, packets })
                    .collect();
                ports.sort_by(|a, b| b.packets.cmp(&a.packets).then(a.port.cmp(&b.port)));
                Some(VictimReport {
                    victim: ip.to_string(),
                    first_seen: v.first,
                    last_seen: v.last,
                    packets: v.packets,
                    tcp: v.tcp,
                    icmp: v.icmp,
                    ports,
                    other_ports: v.other_ports,
                    tcp_flags: v
                        .flags
                        .iter()
                        .map(|(&f, &n)| (flags::names(f), n))
                        .collect(),
                    icmp_types: v
                        .icmp_types
                        .iter()
                        .map(|(&(t, c), &n)| (format!("{t}/{c}"), n))
                        .collect(),
                    buckets,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.packets
                .cmp(&a.packets)
                .then_with(|| a.victim.cmp(&b.victim))
        });
        out
    }

    /// Forgets every victim (the queue mode reports per file).
    pub fn clear(&mut self) {
        self.victims.clear();
        self.dropped_victims = 0;
    }
}
