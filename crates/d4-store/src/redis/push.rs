//! Pushes on Redis: a batch of pushes is two round trips (the queues' settings, then one
//! Lua script that checks and records the push key, pushes, trims, marks the push time
//! in side keys and updates the counters), three when the queues live in another database than the metadata.

use std::collections::HashMap;

use uuid::Uuid;

use super::queues::kind_of;
use super::{be, eval, keys, scripts, RedisStore};
use crate::model::*;
use crate::Result;

/// One queue of one push: its list, its max size and its entries (a range of the batch's
/// entry arguments).
struct Target {
    queue: Uuid,
    kind: QueueKind,
    max: u64,
    first: usize,
    count: usize,
}

impl RedisStore {
    /// The kinds and max sizes of these queues (one round trip); `None` for unknown ones.
    async fn queue_targets(&self, queues: &[Uuid]) -> Result<HashMap<Uuid, (QueueKind, u64)>> {
        let mut out = HashMap::new();
        if queues.is_empty() {
            return Ok(out);
        }
        let mut pipe = redis::pipe();
        for q in queues {
            pipe.cmd("HMGET")
                .arg(keys::queue_meta(q))
                .arg("type")
                .arg("metatype")
                .arg("max_size");
        }
        let mut c = self.meta.clone();
        let metas: Vec<(Option<String>, Option<String>, Option<String>)> =
            pipe.query_async(&mut c).await.map_err(be)?;
        for (q, (t, m, max)) in queues.iter().zip(metas) {
            let mut md = HashMap::new();
            if let Some(t) = t {
                md.insert("type".to_string(), t);
            }
            if let Some(m) = m {
                md.insert("metatype".to_string(), m);
            }
            let Some(kind) = kind_of(&md) else { continue };
            let max = max
                .and_then(|m| m.parse::<u64>().ok())
                .unwrap_or(DEFAULT_QUEUE_MAX_SIZE)
                .max(1);
            out.insert(*q, (kind, max));
        }
        Ok(out)
    }

    /// See [`crate::Queues::push_batch`].
    pub(super) async fn push_impl(
        &self,
        key: Option<PushKey>,
        pushes: Vec<QueuePush>,
        now: u64,
    ) -> Result<Option<PushOutcome>> {
        // Each push's queues deduplicated (in order); empty pushes dropped.
        let pushes: Vec<QueuePush> = pushes
            .into_iter()
            .map(|mut p| {
                let mut uniq = Vec::with_capacity(p.queues.len());
                for q in p.queues {
                    if !uniq.contains(&q) {
                        uniq.push(q);
                    }
                }
                p.queues = uniq;
                p
            })
            .filter(|p| !p.queues.is_empty() && !p.entries.is_empty())
            .collect();
        if key.is_none() && pushes.is_empty() {
            return Ok(Some(PushOutcome::default()));
        }
        // Round trip 1: kinds and max sizes of every queue named.
        let mut all: Vec<Uuid> = pushes.iter().flat_map(|p| p.queues.clone()).collect();
        all.sort();
        all.dedup();
        let known = self.queue_targets(&all).await?;
        let mut targets = Vec::new();
        let mut first = 0;
        for p in &pushes {
            for q in &p.queues {
                if let Some((kind, max)) = known.get(q) {
                    targets.push(Target {
                        queue: *q,
                        kind: kind.clone(),
                        max: *max,
                        first,
                        count: p.entries.len(),
                    });
                }
            }
            first += p.entries.len();
        }
        if key.is_none() && targets.is_empty() {
            return Ok(Some(PushOutcome::default()));
        }
        // Round trip 2: the marker, push and trim (and the metadata when it lives in the
        // same database), in one script.
        let nt = targets.len();
        let with_meta = self.same_queue_db;
        let mut cmd = eval(scripts::PUSH);
        cmd.arg(if with_meta { nt * 5 } else { nt * 3 } + usize::from(key.is_some()));
        for t in &targets {
            cmd.arg(keys::queue_list(&t.kind, &t.queue));
        }
        for t in &targets {
            cmd.arg(keys::queue_times(&t.queue));
        }
        for t in &targets {
            cmd.arg(keys::queue_pushed(&t.queue));
        }
        if with_meta {
            for t in &targets {
                cmd.arg(keys::queue_meta(&t.queue));
            }
            for t in &targets {
                cmd.arg(keys::d4rs_queue(&t.queue));
            }
        }
        if let Some(k) = &key {
            cmd.arg(keys::pushed_seq(&k.producer));
        }
        cmd.arg(nt)
            .arg(if with_meta { "1" } else { "0" })
            .arg(now)
            .arg(if key.is_some() { "1" } else { "0" })
            .arg(key.map(|k| format!("{:020}", k.seq)).unwrap_or_default());
        for t in &targets {
            cmd.arg(t.max).arg(t.first).arg(t.count);
        }
        for p in &pushes {
            for e in &p.entries {
                cmd.arg(e.data.as_slice());
            }
        }
        let mut qc = self.queues.clone();
        let overs: Option<Vec<u64>> = cmd.query_async(&mut qc).await.map_err(be)?;
        let Some(overs) = overs else {
            return Ok(None);
        };
        let trimmed: u64 = overs.iter().sum();
        if !with_meta && !targets.is_empty() {
            // Round trip 3 (separate databases only).
            let mut pipe = redis::pipe();
            for (t, over) in targets.iter().zip(&overs) {
                pipe.hset(keys::queue_meta(&t.queue), "last_updated", now)
                    .ignore();
                if *over > 0 {
                    pipe.hincr(keys::d4rs_queue(&t.queue), "trimmed", *over)
                        .ignore();
                }
            }
            let mut c = self.meta.clone();
            let () = pipe.query_async(&mut c).await.map_err(be)?;
        }
        Ok(Some(PushOutcome {
            pushed: targets.iter().map(|t| t.count as u64).sum(),
            trimmed,
        }))
    }
}
