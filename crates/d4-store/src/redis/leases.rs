//! Leases on Redis: one hash per slot (`d4rs:session:...`, the former name), the set of
//! every lease and one set per server; claims, renewals, releases and clears are scripts.

use std::collections::HashMap;

use uuid::Uuid;

use super::{be, eval, keys, num, scripts, sid, RedisStore};
use crate::model::*;
use crate::{Leases, Result};

#[async_trait::async_trait]
impl Leases for RedisStore {
    async fn try_claim_lease(&self, claim: LeaseClaim, now: u64) -> Result<bool> {
        let key = keys::lease(&claim.uuid, claim.d4_type, &claim.session_id);
        let exempt = LEASE_EXEMPT_TYPES.contains(&claim.d4_type);
        let ttl_ms = claim.lease_secs.max(1).saturating_mul(1000);
        let mut cmd = eval(scripts::CLAIM);
        cmd.arg(3)
            .arg(&key)
            .arg(keys::server_leases(&claim.server_id))
            .arg(keys::LEASES)
            .arg(claim.session_id.to_string())
            .arg(&claim.server_id)
            .arg(claim.ip.to_string())
            .arg(now)
            .arg(now + claim.lease_secs)
            .arg(ttl_ms)
            .arg(if exempt { "1" } else { "0" })
            .arg(sid(&claim.uuid))
            .arg(claim.d4_type);
        let mut c = self.main.clone();
        let ok: i64 = cmd.query_async(&mut c).await.map_err(be)?;
        Ok(ok == 1)
    }

    async fn renew_leases(&self, server_id: String, lease_secs: u64, now: u64) -> Result<u64> {
        let mut cmd = eval(scripts::RENEW);
        cmd.arg(1)
            .arg(keys::server_leases(&server_id))
            .arg(&server_id)
            .arg(now + lease_secs)
            .arg(lease_secs.max(1).saturating_mul(1000));
        let mut c = self.main.clone();
        let n: u64 = cmd.query_async(&mut c).await.map_err(be)?;
        Ok(n)
    }

    async fn release_lease(&self, uuid: Uuid, d4_type: u8, session_id: Uuid) -> Result<()> {
        let mut cmd = eval(scripts::RELEASE);
        cmd.arg(2)
            .arg(keys::lease(&uuid, d4_type, &session_id))
            .arg(keys::LEASES)
            .arg(session_id.to_string());
        let mut c = self.main.clone();
        let _: i64 = cmd.query_async(&mut c).await.map_err(be)?;
        Ok(())
    }

    async fn list_leases(&self, now: u64) -> Result<Vec<Lease>> {
        let mut c = self.main.clone();
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::LEASES)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for k in &members {
            pipe.hgetall(k);
        }
        let vals: Vec<HashMap<String, String>> = pipe.query_async(&mut c).await.map_err(be)?;
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (k, h) in members.iter().zip(vals) {
            let parsed = (|| {
                Some(Lease {
                    uuid: h.get("uuid")?.parse().ok()?,
                    d4_type: h.get("type")?.parse().ok()?,
                    session_id: h.get("session_id")?.parse().ok()?,
                    server_id: h.get("server_id")?.clone(),
                    ip: h.get("ip")?.parse().ok()?,
                    started: num(h.get("started"))?,
                    expires: num(h.get("expires"))?,
                })
            })();
            match parsed {
                Some(s) if s.expires > now => out.push(s),
                Some(_) => {}
                None => gone.push(k.clone()),
            }
        }
        if !gone.is_empty() {
            let _: i64 = redis::cmd("SREM")
                .arg(keys::LEASES)
                .arg(&gone)
                .query_async(&mut c)
                .await
                .map_err(be)?;
        }
        out.sort_by_key(|s| (s.uuid, s.d4_type, s.session_id));
        Ok(out)
    }

    async fn clear_leases(&self, server_id: String) -> Result<u64> {
        let mut cmd = eval(scripts::CLEAR);
        cmd.arg(2)
            .arg(keys::server_leases(&server_id))
            .arg(keys::LEASES)
            .arg(&server_id);
        let mut c = self.main.clone();
        let n: u64 = cmd.query_async(&mut c).await.map_err(be)?;
        Ok(n)
    }
}
