//! User management (admins): roles, API tokens, password resets, creating and deleting.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use d4_store::Role;
use maud::{html, Markup};
use serde::Deserialize;

use super::{back, fail, MsgQuery, OrPage, PageResult};
use crate::actions;
use crate::auth;
use crate::extract::{Action, Admin, FormPost, Login};
use crate::failure::Failure;
use crate::view::{button, csrf_field, fmt_time, page, secret_page, url_enc};
use crate::WebState;

fn role_select(current: Role) -> Markup {
    html! {
        select name="role" {
            @for r in [Role::Admin, Role::User, Role::SensorRegister] {
                option value=(r.as_str()) selected[r == current] { (r.as_str()) }
            }
        }
    }
}

pub(super) async fn users(
    State(st): State<WebState>,
    Query(q): Query<MsgQuery>,
    Login { viewer: v, .. }: Login<Admin>,
) -> PageResult {
    let list = st.store().list_users().await.or_page(&v)?;
    let body = html! {
        (q.flash())
        table {
            tr { th { "User" } th { "Role" } th { "API token" } th { "Created" } th {} }
            @for u in &list {
                @let base = format!("/users/{}", url_enc(&u.name));
                tr {
                    td { (u.name) }
                    td {
                        form.inline method="post" action={ (base) "/role" } {
                            (csrf_field(&v.csrf)) (role_select(u.role))
                            " " button type="submit" { "Set role" }
                        }
                    }
                    td { @if u.api_token_hash.is_some() { "yes" } @else { "no" } }
                    td { (fmt_time(u.created)) }
                    td {
                        (button(&v, &format!("{base}/token"), "New API token", html! {}))
                        " "
                        (button(&v, &format!("{base}/password"), "Reset password", html! {}))
                        " "
                        (button(&v, &format!("{base}/delete"), "Delete", html! {}))
                    }
                }
            }
        }
        h2 { "Create a user" }
        form method="post" action="/users" {
            (csrf_field(&v.csrf))
            p { label { "Name " input name="name" required; } " " (role_select(Role::User)) }
            p { label { "Initial password (empty = generate; changed at first login) "
                input name="password" type="password" autocomplete="new-password"; } }
            p { button type="submit" { "Create" } }
        }
    };
    Ok(page("Users", Some(&v), body).into_response())
}

pub(super) async fn user_create(
    State(st): State<WebState>,
    FormPost {
        viewer: v,
        fields: f,
        ..
    }: FormPost<Admin>,
) -> PageResult {
    let role: Role = f
        .get("role")
        .parse()
        .map_err(|e: String| fail(&v, Failure::bad(e)))?;
    let name = f.get("name").trim().to_string();
    let pw = Some(f.get("password").to_string()).filter(|p| !p.is_empty());
    let generated = actions::create_user(st.store(), &name, role, pw)
        .await
        .or_page(&v)?;
    tracing::info!(user = %v.user.name, new_user = %name, role = role.as_str(), "web: user created");
    match generated {
        Some(p) => Ok(secret_page(
            &v,
            "User created",
            &format!("Initial password of {name} (to change at first login):"),
            &p,
            "/users",
        )),
        None => Ok(back("/users", "user-created")),
    }
}

/// The actions of `POST /users/{name}/{action}`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum UserAction {
    Role,
    Delete,
    Password,
    Token,
}

pub(super) async fn user_post(
    State(st): State<WebState>,
    Path((name, _)): Path<(String, String)>,
    FormPost {
        viewer: v,
        fields: f,
        path: Action(action),
        ..
    }: FormPost<Admin, Action<UserAction>>,
) -> PageResult {
    let store = st.store();
    match action {
        UserAction::Role => {
            let role: Role = f
                .get("role")
                .parse()
                .map_err(|e: String| fail(&v, Failure::bad(e)))?;
            actions::set_role(store, &name, role).await.or_page(&v)?;
            Ok(back("/users", "role-set"))
        }
        UserAction::Delete => {
            actions::delete_user(store, &name, &v.user.name)
                .await
                .or_page(&v)?;
            Ok(back("/users", "user-deleted"))
        }
        UserAction::Password => {
            let pw = actions::reset_password(store, &name, None)
                .await
                .or_page(&v)?
                .unwrap_or_default();
            if name == auth::FIRST_ADMIN {
                // The first-start password in the file is no longer valid.
                auth::remove_admin_password_file(&st);
            }
            tracing::info!(user = %v.user.name, target = %name, "web: password reset");
            if name == v.user.name {
                // Own sessions ended too: this page is the last one of this session.
                tracing::info!(user = %v.user.name, "web: own password reset, logged out");
            }
            Ok(secret_page(
                &v,
                "Password reset",
                &format!(
                    "New password of {name} (to change at next login; their sessions were ended):"
                ),
                &pw,
                "/users",
            ))
        }
        UserAction::Token => {
            let token = actions::rotate_token(store, &name).await.or_page(&v)?;
            Ok(secret_page(
                &v,
                "API token",
                &format!("New API token of {name} (the previous one no longer works):"),
                &token,
                "/users",
            ))
        }
    }
}
