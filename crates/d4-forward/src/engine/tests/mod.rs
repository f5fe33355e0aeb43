//! The engine end to end, without a server: journal segments written and reported the way
//! the server's tap does, a rule, and a stand-in partner that collects what arrives.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use d4_proto::{Encoder, Header, HmacKey, HEADER_LEN};
use d4_store::{ForwardFilter, ForwardRule, ForwardStats, ForwardTls};
use uuid::Uuid;

use super::*;

struct Fixed {
    rules: Vec<ForwardRule>,
    sensors: HashMap<Uuid, SensorInfo>,
    reported: Mutex<HashMap<String, ForwardStats>>,
}

impl RuleSource for Fixed {
    fn rules(&self) -> Result<Vec<ForwardRule>, String> {
        Ok(self.rules.clone())
    }
    fn report(&self, name: &str, stats: &ForwardStats) {
        if let Ok(mut r) = self.reported.lock() {
            r.insert(name.to_string(), stats.clone());
        }
    }
}

impl SensorDirectory for Fixed {
    fn sensors(&self) -> Result<HashMap<Uuid, SensorInfo>, String> {
        Ok(self.sensors.clone())
    }
}

type Conns = Arc<Mutex<Vec<Vec<u8>>>>;

/// A partner that keeps every byte of every connection.
fn partner() -> (u16, Conns) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let conns = Conns::default();
    let c2 = conns.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            keep(s, &c2);
        }
    });
    (port, conns)
}

/// Keeps every byte of `s` as one more connection of `conns` (on its own thread).
fn keep(mut s: std::net::TcpStream, conns: &Conns) {
    let c3 = conns.clone();
    std::thread::spawn(move || {
        let i = {
            let mut g = c3.lock().unwrap();
            g.push(Vec::new());
            g.len() - 1
        };
        let mut b = [0u8; 65536];
        while let Ok(n) = s.read(&mut b) {
            if n == 0 {
                break;
            }
            c3.lock().unwrap()[i].extend_from_slice(&b[..n]);
        }
    });
}

fn frames(b: &[u8]) -> Vec<(Header, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(h) = Header::from_prefix(&b[pos..]) {
        let len = HEADER_LEN + h.size as usize;
        if pos + len > b.len() {
            break;
        }
        out.push((h, b[pos + HEADER_LEN..pos + len].to_vec()));
        pos += len;
    }
    out
}

/// A journal session the way the pipeline writes it: created, appended, reported.
struct FakeSession {
    id: Uuid,
    path: std::path::PathBuf,
    file: std::fs::File,
    len: u64,
    enc: Encoder,
}

impl FakeSession {
    fn new(dir: &std::path::Path, e: &Engine, sensor: Uuid, t: u8) -> FakeSession {
        let id = Uuid::new_v4();
        let path = dir.join(format!("{}.0.jnl", id.simple()));
        let file = std::fs::File::create(&path).unwrap();
        e.segment_created(id, 0, &path);
        FakeSession {
            id,
            path,
            file,
            len: 0,
            enc: Encoder::new(sensor, b"sensor-key", t),
        }
    }
    fn send(&mut self, e: &Engine, payload: &[u8]) {
        let f = self.enc.encode(1_700_000_000, payload).unwrap();
        self.file.write_all(&f).unwrap();
        self.len += f.len() as u64;
        e.synced(self.id, 0, self.len);
    }
    fn close(self, e: &Engine) {
        e.closed(self.id);
        std::fs::remove_file(&self.path).unwrap(); // the journal removes its own name
    }
}

#[test]
fn a_rule_forwards_exactly_the_selected_sessions_as_ordinary_d4() {
    let (port, conns) = partner();
    let data = tempfile::tempdir().unwrap();
    let jdir = tempfile::tempdir().unwrap();
    let (shared, other) = (Uuid::new_v4(), Uuid::new_v4());
    let org = Uuid::new_v4();
    let rule = ForwardRule {
        tags: vec!["tlp:green".into()],
        ..plain_rule(
            "partner-b",
            port,
            ForwardFilter {
                types: vec![3, 254],
                tags: vec!["share".into()],
                ..Default::default()
            },
        )
    };
    let src = Arc::new(Fixed {
        rules: vec![rule.clone()],
        sensors: [
            (
                shared,
                SensorInfo {
                    tags: vec!["share".into()],
                    ..Default::default()
                },
            ),
            (other, SensorInfo::default()),
        ]
        .into(),
        reported: Mutex::new(HashMap::new()),
    });
    let mut cfg = EngineConfig::new(data.path());
    cfg.org_uuid = Some(org);
    cfg.report = Duration::from_millis(200);
    let e = Engine::start(cfg, src.clone(), src.clone()).unwrap();

    // shared type 3 (taken), untagged type 3 and shared type 8 (filtered), shared 2/254
    let mut a = FakeSession::new(jdir.path(), &e, shared, 3);
    let mut b = FakeSession::new(jdir.path(), &e, other, 3);
    let mut c = FakeSession::new(jdir.path(), &e, shared, 8);
    let mut m = FakeSession::new(jdir.path(), &e, shared, 2);
    m.send(&e, br#"{"type": "ja3-jl"}"#);
    m.enc.set_type(254);
    let mut want3 = Vec::new();
    let mut want254 = Vec::new();
    for i in 0..200 {
        let line = format!("log line {i}\n");
        a.send(&e, line.as_bytes());
        want3.extend_from_slice(line.as_bytes());
        b.send(&e, b"not shared\n");
        c.send(&e, b"also not shared\n");
        let j = format!("{{\"n\": {i}}}\n");
        m.send(&e, j.as_bytes());
        want254.extend_from_slice(j.as_bytes());
    }
    for s in [a, b, c, m] {
        s.close(&e);
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let (got3, got254, meta) = loop {
        let all: Vec<Vec<u8>> = conns.lock().unwrap().clone();
        let (mut g3, mut g254, mut meta) = (Vec::new(), Vec::new(), Vec::new());
        let key = HmacKey::new(b"rule-key");
        for c in &all {
            for (h, p) in frames(c) {
                // ordinary D4: version 1, this server's identity at the partner, signed
                assert_eq!(h.version, 1);
                assert_eq!(h.uuid, rule.uuid);
                let mut raw = h.to_bytes().to_vec();
                raw.extend_from_slice(&p);
                let mut head = [0u8; HEADER_LEN];
                head.copy_from_slice(&raw[..HEADER_LEN]);
                assert!(key.verify_raw(&head, &p), "HMAC with the rule's key");
                match h.d4_type {
                    3 => g3.extend_from_slice(&p),
                    254 => g254.extend_from_slice(&p),
                    2 => meta.push(p),
                    t => panic!("type {t} was not shared"),
                }
            }
        }
        if g3.len() >= want3.len() && g254.len() >= want254.len() {
            break (g3, g254, meta);
        }
        assert!(Instant::now() < deadline, "not everything arrived");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(got3 == want3, "type 3 exactly once, in order");
    assert!(got254 == want254);
    let meta: serde_json::Value = serde_json::from_slice(&meta.concat()).unwrap();
    assert_eq!(meta["type"], "ja3-jl");
    assert_eq!(meta["tags"], serde_json::json!(["tlp:green"]));
    assert_eq!(meta["misp:org"], org.to_string());
    // the meta header is the first frame of its connection
    let all: Vec<Vec<u8>> = conns.lock().unwrap().clone();
    for c in &all {
        let f = frames(c);
        if f.iter().any(|(h, _)| h.d4_type == 254) {
            assert_eq!(f[0].0.d4_type, 2);
        }
    }
    // counters: every frame written counted; the filtered ones too
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = e
            .stats()
            .into_iter()
            .next()
            .map(|x| x.1)
            .unwrap_or_default();
        let at_partner: u64 = all.iter().map(|c| frames(c).len() as u64).sum();
        if s.frames_forwarded == at_partner && s.frames_filtered == 400 {
            break;
        }
        assert!(Instant::now() < deadline, "{s:?} vs {at_partner}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // the journal data goes once read; the spool empties once confirmed
    let deadline = Instant::now() + Duration::from_secs(10);
    let fj = data.path().join("forward").join("journal");
    while std::fs::read_dir(&fj).unwrap().count() > 0 {
        assert!(Instant::now() < deadline, "linked segments left behind");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.stats()[0].1.frames_spooled > 0 {
        assert!(Instant::now() < deadline, "{:?}", e.stats());
        std::thread::sleep(Duration::from_millis(50));
    }
    e.shutdown();
    assert!(src.reported.lock().unwrap().contains_key("partner-b"));
}

#[test]
fn a_previous_runs_data_is_read_until_a_frame_that_does_not_verify() {
    let (port, conns) = partner();
    let data = tempfile::tempdir().unwrap();
    let fj = data.path().join("forward").join("journal");
    std::fs::create_dir_all(&fj).unwrap();
    let sensor = Uuid::new_v4();
    let enc = Encoder::new(sensor, b"default", 3);
    let mut seg = Vec::new();
    for i in 0..10 {
        seg.extend(enc.encode(1, format!("ok {i}\n").as_bytes()).unwrap());
    }
    let mut bad = enc.encode(1, b"altered\n").unwrap();
    let n = bad.len();
    bad[n - 2] = b'X';
    seg.extend(bad);
    seg.extend(enc.encode(1, b"after\n").unwrap());
    seg.extend([0u8; 100]);
    let s = Uuid::new_v4();
    std::fs::write(fj.join(format!("{}.0.jnl", s.simple())), &seg).unwrap();
    let rule = ForwardRule {
        hmac_key: "k".into(),
        ..plain_rule("r", port, ForwardFilter::default())
    };
    let src = Arc::new(Fixed {
        rules: vec![rule],
        sensors: HashMap::new(),
        reported: Mutex::new(HashMap::new()),
    });
    let mut cfg = EngineConfig::new(data.path());
    cfg.default_key = b"default".to_vec();
    let e = Engine::start(cfg, src.clone(), src).unwrap();
    let want: String = (0..10).map(|i| format!("ok {i}\n")).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got: Vec<u8> = conns
            .lock()
            .unwrap()
            .iter()
            .flat_map(|c| frames(c))
            .flat_map(|(_, p)| p)
            .collect();
        if got.len() >= want.len() {
            assert_eq!(String::from_utf8_lossy(&got), want);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "got {:?}",
            String::from_utf8_lossy(&got)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let got: usize = conns.lock().unwrap().iter().map(|c| frames(c).len()).sum();
    assert_eq!(got, 10, "nothing past the altered frame");
    e.shutdown();
}

/// One journal session written the way the tap reports it, for a reader driven by hand.
fn tap_session(
    j: &links::Journals,
    src: &std::path::Path,
    t: u8,
) -> (Uuid, std::fs::File, Encoder) {
    let id = Uuid::new_v4();
    let path = src.join(format!("{}.0.jnl", id.simple()));
    let file = std::fs::File::create(&path).unwrap();
    j.segment_created(id, 0, &path);
    (id, file, Encoder::new(Uuid::new_v4(), b"sensor-key", t))
}

fn tap_send(j: &links::Journals, s: &mut (Uuid, std::fs::File, Encoder), payloads: &[Vec<u8>]) {
    for p in payloads {
        let f = s.2.encode(1_700_000_000, p).unwrap();
        s.1.write_all(&f).unwrap();
    }
    let len = s.1.metadata().unwrap().len();
    j.synced(s.0, 0, len);
}

/// The payload bytes of every frame in a spool, in order.
fn spooled(dir: &std::path::Path) -> Vec<u8> {
    let mut sp = d4_client::spool::Spool::open(dir, 1 << 30).unwrap();
    let b = sp.peek(1 << 30).unwrap();
    frames(&b).into_iter().flat_map(|(_, p)| p).collect()
}

/// A rule of `types` whose partner never answers (nothing listens on its port): its
/// senders only back off, its spools keep everything.
fn spool_only_rule(types: Vec<u8>) -> Arc<ForwardRule> {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Arc::new(plain_rule(
        "r",
        port,
        ForwardFilter {
            types,
            ..Default::default()
        },
    ))
}

/// An enabled rule `name` to `127.0.0.1:port` over plain TCP, key `rule-key`, taking what
/// `filter` selects; no tags, no privacy settings.
fn plain_rule(name: &str, port: u16, filter: ForwardFilter) -> ForwardRule {
    ForwardRule {
        name: name.into(),
        enabled: true,
        description: String::new(),
        destination: format!("127.0.0.1:{port}"),
        tls: ForwardTls {
            plain: true,
            ..Default::default()
        },
        uuid: Uuid::new_v4(),
        hmac_key: "rule-key".into(),
        filter,
        tags: vec![],
        privacy: Default::default(),
        spool_limit: 0,
        created: 0,
        updated: 0,
    }
}

/// A reader's context for a rule driven by hand over `journals`, in `<data>/r`.
struct HandDriven {
    rule: Arc<ForwardRule>,
    dir: std::path::PathBuf,
    journals: Arc<links::Journals>,
}

impl HandDriven {
    fn new(data: &std::path::Path, rule: Arc<ForwardRule>) -> HandDriven {
        let journals = Arc::new(links::Journals::open(&data.join("journal")).unwrap());
        journals.set_link_new(true);
        HandDriven {
            rule,
            dir: data.join("r"),
            journals,
        }
    }

    fn ctx(
        &self,
        stop: Arc<std::sync::atomic::AtomicBool>,
        counters: Arc<RuleCounters>,
    ) -> reader::ReaderCtx {
        reader::ReaderCtx {
            rule: self.rule.clone(),
            dir: self.dir.clone(),
            journals: self.journals.clone(),
            sensors: Default::default(),
            default_key: Arc::from(&b"sensor-key"[..]),
            org: None,
            counters,
            progress: Default::default(),
            stop,
        }
    }
}

#[test]
fn a_reader_killed_mid_session_resumes_at_the_held_byte() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let h = HandDriven::new(data.path(), spool_only_rule(vec![1, 3]));
    let (journals, dir) = (&h.journals, &h.dir);
    let ctx = |stop| h.ctx(stop, Default::default());
    // type 1: a pcap stream (little-endian, µs) whose records straddle frames
    let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&65535u32.to_le_bytes());
    pcap.extend_from_slice(&1u32.to_le_bytes());
    for i in 0..40u32 {
        pcap.extend_from_slice(&(1_700_000_000 + i).to_le_bytes());
        pcap.extend_from_slice(&i.to_le_bytes());
        pcap.extend_from_slice(&60u32.to_le_bytes());
        pcap.extend_from_slice(&60u32.to_le_bytes());
        pcap.extend_from_slice(&[i as u8; 60]);
    }
    let pcap_frames: Vec<Vec<u8>> = pcap.chunks(37).map(<[u8]>::to_vec).collect();
    // type 3: lines that straddle frames
    let text: Vec<u8> = (0..100)
        .flat_map(|i| format!("line number {i}\n").into_bytes())
        .collect();
    let text_frames: Vec<Vec<u8>> = text.chunks(23).map(<[u8]>::to_vec).collect();
    // what one clean run sends
    let clean = |t: u8, fs: &[Vec<u8>]| {
        let mut x = crate::transform::StreamTransform::new(&Default::default(), t, None).unwrap();
        let mut out = Vec::new();
        for (i, f) in fs.iter().enumerate() {
            x.push(i as u64, f, 0, &mut out).unwrap();
        }
        x.finish(&mut out);
        out
    };
    let (want1, want3) = (clean(1, &pcap_frames), clean(3, &text_frames));

    let mut s1 = tap_session(journals, src.path(), 1);
    let mut s3 = tap_session(journals, src.path(), 3);
    let (h1, h3) = (pcap_frames.len() / 2 + 1, text_frames.len() / 2 + 1);
    tap_send(journals, &mut s1, &pcap_frames[..h1]);
    tap_send(journals, &mut s3, &text_frames[..h3]);
    let stop1 = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut r1 = reader::Reader::new(ctx(stop1.clone())).unwrap();
    r1.pass();
    r1.pass();
    // kill -9: no finish, no last commit
    stop1.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(r1);
    std::thread::sleep(Duration::from_millis(100));

    tap_send(journals, &mut s1, &pcap_frames[h1..]);
    tap_send(journals, &mut s3, &text_frames[h3..]);
    journals.closed(s1.0);
    journals.closed(s3.0);
    let stop2 = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut r2 = reader::Reader::new(ctx(stop2.clone())).unwrap();
    for _ in 0..5 {
        r2.pass();
    }
    stop2.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(r2);
    std::thread::sleep(Duration::from_millis(100));
    let got1 = spooled(&dir.join("spool-1"));
    let got3 = spooled(&dir.join("spool-3"));
    assert!(
        got3 == want3,
        "type 3: {:?}",
        String::from_utf8_lossy(&got3)
    );
    // the spool holds the records (the global header is each connection's prologue)
    assert_eq!(got1.len(), want1.len(), "no pcap record lost or repeated");
    assert!(got1 == want1);
}

#[test]
fn frames_spooled_after_the_last_save_are_counted_as_duplicates() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let h = HandDriven::new(data.path(), spool_only_rule(vec![3]));
    let (journals, dir) = (&h.journals, &h.dir);
    let ctx = |stop, counters| h.ctx(stop, counters);
    let frame = |i: usize| format!("line {i}\n").into_bytes();
    let mut s = tap_session(journals, src.path(), 3);
    tap_send(journals, &mut s, &(0..10).map(frame).collect::<Vec<_>>());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut r1 = reader::Reader::new(ctx(stop.clone(), Default::default())).unwrap();
    r1.pass();
    let saved = std::fs::read(dir.join("state.json")).unwrap();
    tap_send(journals, &mut s, &(10..17).map(frame).collect::<Vec<_>>());
    r1.pass();
    // kill -9 before that pass saved its cursors: the state on disk is the first pass's
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(r1);
    std::fs::write(dir.join("state.json"), saved).unwrap();
    std::thread::sleep(Duration::from_millis(100));

    let counters = Arc::new(RuleCounters::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut r2 = reader::Reader::new(ctx(stop.clone(), counters.clone())).unwrap();
    r2.pass();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(r2);
    std::thread::sleep(Duration::from_millis(100));
    let got = spooled(&dir.join("spool-3"));
    let mut want: Vec<u8> = (0..17).flat_map(frame).collect();
    want.extend((10..17).flat_map(frame));
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    assert_eq!(
        counters.snapshot().duplicates,
        7,
        "the 7 frames spooled twice"
    );
    // and the count survives a restart
    let st: state::RuleState = state::load(&dir.join("state.json")).unwrap();
    assert_eq!(st.respooled, 7);
    let counters = Arc::new(RuleCounters::default());
    let r3 = reader::Reader::new(ctx(stop, counters.clone())).unwrap();
    drop(r3);
    assert_eq!(counters.snapshot().duplicates, 7);

    // later starts, clean ones, spool new frames and count no more duplicates
    for round in 0..2 {
        tap_send(journals, &mut s, &[frame(100 + round)]);
        let counters = Arc::new(RuleCounters::default());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut r = reader::Reader::new(ctx(stop.clone(), counters.clone())).unwrap();
        r.pass();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        r.run();
        assert_eq!(counters.snapshot().duplicates, 7, "round {round}");
    }
    want.extend((100..102).flat_map(frame));
    let got = spooled(&dir.join("spool-3"));
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
}

mod refusal;
