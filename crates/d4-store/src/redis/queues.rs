//! Analyzer queues on Redis: d4-core's lists `analyzer:<type|ext>:<queue>` (LPUSH by the
//! producers, RPOP by the analyzers), d4-core's queue settings `analyzer:<queue>` and
//! group sets, `d4rs:queue:<queue>` for the counters, `d4rs:journal:<producer>` for the
//! last seq of a keyed push; in the queues database, beside the list,
//! `d4rs:queue_pushed:<queue>` and `d4rs:queue_times:<queue>` for the push time of the
//! oldest entry (see `scripts/push.lua`).

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use uuid::Uuid;

use super::{be, eval, from_json, from_value, keys, num, qid, scripts, sid, RedisStore};
use crate::model::*;
use crate::{validate, Queues, Result, StoreError};

pub(super) fn kind_of(md: &HashMap<String, String>) -> Option<QueueKind> {
    let t: u8 = md.get("type")?.parse().ok()?;
    match (t, md.get("metatype")) {
        (254, Some(m)) => Some(QueueKind::Ext(m.clone())),
        (t, _) => Some(QueueKind::Type(t)),
    }
}

impl RedisStore {
    /// Settings and counters of queues (None for unknown ones).
    async fn fetch_queues(&self, uuids: &[Uuid]) -> Result<Vec<Option<Queue>>> {
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for q in uuids {
            pipe.hgetall(keys::queue_meta(q))
                .hgetall(keys::d4rs_queue(q))
                .smembers(keys::queue_group(q));
        }
        let mut c = self.meta.clone();
        let vals: Vec<redis::Value> = pipe.query_async(&mut c).await.map_err(be)?;
        let mut it = vals.into_iter();
        let mut partial = Vec::new();
        for q in uuids {
            let md: HashMap<String, String> = from_value(it.next().unwrap_or_default())?;
            let ext: HashMap<String, String> = from_value(it.next().unwrap_or_default())?;
            let group: Vec<String> = from_value(it.next().unwrap_or_default())?;
            let Some(kind) = kind_of(&md) else {
                partial.push(None);
                continue;
            };
            // The group in the order it was given (d4-rs), else d4-core's set.
            let sensors = match ext.get("group").map(String::as_str) {
                Some("0") => None,
                Some(json) if json != "1" => Some(from_json::<Vec<Uuid>>(json)?),
                _ if !group.is_empty() || ext.contains_key("group") => {
                    let mut g: Vec<Uuid> = group.iter().filter_map(|s| s.parse().ok()).collect();
                    g.sort();
                    Some(g)
                }
                _ => None,
            };
            partial.push(Some(Queue {
                config: QueueConfig {
                    uuid: *q,
                    kind,
                    description: md.get("description").cloned().unwrap_or_default(),
                    max_size: num(md.get("max_size")).unwrap_or(DEFAULT_QUEUE_MAX_SIZE),
                    sensors,
                    groups: match ext.get("groups") {
                        Some(json) => from_json(json)?,
                        None => Vec::new(),
                    },
                },
                created: num(ext.get("created")).unwrap_or(0),
                last_updated: num(md.get("last_updated")).unwrap_or(0),
                len: 0,
                trimmed: num(ext.get("trimmed")).unwrap_or(0),
                oldest: None,
            }));
        }
        let mut pipe = redis::pipe();
        let mut any = false;
        for q in partial.iter().flatten() {
            pipe.cmd("EVAL")
                .arg(scripts::OLDEST)
                .arg(3)
                .arg(keys::queue_list(&q.config.kind, &q.config.uuid))
                .arg(keys::queue_times(&q.config.uuid))
                .arg(keys::queue_pushed(&q.config.uuid));
            any = true;
        }
        if any {
            let mut c = self.queues.clone();
            let lens: Vec<(u64, Option<u64>)> = pipe.query_async(&mut c).await.map_err(be)?;
            let mut lens = lens.into_iter();
            for q in partial.iter_mut().flatten() {
                (q.len, q.oldest) = lens.next().unwrap_or_default();
            }
        }
        Ok(partial)
    }

    async fn queue_or_err(&self, uuid: Uuid) -> Result<Queue> {
        self.fetch_queues(&[uuid])
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| StoreError::NotFound(format!("queue {}", qid(&uuid))))
    }

    /// The list key of a queue, `NotFound` if it does not exist.
    pub(super) async fn list_key(&self, uuid: Uuid) -> Result<String> {
        let mut c = self.meta.clone();
        let md: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys::queue_meta(&uuid))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let kind =
            kind_of(&md).ok_or_else(|| StoreError::NotFound(format!("queue {}", qid(&uuid))))?;
        Ok(keys::queue_list(&kind, &uuid))
    }

    /// Write a queue's settings and its set memberships (create or update).
    fn queue_settings_pipe(pipe: &mut redis::Pipeline, c: &QueueConfig, now: u64) {
        let q = &c.uuid;
        let (t, meta) = match &c.kind {
            QueueKind::Type(t) => (*t, None),
            QueueKind::Ext(e) => (254u8, Some(e.clone())),
        };
        pipe.hset(keys::queue_meta(q), "type", t).ignore();
        match meta {
            Some(m) => pipe.hset(keys::queue_meta(q), "metatype", m).ignore(),
            None => pipe.hdel(keys::queue_meta(q), "metatype").ignore(),
        };
        pipe.hset(keys::queue_meta(q), "description", &c.description)
            .ignore()
            .hset(keys::queue_meta(q), "max_size", c.max_size)
            .ignore()
            .hset(keys::queue_meta(q), "last_updated", now)
            .ignore()
            .sadd(keys::ALL_QUEUES, qid(q))
            .ignore();
        if c.groups.is_empty() {
            pipe.hdel(keys::d4rs_queue(q), "groups").ignore();
        } else {
            let groups = serde_json::to_string(&c.groups).unwrap_or_else(|_| "[]".into());
            pipe.hset(keys::d4rs_queue(q), "groups", &groups)
                .ignore()
                .hset(keys::group_queues(&c.kind), qid(q), &groups)
                .ignore();
        }
        match &c.sensors {
            // Groups only: a group queue (for d4-core: one of an empty group).
            None if !c.groups.is_empty() => {
                pipe.hset(keys::d4rs_queue(q), "group", "0")
                    .ignore()
                    .sadd(keys::queues_of_kind(&c.kind, true), qid(q))
                    .ignore();
            }
            Some(group) => {
                pipe.hset(
                    keys::d4rs_queue(q),
                    "group",
                    serde_json::to_string(group).unwrap_or_else(|_| "1".into()),
                )
                .ignore()
                .sadd(keys::queues_of_kind(&c.kind, true), qid(q))
                .ignore();
                for s in group {
                    pipe.sadd(keys::queue_group(q), sid(s))
                        .ignore()
                        .sadd(keys::sensor_queues(&c.kind, s), qid(q))
                        .ignore();
                }
            }
            None => {
                pipe.hset(keys::d4rs_queue(q), "group", "0")
                    .ignore()
                    .sadd(keys::queues_of_kind(&c.kind, false), qid(q))
                    .ignore();
            }
        }
    }

    /// Remove a queue's set memberships (before an update or a delete).
    fn queue_unlink_pipe(pipe: &mut redis::Pipeline, q: &Queue) {
        let c = &q.config;
        let id = qid(&c.uuid);
        pipe.srem(keys::queues_of_kind(&c.kind, false), &id)
            .ignore()
            .srem(keys::queues_of_kind(&c.kind, true), &id)
            .ignore()
            .del(keys::queue_group(&c.uuid))
            .ignore()
            .hdel(keys::group_queues(&c.kind), &id)
            .ignore();
        for s in c.sensors.iter().flatten() {
            pipe.srem(keys::sensor_queues(&c.kind, s), &id).ignore();
        }
    }

    async fn blocking_pop_one(&self, key: &str, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(timeout + Duration::from_secs(5)));
        let mut c = self
            .queue_client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(be)?;
        let secs = timeout.as_secs_f64().max(0.001);
        let got: Option<(String, Vec<u8>)> = redis::cmd("BRPOP")
            .arg(key)
            .arg(format!("{secs:.3}"))
            .query_async(&mut c)
            .await
            .map_err(be)?;
        Ok(got.map(|(_, v)| v))
    }
}

#[async_trait::async_trait]
impl Queues for RedisStore {
    async fn create_queue(&self, config: QueueConfig, now: u64) -> Result<Queue> {
        validate::queue_config(&config)?;
        let mut c = self.meta.clone();
        // Claim the uuid atomically: the `type` field marks existence (as d4-core).
        let t = match &config.kind {
            QueueKind::Type(t) => *t,
            QueueKind::Ext(_) => 254,
        };
        let fresh: bool = redis::cmd("HSETNX")
            .arg(keys::queue_meta(&config.uuid))
            .arg("type")
            .arg(t)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        if !fresh {
            return Err(StoreError::AlreadyExists(format!(
                "queue {}",
                qid(&config.uuid)
            )));
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        Self::queue_settings_pipe(&mut pipe, &config, now);
        pipe.hset(keys::d4rs_queue(&config.uuid), "created", now)
            .ignore()
            .hset(keys::d4rs_queue(&config.uuid), "trimmed", 0)
            .ignore();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        self.publish(StoreEvent::QueuesChanged).await?;
        self.queue_or_err(config.uuid).await
    }

    async fn list_queues(&self) -> Result<Vec<Queue>> {
        let mut c = self.meta.clone();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::ALL_QUEUES)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut uuids: Vec<Uuid> = ids.iter().filter_map(|s| s.parse().ok()).collect();
        uuids.sort();
        Ok(self
            .fetch_queues(&uuids)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    async fn get_queue(&self, uuid: Uuid) -> Result<Option<Queue>> {
        Ok(self.fetch_queues(&[uuid]).await?.pop().flatten())
    }

    async fn update_queue(&self, config: QueueConfig, now: u64) -> Result<Queue> {
        validate::queue_config(&config)?;
        let old = self.queue_or_err(config.uuid).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        Self::queue_unlink_pipe(&mut pipe, &old);
        Self::queue_settings_pipe(&mut pipe, &config, now);
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        let old_key = keys::queue_list(&old.config.kind, &config.uuid);
        let new_key = keys::queue_list(&config.kind, &config.uuid);
        let mut qc = self.queues.clone();
        if old_key != new_key {
            let exists: bool = redis::cmd("EXISTS")
                .arg(&old_key)
                .query_async(&mut qc)
                .await
                .map_err(be)?;
            if exists {
                let () = redis::cmd("RENAME")
                    .arg(&old_key)
                    .arg(&new_key)
                    .query_async(&mut qc)
                    .await
                    .map_err(be)?;
            }
        }
        let mut trim = eval(scripts::TRIM);
        trim.arg(1).arg(&new_key).arg(config.max_size);
        let over: u64 = trim.query_async(&mut qc).await.map_err(be)?;
        if over > 0 {
            let _: i64 = redis::cmd("HINCRBY")
                .arg(keys::d4rs_queue(&config.uuid))
                .arg("trimmed")
                .arg(over)
                .query_async(&mut c)
                .await
                .map_err(be)?;
        }
        self.publish(StoreEvent::QueuesChanged).await?;
        self.queue_or_err(config.uuid).await
    }

    async fn delete_queue(&self, uuid: Uuid) -> Result<bool> {
        let Some(old) = self.get_queue(uuid).await? else {
            return Ok(false);
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        Self::queue_unlink_pipe(&mut pipe, &old);
        pipe.srem(keys::ALL_QUEUES, qid(&uuid))
            .ignore()
            .del(keys::queue_meta(&uuid))
            .ignore()
            .del(keys::d4rs_queue(&uuid))
            .ignore();
        let mut c = self.meta.clone();
        let () = pipe.query_async(&mut c).await.map_err(be)?;
        let mut qc = self.queues.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(keys::queue_list(&old.config.kind, &uuid))
            .arg(keys::queue_times(&uuid))
            .arg(keys::queue_pushed(&uuid))
            .query_async(&mut qc)
            .await
            .map_err(be)?;
        self.drop_leases(uuid).await?;
        self.publish(StoreEvent::QueuesChanged).await?;
        Ok(true)
    }

    async fn queues_for(&self, kind: QueueKind, sensor: Uuid) -> Result<Vec<Uuid>> {
        let mut c = self.meta.clone();
        let (global, group, by_group): (Vec<String>, Vec<String>, HashMap<String, String>) =
            redis::pipe()
                .smembers(keys::queues_of_kind(&kind, false))
                .smembers(keys::sensor_queues(&kind, &sensor))
                .hgetall(keys::group_queues(&kind))
                .query_async(&mut c)
                .await
                .map_err(be)?;
        // Queues naming groups: the sensor's groups among the names they use.
        let mut grouped: Vec<&String> = Vec::new();
        if !by_group.is_empty() {
            let wanted: HashMap<&String, Vec<String>> = by_group
                .iter()
                .map(|(q, json)| Ok((q, from_json::<Vec<String>>(json)?)))
                .collect::<Result<_>>()?;
            let mut names: Vec<String> = wanted.values().flatten().cloned().collect();
            names.sort();
            names.dedup();
            let mine = SensorGroup::names_holding(&self.groups_named(&names).await?, sensor);
            grouped = wanted
                .iter()
                .filter(|(_, gs)| gs.iter().any(|g| mine.contains(g)))
                .map(|(q, _)| *q)
                .collect();
        }
        let mut out: Vec<Uuid> = global
            .iter()
            .chain(group.iter())
            .chain(grouped)
            .filter_map(|s| s.parse().ok())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn push_batch(
        &self,
        key: Option<PushKey>,
        pushes: Vec<QueuePush>,
        now: u64,
    ) -> Result<Option<PushOutcome>> {
        self.push_impl(key, pushes, now).await
    }

    async fn pushed_seq(&self, producer: Uuid) -> Result<Option<u64>> {
        let mut qc = self.queues.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(keys::pushed_seq(&producer))
            .query_async(&mut qc)
            .await
            .map_err(be)?;
        Ok(v.and_then(|v| v.parse().ok()))
    }

    async fn forget_producer(&self, producer: Uuid) -> Result<()> {
        let mut qc = self.queues.clone();
        let () = redis::cmd("DEL")
            .arg(keys::pushed_seq(&producer))
            .query_async(&mut qc)
            .await
            .map_err(be)?;
        Ok(())
    }

    async fn pop_entries(&self, queue: Uuid, max: usize) -> Result<Vec<QueueEntry>> {
        let key = self.list_key(queue).await?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut qc = self.queues.clone();
        let got: Option<Vec<Vec<u8>>> = redis::cmd("RPOP")
            .arg(&key)
            .arg(max)
            .query_async(&mut qc)
            .await
            .map_err(be)?;
        Ok(got
            .unwrap_or_default()
            .into_iter()
            .map(QueueEntry::new)
            .collect())
    }

    async fn pop_entries_blocking(
        &self,
        queue: Uuid,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<QueueEntry>> {
        let got = self.pop_entries(queue, max).await?;
        if !got.is_empty() || max == 0 {
            return Ok(got);
        }
        let key = self.list_key(queue).await?;
        let Some(first) = self.blocking_pop_one(&key, timeout).await? else {
            return Ok(Vec::new());
        };
        let mut out = vec![QueueEntry::new(first)];
        if max > 1 {
            let mut qc = self.queues.clone();
            let more: Option<Vec<Vec<u8>>> = redis::cmd("RPOP")
                .arg(&key)
                .arg(max - 1)
                .query_async(&mut qc)
                .await
                .map_err(be)?;
            out.extend(more.unwrap_or_default().into_iter().map(QueueEntry::new));
        }
        Ok(out)
    }

    async fn lease_entries(
        &self,
        queue: Uuid,
        consumer: String,
        max: usize,
        lease_secs: u64,
        now: u64,
    ) -> Result<Vec<LeasedEntry>> {
        self.lease_impl(queue, consumer, max, lease_secs, now).await
    }

    async fn ack_entries(&self, queue: Uuid, consumer: String, ids: Vec<u64>) -> Result<u64> {
        self.ack_impl(queue, consumer, ids).await
    }

    async fn queue_len(&self, queue: Uuid) -> Result<u64> {
        let key = self.list_key(queue).await?;
        let mut qc = self.queues.clone();
        redis::cmd("LLEN")
            .arg(key)
            .query_async(&mut qc)
            .await
            .map_err(be)
    }

    async fn queue_sample(&self, queue: Uuid, n: usize) -> Result<Vec<QueueEntry>> {
        let key = self.list_key(queue).await?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut qc = self.queues.clone();
        let got: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(n as i64 - 1)
            .query_async(&mut qc)
            .await
            .map_err(be)?;
        Ok(got.into_iter().map(QueueEntry::new).collect())
    }

    async fn empty_queue(&self, queue: Uuid) -> Result<u64> {
        let key = self.list_key(queue).await?;
        let mut qc = self.queues.clone();
        let (n, _): (u64, i64) = redis::pipe()
            .atomic()
            .llen(&key)
            .del(&[key.as_str(), keys::queue_times(&queue).as_str()])
            .query_async(&mut qc)
            .await
            .map_err(be)?;
        Ok(n)
    }
}
