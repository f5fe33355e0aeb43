//! Server-rendered pages (no JavaScript needed). Every state change is a POST form carrying
//! the session's CSRF token; the extractors of [`crate::extract`] check the session, the
//! token and the role on the server side before any handler runs.

#![allow(clippy::result_large_err)] // handlers return a ready Response as their error

use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::auth::Viewer;
use crate::failure::Failure;
use crate::{view, WebState};

mod account;
mod dashboard;
mod groups;
mod login;
mod pibs;
mod pssl;
mod queues;
mod registration;
mod sensors;
mod server;
mod sharing;
mod users;

type PageResult = Result<Response, Response>;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/login", get(login::login_page).post(login::login_post))
        .route("/logout", post(login::logout))
        .route(
            "/password",
            get(login::password_page).post(login::password_post),
        )
        .route("/", get(dashboard::dashboard))
        .route("/sensors", get(sensors::sensors))
        .route("/sensors/{uuid}", get(sensors::sensor_page))
        .route("/sensors/{uuid}/{action}", post(sensors::sensor_post))
        .route("/groups", get(groups::groups).post(groups::group_create))
        .route("/groups/{name}", get(groups::group_page))
        .route("/groups/{name}/{action}", post(groups::group_post))
        .route(
            "/registration",
            get(registration::registration).post(registration::registration_post),
        )
        .route("/monitoring", get(dashboard::monitoring))
        .route("/server", get(server::server_page))
        .route("/server/{action}", post(server::server_post))
        .route("/queues", get(queues::queues).post(queues::queue_create))
        .route("/queues/{uuid}", get(queues::queue_page))
        .route("/queues/{uuid}/{action}", post(queues::queue_post))
        .route(
            "/sharing",
            get(sharing::sharing).post(sharing::sharing_create),
        )
        .route("/sharing/{name}", get(sharing::rule_page))
        .route("/sharing/{name}/{action}", post(sharing::rule_post))
        .route("/users", get(users::users).post(users::user_create))
        .route("/users/{name}/{action}", post(users::user_post))
        .route("/account", get(account::account))
        .route("/account/token", post(account::account_token))
        .route("/pssl", get(pssl::search))
        .route("/pssl/cert/{sha}", get(pssl::cert_page))
        .route("/pssl/key/{spki}", get(pssl::key_page))
        .route("/pssl/weak", get(pssl::weak_page))
        .route("/pibs", get(pibs::search))
        .route("/pibs/victim/{ip}", get(pibs::victim_page))
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// An error page for the logged-in viewer.
fn fail(v: &Viewer, f: impl Into<Failure>) -> Response {
    view::error_page(Some(v), &f.into())
}

/// `.or_page(&viewer)?`: an action's error as the viewer's error page.
trait OrPage<T> {
    fn or_page(self, v: &Viewer) -> Result<T, Response>;
}

impl<T, E: Into<Failure>> OrPage<T> for Result<T, E> {
    fn or_page(self, v: &Viewer) -> Result<T, Response> {
        self.map_err(|e| fail(v, e))
    }
}

#[derive(Deserialize, Default)]
struct MsgQuery {
    #[serde(default)]
    msg: Option<String>,
}

impl MsgQuery {
    /// The flash paragraph of `?msg=`.
    fn flash(&self) -> maud::Markup {
        view::flash(self.msg.as_deref().and_then(flash_text))
    }
}

/// The `?msg=` codes and their fixed texts: a link cannot make the real UI show an
/// attacker's words. Unknown codes show nothing.
fn flash_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "password-changed" => "Password changed. Your other sessions were logged out.",
        "sensor-deleted" => "Sensor record deleted.",
        "description-saved" => "Description saved.",
        "labels-saved" => "Name and tags saved.",
        "group-created" => "Group created.",
        "group-saved" => "Group saved.",
        "group-deleted" => "Group deleted.",
        "limit-saved" => "Stream limit saved.",
        "threshold-saved" => "Monitoring threshold saved.",
        "threshold-cleared" => "Monitoring threshold cleared: the global one applies.",
        "default-key" => "The sensor now uses the server default key.",
        "kicked" => "Kicked: its connections are closed and it may reconnect after 30 s.",
        "uuid-blocked" => "UUID blocked.",
        "ips-blocked" => "Its IPs are blocked.",
        "approved" => "Sensor approved.",
        "blocked" => "Block added.",
        "unblocked" => "Block removed.",
        "type-accepted" => "Type accepted.",
        "type-refused" => "Type refused.",
        "ext-accepted" => "Extended type accepted.",
        "ext-refused" => "Extended type refused.",
        "queue-created" => "Queue created: analyzers read it with its UUID (below).",
        "queue-emptied" => "Queue emptied.",
        "queue-deleted" => "Queue deleted.",
        "queue-saved" => "Queue saved.",
        "user-created" => "User created.",
        "role-set" => "Role changed.",
        "user-deleted" => "User deleted.",
        "rule-added" => "Forwarding rule added.",
        "rule-saved" => "Forwarding rule saved.",
        "rule-enabled" => "Forwarding rule enabled.",
        "rule-disabled" => "Forwarding rule disabled: it stops reading; its spool is kept.",
        "rule-removed" => "Forwarding rule removed.",
        _ => return None,
    })
}

/// Redirect to `to` with a flash message code (see [`flash_text`]).
fn back(to: &str, code: &'static str) -> Response {
    debug_assert!(flash_text(code).is_some(), "{code}");
    see_other(&format!("{to}?msg={code}"))
}

/// A form field holding a whole number, or nothing (empty: `None`, "the default").
fn optional_u64(field: &str, error: &str) -> Result<Option<u64>, Failure> {
    let field = field.trim();
    if field.is_empty() {
        return Ok(None);
    }
    field.parse().map(Some).map_err(|_| Failure::bad(error))
}
