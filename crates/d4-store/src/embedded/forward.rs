//! Forwarding rules on the embedded store: `forward_rules` (name → [`ForwardRule`]) and
//! `forward_stats` ((rule name, server id) → [`ForwardServerStats`]). Both tables are
//! created by the first write: a database from before forwarding opens unchanged and reads
//! as "no rules".

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableError};

use super::codec::{be, from_json, get_json, to_json};
use super::{write, EmbeddedStore};
use crate::model::*;
use crate::{forward_prep, Forwarding, Result, StoreError};

const FORWARD_RULES: TableDefinition<&str, &[u8]> = TableDefinition::new("forward_rules");
const FORWARD_STATS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("forward_stats");

/// Open a table for reading; `None` when it was never created.
fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(be(e)),
    }
}

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("forwarding rule {name}"))
}

impl EmbeddedStore {
    fn get_rule_now(db: &redb::Database, name: &str) -> Result<Option<ForwardRule>> {
        let txn = db.begin_read().map_err(be)?;
        match read_table(&txn, FORWARD_RULES)? {
            Some(t) => get_json(&t, name),
            None => Ok(None),
        }
    }

    /// Replace an existing rule, computed from the stored one, in one transaction.
    async fn change_rule(
        &self,
        name: String,
        f: impl FnOnce(ForwardRule) -> Result<ForwardRule> + Send + 'static,
    ) -> Result<ForwardRule> {
        let rule = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(FORWARD_RULES).map_err(be)?;
                    let old: ForwardRule = get_json(&t, &name)?.ok_or_else(|| not_found(&name))?;
                    let rule = f(old)?;
                    t.insert(name.as_str(), to_json(&rule)?.as_slice())
                        .map_err(be)?;
                    Ok(rule)
                })
            })
            .await?;
        self.emit(StoreEvent::ForwardRulesChanged);
        Ok(rule)
    }
}

#[async_trait::async_trait]
impl Forwarding for EmbeddedStore {
    async fn create_forward_rule(&self, rule: ForwardRule, now: u64) -> Result<ForwardRule> {
        let rule = forward_prep::for_create(rule, now)?;
        let rule = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(FORWARD_RULES).map_err(be)?;
                    if t.get(rule.name.as_str()).map_err(be)?.is_some() {
                        return Err(StoreError::AlreadyExists(format!(
                            "forwarding rule {}",
                            rule.name
                        )));
                    }
                    t.insert(rule.name.as_str(), to_json(&rule)?.as_slice())
                        .map_err(be)?;
                    // Counters left by an earlier rule of the same name start afresh.
                    drop_stats(txn, &rule.name)?;
                    Ok(rule)
                })
            })
            .await?;
        self.emit(StoreEvent::ForwardRulesChanged);
        Ok(rule)
    }

    async fn list_forward_rules(&self) -> Result<Vec<ForwardRule>> {
        self.run(|db| {
            let txn = db.begin_read().map_err(be)?;
            let Some(t) = read_table(&txn, FORWARD_RULES)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for item in t.iter().map_err(be)? {
                let (_, v) = item.map_err(be)?;
                out.push(from_json::<ForwardRule>(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn get_forward_rule(&self, name: String) -> Result<Option<ForwardRule>> {
        self.run(move |db| EmbeddedStore::get_rule_now(db, &name))
            .await
    }

    async fn update_forward_rule(&self, rule: ForwardRule, now: u64) -> Result<ForwardRule> {
        crate::validate::forward_rule(&rule)?;
        let name = rule.name.clone();
        self.change_rule(name, move |old| forward_prep::for_update(rule, &old, now))
            .await
    }

    async fn set_forward_rule_enabled(&self, name: String, enabled: bool) -> Result<ForwardRule> {
        self.change_rule(name, move |mut old| {
            old.enabled = enabled;
            Ok(old)
        })
        .await
    }

    async fn delete_forward_rule(&self, name: String) -> Result<bool> {
        let existed = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(FORWARD_RULES).map_err(be)?;
                    let existed = t.remove(name.as_str()).map_err(be)?.is_some();
                    drop_stats(txn, &name)?;
                    Ok(existed)
                })
            })
            .await?;
        if existed {
            self.emit(StoreEvent::ForwardRulesChanged);
        }
        Ok(existed)
    }

    async fn record_forward_stats(
        &self,
        name: String,
        server_id: String,
        stats: ForwardStats,
        now: u64,
    ) -> Result<()> {
        self.run(move |db| {
            if EmbeddedStore::get_rule_now(db, &name)?.is_none() {
                return Ok(());
            }
            write(db, |txn| {
                // Checked again inside the transaction: a deletion may have come between.
                let rules = txn.open_table(FORWARD_RULES).map_err(be)?;
                if rules.get(name.as_str()).map_err(be)?.is_none() {
                    return Ok(());
                }
                let record = ForwardServerStats {
                    server_id: server_id.clone(),
                    time: now,
                    stats,
                };
                let mut t = txn.open_table(FORWARD_STATS).map_err(be)?;
                t.insert(
                    (name.as_str(), server_id.as_str()),
                    to_json(&record)?.as_slice(),
                )
                .map_err(be)?;
                Ok(())
            })
        })
        .await
    }

    async fn forward_stats(&self, name: String) -> Result<Vec<ForwardServerStats>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let Some(t) = read_table(&txn, FORWARD_STATS)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for item in t.range((name.as_str(), "")..).map_err(be)? {
                let (k, v) = item.map_err(be)?;
                if k.value().0 != name {
                    break;
                }
                out.push(from_json::<ForwardServerStats>(v.value())?);
            }
            Ok(out)
        })
        .await
    }
}

/// Remove every server's counters of a rule.
fn drop_stats(txn: &redb::WriteTransaction, name: &str) -> Result<()> {
    let mut t = txn.open_table(FORWARD_STATS).map_err(be)?;
    let servers: Vec<String> = {
        let mut v = Vec::new();
        for item in t.range((name, "")..).map_err(be)? {
            let (k, _) = item.map_err(be)?;
            let (rule, server) = k.value();
            if rule != name {
                break;
            }
            v.push(server.to_string());
        }
        v
    };
    for s in servers {
        t.remove((name, s.as_str())).map_err(be)?;
    }
    Ok(())
}
