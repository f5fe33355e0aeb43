//! Passive DNS: one `passive-dns` object per record (rrname, rrtype, rdata) with its
//! `time_first`, `time_last` and `count`, in the event of the UTC day the record was first
//! seen (a record is a finding the day it appears; later sightings update that object).

use crate::build::{datetime, day_of, Analyzer, EventSettings};
use crate::model::Event;
use crate::template::PASSIVE_DNS;

use super::Days;

/// One passive DNS record (times in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    pub rrname: String,
    /// The type's mnemonic (`A`, `AAAA`…, `TYPE65` for others).
    pub rrtype: String,
    pub rdata: String,
    pub time_first: i64,
    pub time_last: i64,
    pub count: u64,
    pub sensors: Vec<String>,
}

/// What the passive DNS events hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsOptions {
    /// Most objects per event (the oldest records of the day first).
    pub max_per_event: usize,
    /// The `origin` attribute of every object (none when `None`).
    pub origin: Option<String>,
}

/// The passive DNS events of `records`, and how many records were left out by the bound.
pub fn events(
    settings: &EventSettings,
    mut records: Vec<DnsRecord>,
    opts: &DnsOptions,
) -> (Vec<Event>, usize) {
    records.sort_by(|a, b| {
        (a.time_first, &a.rrname, &a.rrtype, &a.rdata).cmp(&(
            b.time_first,
            &b.rrname,
            &b.rrtype,
            &b.rdata,
        ))
    });
    records.dedup_by(|a, b| (&a.rrname, &a.rrtype, &a.rdata) == (&b.rrname, &b.rrtype, &b.rdata));
    let mut days = Days::new(settings, Analyzer::PassiveDns);
    let mut dropped = 0;
    for r in records {
        let ev = days.day(day_of(r.time_first));
        if ev.objects() >= opts.max_per_event {
            dropped += 1;
            continue;
        }
        let identity = format!("{}\0{}\0{}", r.rrname, r.rrtype, r.rdata);
        let mut o = ev.object(&PASSIVE_DNS, &identity);
        o.add("rrname", r.rrname)
            .add("rrtype", r.rrtype)
            .add("rdata", r.rdata)
            .add("time_first", datetime(r.time_first))
            .add("time_last", datetime(r.time_last))
            .add("count", r.count.to_string());
        if !r.sensors.is_empty() {
            o.add("sensor_id", r.sensors.join(","));
        }
        o.add_opt("origin", opts.origin.clone());
        ev.add(o);
    }
    (days.finish(), dropped)
}
