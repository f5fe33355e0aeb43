//! The account page of the logged-in user: role, API token.

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use maud::html;

use super::{MsgQuery, OrPage, PageResult};
use crate::actions;
use crate::extract::{AnyRole, FormPost, Login};
use crate::view::{button, page, secret_page};
use crate::WebState;

pub(super) async fn account(
    Query(q): Query<MsgQuery>,
    Login { viewer: v, .. }: Login<AnyRole>,
) -> PageResult {
    let has_token = v.user.api_token_hash.is_some();
    let body = html! {
        (q.flash())
        p {
            "User " strong { (v.user.name) } ", role " strong { (v.user.role.as_str()) }
            ". API token: " @if has_token { "set" } @else { "none" } "."
        }
        p {
            (button(&v, "/account/token",
                if has_token { "Rotate my API token" } else { "Create my API token" },
                html! {}))
        }
        p { a href="/password" { "Change password" } }
        p {
            "Use the token with " code { "Authorization: <token>" } " on " code { "/api/v1" }
            " (" a href="/api/v1/openapi.json" { "OpenAPI" } "), e.g. "
            code { "POST /api/v1/add/sensor/register" } "."
        }
    };
    Ok(page("Account", Some(&v), body).into_response())
}

pub(super) async fn account_token(
    State(st): State<WebState>,
    FormPost { viewer: v, .. }: FormPost<AnyRole>,
) -> PageResult {
    let token = actions::rotate_token(st.store(), &v.user.name)
        .await
        .or_page(&v)?;
    Ok(secret_page(
        &v,
        "API token",
        "Your new API token (the previous one no longer works):",
        &token,
        "/account",
    ))
}
