//! Analyzer queues: list, create, change, delete, empty, sample.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use d4_store::{Queue, QueueConfig, QueueKind, DEFAULT_QUEUE_MAX_SIZE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{body, done, ok, ApiResult};
use crate::actions;
use crate::extract::{Admin, Auth, KnownQueue, QueueId, Read};
use crate::failure::{Failure, Res};
use crate::WebState;

/// A queue's kind: a type number or an extended type name.
#[derive(Serialize)]
#[serde(untagged)]
enum KindView<'a> {
    Type(u8),
    Ext(&'a str),
}

/// A queue as the API shows it.
#[derive(Serialize)]
struct QueueView<'a> {
    created: u64,
    description: &'a str,
    /// Sensor groups feeding the queue (left out when none).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
    kind: KindView<'a>,
    last_updated: u64,
    len: u64,
    max_size: u64,
    sensors: Option<Vec<String>>,
    trimmed: u64,
    uuid: String,
}

impl<'a> From<&'a Queue> for QueueView<'a> {
    fn from(q: &'a Queue) -> QueueView<'a> {
        QueueView {
            created: q.created,
            description: &q.config.description,
            groups: &q.config.groups,
            kind: match &q.config.kind {
                QueueKind::Type(t) => KindView::Type(*t),
                QueueKind::Ext(e) => KindView::Ext(e),
            },
            last_updated: q.last_updated,
            len: q.len,
            max_size: q.config.max_size,
            sensors: q
                .config
                .sensors
                .as_ref()
                .map(|v| v.iter().map(|u| u.simple().to_string()).collect()),
            trimmed: q.trimmed,
            uuid: q.config.uuid.simple().to_string(),
        }
    }
}

pub(super) async fn queues(State(st): State<WebState>, _: Auth<Read>) -> ApiResult {
    let list = st.store().list_queues().await?;
    let queues: Vec<QueueView> = list.iter().map(QueueView::from).collect();
    ok(json!({ "queues": queues }))
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
    /// Sensor groups feeding the queue (names).
    #[serde(default)]
    groups: Vec<String>,
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
        groups: crate::labels::parse_group_names(&req.groups.join(" "))?,
    })
}

pub(super) async fn queue_create(
    State(st): State<WebState>,
    _: Auth<Admin>,
    b: Bytes,
) -> ApiResult {
    let req: QueueReq = body(&b)?;
    let uuid = match &req.uuid {
        Some(u) => actions::parse_uuid(u)?,
        None => Uuid::new_v4(),
    };
    let q = actions::create_queue(st.store(), queue_config(req, uuid)?).await?;
    Ok((StatusCode::CREATED, Json(QueueView::from(&q))).into_response())
}

pub(super) async fn queue_get(_: Auth<Read>, KnownQueue(q): KnownQueue) -> ApiResult {
    ok(QueueView::from(&q))
}

pub(super) async fn queue_put(
    State(st): State<WebState>,
    _: Auth<Admin>,
    QueueId(uuid): QueueId,
    b: Bytes,
) -> ApiResult {
    let req: QueueReq = body(&b)?;
    let q = actions::update_queue(st.store(), queue_config(req, uuid)?).await?;
    ok(QueueView::from(&q))
}

pub(super) async fn queue_delete(
    State(st): State<WebState>,
    _: Auth<Admin>,
    QueueId(uuid): QueueId,
) -> ApiResult {
    if !st.store().delete_queue(uuid).await? {
        return Err(Failure::not_found(format!(
            "unknown queue {}",
            uuid.simple()
        )));
    }
    done()
}

pub(super) async fn queue_empty(
    State(st): State<WebState>,
    _: Auth<Admin>,
    KnownQueue(q): KnownQueue,
) -> ApiResult {
    let n = st.store().empty_queue(q.config.uuid).await?;
    ok(json!({"status": "ok", "removed": n}))
}

#[derive(Deserialize)]
pub(super) struct SampleQuery {
    #[serde(default)]
    n: Option<usize>,
}

pub(super) async fn queue_sample(
    State(st): State<WebState>,
    Query(q): Query<SampleQuery>,
    _: Auth<Read>,
    KnownQueue(queue): KnownQueue,
) -> ApiResult {
    let entries = st
        .store()
        .queue_sample(queue.config.uuid, q.n.unwrap_or(20).clamp(1, 1000))
        .await?;
    ok(json!({ "entries": entries }))
}
