//! The session rules end to end through a fake gate.

use super::*;
use d4_proto::Encoder;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

#[derive(Default)]
struct FakeGate {
    sensors: HashMap<Uuid, SensorView>,
    blocked_ips: HashSet<IpAddr>,
    blocked_uuids: HashSet<Uuid>,
    ip_by_uuid: HashSet<Uuid>,
    refused_types: HashSet<u8>,
    ext_ok: HashSet<String>,
    claims: Mutex<HashMap<(Uuid, u8), Uuid>>,
    ext_claims: Mutex<HashMap<Uuid, HashSet<Uuid>>>,
}

impl Gate for FakeGate {
    fn ip_blocked(&self, ip: IpAddr) -> bool {
        self.blocked_ips.contains(&ip)
    }
    fn sensor(&self, uuid: &Uuid) -> Option<SensorView> {
        self.sensors.get(uuid).cloned()
    }
    fn uuid_blocked(&self, uuid: &Uuid) -> bool {
        self.blocked_uuids.contains(uuid)
    }
    fn uuid_blocks_ips(&self, uuid: &Uuid) -> bool {
        self.ip_by_uuid.contains(uuid)
    }
    fn type_accepted(&self, t: u8) -> bool {
        !self.refused_types.contains(&t)
    }
    fn ext_type_accepted(&self, name: &str) -> bool {
        self.ext_ok.contains(name)
    }
    fn claim(&self, uuid: &Uuid, t: u8, session: &Uuid) -> bool {
        let mut c = self.claims.lock().unwrap();
        match c.get(&(*uuid, t)) {
            Some(s) => s == session,
            None => {
                c.insert((*uuid, t), *session);
                true
            }
        }
    }
    fn claim_ext(&self, uuid: &Uuid, session: &Uuid, max: usize) -> bool {
        let mut c = self.ext_claims.lock().unwrap();
        let held = c.entry(*uuid).or_default();
        held.contains(session) || (held.len() < max && held.insert(*session))
    }
}

const KEY: &[u8] = crate::config::REFERENCE_DEFAULT_KEY.as_bytes();
fn peer() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}
fn shared() -> Arc<SessionConfig> {
    Arc::new(SessionConfig {
        mode: Mode::SharedSecret,
        ..Default::default()
    })
}
fn session(cfg: &Arc<SessionConfig>) -> Session {
    Session::new(cfg.clone(), Uuid::new_v4(), peer())
}
fn frames(enc: &Encoder, n: usize) -> Bytes {
    let mut v = Vec::new();
    for i in 0..n {
        v.extend(
            enc.encode(1_700_000_000 + i as u64, format!("line {i}\n").as_bytes())
                .unwrap(),
        );
    }
    Bytes::from(v)
}

fn meta_then_ext(u: Uuid, ext: &str) -> (Bytes, Bytes) {
    let meta = Encoder::new(u, KEY, types::META_HEADER)
        .encode(1, format!("{{\"type\": \"{ext}\"}}").as_bytes())
        .unwrap();
    let data = Encoder::new(u, KEY, types::EXTENDED)
        .encode(2, b"x\n")
        .unwrap();
    (Bytes::from(meta.to_vec()), Bytes::from(data.to_vec()))
}

#[test]
fn meta_header_tags_and_org_are_taken_once() {
    let cfg = shared();
    let mut gate = FakeGate::default();
    gate.ext_ok.insert("maltrail".into());
    let u = Uuid::new_v4();
    let header = br#"{"type":"maltrail","tags":["tlp:green",3],"misp:org":"org-a"}"#;
    let meta = Encoder::new(u, KEY, types::META_HEADER)
        .encode(1, header)
        .unwrap();
    let (_, data) = meta_then_ext(u, "maltrail");
    let mut s = session(&cfg);
    let mut out = Vec::new();
    s.feed(&mut Bytes::from(meta.to_vec()), &gate, &mut out)
        .unwrap();
    assert_eq!(
        s.take_meta_info(),
        None,
        "not before the header is complete"
    );
    s.feed(&mut data.clone(), &gate, &mut out).unwrap();
    assert_eq!(
        s.take_meta_info(),
        Some(MetaInfo {
            ext_type: "maltrail".into(),
            org: Some("org-a".into()),
            tags: vec!["tlp:green".into()],
        })
    );
    s.feed(&mut data.clone(), &gate, &mut out).unwrap();
    assert_eq!(s.take_meta_info(), None, "once per session");
    // A header without tags or organisation: nothing.
    let (m, d) = meta_then_ext(u, "maltrail");
    let mut plain = session(&cfg);
    plain.feed(&mut m.clone(), &gate, &mut out).unwrap();
    plain.feed(&mut d.clone(), &gate, &mut out).unwrap();
    assert_eq!(plain.take_meta_info(), None);
}

#[test]
fn ext_sessions_per_sensor_are_capped() {
    let cfg = Arc::new(SessionConfig {
        mode: Mode::SharedSecret,
        max_ext_sessions_per_sensor: 2,
        ..Default::default()
    });
    let mut gate = FakeGate::default();
    gate.ext_ok.insert("ja3-jl".into());
    let u = Uuid::new_v4();
    let mut out = Vec::new();
    let mut live = Vec::new();
    for _ in 0..2 {
        let mut s = session(&cfg);
        let (m, d) = meta_then_ext(u, "ja3-jl");
        s.feed(&mut m.clone(), &gate, &mut out).unwrap();
        s.feed(&mut d.clone(), &gate, &mut out).unwrap();
        assert_eq!(s.claimed(), Some((u, types::META_HEADER)));
        live.push(s);
    }
    let mut third = session(&cfg);
    let (m, _) = meta_then_ext(u, "ja3-jl");
    let err = third.feed(&mut m.clone(), &gate, &mut out).unwrap_err();
    assert_eq!(err.reason, Reason::TooManyExtSessions(2));
    assert_eq!(err.reason.code(), "ext-sessions-limit");
    assert_eq!(err.uuid, Some(u));
    // another sensor is not affected
    let mut other = session(&cfg);
    let (m, _) = meta_then_ext(Uuid::new_v4(), "ja3-jl");
    other.feed(&mut m.clone(), &gate, &mut out).unwrap();
}

#[test]
fn refused_ext_type_is_refused_at_the_meta_header() {
    let cfg = shared();
    let mut gate = FakeGate::default();
    gate.ext_ok.insert("ja3-jl".into());
    let u = Uuid::new_v4();
    let mut out = Vec::new();
    // in one frame
    let (m, _) = meta_then_ext(u, "filewatcher");
    let err = session(&cfg)
        .feed(&mut m.clone(), &gate, &mut out)
        .unwrap_err();
    assert_eq!(err.reason, Reason::ExtTypeNotAccepted("filewatcher".into()));
    assert!(out.is_empty());
    // split over frames, braces inside strings do not end it early
    let enc = Encoder::new(u, KEY, types::META_HEADER);
    let mut s = session(&cfg);
    let parts: [&[u8]; 3] = [b"{\"x\": \"}\\\"}\", ", b"\"type\": \"file", b"watcher\"}"];
    for (i, part) in parts.iter().enumerate() {
        let f = Bytes::from(enc.encode(i as u64, part).unwrap().to_vec());
        let r = s.feed(&mut f.clone(), &gate, &mut out);
        if i < 2 {
            r.unwrap();
        } else {
            assert_eq!(
                r.unwrap_err().reason,
                Reason::ExtTypeNotAccepted("filewatcher".into())
            );
        }
    }
    // an accepted type goes on
    let mut ok = session(&cfg);
    let (m, d) = meta_then_ext(u, "ja3-jl");
    ok.feed(&mut m.clone(), &gate, &mut out).unwrap();
    ok.feed(&mut d.clone(), &gate, &mut out).unwrap();
}

#[test]
fn accepts_chunked_stream() {
    let cfg = shared();
    let gate = FakeGate::default();
    let u = Uuid::new_v4();
    let wire = frames(&Encoder::new(u, KEY, 3), 20);
    let mut s = session(&cfg);
    let mut out = Vec::new();
    for chunk in wire.chunks(7) {
        s.feed(&mut Bytes::copy_from_slice(chunk), &gate, &mut out)
            .unwrap();
    }
    assert_eq!(out.len(), 20);
    assert_eq!(s.uuid(), Some(u));
    assert_eq!(s.claimed(), Some((u, 3)));
}

#[test]
fn bad_hmac_keeps_earlier_frames_and_claims_nothing() {
    let cfg = shared();
    let gate = FakeGate::default();
    let u = Uuid::new_v4();
    // wrong key from the first frame: no claim
    let mut s = session(&cfg);
    let mut out = Vec::new();
    let err = s
        .feed(
            &mut frames(&Encoder::new(u, b"wrong", 3), 1),
            &gate,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(err.reason, Reason::BadHmac);
    assert_eq!(err.uuid, None, "a stranger is not recorded");
    assert!(gate.claims.lock().unwrap().is_empty());
    // the real sensor then gets the slot
    let mut s2 = session(&cfg);
    s2.feed(&mut frames(&Encoder::new(u, KEY, 3), 2), &gate, &mut out)
        .unwrap();
    assert_eq!(out.len(), 2);
}

#[test]
fn registration_mode_uses_sensor_key() {
    let cfg = Arc::new(SessionConfig::default());
    let mut gate = FakeGate::default();
    let u = Uuid::new_v4();
    let mut out = Vec::new();
    let err = session(&cfg)
        .feed(&mut frames(&Encoder::new(u, KEY, 3), 1), &gate, &mut out)
        .unwrap_err();
    assert_eq!(err.reason, Reason::NotRegistered);
    gate.sensors.insert(
        u,
        SensorView {
            approved: true,
            key: Some(Arc::from(&b"own"[..])),
        },
    );
    let err = session(&cfg)
        .feed(&mut frames(&Encoder::new(u, KEY, 3), 1), &gate, &mut out)
        .unwrap_err();
    assert_eq!(err.reason, Reason::BadHmac);
    assert_eq!(err.uuid, Some(u), "known sensor: error recorded");
    session(&cfg)
        .feed(&mut frames(&Encoder::new(u, b"own", 3), 3), &gate, &mut out)
        .unwrap();
    assert_eq!(out.len(), 3);
}

#[test]
fn type_rules() {
    let cfg = shared();
    let mut gate = FakeGate::default();
    gate.ext_ok.insert("ja3-jl".into());
    let u = Uuid::new_v4();
    let mut out = Vec::new();
    // 254 first
    let err = session(&cfg)
        .feed(&mut frames(&Encoder::new(u, KEY, 254), 1), &gate, &mut out)
        .unwrap_err();
    assert_eq!(err.reason, Reason::Type254First);
    // 3 -> 8
    let mut s = session(&cfg);
    let mut enc = Encoder::new(u, KEY, 3);
    s.feed(&mut frames(&enc, 1), &gate, &mut out).unwrap();
    enc.set_type(8);
    let err = s.feed(&mut frames(&enc, 1), &gate, &mut out).unwrap_err();
    assert_eq!(err.reason, Reason::TypeChanged { from: 3, to: 8 });
    // 2 -> 254 with accepted ext type
    let mut s = session(&cfg);
    let mut enc = Encoder::new(u, KEY, 2);
    let meta = br#"{"type":"ja3-jl","encoding":"utf-8"}"#;
    let mut wire = enc.encode(1, &meta[..10]).unwrap();
    wire.extend(enc.encode(1, &meta[10..]).unwrap());
    enc.set_type(254);
    wire.extend(enc.encode(2, b"{}\n").unwrap());
    s.feed(&mut Bytes::from(wire), &gate, &mut out).unwrap();
    assert_eq!(s.ext_type(), Some("ja3-jl"));
    assert_eq!(
        s.claimed(),
        Some((u, 2)),
        "one of the sensor's 2 -> 254 slots"
    );
    // 2 -> 254 with a refused ext type
    let mut s = session(&cfg);
    let mut enc = Encoder::new(u, KEY, 2);
    let mut wire = enc.encode(1, br#"{"type":"maltrail"}"#).unwrap();
    enc.set_type(254);
    wire.extend(enc.encode(2, b"x\n").unwrap());
    let err = s.feed(&mut Bytes::from(wire), &gate, &mut out).unwrap_err();
    assert_eq!(err.reason, Reason::ExtTypeNotAccepted("maltrail".into()));
    // refused plain type, unknown type
    gate.refused_types.insert(6);
    let err = session(&cfg)
        .feed(&mut frames(&Encoder::new(u, KEY, 6), 1), &gate, &mut out)
        .unwrap_err();
    assert_eq!(err.reason, Reason::TypeNotAccepted(6));
    let err = session(&cfg)
        .feed(&mut frames(&Encoder::new(u, KEY, 99), 1), &gate, &mut out)
        .unwrap_err();
    assert_eq!(err.reason, Reason::TypeNotAccepted(99));
}

#[test]
fn uuid_change_duplicate_blocklists_oversize() {
    let cfg = shared();
    let mut gate = FakeGate::default();
    let u = Uuid::new_v4();
    let mut out = Vec::new();
    let mut s = session(&cfg);
    s.feed(&mut frames(&Encoder::new(u, KEY, 3), 1), &gate, &mut out)
        .unwrap();
    let err = s
        .feed(
            &mut frames(&Encoder::new(Uuid::new_v4(), KEY, 3), 1),
            &gate,
            &mut out,
        )
        .unwrap_err();
    assert!(matches!(err.reason, Reason::UuidChanged { .. }));
    // the first session still holds (u, 3): a second one is a duplicate
    let err = session(&cfg)
        .feed(&mut frames(&Encoder::new(u, KEY, 3), 1), &gate, &mut out)
        .unwrap_err();
    assert_eq!(err.reason, Reason::Duplicate(3));
    // another type is fine
    session(&cfg)
        .feed(&mut frames(&Encoder::new(u, KEY, 8), 1), &gate, &mut out)
        .unwrap();
    // non-v4 uuid
    let err = session(&cfg)
        .feed(
            &mut frames(&Encoder::new(Uuid::nil(), KEY, 3), 1),
            &gate,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(err.reason, Reason::InvalidUuid);
    // oversize, refused before the payload
    let enc = Encoder::new(u, KEY, 4);
    let mut h = enc.header(1, &[]).unwrap();
    h[58..62].copy_from_slice(&2_000_000u32.to_le_bytes());
    let err = session(&cfg)
        .feed(&mut Bytes::copy_from_slice(&h), &gate, &mut out)
        .unwrap_err();
    assert!(matches!(err.reason, Reason::Oversize { .. }));
    // blocklists
    let u2 = Uuid::new_v4();
    gate.blocked_uuids.insert(u2);
    let err = session(&cfg)
        .feed(&mut frames(&Encoder::new(u2, KEY, 3), 1), &gate, &mut out)
        .unwrap_err();
    assert_eq!(err.reason, Reason::UuidBlocked);
    let u3 = Uuid::new_v4();
    gate.ip_by_uuid.insert(u3);
    let err = session(&cfg)
        .feed(&mut frames(&Encoder::new(u3, KEY, 3), 1), &gate, &mut out)
        .unwrap_err();
    assert_eq!(err.reason, Reason::IpBlockedByUuid(peer()));
    gate.blocked_ips.insert(peer());
    assert!(session(&cfg).on_connect(&gate).is_err());
    // blocked mid-stream: checked on every frame
    let mut gate2 = FakeGate::default();
    let u4 = Uuid::new_v4();
    let mut s = session(&cfg);
    s.feed(&mut frames(&Encoder::new(u4, KEY, 3), 1), &gate2, &mut out)
        .unwrap();
    gate2.blocked_ips.insert(peer());
    let err = s
        .feed(&mut frames(&Encoder::new(u4, KEY, 3), 1), &gate2, &mut out)
        .unwrap_err();
    assert_eq!(err.uuid, Some(u4));
    assert!(err.authenticated);
}
