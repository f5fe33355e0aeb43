//! Traffic statistics per day, live sessions and the monitoring alerts.

use std::net::IpAddr;

use axum::extract::{Query, State};
use d4_store::{now, Counter, StatsKey};
use serde::Serialize;
use serde_json::json;

use super::{ok, ApiResult, DaysQuery};
use crate::actions;
use crate::extract::{Auth, KnownSensor, Read};
use crate::WebState;

/// `GET /api/v1/sensors/monitoring/errors`: sensors silent longer than the threshold.
pub(super) async fn monitoring_errors(State(st): State<WebState>, _: Auth<Read>) -> ApiResult {
    let threshold = st.config().monitoring_threshold_secs;
    let list = actions::monitoring_errors(st.store(), threshold, now()).await?;
    ok(json!({"threshold_secs": threshold, "sensors": list}))
}

/// Frames and bytes of one type, or of one IP, on a day.
#[derive(Serialize)]
struct TypeCount {
    bytes: u64,
    frames: u64,
    #[serde(rename = "type")]
    d4_type: u8,
}

impl TypeCount {
    fn of(d4_type: u8, c: &Counter) -> TypeCount {
        TypeCount {
            bytes: c.bytes,
            frames: c.frames,
            d4_type,
        }
    }
}

#[derive(Serialize)]
struct IpCount {
    bytes: u64,
    frames: u64,
    ip: IpAddr,
}

pub(super) async fn sensor_stats(
    State(st): State<WebState>,
    Query(q): Query<DaysQuery>,
    _: Auth<Read>,
    KnownSensor(s): KnownSensor,
) -> ApiResult {
    let uuid = s.uuid;
    let mut days = Vec::new();
    for day in actions::last_days(q.days.unwrap_or(7).clamp(1, 90), now()) {
        let stats = st.store().day_stats(day).await?;
        let total = stats.get(&StatsKey::Sensor { uuid });
        let mut types = Vec::new();
        let mut ips = Vec::new();
        for (k, c) in &stats.entries {
            match k {
                StatsKey::SensorType { uuid: u, d4_type } if *u == uuid => {
                    types.push(TypeCount::of(*d4_type, c))
                }
                StatsKey::SensorIp { uuid: u, ip } if *u == uuid => ips.push(IpCount {
                    bytes: c.bytes,
                    frames: c.frames,
                    ip: *ip,
                }),
                _ => {}
            }
        }
        days.push(
            json!({"day": day, "frames": total.frames, "bytes": total.bytes,
            "types": types, "ips": ips}),
        );
    }
    ok(json!({"uuid": uuid.simple().to_string(), "days": days}))
}

pub(super) async fn stats(
    State(st): State<WebState>,
    Query(q): Query<DaysQuery>,
    _: Auth<Read>,
) -> ApiResult {
    let mut days = Vec::new();
    for day in actions::last_days(q.days.unwrap_or(7).clamp(1, 90), now()) {
        let stats = st.store().day_stats(day).await?;
        let total = actions::day_total(&stats);
        let mut sensors = 0u64;
        let mut types = Vec::new();
        for (k, c) in &stats.entries {
            match k {
                StatsKey::Sensor { .. } => sensors += 1,
                StatsKey::Type { d4_type } => types.push(TypeCount::of(*d4_type, c)),
                _ => {}
            }
        }
        days.push(
            json!({"day": day, "frames": total.frames, "bytes": total.bytes,
            "sensors": sensors, "types": types}),
        );
    }
    ok(json!({ "days": days }))
}

/// A live D4 session as the API shows it.
#[derive(Serialize)]
struct SessionView {
    ip: IpAddr,
    server_id: String,
    started: u64,
    #[serde(rename = "type")]
    d4_type: u8,
    uuid: String,
}

pub(super) async fn sessions(State(st): State<WebState>, _: Auth<Read>) -> ApiResult {
    let list = st.store().list_leases(now()).await?;
    let sessions: Vec<SessionView> = list
        .into_iter()
        .map(|s| SessionView {
            ip: s.ip,
            server_id: s.server_id,
            started: s.started,
            d4_type: s.d4_type,
            uuid: s.uuid.simple().to_string(),
        })
        .collect();
    ok(json!({ "sessions": sessions }))
}
