//! The JSON shapes of `d4 pibs serve` (docs/pibs.md, `## Serve`), built from store values
//! and the prefix-to-AS table without I/O: an attack, a timeline bucket, the day's summary
//! and the reverse pivot's victim rows. Times are given twice: unix seconds and RFC 3339.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use serde_json::{json, Value};

use super::input::{date, iso};
use crate::pfx2as::Pfx2As;
use crate::store::{Attack, BucketStats};

/// Rows of each "top" list of `/daily`.
pub const TOP: usize = 10;

/// `[{"port", "packets"}]`, most packets first (then lowest port).
pub fn ports(p: &BTreeMap<u16, u64>, max: usize) -> Value {
    let mut v: Vec<(&u16, &u64)> = p.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    Value::Array(
        v.into_iter()
            .take(max)
            .map(|(port, packets)| json!({ "port": port, "packets": packets }))
            .collect(),
    )
}

/// Most ports an attack lists (the busiest; `ports_total` says how many it hit).
pub const MAX_ATTACK_PORTS: usize = 100;
/// Most ports a timeline bucket lists: a spoofed flood can hit a thousand ports per
/// bucket, and a timeline has thousands of buckets.
pub const MAX_BUCKET_PORTS: usize = 10;
/// Most attacks `/victim` lists (the newest).
pub const MAX_VICTIM_ATTACKS: usize = 1_000;

/// `asn` and `prefix` of an address (nulls without a table or a route).
pub fn route(pfx: Option<&Pfx2As>, ip: IpAddr) -> (Value, Value) {
    match pfx.and_then(|t| t.lookup(ip)) {
        Some(r) => (
            r.asn().map_or(Value::Null, Value::from),
            Value::from(r.net.to_string()),
        ),
        None => (Value::Null, Value::Null),
    }
}

/// One attack.
pub fn attack(a: &Attack, pfx: Option<&Pfx2As>) -> Value {
    let (asn, prefix) = route(pfx, a.victim);
    json!({
        "id": a.id,
        "victim": a.victim.to_string(),
        "start": a.start,
        "end": a.end,
        "start_iso": iso(a.start),
        "end_iso": iso(a.end),
        "packets": a.packets,
        "peak_pps": a.peak_pps,
        "est_attack_pps": a.est_attack_pps,
        "ports": ports(&a.ports, MAX_ATTACK_PORTS),
        "ports_total": a.ports.len(),
        "protocols": a.protocols,
        "kinds": a.kinds,
        "sensors": a.sensors,
        "buckets": a.buckets,
        "asn": asn,
        "prefix": prefix,
    })
}

/// A page of attacks: `{"attacks": [...], "next"}`.
pub fn attacks(list: &[Attack], pfx: Option<&Pfx2As>, next: Option<&str>) -> Value {
    json!({
        "attacks": list.iter().map(|a| attack(a, pfx)).collect::<Vec<_>>(),
        "next": next,
    })
}

/// One bucket of a victim's timeline.
pub fn bucket(b: &BucketStats) -> Value {
    json!({
        "start": b.start,
        "start_iso": iso(b.start),
        "first_seen": b.first_seen,
        "last_seen": b.last_seen,
        "packets": b.packets,
        "darknet_addrs": b.darknet_addrs,
        "ports": ports(&b.ports, MAX_BUCKET_PORTS),
        "ports_total": b.ports.len(),
        "kinds": b.kinds,
        "protocols": b.protocols,
        "sensors": b.sensors,
    })
}

/// `/victim/<ip>`: the victim, its route, its names, attacks and timeline.
pub fn victim(
    ip: IpAddr,
    pfx: Option<&Pfx2As>,
    names: Result<&[String], &str>,
    list: &[Attack],
    timeline: &[BucketStats],
    truncated: bool,
) -> Value {
    let (asn, prefix) = route(pfx, ip);
    let mut v = json!({
        "victim": ip.to_string(),
        "asn": asn,
        "prefix": prefix,
        "names": names.unwrap_or(&[]),
        "attacks": list
            .iter()
            .rev()
            .take(MAX_VICTIM_ATTACKS)
            .rev()
            .map(|a| attack(a, pfx))
            .collect::<Vec<_>>(),
        "attacks_truncated": list.len() > MAX_VICTIM_ATTACKS,
        "timeline": timeline.iter().map(bucket).collect::<Vec<_>>(),
        "timeline_truncated": truncated,
    });
    if let (Err(e), Some(o)) = (names, v.as_object_mut()) {
        o.insert("names_error".into(), Value::from(e));
    }
    v
}

/// `/daily/<date>`: counts and the top victims, ports and ASes of the attacks overlapping
/// the day (an attack's whole packet count, also for the part outside the day).
pub fn daily(day_start: u64, list: &[Attack], pfx: Option<&Pfx2As>, truncated: bool) -> Value {
    let mut victims: HashMap<IpAddr, (u64, u64)> = HashMap::new();
    let mut ports_total: BTreeMap<u16, u64> = BTreeMap::new();
    let mut asns: HashMap<u32, (u64, HashSet<IpAddr>)> = HashMap::new();
    let mut packets = 0u64;
    for a in list {
        packets = packets.saturating_add(a.packets);
        let e = victims.entry(a.victim).or_default();
        e.0 = e.0.saturating_add(a.packets);
        e.1 += 1;
        for (p, n) in &a.ports {
            let t = ports_total.entry(*p).or_default();
            *t = t.saturating_add(*n);
        }
        if let Some(asn) = pfx.and_then(|t| t.lookup(a.victim)).and_then(|r| r.asn()) {
            let e = asns.entry(asn).or_default();
            e.0 = e.0.saturating_add(a.packets);
            e.1.insert(a.victim);
        }
    }
    let mut top_victims: Vec<(IpAddr, u64, u64)> =
        victims.iter().map(|(ip, (p, n))| (*ip, *p, *n)).collect();
    top_victims.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top_victims: Vec<Value> = top_victims
        .into_iter()
        .take(TOP)
        .map(|(ip, p, n)| {
            let (asn, prefix) = route(pfx, ip);
            json!({ "victim": ip.to_string(), "packets": p, "attacks": n, "asn": asn, "prefix": prefix })
        })
        .collect();
    let mut top_ports: Vec<(u16, u64)> = ports_total.into_iter().collect();
    top_ports.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top_ports: Vec<Value> = top_ports
        .into_iter()
        .take(TOP)
        .map(|(port, packets)| json!({ "port": port, "packets": packets }))
        .collect();
    let mut top_asns: Vec<(u32, u64, usize)> = asns
        .into_iter()
        .map(|(asn, (p, v))| (asn, p, v.len()))
        .collect();
    top_asns.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top_asns: Vec<Value> = top_asns
        .into_iter()
        .take(TOP)
        .map(
            |(asn, packets, victims)| json!({ "asn": asn, "packets": packets, "victims": victims }),
        )
        .collect();
    json!({
        "date": date(day_start),
        "start": day_start,
        "end": day_start + 86_399,
        "attacks": list.len(),
        "victims": victims.len(),
        "packets": packets,
        "top_victims": top_victims,
        "top_ports": top_ports,
        "top_asns": top_asns,
        "truncated": truncated,
    })
}

/// What the reverse pivot knows of one victim.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VictimRow {
    pub attacks: u64,
    pub packets: u64,
    pub first: u64,
    pub last: u64,
    pub peak_pps: f64,
}

impl VictimRow {
    pub fn add(&mut self, a: &Attack) {
        if self.attacks == 0 || a.start < self.first {
            self.first = a.start;
        }
        self.last = self.last.max(a.end);
        self.attacks += 1;
        self.packets = self.packets.saturating_add(a.packets);
        self.peak_pps = self.peak_pps.max(a.peak_pps);
    }
}

/// `/asn/<asn>`, `/prefix/<net>`: one page of victims, in address order.
pub fn victims(
    what: serde_json::Map<String, Value>,
    rows: &[(IpAddr, VictimRow)],
    pfx: Option<&Pfx2As>,
    next: Option<&str>,
) -> Value {
    let items: Vec<Value> = rows
        .iter()
        .map(|(ip, r)| {
            let (asn, prefix) = route(pfx, *ip);
            json!({
                "victim": ip.to_string(),
                "attacks": r.attacks,
                "packets": r.packets,
                "peak_pps": r.peak_pps,
                "first": r.first,
                "last": r.last,
                "first_iso": iso(r.first),
                "last_iso": iso(r.last),
                "asn": asn,
                "prefix": prefix,
            })
        })
        .collect();
    let mut v = what;
    v.insert("victims".into(), Value::Array(items));
    v.insert("next".into(), json!(next));
    Value::Object(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attack_of(victim: &str, start: u64, packets: u64, ports: &[(u16, u64)]) -> Attack {
        Attack {
            id: format!("{victim}-{start}"),
            victim: victim.parse().unwrap(),
            start,
            end: start + 600,
            packets,
            peak_pps: packets as f64 / 300.0,
            est_attack_pps: None,
            ports: ports.iter().copied().collect(),
            protocols: Default::default(),
            kinds: Default::default(),
            sensors: Default::default(),
            buckets: 2,
        }
    }

    #[test]
    fn attack_shape() {
        let pfx = Pfx2As::parse(b"192.0.2.0\t24\t64496\n");
        let a = attack_of(
            "192.0.2.7",
            86_400,
            900,
            &[(80, 100), (443, 800), (22, 100)],
        );
        let v = attack(&a, Some(&pfx));
        assert_eq!(v["id"], "192.0.2.7-86400");
        assert_eq!(v["start_iso"], "1970-01-02T00:00:00Z");
        assert_eq!(v["end_iso"], "1970-01-02T00:10:00Z");
        assert_eq!(v["asn"], 64496);
        assert_eq!(v["prefix"], "192.0.2.0/24");
        // most packets first, ties by port
        assert_eq!(
            v["ports"],
            json!([{"port": 443, "packets": 800}, {"port": 22, "packets": 100}, {"port": 80, "packets": 100}])
        );
        let v = attack(&a, None);
        assert!(v["asn"].is_null() && v["prefix"].is_null());
        assert!(v["est_attack_pps"].is_null());
    }

    #[test]
    fn daily_tops() {
        let pfx = Pfx2As::parse(b"192.0.2.0\t24\t64496\n198.51.100.0\t24\t64497\n");
        let list = vec![
            attack_of("192.0.2.1", 100, 10, &[(80, 10)]),
            attack_of("192.0.2.1", 5000, 30, &[(443, 30)]),
            attack_of("192.0.2.2", 100, 5, &[(80, 5)]),
            attack_of("198.51.100.9", 100, 100, &[(53, 100)]),
            attack_of("203.0.113.1", 100, 1, &[(80, 1)]),
        ];
        let v = daily(0, &list, Some(&pfx), false);
        assert_eq!(v["date"], "1970-01-01");
        assert_eq!(v["attacks"], 5);
        assert_eq!(v["victims"], 4);
        assert_eq!(v["packets"], 146);
        assert_eq!(v["top_victims"][0]["victim"], "198.51.100.9");
        assert_eq!(
            v["top_victims"][1],
            json!({"victim": "192.0.2.1", "packets": 40, "attacks": 2, "asn": 64496, "prefix": "192.0.2.0/24"})
        );
        assert_eq!(
            v["top_ports"],
            json!([{"port": 53, "packets": 100}, {"port": 443, "packets": 30}, {"port": 80, "packets": 16}])
        );
        assert_eq!(
            v["top_asns"],
            json!([{"asn": 64497, "packets": 100, "victims": 1}, {"asn": 64496, "packets": 45, "victims": 2}])
        );
        let v = daily(0, &[], None, false);
        assert_eq!(
            (
                v["attacks"].as_u64(),
                v["top_asns"].as_array().map(Vec::len)
            ),
            (Some(0), Some(0))
        );
    }

    #[test]
    fn victim_rows() {
        let mut r = VictimRow::default();
        r.add(&attack_of("192.0.2.1", 5000, 30, &[]));
        r.add(&attack_of("192.0.2.1", 100, 10, &[]));
        assert_eq!((r.attacks, r.packets, r.first, r.last), (2, 40, 100, 5600));
        let v = victim(
            "192.0.2.1".parse().unwrap(),
            None,
            Err("pdns down"),
            &[],
            &[],
            false,
        );
        assert_eq!(v["names"], json!([]));
        assert_eq!(v["names_error"], "pdns down");
    }
}

#[cfg(test)]
mod port_bound_tests {
    use super::*;

    #[test]
    fn port_lists_keep_the_busiest() {
        // port p hit p times: the busiest are the highest ports
        let m: BTreeMap<u16, u64> = (1..=50u16).map(|p| (p, u64::from(p))).collect();
        let v = ports(&m, 3);
        let got: Vec<u64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["port"].as_u64().unwrap())
            .collect();
        assert_eq!(got, vec![50, 49, 48]);
        let b = BucketStats {
            ports: m,
            ..Default::default()
        };
        let j = bucket(&b);
        assert_eq!(j["ports"].as_array().unwrap().len(), MAX_BUCKET_PORTS);
        assert_eq!(j["ports_total"], 50);
    }
}
