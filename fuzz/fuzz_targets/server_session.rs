//! Fuzz the server's sans-IO session state machine (`d4_server::Session`): the
//! input describes a stream of frames (signed with the right key or not, any type, uuid,
//! version, size, payload) plus raw garbage, cut into arbitrary chunks, with the gate's
//! answers (blocked IP/UUID, accepted types, slot taken, registration mode) chosen by the
//! input. The session must never panic, must refuse for good after its first refusal,
//! and every frame it accepts must carry a valid HMAC and the connection's one uuid.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bytes::Bytes;
use d4_proto::{Encoder, HmacKey};
use d4_server::{Gate, Mode, SensorView, Session, SessionConfig};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

const KEY: &[u8] = b"private key to change";

struct FuzzGate(u8);

impl Gate for FuzzGate {
    fn ip_blocked(&self, _ip: IpAddr) -> bool {
        self.0 & 1 != 0
    }
    fn sensor(&self, _uuid: &Uuid) -> Option<SensorView> {
        (self.0 & 2 != 0).then(|| SensorView {
            approved: self.0 & 4 != 0,
            key: None,
        })
    }
    fn uuid_blocked(&self, _uuid: &Uuid) -> bool {
        self.0 & 8 != 0
    }
    fn uuid_blocks_ips(&self, _uuid: &Uuid) -> bool {
        self.0 & 16 != 0
    }
    fn type_accepted(&self, t: u8) -> bool {
        self.0 & 32 == 0 || t == 3
    }
    fn ext_type_accepted(&self, name: &str) -> bool {
        self.0 & 64 == 0 || name == "default"
    }
    fn claim(&self, _uuid: &Uuid, _t: u8, _s: &Uuid) -> bool {
        self.0 & 128 == 0
    }
    fn claim_ext(&self, _uuid: &Uuid, _s: &Uuid, _max: usize) -> bool {
        self.0 & 128 == 0
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let gate = FuzzGate(data[0] & !1 & !8 & !16 | (data[0] & data[1] & 0x19));
    let mode = if data[1] & 1 != 0 {
        Mode::Registration
    } else {
        Mode::SharedSecret
    };
    let step = usize::from(data[2]) + 1;
    let uuids = [
        Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef),
        Uuid::from_u128(0x1111_2222_3333_4444_9555_6666_7777_8888),
        Uuid::from_u128(0x1111_2222_3333_1444_9555_6666_7777_8888), // version 1
    ];
    // Build the stream: [op][uuid/type/flags][len][payload...]
    let mut stream = Vec::new();
    let mut rest = &data[3..];
    while rest.len() >= 3 {
        let (op, sel, len) = (rest[0], rest[1], usize::from(rest[2]));
        rest = &rest[3..];
        let take = len.min(rest.len());
        let payload = &rest[..take];
        rest = &rest[take..];
        match op % 4 {
            // raw bytes (garbage, torn headers)
            0 => stream.extend_from_slice(payload),
            // a frame signed with the right or a wrong key
            _ => {
                let key: &[u8] = if op % 4 == 3 { b"wrong" } else { KEY };
                let t = match sel % 8 {
                    0 => 1,
                    1 => 2,
                    2 => 254,
                    3 => 3,
                    4 => 8,
                    5 => 0,
                    6 => 255,
                    _ => sel,
                };
                let mut enc = Encoder::new(uuids[usize::from(sel >> 6) % 3], key, t);
                if op & 0x80 != 0 {
                    enc = enc.with_version(op & 0x7);
                }
                if let Ok(f) = enc.encode(u64::from(op), payload) {
                    stream.extend_from_slice(&f);
                }
            }
        }
    }
    let cfg = Arc::new(SessionConfig {
        mode,
        default_key: Arc::from(KEY),
        max_payload: 1 + 64 * u32::from(data[1] >> 1),
        max_meta_len: 512,
        max_ext_sessions_per_sensor: 4,
    });
    let mut s = Session::new(cfg, Uuid::nil(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    if s.on_connect(&gate).is_err() {
        return;
    }
    let hk = HmacKey::new(KEY);
    let mut refused = false;
    let mut accepted = 0u64;
    let mut first: Option<Uuid> = None;
    for chunk in stream.chunks(step) {
        let mut input = Bytes::copy_from_slice(chunk);
        let mut out = Vec::new();
        let r = s
            .precheck_pending(&gate)
            .and_then(|_| s.feed(&mut input, &gate, &mut out));
        for f in &out {
            assert!(!refused, "a frame accepted after a refusal");
            assert!(hk.verify(f), "a frame with a bad HMAC was accepted");
            let u = *first.get_or_insert(f.header.uuid);
            assert_eq!(u, f.header.uuid, "two uuids on one connection");
        }
        accepted += out.len() as u64;
        if r.is_err() {
            refused = true;
        } else {
            assert!(input.is_empty(), "input left without a refusal");
        }
        if refused {
            // refusals are final
            let mut more = Bytes::from_static(b"x");
            assert!(s.feed(&mut more, &gate, &mut Vec::new()).is_err());
            break;
        }
        let _ = s.recheck(&gate);
    }
    assert_eq!(s.accepted_frames(), accepted);
});
