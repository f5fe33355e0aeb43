//! Policy on the embedded store: blocks in `blocks` (keyed by their target), accepted
//! types and extended types in `settings`.

use serde::Serialize;
use uuid::Uuid;

use super::codec::{all_json, be, from_json, get_json, to_json};
use super::{write, EmbeddedStore, ACCEPTED_EXT_TYPES, ACCEPTED_TYPES, BLOCKS, SETTINGS};
use crate::model::*;
use crate::{validate, Policy, Result};

/// A normalized block target (IP prefixes truncated to their network address).
fn normalize(target: BlockTarget) -> BlockTarget {
    match target {
        BlockTarget::Ip(net) => BlockTarget::Ip(net.trunc()),
        t => t,
    }
}

impl EmbeddedStore {
    async fn settings_list<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        name: &'static str,
    ) -> Result<Vec<T>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(SETTINGS).map_err(be)?;
            Ok(get_json::<Vec<T>>(&t, name)?.unwrap_or_default())
        })
        .await
    }

    async fn settings_toggle<T>(&self, name: &'static str, item: T, on: bool) -> Result<()>
    where
        T: Serialize + serde::de::DeserializeOwned + Ord + Send + 'static,
    {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(SETTINGS).map_err(be)?;
                let mut list: Vec<T> = get_json(&t, name)?.unwrap_or_default();
                list.retain(|x| *x != item);
                if on {
                    list.push(item);
                }
                list.sort();
                t.insert(name, to_json(&list)?.as_slice()).map_err(be)?;
                Ok(())
            })
        })
        .await?;
        self.emit(StoreEvent::TypesChanged);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Policy for EmbeddedStore {
    async fn add_block(&self, block: Block) -> Result<()> {
        validate::block(&block)?;
        let block = Block {
            target: normalize(block.target),
            ..block
        };
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(BLOCKS).map_err(be)?;
                t.insert(
                    block.target.to_string().as_str(),
                    to_json(&block)?.as_slice(),
                )
                .map_err(be)?;
                Ok(())
            })
        })
        .await?;
        self.emit(StoreEvent::BlocklistChanged);
        Ok(())
    }

    async fn remove_block(&self, target: BlockTarget) -> Result<bool> {
        let target = normalize(target);
        let existed = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(BLOCKS).map_err(be)?;
                    let existed = t.remove(target.to_string().as_str()).map_err(be)?.is_some();
                    Ok(existed)
                })
            })
            .await?;
        if existed {
            self.emit(StoreEvent::BlocklistChanged);
        }
        Ok(existed)
    }

    async fn list_blocks(&self, now: u64) -> Result<Vec<Block>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(BLOCKS).map_err(be)?;
            let mut blocks: Vec<Block> = all_json(&t)?;
            blocks.retain(|b| b.active_at(now));
            blocks.sort_by(|a, b| a.target.cmp(&b.target));
            Ok(blocks)
        })
        .await
    }

    async fn check_blocked(
        &self,
        ip: std::net::IpAddr,
        uuid: Option<Uuid>,
        now: u64,
    ) -> Result<Option<Block>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(BLOCKS).map_err(be)?;
            if let Some(u) = uuid {
                for target in [BlockTarget::Uuid(u), BlockTarget::IpsOfUuid(u)] {
                    if let Some(b) = get_json::<Block>(&t, &target.to_string())? {
                        if b.active_at(now) {
                            return Ok(Some(b));
                        }
                    }
                }
            }
            // IP prefixes: scan the `ip ` keys (blocklists are small; callers cache).
            for item in t.range("ip ".."ip!").map_err(be)? {
                let (_, v) = item.map_err(be)?;
                let b: Block = from_json(v.value())?;
                if let BlockTarget::Ip(net) = &b.target {
                    if net.contains(&ip) && b.active_at(now) {
                        return Ok(Some(b));
                    }
                }
            }
            Ok(None)
        })
        .await
    }

    async fn request_kick(&self, uuid: Uuid, now: u64) -> Result<()> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(BLOCKS).map_err(be)?;
                let target = BlockTarget::Uuid(uuid);
                let key = target.to_string();
                let existing: Option<Block> = get_json(&t, &key)?;
                // Never shorten a longer (or permanent) block.
                let until = now + KICK_BLOCK_SECS;
                if existing.as_ref().is_some_and(|b| b.active_at(until)) {
                    return Ok(());
                }
                let block = Block {
                    target,
                    reason: "kick".into(),
                    created: now,
                    expires: Some(until),
                };
                t.insert(key.as_str(), to_json(&block)?.as_slice())
                    .map_err(be)?;
                Ok(())
            })
        })
        .await?;
        self.emit(StoreEvent::BlocklistChanged);
        self.emit(StoreEvent::Kick { uuid });
        Ok(())
    }

    async fn accepted_types(&self) -> Result<Vec<u8>> {
        self.settings_list(ACCEPTED_TYPES).await
    }

    async fn set_type_accepted(&self, d4_type: u8, accepted: bool) -> Result<()> {
        validate::d4_type(d4_type)?;
        self.settings_toggle(ACCEPTED_TYPES, d4_type, accepted)
            .await
    }

    async fn accepted_ext_types(&self) -> Result<Vec<String>> {
        self.settings_list(ACCEPTED_EXT_TYPES).await
    }

    async fn set_ext_type_accepted(&self, ext: String, accepted: bool) -> Result<()> {
        validate::ext_name(&ext)?;
        self.settings_toggle(ACCEPTED_EXT_TYPES, ext, accepted)
            .await
    }
}
