//! Accounts: the caller's own (`/me`) and user management by admins (`/users`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use d4_store::{Role, User};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{body, done, ok, optional_body, ApiResult};
use crate::actions;
use crate::auth;
use crate::extract::{Admin, AnyRole, Auth};
use crate::failure::{Failure, Res};
use crate::WebState;

/// A user as the API shows it (never the password hash or the token).
#[derive(Serialize)]
struct UserView<'a> {
    created: u64,
    has_token: bool,
    must_change_password: bool,
    name: &'a str,
    role: &'static str,
}

impl<'a> From<&'a User> for UserView<'a> {
    fn from(u: &'a User) -> UserView<'a> {
        UserView {
            created: u.created,
            has_token: u.api_token_hash.is_some(),
            must_change_password: u.must_change_password,
            name: &u.name,
            role: u.role.as_str(),
        }
    }
}

pub(super) async fn me(Auth { user, .. }: Auth<AnyRole>) -> ApiResult {
    ok(UserView::from(&user))
}

pub(super) async fn me_token(
    State(st): State<WebState>,
    Auth { user, .. }: Auth<AnyRole>,
) -> ApiResult {
    let token = actions::rotate_token(st.store(), &user.name).await?;
    ok(json!({"name": user.name, "token": token}))
}

#[derive(Deserialize)]
struct PasswordChange {
    current: String,
    new: String,
}

pub(super) async fn me_password(
    State(st): State<WebState>,
    Auth { user, .. }: Auth<AnyRole>,
    b: Bytes,
) -> ApiResult {
    let req: PasswordChange = body(&b)?;
    actions::change_password(st.store(), &user.name, Some(&req.current), &req.new).await?;
    if user.name == auth::FIRST_ADMIN {
        auth::remove_admin_password_file(&st);
    }
    done()
}

pub(super) async fn users(State(st): State<WebState>, _: Auth<Admin>) -> ApiResult {
    let list = st.store().list_users().await?;
    let users: Vec<UserView> = list.iter().map(UserView::from).collect();
    ok(json!({ "users": users }))
}

#[derive(Deserialize)]
struct UserCreate {
    name: String,
    role: String,
    #[serde(default)]
    password: Option<String>,
}

fn parse_role(s: &str) -> Res<Role> {
    s.parse::<Role>().map_err(Failure::bad)
}

pub(super) async fn user_create(State(st): State<WebState>, _: Auth<Admin>, b: Bytes) -> ApiResult {
    let req: UserCreate = body(&b)?;
    let role = parse_role(&req.role)?;
    let generated = actions::create_user(st.store(), &req.name, role, req.password).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": req.name, "role": role.as_str(), "password": generated})),
    )
        .into_response())
}

#[derive(Deserialize)]
struct UserPut {
    role: String,
}

pub(super) async fn user_put(
    State(st): State<WebState>,
    Path(name): Path<String>,
    _: Auth<Admin>,
    b: Bytes,
) -> ApiResult {
    let req: UserPut = body(&b)?;
    actions::set_role(st.store(), &name, parse_role(&req.role)?).await?;
    done()
}

pub(super) async fn user_delete(
    State(st): State<WebState>,
    Path(name): Path<String>,
    Auth { user, .. }: Auth<Admin>,
) -> ApiResult {
    actions::delete_user(st.store(), &name, &user.name).await?;
    done()
}

pub(super) async fn user_token(
    State(st): State<WebState>,
    Path(name): Path<String>,
    _: Auth<Admin>,
) -> ApiResult {
    let token = actions::rotate_token(st.store(), &name).await?;
    ok(json!({"name": name, "token": token}))
}

#[derive(Deserialize, Default)]
struct PasswordReset {
    #[serde(default)]
    password: Option<String>,
}

/// `POST /users/{name}/password {password?}`: admin reset (generated when absent, returned
/// once); the user must change it at next login and is logged out everywhere.
pub(super) async fn user_password_reset(
    State(st): State<WebState>,
    Path(name): Path<String>,
    Auth { user: admin, .. }: Auth<Admin>,
    b: Bytes,
) -> ApiResult {
    let req: PasswordReset = optional_body(&b)?;
    let generated = actions::reset_password(st.store(), &name, req.password).await?;
    if name == auth::FIRST_ADMIN {
        // The first-start password in the file is no longer valid.
        auth::remove_admin_password_file(&st);
    }
    tracing::info!(user = %admin.name, target = %name, "api: password reset");
    ok(json!({"name": name, "password": generated}))
}

pub(super) async fn user_token_revoke(
    State(st): State<WebState>,
    Path(name): Path<String>,
    _: Auth<Admin>,
) -> ApiResult {
    actions::revoke_token(st.store(), &name).await?;
    done()
}
