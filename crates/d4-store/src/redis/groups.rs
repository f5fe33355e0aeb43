//! Sensor groups on Redis: `d4rs:group:<name>` (JSON record) and the `d4rs:groups` set of
//! names; the queues naming groups are indexed per kind in `d4rs:group_queues:<kind>`
//! (see `queues`).

use super::{be, get_json, keys, mget_json, set_json_new, to_json, RedisStore};
use crate::model::*;
use crate::{validate, Result, StoreError};

impl RedisStore {
    pub(super) async fn group_create(&self, mut group: SensorGroup) -> Result<SensorGroup> {
        validate::group(&group)?;
        group.normalize();
        let mut c = self.meta.clone();
        let created = set_json_new(&mut c, keys::group(&group.name), &group).await?;
        if !created {
            return Err(StoreError::AlreadyExists(format!("group {}", group.name)));
        }
        let () = redis::cmd("SADD")
            .arg(keys::GROUPS)
            .arg(&group.name)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        self.publish(StoreEvent::GroupsChanged).await?;
        Ok(group)
    }

    pub(super) async fn group_list(&self) -> Result<Vec<SensorGroup>> {
        let mut c = self.meta.clone();
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::GROUPS)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        names.sort();
        self.groups_named(&names).await
    }

    /// The records of these groups (unknown names left out), in the given order.
    pub(super) async fn groups_named(&self, names: &[String]) -> Result<Vec<SensorGroup>> {
        let keys: Vec<String> = names.iter().map(|n| keys::group(n)).collect();
        mget_json(&mut self.meta.clone(), &keys).await
    }

    pub(super) async fn group_get(&self, name: String) -> Result<Option<SensorGroup>> {
        get_json(&mut self.meta.clone(), keys::group(&name)).await
    }

    pub(super) async fn group_update(&self, mut group: SensorGroup) -> Result<SensorGroup> {
        validate::group(&group)?;
        group.normalize();
        let mut c = self.meta.clone();
        // XX: only an existing record is replaced.
        let replaced: bool = redis::cmd("SET")
            .arg(keys::group(&group.name))
            .arg(to_json(&group)?)
            .arg("XX")
            .query_async::<Option<String>>(&mut c)
            .await
            .map_err(be)?
            .is_some();
        if !replaced {
            return Err(StoreError::NotFound(format!("group {}", group.name)));
        }
        self.publish(StoreEvent::GroupsChanged).await?;
        Ok(group)
    }

    pub(super) async fn group_delete(&self, name: String) -> Result<bool> {
        let mut c = self.meta.clone();
        let (deleted, _): (i64, i64) = redis::pipe()
            .atomic()
            .del(keys::group(&name))
            .srem(keys::GROUPS, &name)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        if deleted > 0 {
            self.publish(StoreEvent::GroupsChanged).await?;
        }
        Ok(deleted > 0)
    }
}
