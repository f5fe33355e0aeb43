//! Leases on the embedded store: table `sessions` (its former name), one record per
//! exclusive (uuid, type) slot, or per session for the exempt types.

use redb::ReadableTable;
use uuid::Uuid;

use super::codec::{all_json, be, from_json, get_json, to_json};
use super::{write, EmbeddedStore, LEASES};
use crate::model::*;
use crate::{Leases, Result};

fn lease_key(uuid: Uuid, d4_type: u8, session: Uuid) -> String {
    if LEASE_EXEMPT_TYPES.contains(&d4_type) {
        format!("{}:{d4_type}:{}", uuid.simple(), session.simple())
    } else {
        format!("{}:{d4_type}", uuid.simple())
    }
}

#[async_trait::async_trait]
impl Leases for EmbeddedStore {
    async fn try_claim_lease(&self, claim: LeaseClaim, now: u64) -> Result<bool> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(LEASES).map_err(be)?;
                let key = lease_key(claim.uuid, claim.d4_type, claim.session_id);
                let mut started = now;
                if let Some(cur) = get_json::<Lease>(&t, &key)? {
                    if cur.expires > now && cur.session_id != claim.session_id {
                        return Ok(false);
                    }
                    if cur.session_id == claim.session_id {
                        started = cur.started;
                    }
                }
                let s = Lease {
                    uuid: claim.uuid,
                    d4_type: claim.d4_type,
                    session_id: claim.session_id,
                    server_id: claim.server_id,
                    ip: claim.ip,
                    started,
                    expires: now.saturating_add(claim.lease_secs),
                };
                t.insert(key.as_str(), to_json(&s)?.as_slice())
                    .map_err(be)?;
                Ok(true)
            })
        })
        .await
    }

    async fn renew_leases(&self, server_id: String, lease_secs: u64, now: u64) -> Result<u64> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(LEASES).map_err(be)?;
                let mut mine = Vec::new();
                for item in t.iter().map_err(be)? {
                    let (k, v) = item.map_err(be)?;
                    let s: Lease = from_json(v.value())?;
                    if s.server_id == server_id {
                        mine.push((k.value().to_string(), s));
                    }
                }
                let n = mine.len() as u64;
                for (k, mut s) in mine {
                    s.expires = now.saturating_add(lease_secs);
                    t.insert(k.as_str(), to_json(&s)?.as_slice()).map_err(be)?;
                }
                Ok(n)
            })
        })
        .await
    }

    async fn release_lease(&self, uuid: Uuid, d4_type: u8, session_id: Uuid) -> Result<()> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(LEASES).map_err(be)?;
                let key = lease_key(uuid, d4_type, session_id);
                let holds =
                    get_json::<Lease>(&t, &key)?.is_some_and(|s| s.session_id == session_id);
                if holds {
                    t.remove(key.as_str()).map_err(be)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn list_leases(&self, now: u64) -> Result<Vec<Lease>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(LEASES).map_err(be)?;
            let mut v: Vec<Lease> = all_json(&t)?;
            v.retain(|s| s.expires > now);
            Ok(v)
        })
        .await
    }

    async fn clear_leases(&self, server_id: String) -> Result<u64> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(LEASES).map_err(be)?;
                let mut n = 0u64;
                t.retain(|_, v| {
                    let mine = serde_json::from_slice::<Lease>(v)
                        .map(|s| s.server_id == server_id)
                        .unwrap_or(false);
                    if mine {
                        n += 1;
                    }
                    !mine
                })
                .map_err(be)?;
                Ok(n)
            })
        })
        .await
    }
}
