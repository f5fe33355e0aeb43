//! Attacks from buckets, pure: an attack is a maximal run of one victim's buckets, in time
//! order, where each bucket's first packet came less than the attack gap after the previous
//! bucket's last packet. [`AttackAgg`] is the stored form (additive: merging two runs or
//! adding a bucket's new packets is a sum), [`runs`] builds them from scratch and
//! [`merge_items`] joins neighbours after an incremental update.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::aggregate::{add_map, cap_ports};
use crate::store::{Attack, BucketStats, BUCKET_SECS};

/// An attack as stored (victim and start live in the key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttackAgg {
    pub start: u64,
    pub end: u64,
    pub packets: u64,
    /// Most packets in one bucket.
    pub peak_packets: u64,
    pub buckets: u64,
    pub ports: BTreeMap<u16, u64>,
    pub protocols: BTreeMap<String, u64>,
    pub kinds: BTreeMap<String, u64>,
    pub sensors: BTreeSet<String>,
}

impl AttackAgg {
    /// A one-bucket attack.
    pub fn from_bucket(b: &BucketStats) -> AttackAgg {
        AttackAgg {
            start: b.first_seen,
            end: b.last_seen,
            packets: b.packets,
            peak_packets: b.packets,
            buckets: 1,
            ports: b.ports.clone(),
            protocols: b.protocols.clone(),
            kinds: b.kinds.clone(),
            sensors: b.sensors.clone(),
        }
    }

    /// A one-bucket attack, taking the bucket's maps.
    pub fn from_stats(b: BucketStats) -> AttackAgg {
        AttackAgg {
            start: b.first_seen,
            end: b.last_seen,
            packets: b.packets,
            peak_packets: b.packets,
            buckets: 1,
            ports: b.ports,
            protocols: b.protocols,
            kinds: b.kinds,
            sensors: b.sensors,
        }
    }

    /// Bucket starts covered: `[first bucket, last bucket]`.
    pub fn bucket_span(&self) -> (u64, u64) {
        (
            self.start - self.start % BUCKET_SECS,
            self.end - self.end % BUCKET_SECS,
        )
    }

    /// Adds a bucket's new packets `delta` (what a commit added to the bucket, now
    /// `merged`); `new_bucket` when the bucket did not exist before.
    pub fn absorb(&mut self, delta: &BucketStats, merged: &BucketStats, new_bucket: bool) {
        self.start = self.start.min(merged.first_seen);
        self.end = self.end.max(merged.last_seen);
        self.packets += delta.packets;
        self.peak_packets = self.peak_packets.max(merged.packets);
        self.buckets += u64::from(new_bucket);
        add_map(&mut self.ports, &delta.ports);
        cap_ports(&mut self.ports);
        add_map(&mut self.protocols, &delta.protocols);
        add_map(&mut self.kinds, &delta.kinds);
        self.sensors.extend(delta.sensors.iter().cloned());
    }

    /// Joins a neighbouring run.
    pub fn merge(&mut self, o: &AttackAgg) {
        self.start = self.start.min(o.start);
        self.end = self.end.max(o.end);
        self.packets += o.packets;
        self.peak_packets = self.peak_packets.max(o.peak_packets);
        self.buckets += o.buckets;
        add_map(&mut self.ports, &o.ports);
        cap_ports(&mut self.ports);
        add_map(&mut self.protocols, &o.protocols);
        add_map(&mut self.kinds, &o.kinds);
        self.sensors.extend(o.sensors.iter().cloned());
    }

    /// The attack as answered, with the estimate for a darknet of `darknet_size` addresses.
    pub fn to_attack(&self, victim: IpAddr, darknet_size: Option<u64>) -> Attack {
        let peak_pps = self.peak_packets as f64 / BUCKET_SECS as f64;
        let est_attack_pps = match (victim, darknet_size) {
            (IpAddr::V4(_), Some(n)) if n > 0 => Some(peak_pps * 4_294_967_296.0 / n as f64),
            _ => None,
        };
        Attack {
            id: format!("{victim}-{}", self.start),
            victim,
            start: self.start,
            end: self.end,
            packets: self.packets,
            peak_pps,
            est_attack_pps,
            ports: self.ports.clone(),
            protocols: self.protocols.clone(),
            kinds: self.kinds.clone(),
            sensors: self.sensors.clone(),
            buckets: self.buckets,
        }
    }
}

/// Whether a run ending at `prev_end` and one starting at `next_start` are one attack.
#[inline]
pub fn joins(prev_end: u64, next_start: u64, gap: u64) -> bool {
    next_start.saturating_sub(prev_end) < gap
}

/// Sorts runs by start and joins neighbours closer than `gap`.
pub fn merge_items(mut items: Vec<AttackAgg>, gap: u64) -> Vec<AttackAgg> {
    items.sort_by_key(|a| a.start);
    let mut out: Vec<AttackAgg> = Vec::with_capacity(items.len());
    for it in items {
        match out.last_mut() {
            Some(last) if joins(last.end, it.start, gap) => last.merge(&it),
            _ => out.push(it),
        }
    }
    out
}

/// The attacks of one victim's buckets (any order).
pub fn runs(buckets: &[BucketStats], gap: u64) -> Vec<AttackAgg> {
    merge_items(buckets.iter().map(AttackAgg::from_bucket).collect(), gap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(start: u64, first: u64, last: u64, packets: u64, port: u16) -> BucketStats {
        BucketStats {
            start,
            packets,
            first_seen: first,
            last_seen: last,
            ports: BTreeMap::from([(port, packets)]),
            ..BucketStats::default()
        }
    }

    #[test]
    fn runs_split_on_gap() {
        // gap 900: 1200..1499 then 2100 (601 s later) joins; 3600 (1201 s after 2399) does not
        let bs = [
            b(1200, 1210, 1490, 10, 80),
            b(2100, 2100, 2399, 30, 443),
            b(3600, 3600, 3650, 5, 80),
        ];
        let r = runs(&bs, 900);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].start, r[0].end, r[0].packets), (1210, 2399, 40));
        assert_eq!(r[0].peak_packets, 30);
        assert_eq!(r[0].buckets, 2);
        assert_eq!(r[0].ports, BTreeMap::from([(80, 10), (443, 30)]));
        assert_eq!((r[1].start, r[1].end, r[1].buckets), (3600, 3650, 1));
        let a = r[0].to_attack(IpAddr::from([192, 0, 2, 1]), Some(65536));
        assert_eq!(a.id, "192.0.2.1-1210");
        assert_eq!(a.peak_pps, 0.1);
        assert_eq!(a.est_attack_pps, Some(0.1 * 65536.0));
        // exactly `gap` apart: two attacks
        assert_eq!(
            runs(&[b(0, 0, 100, 1, 1), b(900, 1000, 1000, 1, 1)], 900).len(),
            2
        );
        assert_eq!(
            runs(&[b(0, 0, 101, 1, 1), b(900, 1000, 1000, 1, 1)], 900).len(),
            1
        );
    }
}
