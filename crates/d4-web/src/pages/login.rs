//! Logging in and out, and changing one's own password (required at first login).

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::{back, see_other, OrPage, PageResult};
use crate::actions;
use crate::auth::{self, Viewer};
use crate::extract::{AnyRole, FormPost, Login};
use crate::failure::Failure;
use crate::view::{self, csrf_field, error_line, hidden, page};
use crate::{Fields, WebState};

#[derive(Deserialize, Default)]
pub(super) struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

fn login_form(st: &WebState, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let token = auth::random_token();
    let body = html! {
        (error_line(error))
        form method="post" action="/login" {
            (csrf_field(&token))
            (hidden("next", &auth::safe_next(next)))
            p { label { "User " input name="user" autocomplete="username" required; } }
            p { label { "Password " input name="password" type="password" autocomplete="current-password" required; } }
            p { button type="submit" { "Log in" } }
        }
    };
    let mut resp = (status, page("Log in", None, body)).into_response();
    if let Ok(v) = auth::login_csrf_cookie(st, &token).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The login page's `?error=` codes: fixed texts, so a link cannot make the real UI show
/// an attacker's words. Unknown codes show nothing.
fn login_error_text(code: &str) -> Option<&'static str> {
    match code {
        "expired" => Some("The form expired (CSRF check): try again."),
        "wrong" => Some("Wrong user name or password."),
        "locked" => Some("Too many failed logins: retry later."),
        "busy" => Some("The server is busy checking passwords: retry in a few seconds."),
        "session" => Some("Your session ended: log in again."),
        _ => None,
    }
}

pub(super) async fn login_page(
    State(st): State<WebState>,
    Query(q): Query<LoginQuery>,
) -> Response {
    login_form(
        &st,
        q.next.as_deref().unwrap_or("/"),
        q.error.as_deref().and_then(login_error_text),
        StatusCode::OK,
    )
}

/// How long a login waits for a free password check before 429.
const LOGIN_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

pub(super) async fn login_post(
    State(st): State<WebState>,
    headers: HeaderMap,
    req_ext: axum::http::Extensions,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields::from_pairs(form);
    let next = auth::safe_next(f.get("next"));
    let ip = crate::client_ip(st.config(), &headers, &req_ext);
    let name = f.get("user");
    let logged_name = d4_proto::logsafe::escape(name);
    // Login CSRF: the form's token must match the cookie set with the form.
    let cookie = crate::cookie(&headers, auth::LOGIN_CSRF_COOKIE).unwrap_or_default();
    if cookie.is_empty() || !crate::ct_eq(&cookie, f.get("csrf")) {
        return login_form(
            &st,
            &next,
            login_error_text("expired"),
            StatusCode::FORBIDDEN,
        );
    }
    // Counted before the password is checked: parallel attempts cannot overtake it.
    let begun = match st.inner.lockout.lock() {
        Ok(mut l) => l.begin(name, ip),
        Err(_) => Err(1),
    };
    if let Err(secs) = begun {
        tracing::warn!(%ip, user = %logged_name, "web: login refused, locked out");
        return login_form(
            &st,
            &next,
            Some(&format!(
                "Too many failed logins for this user from your address: retry in {secs} s."
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    // Bounded concurrent argon2 checks (each takes ~19 MiB): excess waits, then 429.
    let permit = match tokio::time::timeout(LOGIN_CHECK_WAIT, st.inner.login_checks.acquire()).await
    {
        Ok(Ok(p)) => p,
        _ => {
            if let Ok(mut l) = st.inner.lockout.lock() {
                l.cancel(name, ip);
            }
            tracing::warn!(%ip, user = %logged_name, "web: login refused, password checks busy");
            let mut r = login_form(
                &st,
                &next,
                login_error_text("busy"),
                StatusCode::TOO_MANY_REQUESTS,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("3"));
            return r;
        }
    };
    let user = st.store().get_user(name.to_string()).await.ok().flatten();
    let checkers = &st.inner.checkers;
    let password = f.get("password").to_string();
    let ok = match &user {
        Some(u) => checkers.verify(password, u.password_hash.clone()).await,
        None => {
            let _ = checkers
                .verify(password, auth::dummy_hash().to_string())
                .await;
            false
        }
    };
    drop(permit);
    let (true, Some(user)) = (ok, user) else {
        let now_locked = st
            .inner
            .lockout
            .lock()
            .map(|mut l| l.failure(name, ip))
            .unwrap_or(false);
        tracing::warn!(%ip, user = %logged_name, locked = now_locked, "web: failed login");
        return login_form(
            &st,
            &next,
            login_error_text("wrong"),
            StatusCode::UNAUTHORIZED,
        );
    };
    if let Ok(mut l) = st.inner.lockout.lock() {
        l.success(name, ip);
    }
    let cookie = match auth::start_session(&st, &user).await {
        Ok(c) => c,
        Err(e) => return view::error_page(None, &Failure::from(e)),
    };
    tracing::info!(user = %logged_name, %ip, "web: login");
    let to = if user.must_change_password {
        "/password".to_string()
    } else {
        next
    };
    let mut resp = see_other(&to);
    if let Ok(v) = cookie.parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub(crate) async fn logout(State(st): State<WebState>, post: FormPost<AnyRole>) -> Response {
    let _ = st
        .store()
        .delete_web_login(post.viewer.session_hash.clone())
        .await;
    let mut resp = see_other("/login");
    if let Ok(c) = auth::session_cookie(&st, "", 0).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

fn password_form(v: &Viewer, error: Option<&str>) -> Markup {
    html! {
        @if v.user.must_change_password {
            p.flash { "You must choose a new password before going on." }
        }
        (error_line(error))
        form method="post" action="/password" {
            (csrf_field(&v.csrf))
            p { label { "Current password " input name="current" type="password" autocomplete="current-password" required; } }
            p { label { "New password (at least " (auth::MIN_PASSWORD_LEN) " characters) " input name="new" type="password" autocomplete="new-password" required; } }
            p { label { "Repeat " input name="repeat" type="password" autocomplete="new-password" required; } }
            p { button type="submit" { "Change password" } }
        }
    }
}

pub(super) async fn password_page(Login { viewer: v, .. }: Login<AnyRole>) -> Response {
    page("Change password", Some(&v), password_form(&v, None)).into_response()
}

pub(super) async fn password_post(
    State(st): State<WebState>,
    FormPost {
        viewer: v,
        fields: f,
        ..
    }: FormPost<AnyRole>,
) -> PageResult {
    let refuse = |status: StatusCode, reason: &str| {
        (
            status,
            page("Change password", Some(&v), password_form(&v, Some(reason))),
        )
            .into_response()
    };
    if f.get("new") != f.get("repeat") {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            "The two new passwords differ.",
        ));
    }
    if let Err(e) = actions::change_password(
        st.store(),
        &v.user.name,
        Some(f.get("current")),
        f.get("new"),
    )
    .await
    {
        return Ok(refuse(e.status, &e.reason));
    }
    if v.user.name == auth::FIRST_ADMIN {
        auth::remove_admin_password_file(&st);
    }
    // Every session of the user ended with the change: this browser gets a new one, the
    // others are logged out.
    let _ = st.store().delete_web_login(v.session_hash.clone()).await;
    let user = actions::user(st.store(), &v.user.name).await.or_page(&v)?;
    let cookie = auth::start_session(&st, &user).await.or_page(&v)?;
    tracing::info!(user = %v.user.name, "web: password changed, other sessions ended");
    let mut resp = back("/", "password-changed");
    if let Ok(c) = cookie.parse() {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}
