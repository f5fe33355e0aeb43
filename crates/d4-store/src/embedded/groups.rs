//! Sensor groups on the embedded store: table `sensor_groups`, name → [`SensorGroup`]
//! (JSON). The table is created by the first write that needs it, so that databases made
//! before groups existed open unchanged (reads treat a missing table as no groups).

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableError};

use super::codec::{all_json, be, get_json, to_json};
use super::{write, EmbeddedStore};
use crate::model::*;
use crate::{validate, Result, StoreError};

const GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("sensor_groups");

/// Every group (ordered by name), in a read transaction.
pub(super) fn read_groups(txn: &ReadTransaction) -> Result<Vec<SensorGroup>> {
    match txn.open_table(GROUPS) {
        Ok(t) => all_json(&t),
        Err(TableError::TableDoesNotExist(_)) => Ok(Vec::new()),
        Err(e) => Err(be(e)),
    }
}

impl EmbeddedStore {
    pub(super) async fn group_create(&self, group: SensorGroup) -> Result<SensorGroup> {
        self.group_put(group, false).await
    }

    /// Writes a group: a new one (`must_exist` false: refused if the name is taken) or a
    /// replacement (`must_exist` true: refused if there is none).
    async fn group_put(&self, mut group: SensorGroup, must_exist: bool) -> Result<SensorGroup> {
        validate::group(&group)?;
        group.normalize();
        let g = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(GROUPS).map_err(be)?;
                    let exists = t.get(group.name.as_str()).map_err(be)?.is_some();
                    if exists && !must_exist {
                        return Err(StoreError::AlreadyExists(format!("group {}", group.name)));
                    }
                    if !exists && must_exist {
                        return Err(StoreError::NotFound(format!("group {}", group.name)));
                    }
                    t.insert(group.name.as_str(), to_json(&group)?.as_slice())
                        .map_err(be)?;
                    Ok(group)
                })
            })
            .await?;
        self.emit(StoreEvent::GroupsChanged);
        Ok(g)
    }

    pub(super) async fn group_list(&self) -> Result<Vec<SensorGroup>> {
        self.run(|db| read_groups(&db.begin_read().map_err(be)?))
            .await
    }

    pub(super) async fn group_get(&self, name: String) -> Result<Option<SensorGroup>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            match txn.open_table(GROUPS) {
                Ok(t) => get_json(&t, &name),
                Err(TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(be(e)),
            }
        })
        .await
    }

    pub(super) async fn group_update(&self, group: SensorGroup) -> Result<SensorGroup> {
        self.group_put(group, true).await
    }

    pub(super) async fn group_delete(&self, name: String) -> Result<bool> {
        let existed = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(GROUPS).map_err(be)?;
                    let existed = t.remove(name.as_str()).map_err(be)?.is_some();
                    Ok(existed)
                })
            })
            .await?;
        if existed {
            self.emit(StoreEvent::GroupsChanged);
        }
        Ok(existed)
    }
}
