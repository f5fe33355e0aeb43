//! Sensors on the embedded store: records in `sensors`, per-day aggregates in `stats`.

use std::collections::BTreeMap;

use redb::ReadableTable;
use uuid::Uuid;

use super::codec::{all_json, be, from_json, get_json, key_of, to_json, to_json_string};
use super::{write, EmbeddedStore, SENSORS, STATS};
use crate::model::*;
use crate::{validate, Result, Sensors, StoreError};

impl EmbeddedStore {
    /// Read-modify-write of one sensor record (created when missing if `create`).
    async fn modify_sensor(
        &self,
        uuid: Uuid,
        create: bool,
        f: impl FnOnce(&mut Sensor) -> Result<()> + Send + 'static,
    ) -> Result<Sensor> {
        let s = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(SENSORS).map_err(be)?;
                    let key = key_of(uuid);
                    let mut s: Sensor = match get_json(&t, &key)? {
                        Some(s) => s,
                        None if create => Sensor::new(uuid),
                        None => return Err(StoreError::NotFound(format!("sensor {key}"))),
                    };
                    f(&mut s)?;
                    t.insert(key.as_str(), to_json(&s)?.as_slice())
                        .map_err(be)?;
                    Ok(s)
                })
            })
            .await?;
        self.emit(StoreEvent::SensorChanged { uuid });
        Ok(s)
    }
}

/// Apply last-seen updates to a sensor record.
fn apply_seen(s: &mut Sensor, u: &SeenUpdate) {
    let t = u.time;
    s.first_seen = Some(s.first_seen.map_or(t, |f| f.min(t)));
    s.last_seen = Some(s.last_seen.map_or(t, |l| l.max(t)));
    match s.last_ips.iter().position(|x| x.ip == u.ip) {
        Some(i) => {
            let mut e = s.last_ips.remove(i);
            e.time = e.time.max(t);
            s.last_ips.push(e);
        }
        None => s.last_ips.push(IpSeen { ip: u.ip, time: t }),
    }
    s.last_ips.sort_by_key(|x| std::cmp::Reverse(x.time));
    s.last_ips.truncate(LAST_IPS);
    match s
        .types
        .iter_mut()
        .find(|x| x.d4_type == u.d4_type && x.ext == u.ext)
    {
        Some(ts) => {
            ts.first_seen = ts.first_seen.min(t);
            ts.last_seen = ts.last_seen.max(t);
        }
        None => {
            s.types.push(TypeSeen {
                d4_type: u.d4_type,
                ext: u.ext.clone(),
                first_seen: t,
                last_seen: t,
            });
            s.types
                .sort_by(|a, b| (a.d4_type, &a.ext).cmp(&(b.d4_type, &b.ext)));
        }
    }
}

fn stats_keys(d: &StatsDelta) -> [StatsKey; 5] {
    [
        StatsKey::Sensor { uuid: d.uuid },
        StatsKey::Ip { ip: d.ip },
        StatsKey::Type { d4_type: d.d4_type },
        StatsKey::SensorIp {
            uuid: d.uuid,
            ip: d.ip,
        },
        StatsKey::SensorType {
            uuid: d.uuid,
            d4_type: d.d4_type,
        },
    ]
}

#[async_trait::async_trait]
impl Sensors for EmbeddedStore {
    async fn register_sensor(&self, reg: SensorRegistration) -> Result<Sensor> {
        validate::registration(&reg)?;
        let uuid = reg.uuid;
        self.modify_sensor(uuid, true, move |s| {
            if s.status != SensorStatus::Unregistered {
                return Err(StoreError::AlreadyExists(format!(
                    "sensor {} is already registered ({})",
                    uuid.simple(),
                    s.status.as_str()
                )));
            }
            s.status = if reg.approve {
                SensorStatus::Approved
            } else {
                SensorStatus::Pending
            };
            s.hmac_key = reg.hmac_key;
            s.mail = reg.mail;
            s.third_party = reg.third_party;
            if let Some(d) = reg.description {
                s.description = d;
            }
            s.registered_at = Some(now());
            Ok(())
        })
        .await
    }

    async fn approve_sensor(&self, uuid: Uuid) -> Result<Sensor> {
        self.modify_sensor(uuid, false, |s| {
            s.status = SensorStatus::Approved;
            if s.registered_at.is_none() {
                s.registered_at = Some(now());
            }
            Ok(())
        })
        .await
    }

    async fn delete_sensor(&self, uuid: Uuid) -> Result<bool> {
        let existed = self
            .run(move |db| {
                write(db, |txn| {
                    let mut t = txn.open_table(SENSORS).map_err(be)?;
                    let existed = t.remove(key_of(uuid).as_str()).map_err(be)?.is_some();
                    Ok(existed)
                })
            })
            .await?;
        if existed {
            self.emit(StoreEvent::SensorChanged { uuid });
        }
        Ok(existed)
    }

    async fn get_sensor(&self, uuid: Uuid) -> Result<Option<Sensor>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(SENSORS).map_err(be)?;
            get_json(&t, &key_of(uuid))
        })
        .await
    }

    async fn list_sensors(&self) -> Result<Vec<Sensor>> {
        self.run(|db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(SENSORS).map_err(be)?;
            all_json(&t)
        })
        .await
    }

    async fn update_sensor(&self, uuid: Uuid, update: SensorUpdate) -> Result<Sensor> {
        validate::sensor_update(&update)?;
        self.modify_sensor(uuid, true, move |s| {
            if let Some(k) = update.hmac_key {
                s.hmac_key = k;
            }
            if let Some(d) = update.description {
                s.description = d;
            }
            if let Some(l) = update.stream_limit {
                s.stream_limit = l;
            }
            if let Some(m) = update.mail {
                s.mail = m;
            }
            if let Some(t) = update.third_party {
                s.third_party = t;
            }
            if let Some(m) = update.monitoring_threshold {
                s.monitoring_threshold = m;
            }
            if let Some(n) = update.name {
                s.name = n;
            }
            if let Some(mut t) = update.tags {
                normalize_tags(&mut t);
                s.tags = t;
            }
            Ok(())
        })
        .await
    }

    async fn record_sensor_error(&self, uuid: Uuid, time: u64, message: String) -> Result<()> {
        self.run(move |db| {
            write(db, |txn| {
                let mut t = txn.open_table(SENSORS).map_err(be)?;
                let key = key_of(uuid);
                let mut s: Sensor = get_json(&t, &key)?.unwrap_or_else(|| Sensor::new(uuid));
                s.last_error = Some(SensorError { time, message });
                t.insert(key.as_str(), to_json(&s)?.as_slice())
                    .map_err(be)?;
                Ok(())
            })
        })
        .await
    }

    async fn record_activity(&self, batch: ActivityBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.run(move |db| {
            write(db, |txn| {
                // Stats: aggregate in memory first, then one read-modify-write per key.
                let mut sums: BTreeMap<(u32, String), Counter> = BTreeMap::new();
                for d in &batch.stats {
                    let c = Counter {
                        frames: d.frames,
                        bytes: d.bytes,
                    };
                    for k in stats_keys(d) {
                        sums.entry((d.day, to_json_string(&k)?)).or_default().add(c);
                    }
                }
                let mut st = txn.open_table(STATS).map_err(be)?;
                for ((day, key), c) in sums {
                    let old = st
                        .get((day, key.as_str()))
                        .map_err(be)?
                        .map(|g| g.value())
                        .unwrap_or((0, 0));
                    let new = (
                        old.0.saturating_add(c.frames),
                        old.1.saturating_add(c.bytes),
                    );
                    st.insert((day, key.as_str()), new).map_err(be)?;
                }
                // Last seen: one read-modify-write per sensor.
                let mut by_sensor: BTreeMap<Uuid, Vec<&SeenUpdate>> = BTreeMap::new();
                for u in &batch.seen {
                    by_sensor.entry(u.uuid).or_default().push(u);
                }
                let mut t = txn.open_table(SENSORS).map_err(be)?;
                for (uuid, updates) in by_sensor {
                    let key = key_of(uuid);
                    let mut s: Sensor = get_json(&t, &key)?.unwrap_or_else(|| Sensor::new(uuid));
                    for u in updates {
                        apply_seen(&mut s, u);
                    }
                    t.insert(key.as_str(), to_json(&s)?.as_slice())
                        .map_err(be)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn record_partner_meta(&self, uuid: Uuid, meta: PartnerMeta) -> Result<()> {
        validate::partner_meta(&meta)?;
        self.modify_sensor(uuid, false, move |s| {
            s.partner = Some(meta);
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn create_group(&self, group: SensorGroup) -> Result<SensorGroup> {
        self.group_create(group).await
    }

    async fn list_groups(&self) -> Result<Vec<SensorGroup>> {
        self.group_list().await
    }

    async fn get_group(&self, name: String) -> Result<Option<SensorGroup>> {
        self.group_get(name).await
    }

    async fn update_group(&self, group: SensorGroup) -> Result<SensorGroup> {
        self.group_update(group).await
    }

    async fn delete_group(&self, name: String) -> Result<bool> {
        self.group_delete(name).await
    }

    async fn day_stats(&self, day: u32) -> Result<DayStats> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(be)?;
            let t = txn.open_table(STATS).map_err(be)?;
            let mut entries = Vec::new();
            for item in t.range((day, "")..(day + 1, "")).map_err(be)? {
                let (k, v) = item.map_err(be)?;
                let (_, key) = k.value();
                let key: StatsKey = from_json(key.as_bytes())?;
                let (frames, bytes) = v.value();
                entries.push((key, Counter { frames, bytes }));
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(DayStats { day, entries })
        })
        .await
    }
}
