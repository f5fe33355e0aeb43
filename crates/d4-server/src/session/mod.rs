//! The D4 session state machine, sans-IO: bytes in, accepted frames or a refusal out.
//!
//! It owns the streaming [`Decoder`] and the per-connection rules of PROTOCOL.md and
//! REFERENCE.md. Everything it needs to know about the world (sensors, keys, blocklists,
//! accepted types, who else is connected) comes through the [`Gate`] trait, so the whole
//! rule set is unit-tested without sockets, clocks or a database.
//!
//! Order of the checks for every complete frame (the HMAC comes before anything that
//! changes state, so a peer without the key can neither claim a sensor's slot nor make
//! the server record stats or last-seen for it):
//! 1. blocklisted source IP (prefix or temporary)
//! 2. uuid must be v4, must not change within the connection
//! 3. registration mode: the sensor must be approved
//! 4. HMAC with the sensor's key (or the default key) — constant time
//! 5. blocklisted UUID, or "every IP presenting this UUID" (that IP is then blocked)
//! 6. type: accepted, not 254 first, only 2 → 254 as a change, the extended type named by
//!    the meta header accepted
//! 7. first frame of a (uuid, type) other than 2/254: claim the slot; taken = duplicate.
//!    First frame of a 2 → 254 session: claim one of the sensor's
//!    `max_ext_sessions_per_sensor` extended-type slots; none free = refused
//!
//! A type-2 meta header naming an extended type the collector does not accept is refused
//! as soon as its JSON object is complete (a connection that sends only the meta header
//! must not get it saved), not only at the first type-254 frame.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use d4_proto::{types, DecodeError, Decoder, Frame, HmacKey, MetaHeaderBuilder};
use uuid::Uuid;

use crate::json_end::JsonEnd;

mod reason;
pub use reason::Reason;

/// Collector mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Only sensors registered and approved by an admin may send.
    Registration,
    /// Any v4 UUID may send, checked with its own key or the default key.
    SharedSecret,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Registration => "registration",
            Mode::SharedSecret => "shared-secret",
        })
    }
}

/// What the session needs to know about one sensor.
#[derive(Debug, Clone, Default)]
pub struct SensorView {
    /// Approved by an admin (registration mode requires it).
    pub approved: bool,
    /// The sensor's own HMAC key, if one is set.
    pub key: Option<Arc<[u8]>>,
}

/// The session's window on shared state. Implementations must be cheap (called for every
/// frame) and must not block on I/O: the server implements it over an in-memory snapshot
/// of the store, refreshed in the background.
pub trait Gate: Send + Sync {
    /// The IP is blocklisted (a stored prefix or a temporary block).
    fn ip_blocked(&self, ip: IpAddr) -> bool;
    /// What the store knows of this sensor (None: unknown).
    fn sensor(&self, uuid: &Uuid) -> Option<SensorView>;
    /// The UUID is blocklisted.
    fn uuid_blocked(&self, uuid: &Uuid) -> bool;
    /// Every IP presenting this UUID is to be blocked.
    fn uuid_blocks_ips(&self, uuid: &Uuid) -> bool;
    /// A plain type (1..=8, 254) is accepted by this collector.
    fn type_accepted(&self, d4_type: u8) -> bool;
    /// An extended type name (from the meta header) is accepted.
    fn ext_type_accepted(&self, name: &str) -> bool;
    /// Claims the (uuid, type) slot for `session`. False when another session holds it.
    fn claim(&self, uuid: &Uuid, d4_type: u8, session: &Uuid) -> bool;
    /// Claims one of the sensor's `max` concurrent 2 → 254 slots for `session` (released
    /// like a [`Gate::claim`] under type 2). False when `max` other sessions hold one.
    fn claim_ext(&self, uuid: &Uuid, session: &Uuid, max: usize) -> bool;
}

/// Settings of the session rules.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub mode: Mode,
    pub default_key: Arc<[u8]>,
    pub max_payload: u32,
    /// Bound of the type-2 meta header (concatenated payloads).
    pub max_meta_len: usize,
    /// Concurrent 2 → 254 sessions of one sensor (each may buffer a blob line of up to
    /// 16 MiB in its worker); 0: no limit.
    pub max_ext_sessions_per_sensor: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            mode: Mode::Registration,
            default_key: Arc::from(crate::config::REFERENCE_DEFAULT_KEY.as_bytes()),
            max_payload: d4_proto::DEFAULT_MAX_PAYLOAD,
            max_meta_len: d4_proto::DEFAULT_MAX_META_LEN,
            max_ext_sessions_per_sensor: DEFAULT_MAX_EXT_SESSIONS_PER_SENSOR,
        }
    }
}

/// Default of [`SessionConfig::max_ext_sessions_per_sensor`]: with 16 MiB blob lines,
/// one sensor holds at most ≈ 64 MiB of partial lines.
pub const DEFAULT_MAX_EXT_SESSIONS_PER_SENSOR: usize = 4;

/// A refusal: the reason, and the sensor it is recorded against (when the sensor is known
/// to the store or the connection authenticated it; never a store entry created for an
/// unauthenticated stranger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub uuid: Option<Uuid>,
    /// Whether the peer had proven the key before this refusal.
    pub authenticated: bool,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason, self.reason.code())
    }
}

/// What a completed meta header said about where its stream comes from (`tags`,
/// `misp:org`): kept on the record of a third-party sensor (a partner server's stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaInfo {
    pub ext_type: String,
    /// `misp:org` (a string).
    pub org: Option<String>,
    /// `tags`: the strings of the list (other values left out).
    pub tags: Vec<String>,
}

impl MetaInfo {
    /// The partner fields of a meta header; `None` when it has neither `tags` nor
    /// `misp:org`.
    pub fn of(m: &d4_proto::MetaHeader) -> Option<MetaInfo> {
        let org = m.get_str("misp:org").map(str::to_owned);
        let tags: Vec<String> = m
            .get("tags")
            .and_then(|t| t.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if org.is_none() && m.get("tags").is_none() {
            return None;
        }
        Some(MetaInfo {
            ext_type: m.ext_type().to_owned(),
            org,
            tags,
        })
    }
}

/// One connection's protocol state.
pub struct Session {
    cfg: Arc<SessionConfig>,
    id: Uuid,
    peer: IpAddr,
    decoder: Decoder,
    uuid: Option<Uuid>,
    d4_type: Option<u8>,
    key_cache: Option<(Arc<[u8]>, HmacKey)>,
    meta: Option<MetaHeaderBuilder>,
    /// Where the meta header's JSON object ends, scanned incrementally.
    meta_scan: JsonEnd,
    ext_type: Option<String>,
    /// The partner fields of the completed meta header, until the caller takes them.
    meta_info: Option<MetaInfo>,
    claimed: Option<(Uuid, u8)>,
    accepted: u64,
    failed: bool,
    /// The last 62 bytes taken by the decoder: the header of a frame refused before its
    /// payload (oversize) is still known, to attribute the error.
    recent: [u8; d4_proto::HEADER_LEN],
    recent_len: usize,
}

impl Session {
    pub fn new(cfg: Arc<SessionConfig>, id: Uuid, peer: IpAddr) -> Session {
        let decoder = Decoder::with_max_payload(cfg.max_payload);
        Session {
            cfg,
            id,
            peer,
            decoder,
            uuid: None,
            d4_type: None,
            key_cache: None,
            meta: None,
            meta_scan: JsonEnd::default(),
            ext_type: None,
            meta_info: None,
            claimed: None,
            accepted: 0,
            failed: false,
            recent: [0; d4_proto::HEADER_LEN],
            recent_len: 0,
        }
    }

    pub fn id(&self) -> Uuid {
        self.id
    }
    pub fn peer(&self) -> IpAddr {
        self.peer
    }
    /// The authenticated sensor uuid, once a frame was accepted.
    pub fn uuid(&self) -> Option<Uuid> {
        if self.accepted > 0 {
            self.uuid
        } else {
            None
        }
    }
    /// The current type of the accepted stream.
    pub fn d4_type(&self) -> Option<u8> {
        self.d4_type
    }
    /// The extended type named by the meta header (type 2/254 streams).
    pub fn ext_type(&self) -> Option<&str> {
        self.ext_type.as_deref()
    }
    /// The `tags` and `misp:org` of the meta header, once, after the frame that completed
    /// it was accepted (the caller records them for a third-party sensor).
    pub fn take_meta_info(&mut self) -> Option<MetaInfo> {
        self.meta_info.take()
    }
    /// The (uuid, type) slot this session holds; the caller releases it at the end.
    pub fn claimed(&self) -> Option<(Uuid, u8)> {
        self.claimed
    }
    /// Whether at least one frame passed every check (the header timeout stops here).
    pub fn authenticated(&self) -> bool {
        self.accepted > 0
    }
    pub fn accepted_frames(&self) -> u64 {
        self.accepted
    }
    /// The uuid of a header whose payload is still arriving, when the store knows that
    /// sensor (to attribute a timeout; never authenticated).
    pub fn pending_known_uuid(&self, gate: &dyn Gate) -> Option<Uuid> {
        self.decoder
            .pending_header()
            .map(|h| h.uuid)
            .filter(|u| gate.sensor(u).is_some())
    }

    /// Memory the decoder holds for an incomplete frame (allocated, not only filled).
    pub fn held(&self) -> usize {
        self.decoder.held()
    }

    /// Checks at connect time (source IP).
    pub fn on_connect(&mut self, gate: &dyn Gate) -> Result<(), Refusal> {
        if gate.ip_blocked(self.peer) {
            self.failed = true;
            return Err(Refusal {
                reason: Reason::IpBlocked(self.peer),
                uuid: None,
                authenticated: false,
            });
        }
        Ok(())
    }

    /// Re-checks the blocklists for an established session (used when the store changes
    /// even if the sensor sends nothing).
    pub fn recheck(&mut self, gate: &dyn Gate) -> Result<(), Refusal> {
        if gate.ip_blocked(self.peer) {
            return Err(self.refuse(Reason::IpBlocked(self.peer), self.uuid()));
        }
        if let Some(u) = self.uuid() {
            if gate.uuid_blocked(&u) {
                return Err(self.refuse(Reason::UuidBlocked, Some(u)));
            }
            if gate.uuid_blocks_ips(&u) {
                return Err(self.refuse(Reason::IpBlockedByUuid(self.peer), Some(u)));
            }
        }
        Ok(())
    }

    /// Feeds bytes read from the socket. Accepted frames are appended to `out`; on the
    /// first refusal the frames before it stay in `out` and the error is returned (the
    /// connection must then be closed). `input` is consumed entirely unless refused.
    pub fn feed(
        &mut self,
        input: &mut Bytes,
        gate: &dyn Gate,
        out: &mut Vec<Frame>,
    ) -> Result<(), Refusal> {
        if self.failed {
            return Err(self.refuse(Reason::Framing("session already closed".into()), None));
        }
        while !input.is_empty() {
            let before = input.clone();
            let res = self.decoder.decode(input);
            self.remember(&before[..before.len() - input.len()]);
            let frame = match res {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    // No payload was read: the uuid in the header is unauthenticated, the
                    // error is recorded only against a sensor the store already knows.
                    let head = (self.recent_len == d4_proto::HEADER_LEN)
                        .then(|| d4_proto::Header::parse(&self.recent).uuid);
                    let hint = head
                        .or(self.uuid)
                        .filter(|u| self.uuid() == Some(*u) || gate.sensor(u).is_some());
                    let reason = match e {
                        DecodeError::SizeOverLimit { declared, max } => {
                            Reason::Oversize { declared, max }
                        }
                        DecodeError::UnsupportedVersion { found, .. } => Reason::BadVersion(found),
                        other => Reason::Framing(other.to_string()),
                    };
                    return Err(self.refuse(reason, hint));
                }
            };
            self.check_frame(&frame, gate)?;
            out.push(frame);
        }
        Ok(())
    }

    fn remember(&mut self, taken: &[u8]) {
        const N: usize = d4_proto::HEADER_LEN;
        if taken.len() >= N {
            self.recent.copy_from_slice(&taken[taken.len() - N..]);
            self.recent_len = N;
        } else {
            let keep = (N - taken.len()).min(self.recent_len);
            self.recent
                .copy_within(self.recent_len - keep..self.recent_len, 0);
            self.recent[keep..keep + taken.len()].copy_from_slice(taken);
            self.recent_len = keep + taken.len();
        }
    }

    /// Header-only peek: when the decoder holds a header whose payload is still
    /// arriving, refuse early what can be refused without the payload (oversize is done
    /// by the decoder). Never changes state.
    pub fn precheck_pending(&mut self, gate: &dyn Gate) -> Result<(), Refusal> {
        let Some(h) = self.decoder.pending_header().copied() else {
            return Ok(());
        };
        if let Some(was) = self.uuid {
            if was != h.uuid {
                return Err(self.refuse(
                    Reason::UuidChanged {
                        was: d4_proto::sensor_id(&was),
                        now: d4_proto::sensor_id(&h.uuid),
                    },
                    self.uuid(),
                ));
            }
        }
        if self.cfg.mode == Mode::Registration
            && !gate.sensor(&h.uuid).map(|s| s.approved).unwrap_or(false)
        {
            let known = gate.sensor(&h.uuid).map(|_| h.uuid);
            return Err(self.refuse(Reason::NotRegistered, known));
        }
        Ok(())
    }

    fn refuse(&mut self, reason: Reason, uuid: Option<Uuid>) -> Refusal {
        self.failed = true;
        Refusal {
            reason,
            uuid,
            authenticated: self.accepted > 0,
        }
    }

    fn check_frame(&mut self, frame: &Frame, gate: &dyn Gate) -> Result<(), Refusal> {
        let h = &frame.header;
        let known = gate.sensor(&h.uuid);
        // Errors are recorded against a sensor the store knows, or the one this
        // connection authenticated; strangers leave no trace in the store.
        let rec = if known.is_some() || self.uuid() == Some(h.uuid) {
            Some(h.uuid)
        } else {
            None
        };
        // 1. source IP
        if gate.ip_blocked(self.peer) {
            return Err(self.refuse(Reason::IpBlocked(self.peer), rec));
        }
        // 2. uuid
        if h.uuid.get_version_num() != 4 {
            return Err(self.refuse(Reason::InvalidUuid, rec));
        }
        if let Some(was) = self.uuid {
            if was != h.uuid {
                return Err(self.refuse(
                    Reason::UuidChanged {
                        was: d4_proto::sensor_id(&was),
                        now: d4_proto::sensor_id(&h.uuid),
                    },
                    Some(was),
                ));
            }
        }
        // 3. registration
        if self.cfg.mode == Mode::Registration && !known.as_ref().is_some_and(|s| s.approved) {
            return Err(self.refuse(Reason::NotRegistered, rec));
        }
        // 4. HMAC, before any state change
        // (no Arc clone per frame: the key is compared in place with the cached one)
        let key_bytes: &Arc<[u8]> = known
            .as_ref()
            .and_then(|s| s.key.as_ref())
            .unwrap_or(&self.cfg.default_key);
        let ok = match &self.key_cache {
            Some((k, hk)) if Arc::ptr_eq(k, key_bytes) || **k == **key_bytes => hk.verify(frame),
            _ => {
                let hk = HmacKey::new(key_bytes);
                let ok = hk.verify(frame);
                self.key_cache = Some((key_bytes.clone(), hk));
                ok
            }
        };
        if !ok {
            return Err(self.refuse(Reason::BadHmac, rec));
        }
        // 5. uuid blocklists
        if gate.uuid_blocked(&h.uuid) {
            return Err(self.refuse(Reason::UuidBlocked, Some(h.uuid)));
        }
        if gate.uuid_blocks_ips(&h.uuid) {
            return Err(self.refuse(Reason::IpBlockedByUuid(self.peer), Some(h.uuid)));
        }
        // 6. type rules
        let t = h.d4_type;
        match self.d4_type {
            None if t == types::EXTENDED => {
                return Err(self.refuse(Reason::Type254First, Some(h.uuid)));
            }
            Some(prev) if prev != t && !(prev == types::META_HEADER && t == types::EXTENDED) => {
                return Err(self.refuse(Reason::TypeChanged { from: prev, to: t }, Some(h.uuid)));
            }
            _ => {}
        }
        let type_ok = match t {
            types::META_HEADER => gate.type_accepted(types::EXTENDED),
            _ => types::is_data_type(t) && gate.type_accepted(t),
        };
        if !type_ok {
            return Err(self.refuse(Reason::TypeNotAccepted(t), Some(h.uuid)));
        }
        if t == types::META_HEADER {
            let max = self.cfg.max_meta_len;
            let builder = self
                .meta
                .get_or_insert_with(|| MetaHeaderBuilder::with_max(max));
            if let Err(e) = builder.push(&frame.payload) {
                return Err(self.refuse(Reason::BadMetaHeader(e.to_string()), Some(h.uuid)));
            }
            // Once the object is complete (found in one pass over the bytes, parsed
            // once), its extended type is checked: a refused type is never saved.
            if self.meta_scan.feed(&frame.payload) {
                if let Ok(m) = builder.finish() {
                    if !gate.ext_type_accepted(m.ext_type()) {
                        let ext = m.ext_type().to_owned();
                        return Err(self.refuse(Reason::ExtTypeNotAccepted(ext), Some(h.uuid)));
                    }
                }
            }
        }
        if t == types::EXTENDED && self.ext_type.is_none() {
            let finished = self.meta.take().map(|b| b.finish());
            let mut info = None;
            let ext = match finished {
                Some(Ok(m)) => {
                    info = MetaInfo::of(&m);
                    Some(m.ext_type().to_owned())
                }
                Some(Err(e)) => {
                    return Err(self.refuse(Reason::BadMetaHeader(e.to_string()), Some(h.uuid)))
                }
                None => None,
            };
            let Some(ext) = ext else {
                return Err(self.refuse(
                    Reason::BadMetaHeader("no extended type".into()),
                    Some(h.uuid),
                ));
            };
            if !gate.ext_type_accepted(&ext) {
                return Err(self.refuse(Reason::ExtTypeNotAccepted(ext), Some(h.uuid)));
            }
            self.ext_type = Some(ext);
            self.meta_info = info;
        }
        // 7. one connection per (uuid, type), except 2/254
        if self.claimed.is_none()
            && self.d4_type.is_none()
            && t != types::META_HEADER
            && t != types::EXTENDED
        {
            if !gate.claim(&h.uuid, t, &self.id) {
                return Err(self.refuse(Reason::Duplicate(t), Some(h.uuid)));
            }
            self.claimed = Some((h.uuid, t));
        }
        if self.claimed.is_none() && self.d4_type.is_none() && t == types::META_HEADER {
            let max = self.cfg.max_ext_sessions_per_sensor;
            if max > 0 {
                if !gate.claim_ext(&h.uuid, &self.id, max) {
                    return Err(self.refuse(Reason::TooManyExtSessions(max), Some(h.uuid)));
                }
                self.claimed = Some((h.uuid, types::META_HEADER));
            }
        }
        self.uuid = Some(h.uuid);
        self.d4_type = Some(t);
        self.accepted += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
