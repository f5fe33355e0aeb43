//! [`StoreGate`]: the session's [`Gate`] over an in-memory snapshot of the store
//! (sensors, blocklists, accepted types), refreshed at start, on every store event and
//! periodically, plus this server's table of active (uuid, type) slots. Per-frame checks
//! never wait on the database.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

use d4_store::{Block, BlockTarget, Policy, SensorStatus, Sensors, StoreError};
use uuid::Uuid;

use crate::now;
use crate::session::{Gate, SensorView};

#[derive(Default)]
struct Snapshot {
    sensors: HashMap<Uuid, (SensorView, Option<u64>)>,
    blocks: Vec<Block>,
    types: HashSet<u8>,
    ext_types: HashSet<String>,
}

/// The gate of a running server.
#[derive(Default)]
pub struct StoreGate {
    snap: RwLock<Snapshot>,
    claims: Mutex<HashMap<(Uuid, u8), Uuid>>,
    /// The 2 → 254 sessions of each sensor (bounded by `max_ext_sessions_per_sensor`).
    ext_claims: Mutex<HashMap<Uuid, HashSet<Uuid>>>,
}

impl StoreGate {
    pub fn new() -> StoreGate {
        StoreGate::default()
    }

    /// Reloads the snapshot from the store: the sensors from its [`Sensors`] role, the
    /// blocklists and accepted types from its [`Policy`] role.
    pub async fn refresh(
        &self,
        sensors: &dyn Sensors,
        policy: &dyn Policy,
    ) -> Result<(), StoreError> {
        let listed = sensors.list_sensors().await?;
        let blocks = policy.list_blocks(now()).await?;
        let types = policy.accepted_types().await?;
        let ext_types = policy.accepted_ext_types().await?;
        let mut snap = Snapshot {
            blocks,
            types: types.into_iter().collect(),
            ext_types: ext_types.into_iter().collect(),
            ..Default::default()
        };
        for s in listed {
            let view = SensorView {
                approved: s.status == SensorStatus::Approved,
                key: s
                    .hmac_key
                    .as_ref()
                    .filter(|k| !k.is_empty())
                    .map(|k| Arc::from(k.as_bytes())),
            };
            snap.sensors.insert(s.uuid, (view, s.stream_limit));
        }
        if let Ok(mut w) = self.snap.write() {
            *w = snap;
        }
        Ok(())
    }

    /// The sensor's own stream limit, if set.
    pub fn stream_limit(&self, uuid: &Uuid) -> Option<u64> {
        self.snap
            .read()
            .ok()
            .and_then(|s| s.sensors.get(uuid).and_then(|(_, l)| *l))
    }

    /// Releases a slot held by `session` (type 2: one of the sensor's 2 → 254 slots).
    pub fn release(&self, uuid: &Uuid, d4_type: u8, session: &Uuid) {
        if d4_type == d4_proto::types::META_HEADER {
            if let Ok(mut c) = self.ext_claims.lock() {
                if let Some(held) = c.get_mut(uuid) {
                    held.remove(session);
                    if held.is_empty() {
                        c.remove(uuid);
                    }
                }
            }
            return;
        }
        if let Ok(mut c) = self.claims.lock() {
            if c.get(&(*uuid, d4_type)) == Some(session) {
                c.remove(&(*uuid, d4_type));
            }
        }
    }

    /// The uuid is under a kick's temporary block.
    pub fn kicked(&self, uuid: &Uuid) -> bool {
        let t = now();
        self.snap
            .read()
            .map(|s| {
                s.blocks.iter().any(|b| {
                    b.active_at(t)
                        && b.reason == "kick"
                        && matches!(b.target, BlockTarget::Uuid(u) if u == *uuid)
                })
            })
            .unwrap_or(false)
    }

    fn blocked(&self, f: impl Fn(&BlockTarget) -> bool) -> bool {
        self.snap
            .read()
            .map(|s| {
                // Called several times per frame: no clock read while nothing is blocked.
                if s.blocks.is_empty() {
                    return false;
                }
                let t = now();
                s.blocks.iter().any(|b| b.active_at(t) && f(&b.target))
            })
            .unwrap_or(true)
    }
}

impl Gate for StoreGate {
    fn ip_blocked(&self, ip: IpAddr) -> bool {
        self.blocked(|t| matches!(t, BlockTarget::Ip(net) if net.contains(&ip)))
    }
    fn sensor(&self, uuid: &Uuid) -> Option<SensorView> {
        self.snap
            .read()
            .ok()
            .and_then(|s| s.sensors.get(uuid).map(|(v, _)| v.clone()))
    }
    fn uuid_blocked(&self, uuid: &Uuid) -> bool {
        self.blocked(|t| matches!(t, BlockTarget::Uuid(u) if u == uuid))
    }
    fn uuid_blocks_ips(&self, uuid: &Uuid) -> bool {
        self.blocked(|t| matches!(t, BlockTarget::IpsOfUuid(u) if u == uuid))
    }
    fn type_accepted(&self, d4_type: u8) -> bool {
        self.snap
            .read()
            .map(|s| s.types.contains(&d4_type))
            .unwrap_or(false)
    }
    fn ext_type_accepted(&self, name: &str) -> bool {
        self.snap
            .read()
            .map(|s| s.ext_types.contains(name))
            .unwrap_or(false)
    }
    fn claim(&self, uuid: &Uuid, d4_type: u8, session: &Uuid) -> bool {
        let Ok(mut c) = self.claims.lock() else {
            return false;
        };
        match c.get(&(*uuid, d4_type)) {
            Some(s) => s == session,
            None => {
                c.insert((*uuid, d4_type), *session);
                true
            }
        }
    }
    fn claim_ext(&self, uuid: &Uuid, session: &Uuid, max: usize) -> bool {
        let Ok(mut c) = self.ext_claims.lock() else {
            return false;
        };
        let held = c.entry(*uuid).or_default();
        held.contains(session) || (held.len() < max && held.insert(*session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_slots_are_released() {
        let g = StoreGate::new();
        let u = Uuid::new_v4();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert!(g.claim_ext(&u, &a, 2));
        assert!(g.claim_ext(&u, &b, 2));
        assert!(g.claim_ext(&u, &a, 2), "held already");
        assert!(!g.claim_ext(&u, &c, 2));
        g.release(&u, d4_proto::types::META_HEADER, &a);
        assert!(g.claim_ext(&u, &c, 2));
        g.release(&u, d4_proto::types::META_HEADER, &b);
        g.release(&u, d4_proto::types::META_HEADER, &c);
        assert!(g.ext_claims.lock().unwrap().is_empty());
    }
}
