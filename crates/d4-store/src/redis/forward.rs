//! Forwarding rules on Redis (metadata database): `d4rs:forward:rules` (hash: rule name →
//! [`ForwardRule`] JSON) and `d4rs:forward:stats:<name>` (hash: server id →
//! [`ForwardServerStats`] JSON). Writes that depend on the rule's existence are scripts.

use std::collections::HashMap;

use super::{be, eval, from_json, keys, scripts, to_json, RedisStore};
use crate::model::*;
use crate::{forward_prep, Forwarding, Result, StoreError};

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("forwarding rule {name}"))
}

impl RedisStore {
    /// Write a rule with `forward_put.lua`; whether it was written.
    async fn put_rule(&self, rule: &ForwardRule, mode: &str) -> Result<bool> {
        let mut c = self.meta.clone();
        let mut cmd = eval(scripts::FORWARD_PUT);
        cmd.arg(2)
            .arg(keys::FORWARD_RULES)
            .arg(keys::forward_stats(&rule.name))
            .arg(&rule.name)
            .arg(to_json(rule)?)
            .arg(mode);
        let written: i64 = cmd.query_async(&mut c).await.map_err(be)?;
        Ok(written == 1)
    }

    async fn changed_rule(&self, rule: ForwardRule) -> Result<ForwardRule> {
        if !self.put_rule(&rule, "update").await? {
            return Err(not_found(&rule.name));
        }
        self.publish(StoreEvent::ForwardRulesChanged).await?;
        Ok(rule)
    }
}

#[async_trait::async_trait]
impl Forwarding for RedisStore {
    async fn create_forward_rule(&self, rule: ForwardRule, now: u64) -> Result<ForwardRule> {
        let rule = forward_prep::for_create(rule, now)?;
        if !self.put_rule(&rule, "create").await? {
            return Err(StoreError::AlreadyExists(format!(
                "forwarding rule {}",
                rule.name
            )));
        }
        self.publish(StoreEvent::ForwardRulesChanged).await?;
        Ok(rule)
    }

    async fn list_forward_rules(&self) -> Result<Vec<ForwardRule>> {
        let mut c = self.meta.clone();
        let all: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys::FORWARD_RULES)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut rules = all
            .values()
            .map(|v| from_json::<ForwardRule>(v))
            .collect::<Result<Vec<_>>>()?;
        rules.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(rules)
    }

    async fn get_forward_rule(&self, name: String) -> Result<Option<ForwardRule>> {
        let mut c = self.meta.clone();
        let v: Option<String> = redis::cmd("HGET")
            .arg(keys::FORWARD_RULES)
            .arg(&name)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        v.map(|v| from_json(&v)).transpose()
    }

    async fn update_forward_rule(&self, rule: ForwardRule, now: u64) -> Result<ForwardRule> {
        crate::validate::forward_rule(&rule)?;
        let old = self
            .get_forward_rule(rule.name.clone())
            .await?
            .ok_or_else(|| not_found(&rule.name))?;
        let rule = forward_prep::for_update(rule, &old, now)?;
        self.changed_rule(rule).await
    }

    async fn set_forward_rule_enabled(&self, name: String, enabled: bool) -> Result<ForwardRule> {
        let mut rule = self
            .get_forward_rule(name.clone())
            .await?
            .ok_or_else(|| not_found(&name))?;
        rule.enabled = enabled;
        self.changed_rule(rule).await
    }

    async fn delete_forward_rule(&self, name: String) -> Result<bool> {
        let mut c = self.meta.clone();
        let (removed, _): (i64, i64) = redis::pipe()
            .atomic()
            .hdel(keys::FORWARD_RULES, &name)
            .del(keys::forward_stats(&name))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        if removed > 0 {
            self.publish(StoreEvent::ForwardRulesChanged).await?;
        }
        Ok(removed > 0)
    }

    async fn record_forward_stats(
        &self,
        name: String,
        server_id: String,
        stats: ForwardStats,
        now: u64,
    ) -> Result<()> {
        let record = ForwardServerStats {
            server_id: server_id.clone(),
            time: now,
            stats,
        };
        let mut c = self.meta.clone();
        let mut cmd = eval(scripts::FORWARD_STATS);
        cmd.arg(2)
            .arg(keys::FORWARD_RULES)
            .arg(keys::forward_stats(&name))
            .arg(&name)
            .arg(&server_id)
            .arg(to_json(&record)?);
        let _: i64 = cmd.query_async(&mut c).await.map_err(be)?;
        Ok(())
    }

    async fn forward_stats(&self, name: String) -> Result<Vec<ForwardServerStats>> {
        let mut c = self.meta.clone();
        let all: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys::forward_stats(&name))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut out = all
            .values()
            .map(|v| from_json::<ForwardServerStats>(v))
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.server_id.cmp(&b.server_id));
        Ok(out)
    }
}
