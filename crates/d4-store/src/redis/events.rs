//! Events between the holders of a Redis store: [`StoreEvent`]s published on
//! [`EVENTS_CHANNEL`] and forwarded to every local subscriber, and the kicks d4-core's UI
//! requests through `server:sensor_to_kick`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use uuid::Uuid;

use super::{be, keys, to_json, AbortOnDrop, RedisStore, EVENTS_CHANNEL};
use crate::model::*;
use crate::{Policy, Result, StoreError};

impl RedisStore {
    /// Performs the kicks d4-core's UI requested: its kick button does
    /// `SADD server:sensor_to_kick <sensor>` in the stream database (d4-rs's main one).
    /// Each member is taken (`SPOP`: with several servers, one of them takes it) and
    /// becomes [`Policy::request_kick`]: the 30 s block and the `kick` event every server
    /// acts on. Members that are not uuids are dropped with a warning. Returns the kicks.
    pub async fn take_core_kicks(&self, now: u64) -> Result<usize> {
        let mut c = self.main.clone();
        let members: Vec<String> = redis::cmd("SPOP")
            .arg(keys::SENSOR_TO_KICK)
            .arg(100)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        let mut kicked = 0;
        for m in members {
            match Uuid::parse_str(m.trim()) {
                Ok(uuid) => {
                    tracing::info!(sensor = %uuid.simple(), "kick requested through server:sensor_to_kick");
                    self.request_kick(uuid, now).await?;
                    kicked += 1;
                }
                Err(_) => tracing::warn!(member = %m, "not a sensor uuid in server:sensor_to_kick"),
            }
        }
        Ok(kicked)
    }

    /// This store with a background task that performs d4-core's UI kicks
    /// ([`RedisStore::take_core_kicks`]) every second, for as long as a clone of the
    /// returned store lives. What the collector opens (`StoreConfig::core_kicks`): d4-core
    /// looked at the set only when some sensor sent data; this looks every second.
    pub fn with_core_kicks(mut self) -> RedisStore {
        let worker = self.clone(); // without the task's handle: no cycle
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = worker.take_core_kicks(now()).await {
                    tracing::warn!(error = %e, "reading server:sensor_to_kick failed");
                }
            }
        });
        self._core_kicks = Some(Arc::new(AbortOnDrop(task)));
        self
    }

    pub(super) async fn publish(&self, ev: StoreEvent) -> Result<()> {
        let json = to_json(&ev)?;
        let mut c = self.main.clone();
        let _: i64 = redis::cmd("PUBLISH")
            .arg(EVENTS_CHANNEL)
            .arg(json)
            .query_async(&mut c)
            .await
            .map_err(be)?;
        Ok(())
    }
}

/// Subscribe to the events channel (waiting for the first subscription), then forward
/// every event to `tx`, re-subscribing after connection losses.
pub(super) async fn spawn_listener(
    client: redis::Client,
    tx: broadcast::Sender<StoreEvent>,
) -> Result<tokio::task::JoinHandle<()>> {
    use futures_util::StreamExt;
    let mut first = Some(
        client
            .get_async_pubsub()
            .await
            .map_err(|e| StoreError::Connection(format!("redis pub/sub: {e}")))?,
    );
    if let Some(ps) = first.as_mut() {
        ps.subscribe(EVENTS_CHANNEL)
            .await
            .map_err(|e| StoreError::Connection(format!("redis subscribe: {e}")))?;
    }
    Ok(tokio::spawn(async move {
        loop {
            let ps = match first.take() {
                Some(ps) => Some(ps),
                None => match client.get_async_pubsub().await {
                    Ok(mut ps) => match ps.subscribe(EVENTS_CHANNEL).await {
                        Ok(()) => {
                            tracing::info!("redis events subscription restored");
                            Some(ps)
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "redis subscribe failed");
                            None
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "redis pub/sub connection failed");
                        None
                    }
                },
            };
            if let Some(ps) = ps {
                let mut stream = ps.into_on_message();
                while let Some(msg) = stream.next().await {
                    match serde_json::from_slice::<StoreEvent>(msg.get_payload_bytes()) {
                        Ok(ev) => {
                            let _ = tx.send(ev);
                        }
                        Err(e) => tracing::warn!(error = %e, "bad event on {EVENTS_CHANNEL}"),
                    }
                }
                tracing::warn!("redis events subscription lost; reconnecting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }))
}
