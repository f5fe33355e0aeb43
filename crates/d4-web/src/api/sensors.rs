//! Sensors: the reference-compatible registration endpoint, the list (filtered by tag or
//! group), one sensor, its settings, name and tags, key, monitoring threshold, kick and block.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use d4_store::{now, Sensor, SensorStatus, SensorUpdate};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{body, done, ok, optional_body, some, ApiResult};
use crate::actions;
use crate::extract::{Admin, Auth, KnownSensor, Read, Register, SensorId};
use crate::failure::{Failure, Res};
use crate::labels;
use crate::WebState;

fn ref_error(status: StatusCode, reason: &str) -> ApiResult {
    Err(Failure::new(status, reason))
}

/// `POST /api/v1/add/sensor/register` `{uuid, hmac_key, mail?, third_party?}`: the
/// reference's checks, order, status codes and bodies. The sensor stays pending.
pub(super) async fn register(State(st): State<WebState>, _: Auth<Register>, b: Bytes) -> ApiResult {
    let req: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    let uuid = req
        .get("uuid")
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
        .filter(|u| u.get_version_num() == 4 && u.get_variant() == uuid::Variant::RFC4122);
    let Some(uuid) = uuid else {
        return ref_error(StatusCode::BAD_REQUEST, "Invalid uuid");
    };
    if let Some(s) = st.store().get_sensor(uuid).await? {
        if s.status != SensorStatus::Unregistered {
            return ref_error(StatusCode::CONFLICT, "Sensor already registered");
        }
    }
    let key = match req.get("hmac_key").and_then(|v| v.as_str()) {
        Some(k) if !k.is_empty() => k.chars().take(100).collect::<String>(),
        _ => {
            return ref_error(
                StatusCode::BAD_REQUEST,
                "Mandatory parameter(s) not provided",
            )
        }
    };
    let mail = req
        .get("mail")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(String::from);
    let third_party = match req.get("third_party") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(_) => true,
    };
    match actions::register(st.store(), uuid, Some(key), mail, third_party, None, false).await {
        Ok(_) => ok(json!({"uuid": uuid.simple().to_string()})),
        Err(f) if f.status == StatusCode::CONFLICT => {
            ref_error(StatusCode::CONFLICT, "Sensor already registered")
        }
        Err(f) => Err(f),
    }
}

/// The UUIDs with a live connection.
async fn connected_set(st: &WebState) -> Res<HashSet<Uuid>> {
    Ok(st
        .store()
        .list_leases(now())
        .await?
        .into_iter()
        .map(|s| s.uuid)
        .collect())
}

/// `?tag=` and `?group=` of the sensor list.
#[derive(Deserialize, Default)]
pub(super) struct SensorFilter {
    #[serde(default)]
    tag: String,
    #[serde(default)]
    group: String,
}

pub(super) async fn sensors(
    State(st): State<WebState>,
    Query(f): Query<SensorFilter>,
    _: Auth<Read>,
) -> ApiResult {
    let connected = connected_set(&st).await?;
    let all = st.store().list_sensors().await?;
    let list: Vec<Value> = labels::filter_sensors(st.store(), all, &f.tag, &f.group)
        .await?
        .iter()
        .map(|s| actions::sensor_json(s, connected.contains(&s.uuid)))
        .collect();
    ok(json!({ "sensors": list }))
}

#[derive(Deserialize)]
struct SensorCreate {
    uuid: String,
    #[serde(default)]
    hmac_key: Option<String>,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    third_party: bool,
    #[serde(default = "yes")]
    approve: bool,
}

fn yes() -> bool {
    true
}

/// Admin registration (approved at once unless `approve: false`).
pub(super) async fn sensor_create(
    State(st): State<WebState>,
    _: Auth<Admin>,
    b: Bytes,
) -> ApiResult {
    let req: SensorCreate = body(&b)?;
    let uuid = actions::parse_uuid(&req.uuid)?;
    let s = actions::register(
        st.store(),
        uuid,
        req.hmac_key,
        req.mail,
        req.third_party,
        req.description,
        req.approve,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(actions::sensor_json(&s, false))).into_response())
}

pub(super) async fn sensor_get(
    State(st): State<WebState>,
    _: Auth<Read>,
    KnownSensor(s): KnownSensor,
) -> ApiResult {
    let connected = connected_set(&st).await?.contains(&s.uuid);
    ok(actions::sensor_json(&s, connected))
}

#[derive(Deserialize)]
struct SensorPut {
    #[serde(default)]
    description: Option<String>,
    /// A number, or null for the default.
    #[serde(default, deserialize_with = "some")]
    stream_limit: Option<Option<u64>>,
    #[serde(default, deserialize_with = "some")]
    mail: Option<Option<String>>,
    #[serde(default)]
    third_party: Option<bool>,
    /// Seconds, or null for the global monitoring threshold.
    #[serde(default, deserialize_with = "some")]
    monitoring_threshold: Option<Option<u64>>,
    /// The sensor's name; `""` removes it.
    #[serde(default)]
    name: Option<String>,
    /// The whole new list of tags (replaces the old one).
    #[serde(default)]
    tags: Option<Vec<String>>,
}

pub(super) async fn sensor_put(
    State(st): State<WebState>,
    _: Auth<Admin>,
    SensorId(uuid): SensorId,
    b: Bytes,
) -> ApiResult {
    let req: SensorPut = body(&b)?;
    let s = actions::update_sensor(
        st.store(),
        uuid,
        SensorUpdate {
            hmac_key: None,
            description: req.description,
            stream_limit: req.stream_limit,
            mail: req.mail,
            third_party: req.third_party,
            monitoring_threshold: req.monitoring_threshold,
            name: req.name,
            tags: req.tags,
        },
    )
    .await?;
    ok(actions::sensor_json(&s, false))
}

#[derive(Deserialize)]
struct NameReq {
    name: String,
}

/// `POST /sensors/{uuid}/name {name}`: set (`""`: remove) the sensor's name.
pub(super) async fn sensor_name(
    State(st): State<WebState>,
    _: Auth<Admin>,
    SensorId(uuid): SensorId,
    b: Bytes,
) -> ApiResult {
    let req: NameReq = body(&b)?;
    let s = labels::set_labels(st.store(), uuid, Some(req.name), None).await?;
    ok(actions::sensor_json(&s, false))
}

#[derive(Deserialize)]
struct TagsReq {
    /// Replace the tags with this list.
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// Add these tags.
    #[serde(default)]
    add: Vec<String>,
    /// Remove these tags.
    #[serde(default)]
    remove: Vec<String>,
}

/// `POST /sensors/{uuid}/tags {tags?, add?, remove?}`: replace, add or remove tags.
pub(super) async fn sensor_tags(
    State(st): State<WebState>,
    _: Auth<Admin>,
    KnownSensor(s): KnownSensor,
    b: Bytes,
) -> ApiResult {
    let req: TagsReq = body(&b)?;
    let mut tags = req.tags.unwrap_or(s.tags);
    tags.retain(|t| !req.remove.contains(t));
    tags.extend(req.add);
    d4_store::normalize_tags(&mut tags);
    let s = labels::set_labels(st.store(), s.uuid, None, Some(tags)).await?;
    ok(actions::sensor_json(&s, false))
}

#[derive(Deserialize)]
struct MonitoringPut {
    /// Seconds (at least 1), or null for the global threshold; required (a body without
    /// it, e.g. a misspelt field, is refused rather than taken as null).
    #[serde(deserialize_with = "some")]
    threshold_secs: Option<Option<u64>>,
}

/// `PUT /sensors/{uuid}/monitoring {threshold_secs}`: the sensor's own silence threshold.
pub(super) async fn sensor_monitoring_put(
    State(st): State<WebState>,
    _: Auth<Admin>,
    SensorId(uuid): SensorId,
    b: Bytes,
) -> ApiResult {
    let req: MonitoringPut = body(&b)?;
    let Some(threshold) = req.threshold_secs else {
        return Err(Failure::bad(
            "threshold_secs is required (seconds, or null)",
        ));
    };
    set_monitoring(&st, uuid, threshold).await
}

/// `DELETE /sensors/{uuid}/monitoring`: back to the global threshold.
pub(super) async fn sensor_monitoring_delete(
    State(st): State<WebState>,
    _: Auth<Admin>,
    SensorId(uuid): SensorId,
) -> ApiResult {
    set_monitoring(&st, uuid, None).await
}

/// The answer of the monitoring endpoints.
#[derive(Serialize)]
struct MonitoringView {
    monitoring_threshold: Option<u64>,
    threshold_secs: u64,
    uuid: String,
}

/// Sets (or clears, `None`) a sensor's monitoring threshold; answers [`MonitoringView`].
async fn set_monitoring(st: &WebState, uuid: Uuid, threshold: Option<u64>) -> ApiResult {
    let s: Sensor = actions::update_sensor(
        st.store(),
        uuid,
        SensorUpdate {
            monitoring_threshold: Some(threshold),
            ..Default::default()
        },
    )
    .await?;
    ok(MonitoringView {
        monitoring_threshold: s.monitoring_threshold,
        threshold_secs: s
            .monitoring_threshold
            .unwrap_or(st.config().monitoring_threshold_secs),
        uuid: s.uuid.simple().to_string(),
    })
}

pub(super) async fn sensor_delete(
    State(st): State<WebState>,
    _: Auth<Admin>,
    SensorId(uuid): SensorId,
) -> ApiResult {
    actions::delete_sensor(st.store(), uuid).await?;
    done()
}

pub(super) async fn sensor_approve(
    State(st): State<WebState>,
    _: Auth<Admin>,
    SensorId(uuid): SensorId,
) -> ApiResult {
    let s = actions::approve(st.store(), uuid).await?;
    ok(actions::sensor_json(&s, false))
}

#[derive(Deserialize, Default)]
struct KeyReq {
    #[serde(default)]
    hmac_key: Option<String>,
}

/// Set (or generate) the sensor's HMAC key; the response is the only time it is shown.
pub(super) async fn sensor_key(
    State(st): State<WebState>,
    _: Auth<Admin>,
    SensorId(uuid): SensorId,
    b: Bytes,
) -> ApiResult {
    let req: KeyReq = optional_body(&b)?;
    let key = actions::rotate_key(st.store(), uuid, req.hmac_key).await?;
    ok(json!({"uuid": uuid.simple().to_string(), "hmac_key": key}))
}

pub(super) async fn sensor_kick(
    State(st): State<WebState>,
    _: Auth<Admin>,
    SensorId(uuid): SensorId,
) -> ApiResult {
    actions::kick(st.store(), uuid).await?;
    done()
}

#[derive(Deserialize, Default)]
struct BlockReq {
    /// Block every IP presenting the UUID (and the ones already seen) instead of the UUID.
    #[serde(default)]
    ips: bool,
    #[serde(default)]
    reason: String,
}

pub(super) async fn sensor_block(
    State(st): State<WebState>,
    Auth { user, .. }: Auth<Admin>,
    SensorId(uuid): SensorId,
    b: Bytes,
) -> ApiResult {
    let req: BlockReq = optional_body(&b)?;
    let reason = if req.reason.is_empty() {
        format!("blocked by {}", user.name)
    } else {
        req.reason
    };
    if req.ips {
        let ips = actions::block_ips_of(st.store(), uuid, &reason).await?;
        ok(json!({"status": "ok", "blocked_ips": ips}))
    } else {
        actions::block_uuid(st.store(), uuid, &reason).await?;
        done()
    }
}
