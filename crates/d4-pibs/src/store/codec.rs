//! Byte codecs of the embedded store: keys (fixed width, big-endian so they sort by
//! value) and the bucket, attack and file records (LEB128 varints, a version byte first).

use std::collections::{BTreeMap, BTreeSet};

use crate::aggregate::BucketRec;
use crate::distinct::Distinct;
use crate::store::{BucketStats, FileState, PibsStoreError};

use super::attacks::AttackAgg;

pub(super) const VERSION: u8 = 1;

/// `a ‖ b_be`: 16-byte address then a big-endian u64 (buckets, victim_attacks).
pub fn ip_time(ip: [u8; 16], t: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&ip);
    k[16..].copy_from_slice(&t.to_be_bytes());
    k
}

/// `t_be ‖ ip`: time first (attacks, bucket_time).
pub fn time_ip(t: u64, ip: [u8; 16]) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&t.to_be_bytes());
    k[8..].copy_from_slice(&ip);
    k
}

/// Splits a 24-byte `ip ‖ t` key.
pub fn split_ip_time(k: &[u8]) -> Result<([u8; 16], u64), PibsStoreError> {
    if k.len() != 24 {
        return Err(PibsStoreError::Corrupt(format!("key of {} bytes", k.len())));
    }
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&k[..16]);
    let mut t = [0u8; 8];
    t.copy_from_slice(&k[16..]);
    Ok((ip, u64::from_be_bytes(t)))
}

/// Splits a 24-byte `t ‖ ip` key.
pub fn split_time_ip(k: &[u8]) -> Result<(u64, [u8; 16]), PibsStoreError> {
    if k.len() != 24 {
        return Err(PibsStoreError::Corrupt(format!("key of {} bytes", k.len())));
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&k[..8]);
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&k[8..]);
    Ok((u64::from_be_bytes(t), ip))
}

pub(super) fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    put(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_names(out: &mut Vec<u8>, m: &BTreeMap<String, u64>) {
    put(out, m.len() as u64);
    for (k, v) in m {
        put_str(out, k);
        put(out, *v);
    }
}

fn put_ports(out: &mut Vec<u8>, m: &BTreeMap<u16, u64>) {
    put(out, m.len() as u64);
    for (k, v) in m {
        put(out, u64::from(*k));
        put(out, *v);
    }
}

fn put_set(out: &mut Vec<u8>, s: &BTreeSet<String>) {
    put(out, s.len() as u64);
    for k in s {
        put_str(out, k);
    }
}

/// A reader over a record's bytes; every read is checked.
struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

fn bad(what: &str) -> PibsStoreError {
    PibsStoreError::Corrupt(format!("truncated or bad {what}"))
}

impl<'a> Rd<'a> {
    fn u(&mut self) -> Result<u64, PibsStoreError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.at).ok_or_else(|| bad("varint"))?;
            self.at += 1;
            v |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint"))
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], PibsStoreError> {
        let s = self
            .b
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| bad("bytes"))?;
        self.at += n;
        Ok(s)
    }
    fn string(&mut self) -> Result<String, PibsStoreError> {
        let n = self.u()? as usize;
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| bad("text"))
    }
    fn len(&mut self) -> Result<usize, PibsStoreError> {
        let n = self.u()? as usize;
        // every entry takes at least one byte
        if n > self.b.len() {
            return Err(bad("count"));
        }
        Ok(n)
    }
    fn names(&mut self) -> Result<BTreeMap<String, u64>, PibsStoreError> {
        let n = self.len()?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let k = self.string()?;
            m.insert(k, self.u()?);
        }
        Ok(m)
    }
    fn ports(&mut self) -> Result<BTreeMap<u16, u64>, PibsStoreError> {
        let n = self.len()?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let p = u16::try_from(self.u()?).map_err(|_| bad("port"))?;
            m.insert(p, self.u()?);
        }
        Ok(m)
    }
    fn set(&mut self) -> Result<BTreeSet<String>, PibsStoreError> {
        let n = self.len()?;
        let mut s = BTreeSet::new();
        for _ in 0..n {
            s.insert(self.string()?);
        }
        Ok(s)
    }
    fn version(&mut self) -> Result<(), PibsStoreError> {
        match self.bytes(1)? {
            [VERSION] => Ok(()),
            [v] => Err(PibsStoreError::Corrupt(format!("record version {v}"))),
            _ => Err(bad("version")),
        }
    }
}

/// A bucket record (its start is in the key).
pub fn encode_bucket(r: &BucketRec, out: &mut Vec<u8>) {
    out.clear();
    out.push(VERSION);
    let s = &r.stats;
    put(out, s.packets);
    put(out, s.first_seen);
    put(out, s.last_seen);
    put_names(out, &s.kinds);
    put_ports(out, &s.ports);
    put_names(out, &s.protocols);
    put_set(out, &s.sensors);
    r.distinct.encode(out);
}

pub fn decode_bucket(start: u64, b: &[u8]) -> Result<BucketRec, PibsStoreError> {
    let mut r = Rd { b, at: 0 };
    r.version()?;
    let packets = r.u()?;
    let first_seen = r.u()?;
    let last_seen = r.u()?;
    let kinds = r.names()?;
    let ports = r.ports()?;
    let protocols = r.names()?;
    let sensors = r.set()?;
    let (distinct, _) = Distinct::decode(&b[r.at..]).ok_or_else(|| bad("distinct counter"))?;
    Ok(BucketRec {
        stats: BucketStats {
            start,
            packets,
            darknet_addrs: distinct.count(),
            kinds,
            ports,
            protocols,
            first_seen,
            last_seen,
            sensors,
        },
        distinct,
    })
}

/// An attack record (its start and victim are in the key).
pub fn encode_attack(a: &AttackAgg, out: &mut Vec<u8>) {
    out.clear();
    out.push(VERSION);
    put(out, a.end);
    put(out, a.packets);
    put(out, a.peak_packets);
    put(out, a.buckets);
    put_ports(out, &a.ports);
    put_names(out, &a.protocols);
    put_names(out, &a.kinds);
    put_set(out, &a.sensors);
}

pub fn decode_attack(start: u64, b: &[u8]) -> Result<AttackAgg, PibsStoreError> {
    let mut r = Rd { b, at: 0 };
    r.version()?;
    Ok(AttackAgg {
        start,
        end: r.u()?,
        packets: r.u()?,
        peak_packets: r.u()?,
        buckets: r.u()?,
        ports: r.ports()?,
        protocols: r.names()?,
        kinds: r.names()?,
        sensors: r.set()?,
    })
}

pub fn encode_file(f: &FileState) -> Vec<u8> {
    let mut out = vec![VERSION];
    put(&mut out, f.records);
    put(&mut out, u64::from(f.done));
    put_str(&mut out, &f.path);
    put_str(&mut out, &f.sensor);
    out
}

pub fn decode_file(b: &[u8]) -> Result<FileState, PibsStoreError> {
    let mut r = Rd { b, at: 0 };
    r.version()?;
    Ok(FileState {
        records: r.u()?,
        done: r.u()? != 0,
        path: r.string()?,
        sensor: r.string()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_bytes_are_errors() {
        let mut rec = BucketRec::default();
        rec.stats.start = 600;
        rec.stats.packets = 300;
        rec.stats.first_seen = 601;
        rec.stats.last_seen = 899;
        rec.stats.kinds.insert("syn-ack".into(), 300);
        rec.stats.ports.insert(443, 300);
        rec.stats.protocols.insert("tcp".into(), 300);
        rec.stats.sensors.insert("s".into());
        rec.distinct.insert(7);
        rec.stats.darknet_addrs = 1;
        let mut out = Vec::new();
        encode_bucket(&rec, &mut out);
        assert_eq!(decode_bucket(600, &out).ok(), Some(rec));
        for cut in 0..out.len() {
            assert!(decode_bucket(600, &out[..cut]).is_err(), "cut {cut}");
        }
        let f = FileState {
            records: 5,
            done: true,
            path: "/x".into(),
            sensor: "s".into(),
        };
        assert_eq!(decode_file(&encode_file(&f)).ok(), Some(f));
        assert!(decode_file(&[1, 0xFF]).is_err());
    }
}
