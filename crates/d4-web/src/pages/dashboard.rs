//! The dashboard (today's traffic, the last 7 days) and the monitoring page (queue alerts,
//! silent sensors).

use std::collections::HashSet;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use d4_store::{now, Role, SensorStatus, StatsKey};
use maud::html;
use uuid::Uuid;

use super::{see_other, MsgQuery, OrPage, PageResult};
use crate::actions;
use crate::extract::{AnyRole, Login, Read};
use crate::view::{bar_chart, fmt_time, human_bytes, month_day, page, plural};
use crate::WebState;

pub(super) async fn dashboard(
    State(st): State<WebState>,
    Query(q): Query<MsgQuery>,
    Login { viewer: v, .. }: Login<AnyRole>,
) -> PageResult {
    if v.user.role == Role::SensorRegister {
        return Err(see_other("/account"));
    }
    let store = st.store();
    let t = now();
    let today = store.day_stats(d4_store::day_of(t)).await.or_page(&v)?;
    let total = actions::day_total(&today);
    let mut sensors: Vec<(Uuid, d4_store::Counter)> = Vec::new();
    let mut types: Vec<(u8, d4_store::Counter)> = Vec::new();
    for (k, c) in &today.entries {
        match k {
            StatsKey::Sensor { uuid } => sensors.push((*uuid, *c)),
            StatsKey::Type { d4_type } => types.push((*d4_type, *c)),
            _ => {}
        }
    }
    sensors.sort_by_key(|s| std::cmp::Reverse(s.1.bytes));
    types.sort_by_key(|s| std::cmp::Reverse(s.1.bytes));
    let sessions = store.list_leases(t).await.or_page(&v)?;
    let connected: HashSet<Uuid> = sessions.iter().map(|s| s.uuid).collect();
    let all = store.list_sensors().await.or_page(&v)?;
    let pending = all
        .iter()
        .filter(|s| s.status == SensorStatus::Pending)
        .count();
    let names: std::collections::HashMap<Uuid, &str> = all
        .iter()
        .filter(|s| !s.name.is_empty())
        .map(|s| (s.uuid, s.name.as_str()))
        .collect();
    let mut frames_bars = Vec::new();
    let mut bytes_bars = Vec::new();
    for day in actions::last_days(7, t) {
        let c = actions::day_total(&store.day_stats(day).await.or_page(&v)?);
        let lbl = month_day(day);
        frames_bars.push((lbl.clone(), c.frames));
        bytes_bars.push((lbl, c.bytes));
    }
    let body = html! {
        (q.flash())
        p {
            "Today (UTC): " strong { (sensors.len()) } " "
            (plural(sensors.len() as u64, "sensor", "sensors")) " sent data, "
            strong { (connected.len()) } " connected now, "
            strong { (total.frames) } " " (plural(total.frames, "frame", "frames")) ", "
            strong { (human_bytes(total.bytes)) } ". "
            a href="/registration" {
                (pending) " pending " (plural(pending as u64, "registration", "registrations"))
            }
            "."
        }
        (bar_chart("Bytes per day (last 7 days)", &bytes_bars, human_bytes))
        (bar_chart("Frames per day (last 7 days)", &frames_bars, |n| n.to_string()))
        h2 { "Top sensors today" }
        table {
            tr { th { "Sensor" } th { "Name" } th { "Frames" } th { "Bytes" } }
            @for (u, c) in sensors.iter().take(20) {
                tr {
                    td { a href={ "/sensors/" (u.simple()) } { code { (u.simple()) } } }
                    td { (names.get(u).copied().unwrap_or("")) }
                    td { (c.frames) }
                    td { (human_bytes(c.bytes)) }
                }
            }
        }
        h2 { "Types today" }
        table {
            tr { th { "Type" } th { "Frames" } th { "Bytes" } }
            @for (ty, c) in &types {
                tr { td { (ty) } td { (c.frames) } td { (human_bytes(c.bytes)) } }
            }
        }
    };
    Ok(page("Dashboard", Some(&v), body).into_response())
}

pub(super) async fn monitoring(
    State(st): State<WebState>,
    headers: axum::http::HeaderMap,
    Login { viewer: v, .. }: Login<Read>,
) -> PageResult {
    let threshold = st.config().monitoring_threshold_secs;
    let list = actions::monitoring_errors(st.store(), threshold, now())
        .await
        .or_page(&v)?;
    let alerts = crate::queue_alerts::current(&st, now()).await.or_page(&v)?;
    let names = crate::labels::sensor_names(st.store()).await.or_page(&v)?;
    let body = html! {
        (crate::queue_alerts::block(alerts.as_deref()))
        (crate::misp_feed::page_line(&st, &headers))
        h2 { "Silent sensors" }
        p {
            "Sensors silent for more than their threshold: their own (set on the sensor's page), \
             else the global one, " (threshold) " s."
        }
        @if list.is_empty() {
            p.flash { "No alert." }
        } @else {
            table {
                tr {
                    th { "Sensor" } th { "Name" } th { "Status" } th { "Last seen" } th { "Silent for" }
                    th { "Threshold" } th { "Description" }
                }
                @for s in &list {
                    tr {
                        td { a href={ "/sensors/" (s.uuid) } { code { (s.uuid) } } }
                        td { (s.uuid.parse::<Uuid>().ok().and_then(|u| names.get(&u)).map(String::as_str).unwrap_or("")) }
                        td { (s.status) }
                        td { (fmt_time(s.last_seen)) }
                        td { (s.silent_secs) " s" }
                        td { (s.threshold_secs) " s" }
                        td { (s.description) }
                    }
                }
            }
        }
    };
    Ok(page("Monitoring", Some(&v), body).into_response())
}
