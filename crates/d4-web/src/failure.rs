//! The one error type of every handler: a refused or failed action with its HTTP status
//! and a reason for the operator. The JSON API answers it as
//! `{"status": "error", "reason": ...}`; the pages render it as an error page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use d4_store::StoreError;

/// A refused or failed action: the status and a reason shown to the operator.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: StatusCode,
    pub reason: String,
}

impl Failure {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Failure {
        Failure {
            status,
            reason: reason.into(),
        }
    }
    pub fn bad(reason: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, reason)
    }
    pub fn not_found(reason: impl Into<String>) -> Failure {
        Failure::new(StatusCode::NOT_FOUND, reason)
    }
    pub fn forbidden(reason: impl Into<String>) -> Failure {
        Failure::new(StatusCode::FORBIDDEN, reason)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        match e {
            StoreError::NotFound(m) => Failure::not_found(format!("not found: {m}")),
            StoreError::AlreadyExists(m) => {
                Failure::new(StatusCode::CONFLICT, format!("already exists: {m}"))
            }
            StoreError::Invalid(m) => Failure::bad(m),
            other => {
                tracing::error!(error = %other, "web: store error");
                Failure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("store error: {other}"),
                )
            }
        }
    }
}

impl From<crate::WebError> for Failure {
    fn from(e: crate::WebError) -> Failure {
        tracing::error!(error = %e, "web: internal error");
        Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// The result of an action.
pub type Res<T> = Result<T, Failure>;

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({"status": "error", "reason": self.reason})),
        )
            .into_response()
    }
}
