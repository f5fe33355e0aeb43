//! Sensors on Redis: d4-core's `metadata_uuid:<s>`, registration sets and per-day sorted
//! sets, plus `d4rs:` records for what d4-core does not keep.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::{bad, be, eval, from_json, from_value, keys, num, scripts, sid, to_json, RedisStore};
use crate::model::*;
use crate::{validate, Result, Sensors, StoreError};

/// Type key of a (type, ext) pair: `8` or `254:ja3-jl`.
fn type_key(t: u8, ext: &Option<String>) -> String {
    match ext {
        Some(e) => format!("{t}:{e}"),
        None => t.to_string(),
    }
}

fn format_stamp(unix: u64) -> String {
    let day = day_of(unix);
    let s = unix % 86_400;
    format!("{day}{:02}{:02}{:02}", s / 3600, (s / 60) % 60, s % 60)
}

impl RedisStore {
    /// Read many sensors in one round trip; `None` for unknown ones.
    async fn fetch_sensors(&self, uuids: &[Uuid]) -> Result<Vec<Option<Sensor>>> {
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for u in uuids {
            let s = sid(u);
            pipe.sismember(keys::SENSORS, &s)
                .hgetall(keys::metadata_uuid(u))
                .hgetall(keys::d4rs_sensor(u))
                .sismember(keys::REGISTERED, &s)
                .sismember(keys::PENDING, &s)
                .hget(keys::STREAM_MAX, &s)
                .zrevrange_withscores(keys::sensor_ips(u), 0, -1)
                .hgetall(keys::type_seen(u))
                .hget(keys::to_monitor(u), "delta_time");
        }
        let mut c = self.meta.clone();
        let vals: Vec<redis::Value> = pipe.query_async(&mut c).await.map_err(be)?;
        if vals.len() != uuids.len() * 9 {
            return Err(bad("pipeline length", vals.len()));
        }
        let mut out = Vec::with_capacity(uuids.len());
        let mut it = vals.into_iter();
        for u in uuids {
            let mut next = || it.next().unwrap_or(redis::Value::Nil);
            let known: bool = from_value(next())?;
            let md: HashMap<String, String> = from_value(next())?;
            let ext: HashMap<String, String> = from_value(next())?;
            let registered: bool = from_value(next())?;
            let pending: bool = from_value(next())?;
            let limit: Option<String> = from_value(next())?;
            let ips: Vec<(String, f64)> = from_value(next())?;
            let types: HashMap<String, String> = from_value(next())?;
            let delta: Option<String> = from_value(next())?;
            if !(known || registered || pending || !md.is_empty()) {
                out.push(None);
                continue;
            }
            let mut s = Sensor::new(*u);
            s.status = if registered {
                SensorStatus::Approved
            } else if pending {
                SensorStatus::Pending
            } else {
                SensorStatus::Unregistered
            };
            s.hmac_key = md.get("hmac_key").cloned();
            s.description = md.get("description").cloned().unwrap_or_default();
            s.mail = md.get("user_mail").cloned();
            s.third_party = md
                .get("third_party")
                .is_some_and(|v| matches!(v.as_str(), "True" | "true" | "1"));
            s.registered_at = num(ext.get("registered_at"));
            s.first_seen = num(md.get("first_seen"));
            s.last_seen = num(md.get("last_seen"));
            s.last_error = md.get("Error").map(|m| SensorError {
                time: num(ext.get("error_time")).unwrap_or(0),
                message: m.clone(),
            });
            s.last_ips = ips
                .into_iter()
                .filter_map(|(ip, t)| ip.parse().ok().map(|ip| IpSeen { ip, time: t as u64 }))
                .take(LAST_IPS)
                .collect();
            s.stream_limit = limit.as_ref().and_then(|l| l.parse().ok());
            s.monitoring_threshold = delta.as_ref().and_then(|d| d.parse().ok());
            s.name = ext.get("name").cloned().unwrap_or_default();
            if let Some(t) = ext.get("tags") {
                s.tags = from_json(t)?;
            }
            if let Some(p) = ext.get("partner") {
                s.partner = Some(from_json(p)?);
            }
            let mut seen: BTreeMap<(u8, Option<String>), TypeSeen> = BTreeMap::new();
            for (field, v) in &types {
                let Some((tk, which)) = field.rsplit_once('/') else {
                    continue;
                };
                let (t, e) = match tk.split_once(':') {
                    Some((t, e)) => (t, Some(e.to_string())),
                    None => (tk, None),
                };
                let (Ok(t), Some(v)) = (t.parse::<u8>(), num(Some(v))) else {
                    continue;
                };
                let entry = seen.entry((t, e.clone())).or_insert(TypeSeen {
                    d4_type: t,
                    ext: e,
                    first_seen: v,
                    last_seen: v,
                });
                match which {
                    "first" => entry.first_seen = v,
                    _ => entry.last_seen = v,
                }
            }
            s.types = seen.into_values().collect();
            out.push(Some(s));
        }
        Ok(out)
    }

    async fn sensor_or_err(&self, uuid: Uuid) -> Result<Sensor> {
        self.get_sensor(uuid)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("sensor {}", sid(&uuid))))
    }
}

#[async_trait::async_trait]
impl Sensors for RedisStore {
    async fn register_sensor(&self, reg: SensorRegistration) -> Result<Sensor> {
        validate::registration(&reg)?;
        let u = reg.uuid;
        let s = sid(&u);
        let flag = |b: bool| if b { "1" } else { "0" };
        // One script: the check (neither registered nor pending) and the writes.
        let mut cmd = eval(scripts::REGISTER);
        cmd.arg(5)
            .arg(keys::REGISTERED)
            .arg(keys::PENDING)
            .arg(keys::metadata_uuid(&u))
            .arg(keys::d4rs_sensor(&u))
            .arg(keys::SENSORS)
            .arg(&s)
            .arg(flag(reg.hmac_key.is_some()))
            .arg(reg.hmac_key.as_deref().unwrap_or(""))
            .arg(flag(reg.mail.is_some()))
            .arg(reg.mail.as_deref().unwrap_or(""))
            .arg(flag(reg.description.is_some()))
            .arg(reg.description.as_deref().unwrap_or(""))
            .arg(flag(reg.third_party))
            .arg(now())
            .arg(flag(reg.approve));
        let mut c = self.meta.clone();
        let done: i64 = cmd.query_async(&mut c).await.map_err(be)?;
        if done != 1 {
            return Err(StoreError::AlreadyExists(format!("sensor {s}")));
        }
        self.publish(StoreEvent::SensorChanged { uuid: u }).await?;
        self.sensor_or_err(u).await
    }

    async fn approve_sensor(&self, uuid: Uuid) -> Result<Sensor> {
        let mut s = self.sensor_or_err(uuid).await?;
        let id = sid(&uuid);
        let mut c = self.meta.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .srem(keys::PENDING, &id)
            .ignore()
            .sadd(keys::REGISTERED, &id)
            .ignore()
            .sadd(keys::SENSORS, &id)
            .ignore();
        if s.registered_at.is_none() {
            let t = now();
            pipe.hset(keys::d4rs_sensor(&uuid), "registered_at", t)
                .ignore();
            s.registered_at = Some(t);
        }
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        s.status = SensorStatus::Approved;
        self.publish(StoreEvent::SensorChanged { uuid }).await?;
        Ok(s)
    }

    async fn delete_sensor(&self, uuid: Uuid) -> Result<bool> {
        let Some(s) = self.get_sensor(uuid).await? else {
            return Ok(false);
        };
        let id = sid(&uuid);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(keys::metadata_uuid(&uuid))
            .ignore()
            .del(keys::d4rs_sensor(&uuid))
            .ignore()
            .del(keys::sensor_ips(&uuid))
            .ignore()
            .del(keys::type_seen(&uuid))
            .ignore()
            .del(keys::list_uuid_ip(&uuid))
            .ignore()
            .del(keys::all_types_by_uuid(&uuid))
            .ignore()
            .del(keys::all_extended_types_by_uuid(&uuid))
            .ignore()
            .srem(keys::SENSORS, &id)
            .ignore()
            .srem(keys::REGISTERED, &id)
            .ignore()
            .srem(keys::PENDING, &id)
            .ignore()
            .hdel(keys::STREAM_MAX, &id)
            .ignore()
            .srem(keys::TO_MONITOR, &id)
            .ignore()
            .del(keys::to_monitor(&uuid))
            .ignore()
            .srem(keys::MONITORING_ERRORS, &id)
            .ignore();
        for t in &s.types {
            pipe.del(format!("metadata_type_by_uuid:{id}:{}", t.d4_type))
                .ignore();
            if let Some(ext) = &t.ext {
                pipe.del(keys::metadata_extended_type(&uuid, ext)).ignore();
            }
        }
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        self.publish(StoreEvent::SensorChanged { uuid }).await?;
        Ok(true)
    }

    async fn get_sensor(&self, uuid: Uuid) -> Result<Option<Sensor>> {
        Ok(self.fetch_sensors(&[uuid]).await?.pop().flatten())
    }

    async fn list_sensors(&self) -> Result<Vec<Sensor>> {
        let mut c = self.meta.clone();
        let ids: Vec<String> = redis::cmd("SUNION")
            .arg(keys::SENSORS)
            .arg(keys::REGISTERED)
            .arg(keys::PENDING)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut uuids: Vec<Uuid> = ids.iter().filter_map(|s| s.parse().ok()).collect();
        uuids.sort();
        uuids.dedup();
        Ok(self
            .fetch_sensors(&uuids)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    async fn update_sensor(&self, uuid: Uuid, update: SensorUpdate) -> Result<Sensor> {
        validate::sensor_update(&update)?;
        let id = sid(&uuid);
        let md = keys::metadata_uuid(&uuid);
        let mut pipe = redis::pipe();
        pipe.atomic().sadd(keys::SENSORS, &id).ignore();
        match &update.hmac_key {
            Some(Some(k)) => {
                pipe.hset(&md, "hmac_key", k).ignore();
            }
            Some(None) => {
                pipe.hdel(&md, "hmac_key").ignore();
            }
            None => {}
        }
        if let Some(d) = &update.description {
            pipe.hset(&md, "description", d).ignore();
        }
        match update.stream_limit {
            Some(Some(l)) => {
                pipe.hset(keys::STREAM_MAX, &id, l).ignore();
            }
            Some(None) => {
                pipe.hdel(keys::STREAM_MAX, &id).ignore();
            }
            None => {}
        }
        match update.monitoring_threshold {
            Some(Some(d)) => {
                pipe.sadd(keys::TO_MONITOR, &id)
                    .ignore()
                    .hset(keys::to_monitor(&uuid), "delta_time", d)
                    .ignore()
                    .set(keys::MONITORING_UPDATED, now())
                    .ignore();
            }
            Some(None) => {
                pipe.srem(keys::TO_MONITOR, &id)
                    .ignore()
                    .del(keys::to_monitor(&uuid))
                    .ignore()
                    .srem(keys::MONITORING_ERRORS, &id)
                    .ignore()
                    .set(keys::MONITORING_UPDATED, now())
                    .ignore();
            }
            None => {}
        }
        match &update.mail {
            Some(Some(m)) => {
                pipe.hset(&md, "user_mail", m).ignore();
            }
            Some(None) => {
                pipe.hdel(&md, "user_mail").ignore();
            }
            None => {}
        }
        match update.third_party {
            Some(true) => {
                pipe.hset(&md, "third_party", "True").ignore();
            }
            Some(false) => {
                pipe.hdel(&md, "third_party").ignore();
            }
            None => {}
        }
        let ext = keys::d4rs_sensor(&uuid);
        match update.name.as_deref() {
            Some("") => {
                pipe.hdel(&ext, "name").ignore();
            }
            Some(n) => {
                pipe.hset(&ext, "name", n).ignore();
            }
            None => {}
        }
        if let Some(mut t) = update.tags {
            normalize_tags(&mut t);
            if t.is_empty() {
                pipe.hdel(&ext, "tags").ignore();
            } else {
                pipe.hset(&ext, "tags", to_json(&t)?).ignore();
            }
        }
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        self.publish(StoreEvent::SensorChanged { uuid }).await?;
        self.sensor_or_err(uuid).await
    }

    async fn record_sensor_error(&self, uuid: Uuid, time: u64, message: String) -> Result<()> {
        let mut c = self.meta.clone();
        let () = redis::pipe()
            .atomic()
            .hset(keys::metadata_uuid(&uuid), "Error", message)
            .ignore()
            .hset(keys::d4rs_sensor(&uuid), "error_time", time)
            .ignore()
            .sadd(keys::SENSORS, sid(&uuid))
            .ignore()
            .query_async(&mut c)
            .await
            .map_err(be)?;
        Ok(())
    }

    async fn record_activity(&self, batch: ActivityBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for d in &batch.stats {
            let day = d.day;
            let u = sid(&d.uuid);
            let ip = d.ip.to_string();
            let t = d.d4_type;
            let (f, b) = (d.frames, d.bytes);
            for (key, member) in [
                (format!("daily_uuid:{day}"), u.clone()),
                (format!("daily_ip:{day}"), ip.clone()),
                (format!("daily_type:{day}"), t.to_string()),
                (format!("stat_uuid_ip:{day}:{u}"), ip.clone()),
                (format!("stat_uuid_type:{day}:{u}"), t.to_string()),
            ] {
                pipe.zincr(&key, &member, f)
                    .ignore()
                    .zincr(format!("d4rs:bytes:{key}"), &member, b)
                    .ignore();
            }
            pipe.zincr(format!("stat_ip_uuid:{day}:{ip}"), &u, f)
                .ignore()
                .zincr(format!("stat_type_uuid:{day}:{t}"), &u, f)
                .ignore();
        }
        if !batch.seen.is_empty() {
            let mut cmd = eval(scripts::SEEN);
            cmd.arg(0);
            for s in &batch.seen {
                cmd.arg(sid(&s.uuid))
                    .arg(s.ip.to_string())
                    .arg(s.d4_type)
                    .arg(type_key(s.d4_type, &s.ext))
                    .arg(s.time)
                    .arg(format_stamp(s.time))
                    .arg(s.connections);
            }
            pipe.add_command(cmd).ignore();
        }
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        Ok(())
    }

    async fn record_partner_meta(&self, uuid: Uuid, meta: PartnerMeta) -> Result<()> {
        validate::partner_meta(&meta)?;
        // Only on a known sensor (the hash alone would not make it known).
        self.sensor_or_err(uuid).await?;
        let mut c = self.meta.clone();
        let _: i64 = redis::cmd("HSET")
            .arg(keys::d4rs_sensor(&uuid))
            .arg("partner")
            .arg(to_json(&meta)?)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        self.publish(StoreEvent::SensorChanged { uuid }).await
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
        type Z = Vec<(String, f64)>;
        let mut c = self.meta.clone();
        let mut pipe = redis::pipe();
        for k in ["daily_uuid", "daily_ip", "daily_type"] {
            pipe.zrange_withscores(format!("{k}:{day}"), 0, -1)
                .zrange_withscores(format!("d4rs:bytes:{k}:{day}"), 0, -1);
        }
        let (uf, ub, ipf, ipb, tf, tb): (Z, Z, Z, Z, Z, Z) =
            pipe.query_async(&mut c).await.map_err(be)?;
        let mut map: BTreeMap<StatsKey, Counter> = BTreeMap::new();
        fn add(
            map: &mut BTreeMap<StatsKey, Counter>,
            f: Z,
            b: Z,
            key: impl Fn(&str) -> Option<StatsKey>,
        ) {
            for (m, s) in f {
                if let Some(k) = key(&m) {
                    map.entry(k).or_default().frames += s as u64;
                }
            }
            for (m, s) in b {
                if let Some(k) = key(&m) {
                    map.entry(k).or_default().bytes += s as u64;
                }
            }
        }
        let sensors: Vec<Uuid> = uf.iter().filter_map(|(m, _)| m.parse().ok()).collect();
        add(&mut map, uf, ub, |m| {
            m.parse().ok().map(|uuid| StatsKey::Sensor { uuid })
        });
        add(&mut map, ipf, ipb, |m| {
            m.parse().ok().map(|ip| StatsKey::Ip { ip })
        });
        add(&mut map, tf, tb, |m| {
            m.parse().ok().map(|d4_type| StatsKey::Type { d4_type })
        });
        if !sensors.is_empty() {
            let mut pipe = redis::pipe();
            for u in &sensors {
                let id = sid(u);
                pipe.zrange_withscores(format!("stat_uuid_ip:{day}:{id}"), 0, -1)
                    .zrange_withscores(format!("d4rs:bytes:stat_uuid_ip:{day}:{id}"), 0, -1)
                    .zrange_withscores(format!("stat_uuid_type:{day}:{id}"), 0, -1)
                    .zrange_withscores(format!("d4rs:bytes:stat_uuid_type:{day}:{id}"), 0, -1);
            }
            let vals: Vec<Z> = pipe.query_async(&mut c).await.map_err(be)?;
            let mut it = vals.into_iter();
            for u in sensors {
                let (ipf, ipb, tf, tb) = (
                    it.next().unwrap_or_default(),
                    it.next().unwrap_or_default(),
                    it.next().unwrap_or_default(),
                    it.next().unwrap_or_default(),
                );
                add(&mut map, ipf, ipb, |m| {
                    m.parse().ok().map(|ip| StatsKey::SensorIp { uuid: u, ip })
                });
                add(&mut map, tf, tb, |m| {
                    m.parse()
                        .ok()
                        .map(|d4_type| StatsKey::SensorType { uuid: u, d4_type })
                });
            }
        }
        Ok(DayStats {
            day,
            entries: map.into_iter().collect(),
        })
    }
}
