//! The JSON REST API under `/api/v1`. Auth: `Authorization: <token>` or
//! `Authorization: Bearer <token>` (per-user tokens, see the account page). Errors are
//! `{"status": "error", "reason": "..."}` with a matching HTTP status. Token-authenticated
//! requests need no CSRF token: browsers never attach that header on their own.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use d4_store::{
    now, QueueConfig, QueueKind, Role, SensorStatus, SensorUpdate, StatsKey, User,
    DEFAULT_QUEUE_MAX_SIZE,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::actions::{self, Failure, Res};
use crate::auth::{self, Need};
use crate::WebState;

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"status": "error", "reason": self.reason})),
        )
            .into_response()
    }
}

type ApiResult = Result<Response, Failure>;

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

fn done() -> ApiResult {
    ok(json!({"status": "ok"}))
}

/// The token's user, when allowed to do `need`.
pub(crate) async fn need(st: &WebState, headers: &HeaderMap, need: Need) -> Res<User> {
    let has_header = headers.contains_key(axum::http::header::AUTHORIZATION);
    match auth::token_user(st.store(), headers).await? {
        Some(u) if auth::allowed(u.role, need) => Ok(u),
        Some(u) => Err(Failure::forbidden(format!(
            "forbidden: role {} may not do this",
            u.role.as_str()
        ))),
        // d4-core's texts, word for word (its `token_required` decorator).
        None if has_header => Err(Failure::new(StatusCode::UNAUTHORIZED, "Invalid Token")),
        None => Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "Authentication needed",
        )),
    }
}

fn body<T: DeserializeOwned>(b: &Bytes) -> Res<T> {
    serde_json::from_slice(b).map_err(|e| Failure::bad(format!("invalid JSON body: {e}")))
}

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/add/sensor/register", post(register))
        .route("/sensors/monitoring/errors", get(monitoring_errors))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/me", get(me))
        .route("/me/token", post(me_token))
        .route("/me/password", post(me_password))
        .route("/sensors", get(sensors).post(sensor_create))
        .route(
            "/sensors/{uuid}",
            get(sensor_get).put(sensor_put).delete(sensor_delete),
        )
        .route("/sensors/{uuid}/approve", post(sensor_approve))
        .route("/sensors/{uuid}/key", post(sensor_key))
        .route("/sensors/{uuid}/kick", post(sensor_kick))
        .route(
            "/sensors/{uuid}/monitoring",
            put(sensor_monitoring_put).delete(sensor_monitoring_delete),
        )
        .route("/sensors/{uuid}/block", post(sensor_block))
        .route("/sensors/{uuid}/stats", get(sensor_stats))
        .route(
            "/blocklist",
            get(blocks).post(block_add).delete(block_remove),
        )
        .route("/types", get(types))
        .route("/types/ext/{name}", put(type_ext_put))
        .route("/types/{t}", put(type_put))
        .route("/queues", get(queues).post(queue_create))
        .route(
            "/queues/{uuid}",
            get(queue_get).put(queue_put).delete(queue_delete),
        )
        .route("/queues/{uuid}/empty", post(queue_empty))
        .route("/queues/{uuid}/sample", get(queue_sample))
        .route("/users", get(users).post(user_create))
        .route("/users/{name}", put(user_put).delete(user_delete))
        .route(
            "/users/{name}/token",
            post(user_token).delete(user_token_revoke),
        )
        .route("/users/{name}/password", post(user_password_reset))
        .route("/stats", get(stats))
        .route("/sessions", get(sessions))
        .fallback(|| async { Failure::not_found("no such API endpoint") })
}

// ---- reference-compatible endpoints ----

fn ref_error(status: StatusCode, reason: &str) -> ApiResult {
    Err(Failure::new(status, reason))
}

/// `POST /api/v1/add/sensor/register` `{uuid, hmac_key, mail?, third_party?}`: the
/// reference's checks, order, status codes and bodies. The sensor stays pending.
async fn register(State(st): State<WebState>, headers: HeaderMap, b: Bytes) -> ApiResult {
    need(&st, &headers, Need::Register).await?;
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

/// `GET /api/v1/sensors/monitoring/errors`: sensors silent longer than the threshold.
async fn monitoring_errors(State(st): State<WebState>, headers: HeaderMap) -> ApiResult {
    need(&st, &headers, Need::Read).await?;
    let threshold = st.config().monitoring_threshold_secs;
    let list = actions::monitoring_errors(st.store(), threshold, now()).await?;
    ok(json!({"threshold_secs": threshold, "sensors": list}))
}

// ---- account ----

fn user_json(u: &User) -> Value {
    json!({
        "name": u.name,
        "role": u.role.as_str(),
        "must_change_password": u.must_change_password,
        "has_token": u.api_token_hash.is_some(),
        "created": u.created,
    })
}

async fn me(State(st): State<WebState>, headers: HeaderMap) -> ApiResult {
    let u = need(&st, &headers, Need::Any).await?;
    ok(user_json(&u))
}

async fn me_token(State(st): State<WebState>, headers: HeaderMap) -> ApiResult {
    let u = need(&st, &headers, Need::Any).await?;
    let token = actions::rotate_token(st.store(), &u.name).await?;
    ok(json!({"name": u.name, "token": token}))
}

#[derive(Deserialize)]
struct PasswordChange {
    current: String,
    new: String,
}

async fn me_password(State(st): State<WebState>, headers: HeaderMap, b: Bytes) -> ApiResult {
    let u = need(&st, &headers, Need::Any).await?;
    let req: PasswordChange = body(&b)?;
    actions::change_password(st.store(), &u.name, Some(&req.current), &req.new).await?;
    if u.name == auth::FIRST_ADMIN {
        auth::remove_admin_password_file(&st);
    }
    done()
}

// ---- sensors ----

async fn connected_set(st: &WebState) -> Res<HashSet<Uuid>> {
    Ok(st
        .store()
        .list_leases(now())
        .await?
        .into_iter()
        .map(|s| s.uuid)
        .collect())
}

async fn sensors(State(st): State<WebState>, headers: HeaderMap) -> ApiResult {
    need(&st, &headers, Need::Read).await?;
    let connected = connected_set(&st).await?;
    let list: Vec<Value> = st
        .store()
        .list_sensors()
        .await?
        .iter()
        .map(|s| actions::sensor_json(s, connected.contains(&s.uuid)))
        .collect();
    ok(json!({"sensors": list}))
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
async fn sensor_create(State(st): State<WebState>, headers: HeaderMap, b: Bytes) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let req: SensorCreate = body(&b)?;
    let uuid = actions::parse_uuid(&req.uuid)?;
    let s = actions::register(
        st.store(),
        uuid,
        req.hmac_key.filter(|k| !k.is_empty()),
        req.mail,
        req.third_party,
        req.description,
        req.approve,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(actions::sensor_json(&s, false))).into_response())
}

async fn sensor_get(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    need(&st, &headers, Need::Read).await?;
    let uuid = actions::parse_uuid(&uuid)?;
    let s = actions::sensor(st.store(), uuid).await?;
    let connected = connected_set(&st).await?.contains(&uuid);
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
}

fn some<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

async fn sensor_put(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    b: Bytes,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let uuid = actions::parse_uuid(&uuid)?;
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
        },
    )
    .await?;
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
async fn sensor_monitoring_put(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    b: Bytes,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let uuid = actions::parse_uuid(&uuid)?;
    let req: MonitoringPut = body(&b)?;
    let Some(threshold) = req.threshold_secs else {
        return Err(Failure::bad(
            "threshold_secs is required (seconds, or null)",
        ));
    };
    set_monitoring(&st, uuid, threshold).await
}

/// `DELETE /sensors/{uuid}/monitoring`: back to the global threshold.
async fn sensor_monitoring_delete(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let uuid = actions::parse_uuid(&uuid)?;
    set_monitoring(&st, uuid, None).await
}

/// Sets (or clears, `None`) a sensor's monitoring threshold; answers [`monitoring_json`].
async fn set_monitoring(st: &WebState, uuid: uuid::Uuid, threshold: Option<u64>) -> ApiResult {
    let s = actions::update_sensor(
        st.store(),
        uuid,
        SensorUpdate {
            monitoring_threshold: Some(threshold),
            ..Default::default()
        },
    )
    .await?;
    ok(monitoring_json(st, &s))
}

fn monitoring_json(st: &WebState, s: &d4_store::Sensor) -> Value {
    json!({
        "uuid": s.uuid.simple().to_string(),
        "monitoring_threshold": s.monitoring_threshold,
        "threshold_secs": s.monitoring_threshold.unwrap_or(st.config().monitoring_threshold_secs),
    })
}

async fn sensor_delete(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let uuid = actions::parse_uuid(&uuid)?;
    actions::delete_sensor(st.store(), uuid).await?;
    done()
}

async fn sensor_approve(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let uuid = actions::parse_uuid(&uuid)?;
    let s = actions::approve(st.store(), uuid).await?;
    ok(actions::sensor_json(&s, false))
}

#[derive(Deserialize, Default)]
struct KeyReq {
    #[serde(default)]
    hmac_key: Option<String>,
}

/// Set (or generate) the sensor's HMAC key; the response is the only time it is shown.
async fn sensor_key(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    b: Bytes,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let uuid = actions::parse_uuid(&uuid)?;
    let req: KeyReq = if b.is_empty() {
        KeyReq::default()
    } else {
        body(&b)?
    };
    let key = actions::rotate_key(st.store(), uuid, req.hmac_key).await?;
    ok(json!({"uuid": uuid.simple().to_string(), "hmac_key": key}))
}

async fn sensor_kick(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let uuid = actions::parse_uuid(&uuid)?;
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

async fn sensor_block(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    b: Bytes,
) -> ApiResult {
    let u = need(&st, &headers, Need::Admin).await?;
    let uuid = actions::parse_uuid(&uuid)?;
    let req: BlockReq = if b.is_empty() {
        BlockReq::default()
    } else {
        body(&b)?
    };
    let reason = if req.reason.is_empty() {
        format!("blocked by {}", u.name)
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

#[derive(Deserialize)]
struct DaysQuery {
    #[serde(default)]
    days: Option<u64>,
}

async fn sensor_stats(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    Query(q): Query<DaysQuery>,
) -> ApiResult {
    need(&st, &headers, Need::Read).await?;
    let uuid = actions::parse_uuid(&uuid)?;
    actions::sensor(st.store(), uuid).await?;
    let mut days = Vec::new();
    for day in actions::last_days(q.days.unwrap_or(7).clamp(1, 90), now()) {
        let stats = st.store().day_stats(day).await?;
        let total = stats.get(&StatsKey::Sensor { uuid });
        let mut types = Vec::new();
        let mut ips = Vec::new();
        for (k, c) in &stats.entries {
            match k {
                StatsKey::SensorType { uuid: u, d4_type } if *u == uuid => {
                    types.push(json!({"type": d4_type, "frames": c.frames, "bytes": c.bytes}))
                }
                StatsKey::SensorIp { uuid: u, ip } if *u == uuid => {
                    ips.push(json!({"ip": ip, "frames": c.frames, "bytes": c.bytes}))
                }
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

// ---- blocklists ----

fn block_json(b: &d4_store::Block) -> Value {
    let (kind, value) = actions::target_kind_value(&b.target);
    json!({"kind": kind, "value": value, "reason": b.reason, "created": b.created,
        "expires": b.expires})
}

async fn blocks(State(st): State<WebState>, headers: HeaderMap) -> ApiResult {
    need(&st, &headers, Need::Read).await?;
    let list: Vec<Value> = st
        .store()
        .list_blocks(now())
        .await?
        .iter()
        .map(block_json)
        .collect();
    ok(json!({"blocks": list}))
}

#[derive(Deserialize)]
struct BlockAdd {
    kind: String,
    value: String,
    #[serde(default)]
    reason: String,
    /// Seconds; absent = permanent.
    #[serde(default)]
    expires_in: Option<u64>,
}

async fn block_add(State(st): State<WebState>, headers: HeaderMap, b: Bytes) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let req: BlockAdd = body(&b)?;
    let target = actions::parse_target(&req.kind, &req.value)?;
    actions::add_block(st.store(), target.clone(), &req.reason, req.expires_in).await?;
    if let d4_store::BlockTarget::Uuid(u) = target {
        actions::kick(st.store(), u).await?;
    }
    done()
}

#[derive(Deserialize)]
struct BlockDel {
    kind: String,
    value: String,
}

async fn block_remove(State(st): State<WebState>, headers: HeaderMap, b: Bytes) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let req: BlockDel = body(&b)?;
    let target = actions::parse_target(&req.kind, &req.value)?;
    actions::remove_block(st.store(), target).await?;
    done()
}

// ---- types ----

async fn types(State(st): State<WebState>, headers: HeaderMap) -> ApiResult {
    need(&st, &headers, Need::Read).await?;
    let t = st.store().accepted_types().await?;
    let e = st.store().accepted_ext_types().await?;
    ok(json!({"accepted_types": t, "accepted_ext_types": e}))
}

#[derive(Deserialize)]
struct Accepted {
    accepted: bool,
}

async fn type_put(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(t): Path<String>,
    b: Bytes,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let t: u8 = t
        .parse()
        .map_err(|_| Failure::bad(format!("invalid type {t:?} (1..=255)")))?;
    let req: Accepted = body(&b)?;
    actions::set_type(st.store(), t, req.accepted).await?;
    done()
}

async fn type_ext_put(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    b: Bytes,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let req: Accepted = body(&b)?;
    actions::set_ext(st.store(), &name, req.accepted).await?;
    done()
}

// ---- queues ----

fn queue_json(q: &d4_store::Queue) -> Value {
    let kind = match &q.config.kind {
        QueueKind::Type(t) => json!(t),
        QueueKind::Ext(e) => json!(e),
    };
    json!({
        "uuid": q.config.uuid.simple().to_string(),
        "kind": kind,
        "description": q.config.description,
        "max_size": q.config.max_size,
        "sensors": q.config.sensors.as_ref().map(|v| v.iter().map(|u| u.simple().to_string()).collect::<Vec<_>>()),
        "created": q.created,
        "last_updated": q.last_updated,
        "len": q.len,
        "trimmed": q.trimmed,
    })
}

async fn queues(State(st): State<WebState>, headers: HeaderMap) -> ApiResult {
    need(&st, &headers, Need::Read).await?;
    let list: Vec<Value> = st
        .store()
        .list_queues()
        .await?
        .iter()
        .map(queue_json)
        .collect();
    ok(json!({"queues": list}))
}

#[derive(Deserialize)]
struct QueueReq {
    #[serde(default)]
    uuid: Option<String>,
    kind: Value,
    #[serde(default)]
    description: String,
    #[serde(default)]
    max_size: Option<u64>,
    #[serde(default)]
    sensors: Option<Vec<String>>,
}

fn queue_config(req: QueueReq, uuid: Uuid) -> Res<QueueConfig> {
    let kind = match &req.kind {
        Value::Number(n) => actions::parse_kind(&n.to_string())?,
        Value::String(s) => actions::parse_kind(s)?,
        _ => {
            return Err(Failure::bad(
                "kind must be a type number or an extended type name",
            ))
        }
    };
    let sensors = match req.sensors {
        None => None,
        Some(list) => actions::parse_group(&list.join(" "))?,
    };
    Ok(QueueConfig {
        uuid,
        kind,
        description: req.description,
        max_size: req.max_size.unwrap_or(DEFAULT_QUEUE_MAX_SIZE),
        sensors,
    })
}

async fn queue_create(State(st): State<WebState>, headers: HeaderMap, b: Bytes) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let req: QueueReq = body(&b)?;
    let uuid = match &req.uuid {
        Some(u) => actions::parse_uuid(u)?,
        None => Uuid::new_v4(),
    };
    let q = actions::create_queue(st.store(), queue_config(req, uuid)?).await?;
    Ok((StatusCode::CREATED, Json(queue_json(&q))).into_response())
}

async fn queue_get(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    need(&st, &headers, Need::Read).await?;
    let q = actions::queue(st.store(), actions::parse_uuid(&uuid)?).await?;
    ok(queue_json(&q))
}

async fn queue_put(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    b: Bytes,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let uuid = actions::parse_uuid(&uuid)?;
    let req: QueueReq = body(&b)?;
    let q = actions::update_queue(st.store(), queue_config(req, uuid)?).await?;
    ok(queue_json(&q))
}

async fn queue_delete(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let uuid = actions::parse_uuid(&uuid)?;
    if !st.store().delete_queue(uuid).await? {
        return Err(Failure::not_found(format!(
            "unknown queue {}",
            uuid.simple()
        )));
    }
    done()
}

async fn queue_empty(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let uuid = actions::parse_uuid(&uuid)?;
    actions::queue(st.store(), uuid).await?;
    let n = st.store().empty_queue(uuid).await?;
    ok(json!({"status": "ok", "removed": n}))
}

#[derive(Deserialize)]
struct SampleQuery {
    #[serde(default)]
    n: Option<usize>,
}

async fn queue_sample(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    Query(q): Query<SampleQuery>,
) -> ApiResult {
    need(&st, &headers, Need::Read).await?;
    let uuid = actions::parse_uuid(&uuid)?;
    actions::queue(st.store(), uuid).await?;
    let entries = st
        .store()
        .queue_sample(uuid, q.n.unwrap_or(20).clamp(1, 1000))
        .await?;
    ok(json!({"entries": entries}))
}

// ---- users ----

async fn users(State(st): State<WebState>, headers: HeaderMap) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let list: Vec<Value> = st
        .store()
        .list_users()
        .await?
        .iter()
        .map(user_json)
        .collect();
    ok(json!({"users": list}))
}

#[derive(Deserialize)]
struct UserCreate {
    name: String,
    role: String,
    #[serde(default)]
    password: Option<String>,
}

fn parse_role(s: &str) -> Res<Role> {
    s.parse::<Role>().map_err(Failure::bad)
}

async fn user_create(State(st): State<WebState>, headers: HeaderMap, b: Bytes) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let req: UserCreate = body(&b)?;
    let role = parse_role(&req.role)?;
    let generated = actions::create_user(st.store(), &req.name, role, req.password).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": req.name, "role": role.as_str(), "password": generated})),
    )
        .into_response())
}

#[derive(Deserialize)]
struct UserPut {
    role: String,
}

async fn user_put(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    b: Bytes,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let req: UserPut = body(&b)?;
    actions::set_role(st.store(), &name, parse_role(&req.role)?).await?;
    done()
}

async fn user_delete(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    let u = need(&st, &headers, Need::Admin).await?;
    actions::delete_user(st.store(), &name, &u.name).await?;
    done()
}

async fn user_token(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    let token = actions::rotate_token(st.store(), &name).await?;
    ok(json!({"name": name, "token": token}))
}

#[derive(Deserialize, Default)]
struct PasswordReset {
    #[serde(default)]
    password: Option<String>,
}

/// `POST /users/{name}/password {password?}`: admin reset (generated when absent, returned
/// once); the user must change it at next login and is logged out everywhere.
async fn user_password_reset(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    b: Bytes,
) -> ApiResult {
    let admin = need(&st, &headers, Need::Admin).await?;
    let req: PasswordReset = if b.is_empty() {
        PasswordReset::default()
    } else {
        body(&b)?
    };
    let generated = actions::reset_password(st.store(), &name, req.password).await?;
    if name == auth::FIRST_ADMIN {
        // The first-start password in the file is no longer valid.
        auth::remove_admin_password_file(&st);
    }
    tracing::info!(user = %admin.name, target = %name, "api: password reset");
    ok(json!({"name": name, "password": generated}))
}

async fn user_token_revoke(
    State(st): State<WebState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    need(&st, &headers, Need::Admin).await?;
    actions::revoke_token(st.store(), &name).await?;
    done()
}

// ---- stats and sessions ----

async fn stats(
    State(st): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<DaysQuery>,
) -> ApiResult {
    need(&st, &headers, Need::Read).await?;
    let mut days = Vec::new();
    for day in actions::last_days(q.days.unwrap_or(7).clamp(1, 90), now()) {
        let stats = st.store().day_stats(day).await?;
        let total = actions::day_total(&stats);
        let mut sensors = 0u64;
        let mut types = Vec::new();
        for (k, c) in &stats.entries {
            match k {
                StatsKey::Sensor { .. } => sensors += 1,
                StatsKey::Type { d4_type } => {
                    types.push(json!({"type": d4_type, "frames": c.frames, "bytes": c.bytes}))
                }
                _ => {}
            }
        }
        days.push(
            json!({"day": day, "frames": total.frames, "bytes": total.bytes,
            "sensors": sensors, "types": types}),
        );
    }
    ok(json!({"days": days}))
}

async fn sessions(State(st): State<WebState>, headers: HeaderMap) -> ApiResult {
    need(&st, &headers, Need::Read).await?;
    let list = st.store().list_leases(now()).await?;
    let list: Vec<Value> = list
        .iter()
        .map(|s| {
            json!({"uuid": s.uuid.simple().to_string(), "type": s.d4_type, "ip": s.ip,
                "server_id": s.server_id, "started": s.started})
        })
        .collect();
    ok(json!({"sessions": list}))
}
