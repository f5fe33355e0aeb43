//! Sensor registrations: pending and registered sensors, and registering one by hand.

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use d4_store::{Role, SensorStatus};
use maud::html;

use super::{MsgQuery, OrPage, PageResult};
use crate::actions;
use crate::auth;
use crate::extract::{Admin, FormPost, Login, Read};
use crate::view::{button, csrf_field, hidden, opt_time, page, secret_page};
use crate::WebState;

pub(super) async fn registration(
    State(st): State<WebState>,
    Query(q): Query<MsgQuery>,
    Login { viewer: v, .. }: Login<Read>,
) -> PageResult {
    let list = st.store().list_sensors().await.or_page(&v)?;
    let admin = v.user.role == Role::Admin;
    let body = html! {
        (q.flash())
        @for (title, status) in [("Pending", SensorStatus::Pending), ("Registered", SensorStatus::Approved)] {
            h2 { (title) }
            table {
                tr { th { "Sensor" } th { "Registered" } th { "Mail" } th { "Third party" } th {} }
                @for s in list.iter().filter(|s| s.status == status) {
                    @let id = s.uuid.simple().to_string();
                    tr {
                        td { a href={ "/sensors/" (id) } { code { (id) } } }
                        td { (opt_time(s.registered_at)) }
                        td { (s.mail.as_deref().unwrap_or("")) }
                        td { @if s.third_party { "yes" } @else { "no" } }
                        td {
                            @if admin {
                                @if status == SensorStatus::Pending {
                                    (button(&v, &format!("/sensors/{id}/approve"), "Approve", hidden("back", "registration")))
                                    (button(&v, &format!("/sensors/{id}/reject"), "Reject", hidden("back", "registration")))
                                } @else {
                                    (button(&v, &format!("/sensors/{id}/delete"), "Delete", hidden("back", "registration")))
                                }
                            }
                        }
                    }
                }
            }
        }
        @if admin {
            h2 { "Register a sensor" }
            form method="post" action="/registration" {
                (csrf_field(&v.csrf))
                p { label { "UUID " input name="uuid" size="36" required; } }
                p { label { "HMAC key (empty = generate one, shown once) " input name="key" autocomplete="off"; } }
                p { label { "Description " input name="description" size="60"; } }
                p { label { input type="checkbox" name="approve" value="1" checked; " approve at once" } }
                p { button type="submit" { "Register" } }
            }
        }
    };
    Ok(page("Registration", Some(&v), body).into_response())
}

pub(super) async fn registration_post(
    State(st): State<WebState>,
    FormPost {
        viewer: v,
        fields: f,
        ..
    }: FormPost<Admin>,
) -> PageResult {
    let uuid = actions::parse_uuid(f.get("uuid")).or_page(&v)?;
    let key = if f.get("key").is_empty() {
        auth::random_token()
    } else {
        f.get("key").to_string()
    };
    let desc = Some(f.get("description").to_string()).filter(|d| !d.is_empty());
    actions::register(
        st.store(),
        uuid,
        Some(key.clone()),
        None,
        false,
        desc,
        f.has("approve"),
    )
    .await
    .or_page(&v)?;
    tracing::info!(user = %v.user.name, sensor = %uuid.simple(), "web: sensor registered");
    Ok(secret_page(
        &v,
        "Sensor registered",
        &format!(
            "Sensor {} is registered. Its HMAC key (put it in the sensor's `key` file):",
            uuid.simple()
        ),
        &key,
        "/registration",
    ))
}
