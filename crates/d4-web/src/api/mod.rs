//! The JSON REST API under `/api/v1`. Auth: `Authorization: <token>` or
//! `Authorization: Bearer <token>` (per-user tokens, see the account page), checked by the
//! [`crate::extract::Auth`] extractor. Errors are `{"status": "error", "reason": "..."}`
//! with a matching HTTP status. Token-authenticated requests need no CSRF token: browsers
//! never attach that header on their own.
//!
//! Response objects are `Serialize` structs whose fields are declared in alphabetical
//! order: the bytes are the ones `serde_json::json!` (a sorted map) produced before.

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::failure::{Failure, Res};
use crate::WebState;

mod account;
mod forward;
mod groups;
mod policy;
mod queues;
mod sensors;
mod stats;

pub(crate) type ApiResult = Result<Response, Failure>;

pub(crate) fn ok(v: impl Serialize) -> ApiResult {
    Ok(Json(v).into_response())
}

fn done() -> ApiResult {
    ok(json!({"status": "ok"}))
}

fn body<T: DeserializeOwned>(b: &Bytes) -> Res<T> {
    serde_json::from_slice(b).map_err(|e| Failure::bad(format!("invalid JSON body: {e}")))
}

/// An optional JSON body: empty means the type's default.
fn optional_body<T: DeserializeOwned + Default>(b: &Bytes) -> Res<T> {
    if b.is_empty() {
        Ok(T::default())
    } else {
        body(b)
    }
}

/// A field that may be `null`: absent = `None`, `null` = `Some(None)`.
fn some<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `?days=` of the stats endpoints.
#[derive(Deserialize)]
struct DaysQuery {
    #[serde(default)]
    days: Option<u64>,
}

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/add/sensor/register", post(sensors::register))
        .route("/sensors/monitoring/errors", get(stats::monitoring_errors))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/me", get(account::me))
        .route("/me/token", post(account::me_token))
        .route("/me/password", post(account::me_password))
        .route(
            "/sensors",
            get(sensors::sensors).post(sensors::sensor_create),
        )
        .route(
            "/sensors/{uuid}",
            get(sensors::sensor_get)
                .put(sensors::sensor_put)
                .delete(sensors::sensor_delete),
        )
        .route("/sensors/{uuid}/approve", post(sensors::sensor_approve))
        .route("/sensors/{uuid}/name", post(sensors::sensor_name))
        .route("/sensors/{uuid}/tags", post(sensors::sensor_tags))
        .route("/groups", get(groups::groups).post(groups::group_create))
        .route(
            "/groups/{name}",
            get(groups::group_get)
                .put(groups::group_put)
                .delete(groups::group_delete),
        )
        .route("/sensors/{uuid}/key", post(sensors::sensor_key))
        .route("/sensors/{uuid}/kick", post(sensors::sensor_kick))
        .route(
            "/sensors/{uuid}/monitoring",
            put(sensors::sensor_monitoring_put).delete(sensors::sensor_monitoring_delete),
        )
        .route("/sensors/{uuid}/block", post(sensors::sensor_block))
        .route("/sensors/{uuid}/stats", get(stats::sensor_stats))
        .route(
            "/blocklist",
            get(policy::blocks)
                .post(policy::block_add)
                .delete(policy::block_remove),
        )
        .route("/types", get(policy::types))
        .route("/types/ext/{name}", put(policy::type_ext_put))
        .route("/types/{t}", put(policy::type_put))
        .route("/queues", get(queues::queues).post(queues::queue_create))
        .route("/queues/alerts", get(crate::queue_alerts::api))
        .route(
            "/queues/{uuid}",
            get(queues::queue_get)
                .put(queues::queue_put)
                .delete(queues::queue_delete),
        )
        .route("/queues/{uuid}/empty", post(queues::queue_empty))
        .route("/queues/{uuid}/sample", get(queues::queue_sample))
        .route("/users", get(account::users).post(account::user_create))
        .route(
            "/users/{name}",
            put(account::user_put).delete(account::user_delete),
        )
        .route(
            "/users/{name}/token",
            post(account::user_token).delete(account::user_token_revoke),
        )
        .route("/users/{name}/password", post(account::user_password_reset))
        .route("/forward", get(forward::rules).post(forward::rule_create))
        .route(
            "/forward/{name}",
            get(forward::rule_get)
                .put(forward::rule_put)
                .delete(forward::rule_delete),
        )
        .route("/forward/{name}/enable", post(forward::rule_enable))
        .route("/forward/{name}/disable", post(forward::rule_disable))
        .route("/stats", get(stats::stats))
        .route("/sessions", get(stats::sessions))
        .fallback(|| async { Failure::not_found("no such API endpoint") })
}
