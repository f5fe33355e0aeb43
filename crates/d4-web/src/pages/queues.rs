//! Analyzer queues: the list, creating one, one queue's page (latest entries) and its
//! actions (edit, empty, delete).

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use d4_store::{QueueConfig, Role, DEFAULT_QUEUE_MAX_SIZE};
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use super::{back, MsgQuery, OrPage, PageResult};
use crate::actions;
use crate::extract::{Action, Admin, FormPost, KnownQueue, Login, Read};
use crate::failure::Failure;
use crate::view::{button, csrf_field, fmt_time, page};
use crate::{Fields, WebState};

fn group_text(g: &Option<Vec<Uuid>>) -> String {
    match g {
        None => String::new(),
        Some(v) => v
            .iter()
            .map(|u| u.simple().to_string())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The sensors feeding a queue as shown in tables: its sensor list and its groups.
fn group_label(c: &QueueConfig) -> String {
    if c.is_global() {
        return "every sensor".into();
    }
    let mut parts = Vec::new();
    if c.sensors.is_some() {
        parts.push(group_text(&c.sensors));
    }
    if !c.groups.is_empty() {
        parts.push(format!("groups: {}", c.groups.join(" ")));
    }
    parts.join("; ")
}

pub(super) async fn queues(
    State(st): State<WebState>,
    Query(q): Query<MsgQuery>,
    Login { viewer: v, .. }: Login<Read>,
) -> PageResult {
    let list = st.store().list_queues().await.or_page(&v)?;
    let admin = v.user.role == Role::Admin;
    let body = html! {
        (q.flash())
        table {
            tr {
                th { "Queue" } th { "Kind" } th { "Description" } th { "Sensor group" }
                th { "Length / max" } th { "Trimmed" } th { "Last updated" } th {}
            }
            @for qu in &list {
                @let id = qu.config.uuid.simple().to_string();
                tr {
                    td { a href={ "/queues/" (id) } { code { (id) } } }
                    td { (qu.config.kind.to_string()) }
                    td { (qu.config.description) }
                    td { (group_label(&qu.config)) }
                    td { (qu.len) " / " (qu.config.max_size) }
                    td { (qu.trimmed) }
                    td { (fmt_time(qu.last_updated)) }
                    td {
                        @if admin {
                            (button(&v, &format!("/queues/{id}/empty"), "Empty", html! {}))
                            (button(&v, &format!("/queues/{id}/delete"), "Delete", html! {}))
                        }
                    }
                }
            }
        }
        @if admin {
            h2 { "Create a queue" }
            form method="post" action="/queues" {
                (csrf_field(&v.csrf))
                p { label { "Type or extended type " input name="kind" placeholder="8 or ja3-jl" required; } }
                p { label { "Description " input name="description" size="60"; } }
                p { label { "Max size " input name="max_size" value=(DEFAULT_QUEUE_MAX_SIZE); } }
                p { label { "Sensor group (UUIDs separated by spaces; empty = every sensor) "
                    textarea name="sensors" rows="2" cols="70" {} } }
                p { label { "Sensor groups (names separated by spaces; their members feed the queue) "
                    input name="groups" size="50"; } }
                p { button type="submit" { "Create" } }
            }
        }
    };
    Ok(page("Analyzer queues", Some(&v), body).into_response())
}

fn form_queue(
    f: &Fields,
    uuid: Uuid,
    kind: Option<d4_store::QueueKind>,
) -> Result<QueueConfig, Failure> {
    let kind = match kind {
        Some(k) => k,
        None => actions::parse_kind(f.get("kind"))?,
    };
    let ms = f.get("max_size").trim();
    let max_size = if ms.is_empty() {
        DEFAULT_QUEUE_MAX_SIZE
    } else {
        ms.parse()
            .map_err(|_| Failure::bad("the max size must be a number"))?
    };
    Ok(QueueConfig {
        uuid,
        kind,
        description: f.get("description").to_string(),
        max_size,
        sensors: actions::parse_group(f.get("sensors"))?,
        groups: crate::labels::parse_group_names(f.get("groups"))?,
    })
}

pub(super) async fn queue_create(
    State(st): State<WebState>,
    FormPost {
        viewer: v,
        fields: f,
        ..
    }: FormPost<Admin>,
) -> PageResult {
    let config = form_queue(&f, Uuid::new_v4(), None).or_page(&v)?;
    let q = actions::create_queue(st.store(), config)
        .await
        .or_page(&v)?;
    let id = q.config.uuid.simple().to_string();
    tracing::info!(user = %v.user.name, queue = %id, "web: queue created");
    Ok(back(&format!("/queues/{id}"), "queue-created"))
}

pub(super) async fn queue_page(
    State(st): State<WebState>,
    Query(q): Query<MsgQuery>,
    Login { viewer: v, .. }: Login<Read>,
    KnownQueue(qu): KnownQueue,
) -> PageResult {
    let uuid = qu.config.uuid;
    let sample = st.store().queue_sample(uuid, 20).await.or_page(&v)?;
    let names = crate::labels::sensor_names(st.store()).await.or_page(&v)?;
    let id = uuid.simple().to_string();
    let body = html! {
        (q.flash())
        table {
            tr { th { "UUID" } td { code { (id) } } }
            tr { th { "Kind" } td { (qu.config.kind.to_string()) } }
            tr { th { "Length / max" } td { (qu.len) " / " (qu.config.max_size) } }
            tr { th { "Trimmed" } td { (qu.trimmed) } }
            tr { th { "Sensor group" } td { (group_label(&qu.config)) } }
            tr { th { "Created" } td { (fmt_time(qu.created)) } }
        }
        h2 { "Latest entries" }
        table {
            tr { th { "Sensor" } th { "Entry" } }
            @for e in &sample {
                @let text: String = e.text().chars().take(500).collect();
                tr {
                    td {
                        (e.sensor.map(|s| s.simple().to_string()).unwrap_or_default())
                        @if let Some(n) = e.sensor.and_then(|s| names.get(&s)) { " (" (n) ")" }
                    }
                    td { code { (text) } }
                }
            }
        }
        @if v.user.role == Role::Admin {
            h2 { "Edit" }
            form method="post" action={ "/queues/" (id) "/edit" } {
                (csrf_field(&v.csrf))
                p { label { "Description " input name="description" size="60" value=(qu.config.description); } }
                p { label { "Max size " input name="max_size" value=(qu.config.max_size); } }
                p { label { "Sensor group "
                    textarea name="sensors" rows="2" cols="70" { (group_text(&qu.config.sensors)) } } }
                p { label { "Sensor groups (names) "
                    input name="groups" size="50" value=(qu.config.groups.join(" ")); } }
                p { button type="submit" { "Save" } }
            }
            p {
                (button(&v, &format!("/queues/{id}/empty"), "Empty", html! {}))
                " "
                (button(&v, &format!("/queues/{id}/delete"), "Delete", html! {}))
            }
        }
    };
    Ok(page(&format!("Queue {id}"), Some(&v), body).into_response())
}

/// The actions of `POST /queues/{uuid}/{action}`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum QueueAction {
    Empty,
    Delete,
    Edit,
}

pub(super) async fn queue_post(
    State(st): State<WebState>,
    FormPost {
        viewer: v,
        fields: f,
        path: (KnownQueue(qu), Action(action)),
        ..
    }: FormPost<Admin, (KnownQueue, Action<QueueAction>)>,
) -> PageResult {
    let store = st.store();
    let uuid = qu.config.uuid;
    let id = uuid.simple().to_string();
    match action {
        QueueAction::Empty => {
            let n = store.empty_queue(uuid).await.or_page(&v)?;
            tracing::info!(user = %v.user.name, queue = %id, removed = n, "web: queue emptied");
            Ok(back("/queues", "queue-emptied"))
        }
        QueueAction::Delete => {
            store.delete_queue(uuid).await.or_page(&v)?;
            Ok(back("/queues", "queue-deleted"))
        }
        QueueAction::Edit => {
            let config = form_queue(&f, uuid, Some(qu.config.kind.clone())).or_page(&v)?;
            actions::update_queue(store, config).await.or_page(&v)?;
            Ok(back(&format!("/queues/{id}"), "queue-saved"))
        }
    }
}
