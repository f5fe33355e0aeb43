//! Leased consumption of the queues on Redis, the reliable-queue pattern: a lease moves
//! entries with `LMOVE` from d4-core's queue list `analyzer:<kind>:<queue>` to the
//! consumer's processing list `d4rs:processing:<queue>:<consumer>` (ids in
//! `d4rs:leased:<queue>:<consumer>`), an acknowledgement removes them from it (`LREM`).
//! Entries left there by a consumer whose lease expired go back to the queue list, at its
//! consuming end. Reference analyzers that `RPOP` the queue list keep working: they never
//! see leased entries, and see expired ones again once a lease puts them back.

use uuid::Uuid;

use super::{be, eval, keys, scripts, RedisStore};
use crate::model::*;
use crate::{validate, Result, StoreError};

impl RedisStore {
    /// See [`crate::Queues::lease_entries`].
    pub(super) async fn lease_impl(
        &self,
        queue: Uuid,
        consumer: String,
        max: usize,
        lease_secs: u64,
        now: u64,
    ) -> Result<Vec<LeasedEntry>> {
        validate::consumer_name(&consumer)?;
        let list = self.list_key(queue).await?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let processing = keys::processing_prefix(&queue);
        let leased = keys::leased_prefix(&queue);
        let mut cmd = eval(scripts::LEASE);
        cmd.arg(5)
            .arg(list)
            .arg(keys::queue_consumers(&queue))
            .arg(keys::lease_seq(&queue))
            .arg(format!("{processing}{consumer}"))
            .arg(format!("{leased}{consumer}"))
            .arg(&consumer)
            .arg(max)
            .arg(now)
            .arg(now.saturating_add(lease_secs))
            .arg(processing)
            .arg(leased);
        let mut qc = self.queues.clone();
        let flat: Vec<Vec<u8>> = cmd.query_async(&mut qc).await.map_err(be)?;
        let mut out = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(id), Some(data)) = (it.next(), it.next()) {
            let id = std::str::from_utf8(&id)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Backend("redis: bad lease id".into()))?;
            out.push(LeasedEntry {
                id,
                entry: QueueEntry::new(data),
            });
        }
        Ok(out)
    }

    /// See [`crate::Queues::ack_entries`].
    pub(super) async fn ack_impl(
        &self,
        queue: Uuid,
        consumer: String,
        ids: Vec<u64>,
    ) -> Result<u64> {
        validate::consumer_name(&consumer)?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut cmd = eval(scripts::ACK);
        cmd.arg(2)
            .arg(format!("{}{consumer}", keys::processing_prefix(&queue)))
            .arg(format!("{}{consumer}", keys::leased_prefix(&queue)));
        for id in ids {
            cmd.arg(id);
        }
        let mut qc = self.queues.clone();
        cmd.query_async(&mut qc).await.map_err(be)
    }

    /// Drop every consumer's leased entries of a deleted queue.
    pub(super) async fn drop_leases(&self, queue: Uuid) -> Result<()> {
        let mut qc = self.queues.clone();
        let consumers: Vec<String> = redis::cmd("HKEYS")
            .arg(keys::queue_consumers(&queue))
            .query_async(&mut qc)
            .await
            .map_err(be)?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for c in &consumers {
            pipe.del(format!("{}{c}", keys::processing_prefix(&queue)))
                .ignore()
                .del(format!("{}{c}", keys::leased_prefix(&queue)))
                .ignore();
        }
        pipe.del(keys::queue_consumers(&queue))
            .ignore()
            .del(keys::lease_seq(&queue))
            .ignore();
        let () = pipe.query_async(&mut qc).await.map_err(be)?;
        Ok(())
    }
}
