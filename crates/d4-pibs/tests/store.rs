#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The backscatter store's acceptance: generated captures with planted attacks (IPv4 and
//! IPv6 victims, several ports, attacks that stop and restart, replies seen by two
//! sensors) among scan and noise traffic give exactly the planted attacks. Every expected
//! value comes from the plan below, never from the code under test.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use d4_pibs::ingest::{FileOutcome, IngestOptions, Ingester};
use d4_pibs::store::{
    open_embedded, Attack, AttackQuery, Batch, BucketStats, CommitStats, EmbeddedPibsStore,
    ExpireStats, FileState, Page, PibsStore, PibsStoreError, StoreConfig, StoreInfo,
};
use d4_pibs::synth::{noise_frames, pcap_file, reply_frame, Reply};

/// Bucket-aligned (1_700_000_100 % 300 == 0).
const T0: u64 = 1_700_000_100;
const GAP: u64 = 900;

struct Planted {
    victim: &'static str,
    ports: &'static [u16],
    reply: Reply,
    /// (first, last, step) seconds after T0: one packet per port per step per sensor.
    segments: &'static [(u64, u64, u64)],
    sensors: &'static [&'static str],
    kind: &'static str,
    proto: &'static str,
}

const PLAN: &[Planted] = &[
    // stops at +1810, restarts an hour later: two attacks
    Planted {
        victim: "198.51.100.10",
        ports: &[80, 443],
        reply: Reply::SynAck,
        segments: &[(10, 1810, 5)],
        sensors: &["sensor-a"],
        kind: "syn-ack",
        proto: "tcp",
    },
    Planted {
        victim: "198.51.100.10",
        ports: &[80],
        reply: Reply::RstAck,
        segments: &[(5410, 6010, 10)],
        sensors: &["sensor-a"],
        kind: "rst-ack",
        proto: "tcp",
    },
    // seen by both sensors
    Planted {
        victim: "2001:db8::77",
        ports: &[53, 8080],
        reply: Reply::Rst,
        segments: &[(301, 1499, 7)],
        sensors: &["sensor-a", "sensor-b"],
        kind: "rst",
        proto: "tcp",
    },
    Planted {
        victim: "203.0.113.5",
        ports: &[123],
        reply: Reply::PortUnreach,
        segments: &[(600, 1200, 3)],
        sensors: &["sensor-b"],
        kind: "icmp-unreach",
        proto: "udp",
    },
    Planted {
        victim: "2001:db8::99",
        ports: &[443],
        reply: Reply::PortUnreach,
        segments: &[(2000, 2300, 20)],
        sensors: &["sensor-b"],
        kind: "icmp6-unreach",
        proto: "udp",
    },
    // a pause of 600 s (< the 900 s gap): one attack
    Planted {
        victim: "203.0.113.9",
        ports: &[25, 587, 993],
        reply: Reply::SynAck,
        segments: &[(100, 700, 4), (1300, 1600, 4)],
        sensors: &["sensor-a"],
        kind: "syn-ack",
        proto: "tcp",
    },
];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The darknet address the `i`-th packet of a sensor goes to (30 per sensor and family: a bucket's count stays exact, <= 64).
fn darknet(victim: IpAddr, sensor: &str, i: u64) -> IpAddr {
    let s = if sensor == "sensor-a" { 1u8 } else { 2 };
    match victim {
        IpAddr::V4(_) => IpAddr::from([10, s, 0, (i % 30) as u8]),
        IpAddr::V6(_) => IpAddr::from([
            0x20,
            0x01,
            0x0d,
            0xb8,
            0xff,
            0xff,
            0,
            s,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            (i % 30) as u8,
        ]),
    }
}

/// What the plan says: per sensor, the frames with their times; per victim and bucket, the
/// packets, ports and darknet addresses.
struct Expected {
    frames: BTreeMap<&'static str, Vec<(u64, Vec<u8>)>>,
    attacks: Vec<Attack>,
    /// (victim, bucket start) -> (packets, distinct darknet addresses)
    buckets: BTreeMap<(IpAddr, u64), (u64, BTreeSet<IpAddr>)>,
}

fn expected() -> Expected {
    let mut frames: BTreeMap<&'static str, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
    let mut buckets: BTreeMap<(IpAddr, u64), (u64, BTreeSet<IpAddr>)> = BTreeMap::new();
    let mut attacks = Vec::new();
    let mut counter: BTreeMap<&str, u64> = BTreeMap::new();
    for p in PLAN {
        let v = ip(p.victim);
        let mut times = Vec::new();
        for &(a, b, step) in p.segments {
            times.extend((a..=b).step_by(step as usize).map(|t| T0 + t));
        }
        let mut ports = BTreeMap::new();
        let mut per_bucket: BTreeMap<u64, u64> = BTreeMap::new();
        for &t in &times {
            for &port in p.ports {
                for &s in p.sensors {
                    let i = counter.entry(s).or_default();
                    *i += 1;
                    let d = darknet(v, s, *i);
                    frames
                        .entry(s)
                        .or_default()
                        .push((t, reply_frame(v, port, d, 40_000, p.reply)));
                    *ports.entry(port).or_insert(0u64) += 1;
                    *per_bucket.entry(t - t % 300).or_default() += 1;
                    let e = buckets.entry((v, t - t % 300)).or_default();
                    e.0 += 1;
                    e.1.insert(d);
                }
            }
        }
        let packets: u64 = ports.values().sum();
        let peak = *per_bucket.values().max().unwrap();
        attacks.push(Attack {
            id: format!("{v}-{}", times[0]),
            victim: v,
            start: times[0],
            end: *times.last().unwrap(),
            packets,
            peak_pps: peak as f64 / 300.0,
            est_attack_pps: None,
            ports,
            protocols: BTreeMap::from([(p.proto.to_owned(), packets)]),
            kinds: BTreeMap::from([(p.kind.to_owned(), packets)]),
            sensors: p.sensors.iter().map(|s| s.to_string()).collect(),
            buckets: per_bucket.len() as u64,
        });
    }
    // noise in every sensor's capture, one frame every 2 s over the whole plan
    for (n, (_, f)) in frames.iter_mut().enumerate() {
        for (i, nf) in noise_frames(3200, 7 + n as u64).into_iter().enumerate() {
            f.push((T0 + 2 * i as u64, nf));
        }
        f.sort_by_key(|(t, _)| *t);
    }
    attacks.sort_by_key(|a| (a.victim, a.start));
    Expected {
        frames,
        attacks,
        buckets,
    }
}

/// Writes the captures: sensor-a in two files (split at +3000 s), sensor-b in one.
fn write_files(dir: &Path, e: &Expected) -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    for (s, frames) in &e.frames {
        let parts: Vec<Vec<(u64, Vec<u8>)>> = if *s == "sensor-a" {
            let (a, b): (Vec<_>, Vec<_>) =
                frames.iter().cloned().partition(|(t, _)| *t < T0 + 3000);
            vec![a, b]
        } else {
            vec![frames.clone()]
        };
        for (i, part) in parts.into_iter().enumerate() {
            let path = dir.join(format!("{s}-{i}.pcap"));
            std::fs::write(&path, pcap_file(1, &part)).unwrap();
            out.push((path, *s));
        }
    }
    out
}

fn all_attacks(store: &dyn PibsStore, q: &AttackQuery) -> Vec<Attack> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.attacks(q, cursor.as_deref(), 2).unwrap();
        out.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.sort_by_key(|a| (a.victim, a.start));
    out
}

fn open(dir: &Path) -> Arc<EmbeddedPibsStore> {
    Arc::new(open_embedded(&dir.join("pibs.redb")).unwrap())
}

fn opts(batch_records: u64) -> IngestOptions {
    IngestOptions {
        batch_records,
        ..IngestOptions::default()
    }
}

fn check_attacks(store: &dyn PibsStore, e: &Expected) {
    let got = all_attacks(store, &AttackQuery::default());
    assert_eq!(got.len(), e.attacks.len(), "{got:#?}");
    for (g, w) in got.iter().zip(&e.attacks) {
        assert_eq!(g, w);
    }
    for ((v, start), (packets, addrs)) in &e.buckets {
        let (_, timeline) = store.victim(*v, *start, *start + 299, 100).unwrap();
        assert_eq!(timeline.len(), 1, "{v} {start}");
        assert_eq!(timeline[0].start, *start);
        assert_eq!(timeline[0].packets, *packets, "{v} {start}");
        assert_eq!(timeline[0].darknet_addrs, addrs.len() as u64, "{v} {start}");
    }
}

#[test]
fn planted_attacks_come_out_exactly_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let e = expected();
    let files = write_files(dir.path(), &e);
    let store = open(dir.path());
    let mut ing = Ingester::new(store.clone(), opts(1000));
    for (path, sensor) in &files {
        let out = ing.ingest_path(path, sensor).unwrap();
        assert!(
            matches!(
                out,
                FileOutcome::Ingested {
                    malformed: None,
                    resumed_at: 0,
                    ..
                }
            ),
            "{out:?}"
        );
    }
    check_attacks(&*store, &e);
    let info = store.info().unwrap();
    assert_eq!(info.attacks, e.attacks.len() as u64);
    assert_eq!(info.buckets, e.buckets.len() as u64);
    let victims: BTreeSet<IpAddr> = e.attacks.iter().map(|a| a.victim).collect();
    assert_eq!(info.victims, victims.len() as u64);
    assert_eq!(info.files, files.len() as u64);
    assert_eq!(info.oldest_bucket, e.buckets.keys().map(|k| k.1).min());
    assert_eq!(info.newest_bucket, e.buckets.keys().map(|k| k.1).max());

    // Reading the files again (a new ingester, names changed) counts nothing twice.
    let mut again = Ingester::new(store.clone(), opts(1000));
    for (path, sensor) in &files {
        let moved = path.with_extension("moved");
        std::fs::rename(path, &moved).unwrap();
        assert_eq!(
            again.ingest_path(&moved, sensor).unwrap(),
            FileOutcome::AlreadyDone
        );
    }
    check_attacks(&*store, &e);
    assert_eq!(store.info().unwrap(), info);

    queries(&*store, &e);

    // A longer gap joins the attack that stopped and restarted.
    store
        .set_config(&StoreConfig {
            attack_gap: 7200,
            darknet_size: Some(65536),
        })
        .unwrap();
    let v = ip("198.51.100.10");
    let (attacks, _) = store.victim(v, 0, u64::MAX, 10).unwrap();
    let parts: Vec<&Attack> = e.attacks.iter().filter(|a| a.victim == v).collect();
    assert_eq!(attacks.len(), 1);
    assert_eq!(attacks[0].start, parts[0].start);
    assert_eq!(attacks[0].end, parts[1].end);
    assert_eq!(attacks[0].packets, parts[0].packets + parts[1].packets);
    let peak = parts[0].peak_pps.max(parts[1].peak_pps);
    assert_eq!(attacks[0].est_attack_pps, Some(peak * 65536.0));
    assert_eq!(store.info().unwrap().attacks, e.attacks.len() as u64 - 1);
    store
        .set_config(&StoreConfig {
            attack_gap: GAP,
            darknet_size: None,
        })
        .unwrap();
    check_attacks(&*store, &e);

    // Retention: everything that ended before +3000 goes.
    let ex = store.expire(T0 + 3000).unwrap();
    let kept: Vec<&Attack> = e.attacks.iter().filter(|a| a.end >= T0 + 3000).collect();
    assert_eq!(ex.attacks, (e.attacks.len() - kept.len()) as u64);
    let kept_buckets = e
        .buckets
        .keys()
        .filter(|(_, s)| s + 300 > T0 + 3000)
        .count();
    assert_eq!(ex.buckets, (e.buckets.len() - kept_buckets) as u64);
    let got = all_attacks(&*store, &AttackQuery::default());
    assert_eq!(got.len(), kept.len());
    assert_eq!(got[0], *kept[0]);
    assert_eq!(store.info().unwrap().victims, 1);
}

fn queries(store: &dyn PibsStore, e: &Expected) {
    let pick = |f: &dyn Fn(&Attack) -> bool| -> Vec<Attack> {
        e.attacks.iter().filter(|a| f(a)).cloned().collect()
    };
    let q = |nets: &[&str]| AttackQuery {
        nets: nets.iter().map(|n| n.parse().unwrap()).collect(),
        ..AttackQuery::default()
    };
    let v4 = ip("198.51.100.10");
    assert_eq!(
        all_attacks(store, &q(&["198.51.100.0/24"])),
        pick(&|a| a.victim == v4)
    );
    assert_eq!(
        all_attacks(store, &q(&["2001:db8::/32"])),
        pick(&|a| a.victim.is_ipv6())
    );
    assert_eq!(
        all_attacks(store, &q(&["203.0.113.0/28", "198.51.100.10/32"])),
        pick(&|a| a.victim.is_ipv4())
    );
    let port = AttackQuery {
        port: Some(123),
        ..AttackQuery::default()
    };
    assert_eq!(
        all_attacks(store, &port),
        pick(&|a| a.ports.contains_key(&123))
    );
    let pps = AttackQuery {
        min_pps: Some(0.5),
        ..AttackQuery::default()
    };
    assert_eq!(all_attacks(store, &pps), pick(&|a| a.peak_pps >= 0.5));
    let window = AttackQuery {
        since: Some(T0 + 5000),
        until: Some(T0 + 7000),
        ..AttackQuery::default()
    };
    let w = pick(&|a| a.end >= T0 + 5000 && a.start <= T0 + 7000);
    assert_eq!(w.len(), 1);
    assert_eq!(all_attacks(store, &window), w);
    let day = store.attacks_in(T0 + 1000, T0 + 1100, 100).unwrap();
    assert_eq!(
        day.len(),
        pick(&|a| a.end >= T0 + 1000 && a.start <= T0 + 1100).len()
    );
    assert!(store
        .attacks(&AttackQuery::default(), Some("t00"), 5)
        .is_err());
}

/// A store whose commits fail after `ok` of them (a crash in the middle of a file).
struct Crashing {
    inner: Arc<EmbeddedPibsStore>,
    ok: AtomicUsize,
}

impl PibsStore for Crashing {
    fn attacks(
        &self,
        q: &AttackQuery,
        c: Option<&str>,
        l: usize,
    ) -> Result<Page<Attack>, PibsStoreError> {
        self.inner.attacks(q, c, l)
    }
    fn victim(
        &self,
        ip: IpAddr,
        s: u64,
        u: u64,
        m: usize,
    ) -> Result<(Vec<Attack>, Vec<BucketStats>), PibsStoreError> {
        self.inner.victim(ip, s, u, m)
    }
    fn attacks_in(&self, s: u64, u: u64, m: usize) -> Result<Vec<Attack>, PibsStoreError> {
        self.inner.attacks_in(s, u, m)
    }
    fn info(&self) -> Result<StoreInfo, PibsStoreError> {
        self.inner.info()
    }
    fn file(&self, id: &[u8; 32]) -> Result<Option<FileState>, PibsStoreError> {
        self.inner.file(id)
    }
    fn commit(&self, b: &Batch) -> Result<CommitStats, PibsStoreError> {
        if self.ok.load(Ordering::SeqCst) == 0 {
            return Err(PibsStoreError::Db("crash".into()));
        }
        self.ok.fetch_sub(1, Ordering::SeqCst);
        self.inner.commit(b)
    }
    fn expire(&self, c: u64) -> Result<ExpireStats, PibsStoreError> {
        self.inner.expire(c)
    }
    fn config(&self) -> Result<StoreConfig, PibsStoreError> {
        self.inner.config()
    }
    fn set_config(&self, c: &StoreConfig) -> Result<(), PibsStoreError> {
        self.inner.set_config(c)
    }
}

#[test]
fn a_file_interrupted_mid_way_resumes_without_loss_or_double_count() {
    let dir = tempfile::tempdir().unwrap();
    let e = expected();
    let files = write_files(dir.path(), &e);
    let store = open(dir.path());
    for (n, (path, sensor)) in files.iter().enumerate() {
        // every file dies after a few commits of 300 records, then is read again
        let crashing = Arc::new(Crashing {
            inner: store.clone(),
            ok: AtomicUsize::new(2 + n),
        });
        let mut ing = Ingester::new(crashing, opts(300));
        assert!(ing.ingest_path(path, sensor).is_err());
        let st = store
            .file(&d4_pibs::ingest::file_id(&mut std::fs::File::open(path).unwrap()).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!((st.records, st.done), (300 * (2 + n as u64), false));
        let mut ing = Ingester::new(store.clone(), opts(300));
        match ing.ingest_path(path, sensor).unwrap() {
            FileOutcome::Ingested { resumed_at, .. } => assert_eq!(resumed_at, st.records),
            other => panic!("{other:?}"),
        }
    }
    check_attacks(&*store, &e);
}
