//! Policy on Redis: blocks in `d4rs:blocks` mirrored into d4-core's blacklist sets, kicks
//! (also d4-core's `temp_blacklist_uuid:<s>`), accepted types in d4-core's sets.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use uuid::Uuid;

use super::{be, from_json, keys, sid, to_json, RedisStore};
use crate::model::*;
use crate::{validate, Policy, Result};

/// Canonical field of a block in `d4rs:blocks`.
fn block_field(target: &BlockTarget) -> String {
    target.to_string()
}

fn normalize_target(target: BlockTarget) -> BlockTarget {
    match target {
        BlockTarget::Ip(net) => BlockTarget::Ip(net.trunc()),
        other => other,
    }
}

/// The d4-core set mirroring a permanent block, with its member.
fn block_mirror(target: &BlockTarget) -> Option<(&'static str, String)> {
    match target {
        BlockTarget::Ip(net) if net.prefix_len() == net.max_prefix_len() => {
            Some((keys::BLACKLIST_IP, net.addr().to_string()))
        }
        BlockTarget::Ip(_) => None,
        BlockTarget::Uuid(u) => Some((keys::BLACKLIST_UUID, sid(u))),
        BlockTarget::IpsOfUuid(u) => Some((keys::BLACKLIST_IP_BY_UUID, sid(u))),
    }
}

/// A block found only in d4-core's sets (added by d4-core's own tools).
fn external_block(target: BlockTarget) -> Block {
    Block {
        target,
        reason: "d4-core blocklist".into(),
        created: 0,
        expires: None,
    }
}

#[async_trait::async_trait]
impl Policy for RedisStore {
    async fn add_block(&self, block: Block) -> Result<()> {
        validate::block(&block)?;
        let mut block = block;
        block.target = normalize_target(block.target);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(keys::BLOCKS, block_field(&block.target), to_json(&block)?)
            .ignore();
        if let Some((set, member)) = block_mirror(&block.target) {
            if block.expires.is_none() {
                pipe.sadd(set, member).ignore();
            } else {
                pipe.srem(set, member).ignore();
            }
        }
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        self.publish(StoreEvent::BlocklistChanged).await
    }

    async fn remove_block(&self, target: BlockTarget) -> Result<bool> {
        let target = normalize_target(target);
        let mut pipe = redis::pipe();
        pipe.atomic().hdel(keys::BLOCKS, block_field(&target));
        let mirror = block_mirror(&target);
        if let Some((set, member)) = &mirror {
            pipe.srem(*set, member);
        }
        let mut c = self.meta.clone();
        let vals: Vec<i64> = pipe.query_async(&mut c).await.map_err(be)?;
        let existed = vals.iter().any(|&n| n > 0);
        if existed {
            self.publish(StoreEvent::BlocklistChanged).await?;
        }
        Ok(existed)
    }

    async fn list_blocks(&self, now: u64) -> Result<Vec<Block>> {
        let mut c = self.meta.clone();
        let (all, ips, uuids, ips_by_uuid): (
            HashMap<String, String>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
        ) = redis::pipe()
            .hgetall(keys::BLOCKS)
            .smembers(keys::BLACKLIST_IP)
            .smembers(keys::BLACKLIST_UUID)
            .smembers(keys::BLACKLIST_IP_BY_UUID)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut out: Vec<Block> = Vec::new();
        let mut seen = HashSet::new();
        for v in all.values() {
            let b: Block = from_json(v)?;
            seen.insert(b.target.clone());
            if b.active_at(now) {
                out.push(b);
            }
        }
        // Entries that d4-core's tools added to its sets directly.
        let external = ips
            .iter()
            .filter_map(|s| {
                s.parse::<IpAddr>()
                    .ok()
                    .map(|ip| BlockTarget::Ip(IpNet::from(ip)))
            })
            .chain(
                uuids
                    .iter()
                    .filter_map(|s| s.parse().ok().map(BlockTarget::Uuid)),
            )
            .chain(
                ips_by_uuid
                    .iter()
                    .filter_map(|s| s.parse().ok().map(BlockTarget::IpsOfUuid)),
            );
        for target in external {
            if seen.insert(target.clone()) {
                out.push(external_block(target));
            }
        }
        out.sort_by(|a, b| a.target.cmp(&b.target));
        Ok(out)
    }

    async fn check_blocked(
        &self,
        ip: IpAddr,
        uuid: Option<Uuid>,
        now: u64,
    ) -> Result<Option<Block>> {
        let mut fields: Vec<BlockTarget> = Vec::new();
        if let Some(u) = uuid {
            fields.push(BlockTarget::Uuid(u));
            fields.push(BlockTarget::IpsOfUuid(u));
        }
        let max = if ip.is_ipv4() { 32 } else { 128 };
        for len in (0..=max).rev() {
            if let Ok(net) = IpNet::new(ip, len) {
                fields.push(BlockTarget::Ip(net.trunc()));
            }
        }
        let mut pipe = redis::pipe();
        let names: Vec<String> = fields.iter().map(block_field).collect();
        pipe.cmd("HMGET").arg(keys::BLOCKS).arg(&names);
        let id = uuid.map(|u| sid(&u)).unwrap_or_default();
        pipe.sismember(keys::BLACKLIST_UUID, &id)
            .sismember(keys::BLACKLIST_IP_BY_UUID, &id)
            .sismember(keys::BLACKLIST_IP, ip.to_string());
        let mut c = self.meta.clone();
        let (found, by_uuid, ips_of_uuid, by_ip): (Vec<Option<String>>, bool, bool, bool) =
            pipe.query_async(&mut c).await.map_err(be)?;
        for (target, v) in fields.iter().zip(found) {
            if let Some(v) = v {
                let b: Block = from_json(&v)?;
                if b.active_at(now) {
                    return Ok(Some(b));
                }
            }
            // A d4-core set entry without a d4-rs record (added by d4-core's tools).
            let external = match target {
                BlockTarget::Uuid(_) => by_uuid,
                BlockTarget::IpsOfUuid(_) => ips_of_uuid,
                BlockTarget::Ip(net) => net.prefix_len() == max && by_ip,
            };
            if external {
                return Ok(Some(external_block(target.clone())));
            }
        }
        Ok(None)
    }

    async fn request_kick(&self, uuid: Uuid, now: u64) -> Result<()> {
        let target = BlockTarget::Uuid(uuid);
        let until = now + KICK_BLOCK_SECS;
        let mut c = self.meta.clone();
        let existing: Option<String> = redis::cmd("HGET")
            .arg(keys::BLOCKS)
            .arg(block_field(&target))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let keep = match existing {
            Some(v) => from_json::<Block>(&v)?.active_at(until),
            None => false,
        };
        if !keep {
            let block = Block {
                target: target.clone(),
                reason: "kick".into(),
                created: now,
                expires: Some(until),
            };
            let () = redis::cmd("HSET")
                .arg(keys::BLOCKS)
                .arg(block_field(&target))
                .arg(to_json(&block)?)
                .query_async(&mut c)
                .await
                .map_err(be)?;
        }
        // d4-core's own temporary block (its servers check it).
        let mut m = self.main.clone();
        let () = redis::cmd("SET")
            .arg(keys::temp_blacklist_uuid(&uuid))
            .arg("kick")
            .arg("EX")
            .arg(KICK_BLOCK_SECS)
            .query_async(&mut m)
            .await
            .map_err(be)?;
        self.publish(StoreEvent::BlocklistChanged).await?;
        self.publish(StoreEvent::Kick { uuid }).await
    }

    async fn accepted_types(&self) -> Result<Vec<u8>> {
        let mut c = self.meta.clone();
        let v: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::ACCEPTED_TYPES)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut t: Vec<u8> = v.iter().filter_map(|s| s.parse().ok()).collect();
        t.sort_unstable();
        t.dedup();
        Ok(t)
    }

    async fn set_type_accepted(&self, d4_type: u8, accepted: bool) -> Result<()> {
        validate::d4_type(d4_type)?;
        let mut c = self.meta.clone();
        let cmd = if accepted { "SADD" } else { "SREM" };
        let _: i64 = redis::cmd(cmd)
            .arg(keys::ACCEPTED_TYPES)
            .arg(d4_type)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        self.publish(StoreEvent::TypesChanged).await
    }

    async fn accepted_ext_types(&self) -> Result<Vec<String>> {
        let mut c = self.meta.clone();
        let mut v: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::ACCEPTED_EXT)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        v.sort();
        Ok(v)
    }

    async fn set_ext_type_accepted(&self, ext: String, accepted: bool) -> Result<()> {
        validate::ext_name(&ext)?;
        let mut c = self.meta.clone();
        let cmd = if accepted { "SADD" } else { "SREM" };
        let _: i64 = redis::cmd(cmd)
            .arg(keys::ACCEPTED_EXT)
            .arg(&ext)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        self.publish(StoreEvent::TypesChanged).await
    }
}
