//! The sensor list (filtered by tag or group), one sensor's page (details, name, tags,
//! groups, partner meta, history, settings) and its actions.

use std::collections::HashSet;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use d4_store::{now, Role, SensorStatus, SensorUpdate, StatsKey};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::{back, fail, optional_u64, MsgQuery, OrPage, PageResult};
use crate::actions;
use crate::extract::{Action, Admin, FormPost, KnownSensor, Login, Read, SensorId};
use crate::labels;
use crate::view::{
    bar_chart, button, csrf_field, fmt_time, hidden, human_bytes, month_day, opt_time, page,
    secret_page,
};
use crate::WebState;

/// A sensor's last error as `time: message`.
fn last_error(e: &Option<d4_store::SensorError>) -> String {
    e.as_ref()
        .map(|e| format!("{}: {}", fmt_time(e.time), e.message))
        .unwrap_or_default()
}

/// `?msg=`, `?tag=` and `?group=` of the sensor list.
#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(flatten)]
    msg: MsgQuery,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    group: String,
}

pub(super) async fn sensors(
    State(st): State<WebState>,
    Query(q): Query<ListQuery>,
    Login { viewer: v, .. }: Login<Read>,
) -> PageResult {
    let store = st.store();
    let t = now();
    let all = store.list_sensors().await.or_page(&v)?;
    let mut all_tags: Vec<String> = all.iter().flat_map(|s| s.tags.clone()).collect();
    d4_store::normalize_tags(&mut all_tags);
    let groups = store.list_groups().await.or_page(&v)?;
    let list = labels::filter_sensors(store, all, &q.tag, &q.group)
        .await
        .or_page(&v)?;
    let filtered = !q.tag.trim().is_empty() || !q.group.trim().is_empty();
    let q_msg = &q.msg;
    let connected: HashSet<Uuid> = store
        .list_leases(t)
        .await
        .or_page(&v)?
        .iter()
        .map(|s| s.uuid)
        .collect();
    let today = store.day_stats(d4_store::day_of(t)).await.or_page(&v)?;
    let body = html! {
        (q_msg.flash())
        form method="get" action="/sensors" {
            label { "Tag "
                select name="tag" {
                    option value="" { "any" }
                    @for tg in &all_tags {
                        option value=(tg) selected[*tg == q.tag] { (tg) }
                    }
                }
            }
            " "
            label { "Group "
                select name="group" {
                    option value="" { "any" }
                    @for g in &groups {
                        option value=(g.name) selected[g.name == q.group] { (g.name) }
                    }
                }
            }
            " " button type="submit" { "Filter" }
            @if filtered { " " a href="/sensors" { "show all" } }
            " — " a href="/groups" { "sensor groups" }
        }
        table {
            tr {
                th { "Sensor" } th { "Name" } th { "Tags" } th { "Status" } th { "Connected" }
                th { "Today" } th { "First seen" } th { "Last seen" } th { "Types" }
                th { "Description" } th { "Last error" }
            }
            @for s in &list {
                @let c = today.get(&StatsKey::Sensor { uuid: s.uuid });
                @let types: Vec<String> = s.types.iter().map(|t| match &t.ext {
                    Some(e) => format!("{}:{}", t.d4_type, e),
                    None => t.d4_type.to_string(),
                }).collect();
                tr {
                    td { a href={ "/sensors/" (s.uuid.simple()) } { code { (s.uuid.simple()) } } }
                    td { (s.name) }
                    td {
                        @for tg in &s.tags {
                            a href={ "/sensors?tag=" (tg) } { (tg) } " "
                        }
                    }
                    td { (s.status.as_str()) }
                    td { @if connected.contains(&s.uuid) { "connected" } @else { "—" } }
                    td { (c.frames) " frames, " (human_bytes(c.bytes)) }
                    td { (opt_time(s.first_seen)) }
                    td { (opt_time(s.last_seen)) }
                    td { (types.join(", ")) }
                    td { (s.description) }
                    td { (last_error(&s.last_error)) }
                }
            }
        }
    };
    Ok(page("Sensors", Some(&v), body).into_response())
}

pub(super) async fn sensor_page(
    State(st): State<WebState>,
    Query(q): Query<MsgQuery>,
    Login { viewer: v, .. }: Login<Read>,
    KnownSensor(s): KnownSensor,
) -> PageResult {
    let uuid = s.uuid;
    let store = st.store();
    let t = now();
    let sessions: Vec<_> = store
        .list_leases(t)
        .await
        .or_page(&v)?
        .into_iter()
        .filter(|x| x.uuid == uuid)
        .collect();
    let idh = uuid.simple().to_string();
    let base = format!("/sensors/{idh}");
    let global = st.config().monitoring_threshold_secs;
    // History.
    let mut bars = Vec::new();
    let mut history = Vec::new();
    for day in actions::last_days(7, t) {
        let stats = store.day_stats(day).await.or_page(&v)?;
        let c = stats.get(&StatsKey::Sensor { uuid });
        bars.push((month_day(day), c.bytes));
        let types: Vec<String> = stats
            .entries
            .iter()
            .filter_map(|(k, c)| match k {
                StatsKey::SensorType { uuid: u, d4_type } if *u == uuid => Some(format!(
                    "type {d4_type}: {} frames, {}",
                    c.frames,
                    human_bytes(c.bytes)
                )),
                _ => None,
            })
            .collect();
        history.push((day, c, types.join("; ")));
    }
    let admin = v.user.role == Role::Admin;
    let groups = store.groups_of(uuid).await.or_page(&v)?;
    let connected = if sessions.is_empty() {
        "no".to_string()
    } else {
        sessions
            .iter()
            .map(|x| format!("type {} from {}", x.d4_type, x.ip))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let body = html! {
        (q.flash())
        table {
            tr { th { "UUID" } td { code { (idh) } } }
            tr { th { "Name" } td { (s.name) } }
            tr { th { "Tags" } td {
                @for tg in &s.tags { a href={ "/sensors?tag=" (tg) } { (tg) } " " }
            } }
            tr { th { "Groups" } td {
                @for g in &groups { a href={ "/groups/" (g) } { (g) } " " }
            } }
            tr { th { "Status" } td { (s.status.as_str()) } }
            tr { th { "Third party" } td { @if s.third_party { "yes (a partner's stream)" } @else { "no" } } }
            @if let Some(p) = &s.partner {
                tr { th { "Partner organisation" } td { (p.org.as_deref().unwrap_or("")) } }
                tr { th { "Partner tags" } td { (p.tags.join(", ")) } }
                tr { th { "Partner extended type" } td { (p.ext_type.as_deref().unwrap_or("")) } }
                tr { th { "Partner meta received" } td {
                    (fmt_time(p.time))
                    @if let Some(ip) = p.ip { " from " (ip) }
                } }
            }
            tr { th { "Connected" } td { (connected) } }
            tr { th { "HMAC key" } td {
                @if s.hmac_key.is_some() { "sensor-specific key (never shown again)" }
                @else { "server default key" }
            } }
            tr { th { "Registered" } td { (opt_time(s.registered_at)) } }
            tr { th { "First seen" } td { (opt_time(s.first_seen)) } }
            tr { th { "Last seen" } td { (opt_time(s.last_seen)) } }
            tr { th { "Mail" } td { (s.mail.as_deref().unwrap_or("")) } }
            tr { th { "Stream limit" } td {
                @match s.stream_limit { Some(l) => { (l) } None => { "default" } }
            } }
            tr { th { "Monitoring threshold" } td {
                @match s.monitoring_threshold {
                    Some(m) => { (m) " s" }
                    None => { (global) " s (global)" }
                }
            } }
            tr { th { "Last error" } td { (last_error(&s.last_error)) } }
        }
        (bar_chart("Bytes per day (last 7 days)", &bars, human_bytes))
        h2 { "History" }
        table {
            tr { th { "Day" } th { "Frames" } th { "Bytes" } th { "Types" } }
            @for (day, c, types) in &history {
                tr {
                    td { (format!("{:04}-{:02}-{:02}", day / 10000, day / 100 % 100, day % 100)) }
                    td { (c.frames) }
                    td { (human_bytes(c.bytes)) }
                    td { (types) }
                }
            }
        }
        h2 { "Types" }
        table {
            tr { th { "Type" } th { "First seen" } th { "Last seen" } }
            @for ty in &s.types {
                tr {
                    td { (ty.d4_type) @if let Some(e) = &ty.ext { " (" (e) ")" } }
                    td { (fmt_time(ty.first_seen)) }
                    td { (fmt_time(ty.last_seen)) }
                }
            }
        }
        h2 { "Last IPs" }
        table {
            tr { th { "IP" } th { "Last seen" } th {} }
            @for ip in &s.last_ips {
                tr {
                    td { (ip.ip) }
                    td { (fmt_time(ip.time)) }
                    td {
                        @if admin {
                            (button(&v, "/server/block", "Block this IP", html! {
                                (hidden("kind", "ip"))
                                (hidden("value", &ip.ip.to_string()))
                                (hidden("reason", &format!("sensor {idh}")))
                            }))
                        }
                    }
                }
            }
        }
        h2 { "Description" }
        p {
            @if s.description.is_empty() { span.muted { "none" } }
            @else { (s.description) }
        }
        @if admin { (settings(&v, &s, &base, global)) }
    };
    let title = if s.name.is_empty() {
        format!("Sensor {idh}")
    } else {
        format!("Sensor {} ({idh})", s.name)
    };
    Ok(page(&title, Some(&v), body).into_response())
}

/// The admin's part of a sensor page: settings forms and action buttons.
fn settings(v: &crate::auth::Viewer, s: &d4_store::Sensor, base: &str, global: u64) -> Markup {
    let none = html! {};
    html! {
        h2 { "Settings" }
        form method="post" action={ (base) "/labels" } {
            (csrf_field(&v.csrf))
            label { "Name " input name="name" size="30" maxlength="64" value=(s.name); }
            " "
            label { "Tags (separated by spaces) " input name="tags" size="40" value=(s.tags.join(" ")); }
            " " button type="submit" { "Save" }
        }
        form method="post" action={ (base) "/describe" } {
            (csrf_field(&v.csrf))
            label { "Description " input name="description" size="60" value=(s.description); }
            " " button type="submit" { "Save" }
        }
        form method="post" action={ (base) "/limit" } {
            (csrf_field(&v.csrf))
            label { "Stream limit (empty = default) "
                input name="limit" value=(s.stream_limit.map(|l| l.to_string()).unwrap_or_default()); }
            " " button type="submit" { "Save" }
        }
        form method="post" action={ (base) "/monitoring" } {
            (csrf_field(&v.csrf))
            label { "Monitoring threshold in seconds (empty = global, " (global) " s) "
                input name="threshold" value=(s.monitoring_threshold.map(|l| l.to_string()).unwrap_or_default()); }
            " " button type="submit" { "Save" }
        }
        form method="post" action={ (base) "/key" } {
            (csrf_field(&v.csrf))
            label { "New HMAC key (empty = generate) " input name="key" autocomplete="off"; }
            " " button type="submit" { "Set key" }
        }
        h2 { "Actions" }
        p {
            (button(v, &format!("{base}/kick"), "Kick (close connections)", none.clone())) " "
            (button(v, &format!("{base}/block"), "Block UUID", none.clone())) " "
            (button(v, &format!("{base}/block-ips"), "Block its IPs", none.clone())) " "
            @if s.status != SensorStatus::Approved {
                (button(v, &format!("{base}/approve"), "Approve", none.clone()))
            }
            " "
            @if s.hmac_key.is_some() {
                (button(v, &format!("{base}/default-key"), "Use the server default key", none.clone()))
            }
            " "
            (button(v, &format!("{base}/delete"), "Delete record", none))
        }
    }
}

/// The actions of `POST /sensors/{uuid}/{action}`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum SensorAction {
    Labels,
    Describe,
    Limit,
    Monitoring,
    Key,
    DefaultKey,
    Kick,
    Block,
    BlockIps,
    Approve,
    Delete,
    Reject,
}

pub(super) async fn sensor_post(
    State(st): State<WebState>,
    FormPost {
        viewer: v,
        fields: f,
        path: (SensorId(uuid), Action(action)),
        ..
    }: FormPost<Admin, (SensorId, Action<SensorAction>)>,
) -> PageResult {
    let store = st.store();
    let base = format!("/sensors/{}", uuid.simple());
    let vr = &v;
    let update = |u: SensorUpdate| async move {
        actions::update_sensor(store, uuid, u)
            .await
            .map(|_| ())
            .map_err(|e| fail(vr, e))
    };
    let r = |x: Result<(), crate::failure::Failure>| x.or_page(&v);
    let msg = match action {
        SensorAction::Labels => {
            let tags = labels::parse_tags(f.get("tags")).or_page(&v)?;
            labels::set_labels(
                store,
                uuid,
                Some(f.get("name").trim().to_string()),
                Some(tags),
            )
            .await
            .or_page(&v)?;
            "labels-saved"
        }
        SensorAction::Describe => {
            update(SensorUpdate {
                description: Some(f.get("description").to_string()),
                ..Default::default()
            })
            .await?;
            "description-saved"
        }
        SensorAction::Limit => {
            let limit =
                optional_u64(f.get("limit"), "the stream limit must be a number").or_page(&v)?;
            update(SensorUpdate {
                stream_limit: Some(limit),
                ..Default::default()
            })
            .await?;
            "limit-saved"
        }
        SensorAction::Monitoring => {
            let threshold = optional_u64(
                f.get("threshold"),
                "the monitoring threshold must be a number of seconds",
            )
            .or_page(&v)?;
            update(SensorUpdate {
                monitoring_threshold: Some(threshold),
                ..Default::default()
            })
            .await?;
            if threshold.is_some() {
                "threshold-saved"
            } else {
                "threshold-cleared"
            }
        }
        SensorAction::Key => {
            let key = actions::rotate_key(store, uuid, Some(f.get("key").to_string()))
                .await
                .or_page(&v)?;
            tracing::info!(user = %v.user.name, sensor = %uuid.simple(), "web: sensor key set");
            return Ok(secret_page(
                &v,
                "New HMAC key",
                &format!("The new HMAC key of sensor {}:", uuid.simple()),
                &key,
                &base,
            ));
        }
        SensorAction::DefaultKey => {
            update(SensorUpdate {
                hmac_key: Some(None),
                ..Default::default()
            })
            .await?;
            "default-key"
        }
        SensorAction::Kick => {
            r(actions::kick(store, uuid).await)?;
            "kicked"
        }
        SensorAction::Block => {
            r(actions::block_uuid(store, uuid, &format!("blocked by {}", v.user.name)).await)?;
            "uuid-blocked"
        }
        SensorAction::BlockIps => {
            r(
                actions::block_ips_of(store, uuid, &format!("blocked by {}", v.user.name))
                    .await
                    .map(|_| ()),
            )?;
            "ips-blocked"
        }
        SensorAction::Approve => {
            r(actions::approve(store, uuid).await.map(|_| ()))?;
            "approved"
        }
        SensorAction::Delete | SensorAction::Reject => {
            r(actions::delete_sensor(store, uuid).await)?;
            return Ok(back("/registration", "sensor-deleted"));
        }
    };
    tracing::info!(user = %v.user.name, sensor = %uuid.simple(), ?action, "web: sensor action");
    if f.get("back") == "registration" {
        return Ok(back("/registration", msg));
    }
    Ok(back(&base, msg))
}
