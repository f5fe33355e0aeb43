//! Sensor groups: the list, creating one, one group's page (members with their names) and
//! its actions (edit, remove a member, delete). Groups feed queues and forwarding rules.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use d4_store::{Role, SensorGroup};
use maud::html;
use serde::Deserialize;

use super::{back, MsgQuery, OrPage, PageResult};
use crate::extract::{Action, Admin, FormPost, Login, Read};
use crate::labels;
use crate::view::{button, csrf_field, hidden, page};
use crate::WebState;

pub(super) async fn groups(
    State(st): State<WebState>,
    Query(q): Query<MsgQuery>,
    Login { viewer: v, .. }: Login<Read>,
) -> PageResult {
    let list = st.store().list_groups().await.or_page(&v)?;
    let admin = v.user.role == Role::Admin;
    let body = html! {
        (q.flash())
        p.muted { "A group is a named set of sensors: analyzer queues and forwarding rules \
                   can take the data of a group's members." }
        table {
            tr { th { "Group" } th { "Sensors" } th { "Description" } }
            @for g in &list {
                tr {
                    td { a href={ "/groups/" (g.name) } { (g.name) } }
                    td { a href={ "/sensors?group=" (g.name) } { (g.sensors.len()) } }
                    td { (g.description) }
                }
            }
        }
        @if admin {
            h2 { "Create a group" }
            form method="post" action="/groups" {
                (csrf_field(&v.csrf))
                p { label { "Name (A-Z a-z 0-9 . _ -) " input name="name" required maxlength="64"; } }
                p { label { "Description " input name="description" size="60"; } }
                p { label { "Sensors (UUIDs separated by spaces) "
                    textarea name="sensors" rows="2" cols="70" {} } }
                p { button type="submit" { "Create" } }
            }
        }
    };
    Ok(page("Sensor groups", Some(&v), body).into_response())
}

pub(super) async fn group_create(
    State(st): State<WebState>,
    FormPost {
        viewer: v,
        fields: f,
        ..
    }: FormPost<Admin>,
) -> PageResult {
    let g = SensorGroup {
        name: f.get("name").trim().to_string(),
        description: f.get("description").to_string(),
        sensors: labels::parse_members(f.get("sensors")).or_page(&v)?,
    };
    let g = labels::create_group(st.store(), g).await.or_page(&v)?;
    tracing::info!(user = %v.user.name, group = %g.name, "web: group created");
    Ok(back(&format!("/groups/{}", g.name), "group-created"))
}

pub(super) async fn group_page(
    State(st): State<WebState>,
    Query(q): Query<MsgQuery>,
    Login { viewer: v, .. }: Login<Read>,
    Path(name): Path<String>,
) -> PageResult {
    let store = st.store();
    let g = labels::group(store, &name).await.or_page(&v)?;
    let names = labels::sensor_names(store).await.or_page(&v)?;
    let known: std::collections::HashSet<uuid::Uuid> = store
        .list_sensors()
        .await
        .or_page(&v)?
        .iter()
        .map(|s| s.uuid)
        .collect();
    let admin = v.user.role == Role::Admin;
    let base = format!("/groups/{}", g.name);
    let members_text = g
        .sensors
        .iter()
        .map(|u| u.simple().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let body = html! {
        (q.flash())
        table {
            tr { th { "Name" } td { (g.name) } }
            tr { th { "Description" } td { (g.description) } }
            tr { th { "Sensors" } td { (g.sensors.len()) } }
        }
        h2 { "Members" }
        table {
            tr { th { "Sensor" } th { "Name" } th {} }
            @for u in &g.sensors {
                @let id = u.simple().to_string();
                tr {
                    td {
                        @if known.contains(u) { a href={ "/sensors/" (id) } { code { (id) } } }
                        @else { code { (id) } " " span.muted { "(not seen yet)" } }
                    }
                    td { (names.get(u).map(String::as_str).unwrap_or("")) }
                    td {
                        @if admin {
                            (button(&v, &format!("{base}/remove-sensor"), "Remove", html! {
                                (hidden("sensor", &id))
                            }))
                        }
                    }
                }
            }
        }
        @if admin {
            h2 { "Edit" }
            form method="post" action={ (base) "/edit" } {
                (csrf_field(&v.csrf))
                p { label { "Description " input name="description" size="60" value=(g.description); } }
                p { label { "Sensors (UUIDs separated by spaces) "
                    textarea name="sensors" rows="3" cols="70" { (members_text) } } }
                p { button type="submit" { "Save" } }
            }
            p { (button(&v, &format!("{base}/delete"), "Delete group", html! {})) }
        }
    };
    Ok(page(&format!("Group {}", g.name), Some(&v), body).into_response())
}

/// The actions of `POST /groups/{name}/{action}`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum GroupAction {
    Edit,
    RemoveSensor,
    Delete,
}

/// The `{name}` of a group route.
#[derive(Deserialize)]
pub(super) struct GroupPath {
    name: String,
}

pub(super) async fn group_post(
    State(st): State<WebState>,
    FormPost {
        viewer: v,
        fields: f,
        path: (Path(GroupPath { name }), Action(action)),
        ..
    }: FormPost<Admin, (Path<GroupPath>, Action<GroupAction>)>,
) -> PageResult {
    let store = st.store();
    let mut g = labels::group(store, &name).await.or_page(&v)?;
    let msg = match action {
        GroupAction::Edit => {
            g.description = f.get("description").to_string();
            g.sensors = labels::parse_members(f.get("sensors")).or_page(&v)?;
            labels::update_group(store, g).await.or_page(&v)?;
            "group-saved"
        }
        GroupAction::RemoveSensor => {
            let u = crate::actions::parse_uuid(f.get("sensor")).or_page(&v)?;
            g.sensors.retain(|x| *x != u);
            labels::update_group(store, g).await.or_page(&v)?;
            "group-saved"
        }
        GroupAction::Delete => {
            labels::delete_group(store, &name).await.or_page(&v)?;
            tracing::info!(user = %v.user.name, group = %name, "web: group deleted");
            return Ok(back("/groups", "group-deleted"));
        }
    };
    tracing::info!(user = %v.user.name, group = %name, ?action, "web: group action");
    Ok(back(&format!("/groups/{name}"), msg))
}
