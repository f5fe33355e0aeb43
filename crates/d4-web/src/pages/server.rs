//! Server management: the blocklist and the accepted types and extended types.

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use d4_store::{now, Role};
use maud::html;
use serde::Deserialize;

use super::{back, fail, optional_u64, MsgQuery, OrPage, PageResult};
use crate::actions;
use crate::extract::{Action, Admin, FormPost, Login, Read};
use crate::failure::Failure;
use crate::view::{button, csrf_field, fmt_time, hidden, page};
use crate::WebState;

/// The D4 types the page always lists, with their names.
const TYPE_NAMES: [(u8, &str); 9] = [
    (1, "pcap"),
    (2, "meta header"),
    (3, "generic log"),
    (4, "dnscap"),
    (5, "pcapng"),
    (6, "ndjson"),
    (7, "yaf"),
    (8, "passive DNS"),
    (254, "extended"),
];

pub(super) async fn server_page(
    State(st): State<WebState>,
    Query(q): Query<MsgQuery>,
    Login { viewer: v, .. }: Login<Read>,
) -> PageResult {
    let store = st.store();
    let blocks = store.list_blocks(now()).await.or_page(&v)?;
    let types = store.accepted_types().await.or_page(&v)?;
    let exts = store.accepted_ext_types().await.or_page(&v)?;
    let admin = v.user.role == Role::Admin;
    let mut all: Vec<u8> = TYPE_NAMES.iter().map(|n| n.0).collect();
    for t in &types {
        if !all.contains(t) {
            all.push(*t);
        }
    }
    let body = html! {
        (q.flash())
        h2 { "Blocklist" }
        table {
            tr {
                th { "Kind" } th { "Value" } th { "Reason" } th { "Created" } th { "Expires" } th {}
            }
            @for b in &blocks {
                @let (kind, value) = actions::target_kind_value(&b.target);
                tr {
                    td { (kind) }
                    td { code { (value) } }
                    td { (b.reason) }
                    td { (fmt_time(b.created)) }
                    td { (b.expires.map(fmt_time).unwrap_or_else(|| "never".into())) }
                    td {
                        @if admin {
                            (button(&v, "/server/unblock", "Remove",
                                html! { (hidden("kind", kind)) (hidden("value", &value)) }))
                        }
                    }
                }
            }
        }
        @if admin {
            form method="post" action="/server/block" {
                (csrf_field(&v.csrf))
                select name="kind" {
                    option value="ip" { "IP or CIDR" }
                    option value="uuid" { "UUID" }
                    option value="ips_of_uuid" { "IPs of a UUID" }
                }
                " " input name="value" placeholder="192.0.2.0/24 or uuid" required;
                " " input name="reason" placeholder="reason";
                " " input name="expires_in" placeholder="expires in s (empty = never)";
                " " button type="submit" { "Block" }
            }
        }
        h2 { "Accepted types" }
        table {
            tr { th { "Type" } th { "Name" } th { "Accepted" } th {} }
            @for t in all {
                @let acc = types.contains(&t);
                tr {
                    td { (t) }
                    td { (TYPE_NAMES.iter().find(|n| n.0 == t).map(|n| n.1).unwrap_or("")) }
                    td { @if acc { "yes" } @else { "no" } }
                    td {
                        @if admin {
                            (button(&v, "/server/type", if acc { "Refuse" } else { "Accept" }, html! {
                                (hidden("type", &t.to_string()))
                                (hidden("accepted", if acc { "0" } else { "1" }))
                            }))
                        }
                    }
                }
            }
        }
        h2 { "Accepted extended types (type 254)" }
        table {
            tr { th { "Name" } th {} }
            @for e in &exts {
                tr {
                    td { (e) }
                    td {
                        @if admin {
                            (button(&v, "/server/ext", "Refuse",
                                html! { (hidden("name", e)) (hidden("accepted", "0")) }))
                        }
                    }
                }
            }
        }
        @if admin {
            form method="post" action="/server/ext" {
                (csrf_field(&v.csrf)) (hidden("accepted", "1"))
                input name="name" placeholder="extended type" required;
                " " button type="submit" { "Accept" }
            }
            form method="post" action="/server/type" {
                (csrf_field(&v.csrf)) (hidden("accepted", "1"))
                input name="type" placeholder="type number" required;
                " " button type="submit" { "Accept type" }
            }
        }
    };
    Ok(page("Server management", Some(&v), body).into_response())
}

/// The actions of `POST /server/{action}`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum ServerAction {
    Block,
    Unblock,
    Type,
    Ext,
}

pub(super) async fn server_post(
    State(st): State<WebState>,
    FormPost {
        viewer: v,
        fields: f,
        path: Action(action),
        ..
    }: FormPost<Admin, Action<ServerAction>>,
) -> PageResult {
    let store = st.store();
    let msg = match action {
        ServerAction::Block => {
            let target = actions::parse_target(f.get("kind"), f.get("value")).or_page(&v)?;
            let expires = optional_u64(f.get("expires_in"), "expires must be a number of seconds")
                .or_page(&v)?;
            actions::add_block(store, target.clone(), f.get("reason"), expires)
                .await
                .or_page(&v)?;
            if let d4_store::BlockTarget::Uuid(u) = target {
                actions::kick(store, u).await.or_page(&v)?;
            }
            "blocked"
        }
        ServerAction::Unblock => {
            let target = actions::parse_target(f.get("kind"), f.get("value")).or_page(&v)?;
            actions::remove_block(store, target).await.or_page(&v)?;
            "unblocked"
        }
        ServerAction::Type => {
            let t: u8 = f
                .get("type")
                .trim()
                .parse()
                .map_err(|_| fail(&v, Failure::bad("invalid type (1..=255)")))?;
            let acc = f.get("accepted") == "1";
            actions::set_type(store, t, acc).await.or_page(&v)?;
            if acc {
                "type-accepted"
            } else {
                "type-refused"
            }
        }
        ServerAction::Ext => {
            let name = f.get("name").trim();
            let acc = f.get("accepted") == "1";
            actions::set_ext(store, name, acc).await.or_page(&v)?;
            if acc {
                "ext-accepted"
            } else {
                "ext-refused"
            }
        }
    };
    tracing::info!(user = %v.user.name, ?action, "web: server change");
    Ok(back("/server", msg))
}
