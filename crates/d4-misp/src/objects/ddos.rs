//! Backscatter: one `ddos` object per victim and period (`capture-origin` backscatter,
//! protocol, attacked ports, packet totals, first and last seen), in the event of the UTC
//! day the period starts. The findings come through [`FindingSource`], so any store of
//! backscatter findings (issue #22's) plugs in without this crate knowing it.

use std::net::IpAddr;

use chrono::NaiveDate;

use crate::build::{datetime, day_of, Analyzer, EventSettings};
use crate::model::Event;
use crate::template::DDOS;

use super::Days;

/// `capture-origin` of every backscatter finding.
pub const CAPTURE_ORIGIN: &str = "Indirect network capture (e.g. backscatter)";

/// The protocol of a finding (the `ddos` template's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    Ip,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Icmp => "ICMP",
            Protocol::Ip => "IP",
        }
    }
}

/// One DDoS victim seen through backscatter over one period (times in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdosFinding {
    pub victim: IpAddr,
    pub first_seen: i64,
    pub last_seen: i64,
    pub protocol: Protocol,
    /// The victim's attacked ports.
    pub ports: Vec<u16>,
    /// Backscatter packets seen.
    pub packets: u64,
    /// Peak (or mean) packets per second seen.
    pub pps: u64,
    /// The attack type in the template's words (`tcp-syn`, `icmp`, `udp`…), when known.
    pub kind: Option<String>,
}

/// Where backscatter findings come from (a store of the backscatter analyzer).
pub trait FindingSource {
    /// The findings whose period starts on `day` (UTC).
    fn ddos(&self, day: NaiveDate) -> Vec<DdosFinding>;
}

/// The backscatter events of `findings`, and how many were left out by `max_per_event`.
pub fn events(
    settings: &EventSettings,
    mut findings: Vec<DdosFinding>,
    max_per_event: usize,
) -> (Vec<Event>, usize) {
    findings.sort_by(|a, b| {
        (a.first_seen, a.victim, a.protocol, a.last_seen).cmp(&(
            b.first_seen,
            b.victim,
            b.protocol,
            b.last_seen,
        ))
    });
    let mut days = Days::new(settings, Analyzer::Backscatter);
    let mut dropped = 0;
    for f in findings {
        let ev = days.day(day_of(f.first_seen));
        if ev.objects() >= max_per_event {
            dropped += 1;
            continue;
        }
        let identity = format!("{}\0{}\0{}", f.victim, f.protocol.as_str(), f.first_seen);
        let mut o = ev.object(&DDOS, &identity);
        o.add("ip-dst", f.victim.to_string())
            .add("capture-origin", CAPTURE_ORIGIN)
            .add("protocol", f.protocol.as_str())
            .add_opt("type", f.kind.clone());
        let mut ports = f.ports.clone();
        ports.sort_unstable();
        ports.dedup();
        for p in ports {
            o.add("dst-port", p.to_string());
        }
        o.add("total-packets-sent", f.packets.to_string())
            .add("total-pps", f.pps.to_string())
            .add("first-seen", datetime(f.first_seen))
            .add("last-seen", datetime(f.last_seen));
        ev.add(o);
    }
    (days.finish(), dropped)
}
