//! The forwarding engine of `d4 server` (docs/forward.md, "Delivery"): the adapters that
//! plug `d4-forward` into the server (its journal tap), the store (rules, counters, the
//! sensors' tags and keys) and `/metrics`. The server and the engine do not depend on
//! each other: this module is the only place that knows both.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use d4_forward::{Engine, EngineConfig, RuleSource, SensorDirectory, SensorInfo};
use d4_store::{ForwardRule, ForwardStats, Sensor, SensorGroup, Store, StoreEvent};
use uuid::Uuid;

use crate::config::D4Config;

/// The store as the engine's source of rules and sensors. The engine calls it from its
/// own thread (never a runtime thread), so blocking on the runtime is fine.
struct StoreSource {
    store: Arc<dyn Store>,
    rt: tokio::runtime::Handle,
    server_id: String,
}

impl RuleSource for StoreSource {
    fn rules(&self) -> Result<Vec<ForwardRule>, String> {
        self.rt
            .block_on(self.store.list_forward_rules())
            .map_err(|e| e.to_string())
    }

    fn report(&self, name: &str, stats: &ForwardStats) {
        let r = self.rt.block_on(self.store.record_forward_stats(
            name.to_string(),
            self.server_id.clone(),
            stats.clone(),
            d4_store::now(),
        ));
        if let Err(e) = r {
            tracing::debug!(rule = name, error = %e, "forwarding: could not record the counters");
        }
    }
}

impl SensorDirectory for StoreSource {
    fn sensors(&self) -> Result<HashMap<Uuid, SensorInfo>, String> {
        let sensors = self
            .rt
            .block_on(self.store.list_sensors())
            .map_err(|e| e.to_string())?;
        let groups = self
            .rt
            .block_on(self.store.list_groups())
            .map_err(|e| e.to_string())?;
        Ok(sensor_infos(sensors, &groups))
    }
}

/// What the engine knows of each sensor: its tags, the groups it is a member of (a group
/// may list sensors the store does not know yet: those are skipped) and its HMAC key.
fn sensor_infos(sensors: Vec<Sensor>, groups: &[SensorGroup]) -> HashMap<Uuid, SensorInfo> {
    let mut member_of: HashMap<Uuid, Vec<String>> = HashMap::new();
    for g in groups {
        for u in &g.sensors {
            member_of.entry(*u).or_default().push(g.name.clone());
        }
    }
    sensors
        .into_iter()
        .map(|s| {
            let mut groups = member_of.remove(&s.uuid).unwrap_or_default();
            groups.sort();
            groups.dedup();
            let info = SensorInfo {
                tags: s.tags,
                groups,
                hmac_key: s.hmac_key.filter(|k| !k.is_empty()).map(String::into_bytes),
            };
            (s.uuid, info)
        })
        .collect()
}

/// The engine as the server's journal tap.
struct Tap(Arc<Engine>);

impl d4_server::JournalTap for Tap {
    fn segment_created(&self, session: Uuid, seg: u64, path: &Path) {
        self.0.segment_created(session, seg, path);
    }
    fn meta_created(&self, session: Uuid, path: &Path) {
        self.0.meta_created(session, path);
    }
    fn synced(&self, session: Uuid, seg: u64, end: u64) {
        self.0.synced(session, seg, end);
    }
    fn closed(&self, session: Uuid) {
        self.0.closed(session);
    }
}

/// The running engine and the task that reloads its rules on store events.
pub struct Forwarding {
    engine: Arc<Engine>,
    events: tokio::task::JoinHandle<()>,
}

impl Forwarding {
    pub fn tap(&self) -> Arc<dyn d4_server::JournalTap> {
        Arc::new(Tap(self.engine.clone()))
    }

    /// Stops every rule (spools synced, cursors saved, counters reported).
    pub async fn shutdown(self) {
        self.events.abort();
        let e = self.engine;
        let _ = tokio::task::spawn_blocking(move || e.shutdown()).await;
    }
}

/// Starts the engine before the server listens (what a previous run left is read first).
pub fn start(
    cfg: &D4Config,
    store: Arc<dyn Store>,
    metrics: &Arc<d4_server::ServerMetrics>,
) -> anyhow::Result<Forwarding> {
    let src = Arc::new(StoreSource {
        store: store.clone(),
        rt: tokio::runtime::Handle::current(),
        server_id: cfg.server_id.clone(),
    });
    let mut ecfg = EngineConfig::new(&cfg.data_dir);
    ecfg.org_uuid = cfg.org_uuid;
    ecfg.default_key = cfg.default_key.as_bytes().to_vec();
    // the first load blocks on the store: done off the runtime's threads
    let engine = tokio::task::block_in_place(|| Engine::start(ecfg, src.clone(), src))
        .map_err(|e| anyhow::anyhow!("starting the forwarding engine: {e}"))?;
    let m = engine.clone();
    metrics.add_renderer(Arc::new(move |out: &mut String| m.render_metrics(out)));
    let e = engine.clone();
    let events = tokio::spawn(async move {
        let mut rx = store.subscribe();
        loop {
            match rx.recv().await {
                // rules, or what selects sensors (tags, groups, keys), changed: reload
                Ok(
                    StoreEvent::ForwardRulesChanged
                    | StoreEvent::GroupsChanged
                    | StoreEvent::SensorChanged { .. },
                ) => e.poke(),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => e.poke(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    rx = store.subscribe();
                }
            }
        }
    });
    Ok(Forwarding { engine, events })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(uuid: Uuid, tags: &[&str]) -> Sensor {
        Sensor {
            status: d4_store::SensorStatus::Approved,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Sensor::new(uuid)
        }
    }

    #[test]
    fn sensor_infos_fill_tags_and_groups() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let groups = vec![
            SensorGroup {
                name: "partners".into(),
                description: String::new(),
                sensors: vec![a, c],
            },
            SensorGroup {
                name: "dmz".into(),
                description: String::new(),
                sensors: vec![a],
            },
        ];
        let m = sensor_infos(vec![sensor(a, &["share"]), sensor(b, &[])], &groups);
        assert_eq!(
            m.len(),
            2,
            "a group member the store does not know is skipped"
        );
        assert_eq!(
            m[&a].groups,
            vec!["dmz".to_string(), "partners".to_string()]
        );
        assert_eq!(m[&a].tags, vec!["share".to_string()]);
        assert!(m[&b].groups.is_empty());
    }
}
