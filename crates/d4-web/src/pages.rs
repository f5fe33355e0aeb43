//! Server-rendered pages (no JavaScript needed). Every state change is a POST form carrying
//! the session's CSRF token; every handler checks the role on the server side.

#![allow(clippy::result_large_err)] // handlers return a ready Response as their error

use std::collections::HashSet;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use d4_store::{
    now, QueueConfig, Role, SensorStatus, SensorUpdate, StatsKey, DEFAULT_QUEUE_MAX_SIZE,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::actions::{self, fmt_time, human_bytes, Failure};
use crate::auth::{self, Need, Viewer};
use crate::html::{self, bar_chart, button, esc, hidden, page};
use crate::{Fields, WebState};

type PageResult = Result<Response, Response>;
type Pairs = Form<Vec<(String, String)>>;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/login", get(login_page).post(login_post))
        .route("/logout", post(logout))
        .route("/password", get(password_page).post(password_post))
        .route("/", get(dashboard))
        .route("/sensors", get(sensors))
        .route("/sensors/{uuid}", get(sensor_page))
        .route("/sensors/{uuid}/{action}", post(sensor_post))
        .route("/registration", get(registration).post(registration_post))
        .route("/monitoring", get(monitoring))
        .route("/server", get(server_page))
        .route("/server/{action}", post(server_post))
        .route("/queues", get(queues).post(queue_create))
        .route("/queues/{uuid}", get(queue_page))
        .route("/queues/{uuid}/{action}", post(queue_post))
        .route("/users", get(users).post(user_create))
        .route("/users/{name}/{action}", post(user_post))
        .route("/account", get(account))
        .route("/account/token", post(account_token))
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn fail(v: &Viewer, f: Failure) -> Response {
    html::error_page(Some(v), &f)
}

/// The logged-in viewer allowed to do `need`; else a redirect to the login page (no
/// session), to the password page (change required) or a 403 page.
async fn require(
    st: &WebState,
    headers: &HeaderMap,
    uri: &Uri,
    need: Need,
) -> Result<Viewer, Response> {
    let Some(v) = auth::viewer(st, headers).await else {
        let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        return Err(see_other(&format!("/login?next={}", html::url_enc(next))));
    };
    if v.user.must_change_password && uri.path() != "/password" {
        return Err(see_other("/password"));
    }
    if !auth::allowed(v.user.role, need) {
        return Err(fail(
            &v,
            Failure::forbidden(format!(
                "forbidden: role {} may not do this",
                v.user.role.as_str()
            )),
        ));
    }
    Ok(v)
}

/// A state-changing form POST: session, CSRF token, role.
async fn require_post(
    st: &WebState,
    headers: &HeaderMap,
    uri: &Uri,
    form: Vec<(String, String)>,
    need: Need,
) -> Result<(Viewer, Fields), Response> {
    let fields = Fields::from_pairs(form);
    let Some(v) = auth::viewer(st, headers).await else {
        return Err(html::error_page(
            None,
            &Failure::forbidden("not logged in (or the session expired): log in again"),
        ));
    };
    if !crate::ct_eq(fields.get("csrf"), &v.csrf) {
        tracing::warn!(user = %v.user.name, path = %uri.path(), "web: CSRF token missing or invalid");
        return Err(fail(
            &v,
            Failure::forbidden("CSRF token missing or invalid: reload the page and retry"),
        ));
    }
    if v.user.must_change_password && !matches!(uri.path(), "/password" | "/logout") {
        return Err(see_other("/password"));
    }
    if !auth::allowed(v.user.role, need) {
        return Err(fail(
            &v,
            Failure::forbidden(format!(
                "forbidden: role {} may not do this",
                v.user.role.as_str()
            )),
        ));
    }
    Ok((v, fields))
}

fn flash(q: &MsgQuery) -> String {
    match q.msg.as_deref().and_then(flash_text) {
        Some(m) => format!("<p class=\"flash\">{}</p>", esc(m)),
        None => String::new(),
    }
}

/// The `?msg=` codes and their fixed texts: a link cannot make the real UI show an
/// attacker's words. Unknown codes show nothing.
fn flash_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "password-changed" => "Password changed. Your other sessions were logged out.",
        "sensor-deleted" => "Sensor record deleted.",
        "description-saved" => "Description saved.",
        "limit-saved" => "Stream limit saved.",
        "threshold-saved" => "Monitoring threshold saved.",
        "threshold-cleared" => "Monitoring threshold cleared: the global one applies.",
        "default-key" => "The sensor now uses the server default key.",
        "kicked" => "Kicked: its connections are closed and it may reconnect after 30 s.",
        "uuid-blocked" => "UUID blocked.",
        "ips-blocked" => "Its IPs are blocked.",
        "approved" => "Sensor approved.",
        "blocked" => "Block added.",
        "unblocked" => "Block removed.",
        "type-accepted" => "Type accepted.",
        "type-refused" => "Type refused.",
        "ext-accepted" => "Extended type accepted.",
        "ext-refused" => "Extended type refused.",
        "queue-created" => "Queue created: analyzers read it with its UUID (below).",
        "queue-emptied" => "Queue emptied.",
        "queue-deleted" => "Queue deleted.",
        "queue-saved" => "Queue saved.",
        "user-created" => "User created.",
        "role-set" => "Role changed.",
        "user-deleted" => "User deleted.",
        _ => return None,
    })
}

#[derive(Deserialize, Default)]
struct MsgQuery {
    #[serde(default)]
    msg: Option<String>,
}

/// Redirect to `to` with a flash message code (see [`flash_text`]).
fn back(to: &str, code: &'static str) -> Response {
    debug_assert!(flash_text(code).is_some(), "{code}");
    see_other(&format!("{to}?msg={code}"))
}

fn secret_page(v: &Viewer, title: &str, what: &str, secret: &str, back_to: &str) -> Response {
    page(
        title,
        Some(v),
        &format!(
            "<p>{}</p><p class=\"secret\">{}</p><p><strong>It is shown once, never again.</strong> \
             <a href=\"{}\">Continue</a></p>",
            esc(what),
            esc(secret),
            esc(back_to)
        ),
    )
    .into_response()
}

// ---- login / logout / password ----

#[derive(Deserialize, Default)]
struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

fn login_form(st: &WebState, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let token = auth::random_token();
    let err = error
        .map(|e| format!("<p class=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "{err}<form method=\"post\" action=\"/login\">{}{}\
         <p><label>User <input name=\"user\" autocomplete=\"username\" required></label></p>\
         <p><label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p>\
         <p><button type=\"submit\">Log in</button></p></form>",
        html::csrf_field(&token),
        hidden("next", &auth::safe_next(next)),
    );
    let mut resp = (status, page("Log in", None, &body)).into_response();
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

async fn login_page(State(st): State<WebState>, Query(q): Query<LoginQuery>) -> Response {
    login_form(
        &st,
        q.next.as_deref().unwrap_or("/"),
        q.error.as_deref().and_then(login_error_text),
        StatusCode::OK,
    )
}

/// How long a login waits for a free password check before 429.
const LOGIN_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

async fn login_post(
    State(st): State<WebState>,
    headers: HeaderMap,
    req_ext: axum::http::Extensions,
    Form(form): Pairs,
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
        Err(e) => return html::error_page(None, &Failure::from(e)),
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

pub(crate) async fn logout(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Pairs,
) -> Response {
    let (v, _) = match require_post(&st, &headers, &uri, form, Need::Any).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let _ = st.store().delete_web_login(v.session_hash.clone()).await;
    let mut resp = see_other("/login");
    if let Ok(c) = auth::session_cookie(&st, "", 0).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

fn password_form(v: &Viewer, error: Option<&str>) -> String {
    let intro = if v.user.must_change_password {
        "<p class=\"flash\">You must choose a new password before going on.</p>"
    } else {
        ""
    };
    let err = error
        .map(|e| format!("<p class=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "{intro}{err}<form method=\"post\" action=\"/password\">{}\
         <p><label>Current password <input name=\"current\" type=\"password\" autocomplete=\"current-password\" required></label></p>\
         <p><label>New password (at least {} characters) <input name=\"new\" type=\"password\" autocomplete=\"new-password\" required></label></p>\
         <p><label>Repeat <input name=\"repeat\" type=\"password\" autocomplete=\"new-password\" required></label></p>\
         <p><button type=\"submit\">Change password</button></p></form>",
        html::csrf_field(&v.csrf),
        auth::MIN_PASSWORD_LEN
    )
}

async fn password_page(State(st): State<WebState>, headers: HeaderMap, uri: Uri) -> PageResult {
    let v = require(&st, &headers, &uri, Need::Any).await?;
    Ok(page("Change password", Some(&v), &password_form(&v, None)).into_response())
}

async fn password_post(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Pairs,
) -> PageResult {
    let (v, f) = require_post(&st, &headers, &uri, form, Need::Any).await?;
    if f.get("new") != f.get("repeat") {
        return Ok((
            StatusCode::BAD_REQUEST,
            page(
                "Change password",
                Some(&v),
                &password_form(&v, Some("The two new passwords differ.")),
            ),
        )
            .into_response());
    }
    if let Err(e) = actions::change_password(
        st.store(),
        &v.user.name,
        Some(f.get("current")),
        f.get("new"),
    )
    .await
    {
        return Ok((
            e.status,
            page(
                "Change password",
                Some(&v),
                &password_form(&v, Some(&e.reason)),
            ),
        )
            .into_response());
    }
    if v.user.name == auth::FIRST_ADMIN {
        auth::remove_admin_password_file(&st);
    }
    // Every session of the user ended with the change: this browser gets a new one, the
    // others are logged out.
    let _ = st.store().delete_web_login(v.session_hash.clone()).await;
    let user = actions::user(st.store(), &v.user.name)
        .await
        .map_err(|e| fail(&v, e))?;
    let cookie = auth::start_session(&st, &user)
        .await
        .map_err(|e| fail(&v, Failure::from(e)))?;
    tracing::info!(user = %v.user.name, "web: password changed, other sessions ended");
    let mut resp = back("/", "password-changed");
    if let Ok(c) = cookie.parse() {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

// ---- dashboard ----

async fn dashboard(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<MsgQuery>,
) -> PageResult {
    let v = require(&st, &headers, &uri, Need::Any).await?;
    if v.user.role == Role::SensorRegister {
        return Err(see_other("/account"));
    }
    let store = st.store();
    let t = now();
    let err = |e: d4_store::StoreError| fail(&v, e.into());
    let today = store.day_stats(d4_store::day_of(t)).await.map_err(err)?;
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
    let sessions = store.list_leases(t).await.map_err(err)?;
    let connected: HashSet<Uuid> = sessions.iter().map(|s| s.uuid).collect();
    let pending = store
        .list_sensors()
        .await
        .map_err(err)?
        .iter()
        .filter(|s| s.status == SensorStatus::Pending)
        .count();
    let mut frames_bars = Vec::new();
    let mut bytes_bars = Vec::new();
    for day in actions::last_days(7, t) {
        let c = actions::day_total(&store.day_stats(day).await.map_err(err)?);
        let lbl = format!("{:02}-{:02}", day / 100 % 100, day % 100);
        frames_bars.push((lbl.clone(), c.frames));
        bytes_bars.push((lbl, c.bytes));
    }
    let mut body = flash(&q);
    body.push_str(&format!(
        "<p>Today (UTC): <strong>{}</strong> {} sent data, <strong>{}</strong> connected now, \
         <strong>{}</strong> {}, <strong>{}</strong>. <a href=\"/registration\">{} pending {}</a>.</p>",
        sensors.len(),
        plural(sensors.len() as u64, "sensor", "sensors"),
        connected.len(),
        total.frames,
        plural(total.frames, "frame", "frames"),
        esc(&human_bytes(total.bytes)),
        pending,
        plural(pending as u64, "registration", "registrations"),
    ));
    body.push_str(&bar_chart(
        "Bytes per day (last 7 days)",
        &bytes_bars,
        human_bytes,
    ));
    body.push_str(&bar_chart(
        "Frames per day (last 7 days)",
        &frames_bars,
        |n| n.to_string(),
    ));
    body.push_str(
        "<h2>Top sensors today</h2><table><tr><th>Sensor</th><th>Frames</th><th>Bytes</th></tr>",
    );
    for (u, c) in sensors.iter().take(20) {
        body.push_str(&format!(
            "<tr><td><a href=\"/sensors/{id}\"><code>{id}</code></a></td><td>{}</td><td>{}</td></tr>",
            c.frames,
            esc(&human_bytes(c.bytes)),
            id = u.simple()
        ));
    }
    body.push_str(
        "</table><h2>Types today</h2><table><tr><th>Type</th><th>Frames</th><th>Bytes</th></tr>",
    );
    for (ty, c) in &types {
        body.push_str(&format!(
            "<tr><td>{ty}</td><td>{}</td><td>{}</td></tr>",
            c.frames,
            esc(&human_bytes(c.bytes))
        ));
    }
    body.push_str("</table>");
    Ok(page("Dashboard", Some(&v), &body).into_response())
}

// ---- sensors ----

fn opt_time(t: Option<u64>) -> String {
    t.map(fmt_time).unwrap_or_else(|| "never".into())
}

async fn sensors(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<MsgQuery>,
) -> PageResult {
    let v = require(&st, &headers, &uri, Need::Read).await?;
    let store = st.store();
    let t = now();
    let err = |e: d4_store::StoreError| fail(&v, e.into());
    let list = store.list_sensors().await.map_err(err)?;
    let connected: HashSet<Uuid> = store
        .list_leases(t)
        .await
        .map_err(err)?
        .iter()
        .map(|s| s.uuid)
        .collect();
    let today = store.day_stats(d4_store::day_of(t)).await.map_err(err)?;
    let mut body = flash(&q);
    body.push_str("<table><tr><th>Sensor</th><th>Status</th><th>Connected</th><th>Today</th><th>First seen</th><th>Last seen</th><th>Types</th><th>Description</th><th>Last error</th></tr>");
    for s in &list {
        let c = today.get(&StatsKey::Sensor { uuid: s.uuid });
        let types: Vec<String> = s
            .types
            .iter()
            .map(|t| match &t.ext {
                Some(e) => format!("{}:{}", t.d4_type, e),
                None => t.d4_type.to_string(),
            })
            .collect();
        body.push_str(&format!(
            "<tr><td><a href=\"/sensors/{id}\"><code>{id}</code></a></td><td>{}</td><td>{}</td><td>{} frames, {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.status.as_str(),
            if connected.contains(&s.uuid) { "connected" } else { "—" },
            c.frames,
            esc(&human_bytes(c.bytes)),
            opt_time(s.first_seen),
            opt_time(s.last_seen),
            esc(&types.join(", ")),
            esc(&s.description),
            s.last_error.as_ref().map(|e| format!("{}: {}", fmt_time(e.time), esc(&e.message))).unwrap_or_default(),
            id = s.uuid.simple()
        ));
    }
    body.push_str("</table>");
    Ok(page("Sensors", Some(&v), &body).into_response())
}

async fn sensor_page(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Query(q): Query<MsgQuery>,
) -> PageResult {
    let v = require(&st, &headers, &uri, Need::Read).await?;
    let uuid = actions::parse_uuid(&id).map_err(|f| fail(&v, f))?;
    let store = st.store();
    let s = actions::sensor(store, uuid)
        .await
        .map_err(|f| fail(&v, f))?;
    let t = now();
    let err = |e: d4_store::StoreError| fail(&v, e.into());
    let sessions: Vec<_> = store
        .list_leases(t)
        .await
        .map_err(err)?
        .into_iter()
        .filter(|x| x.uuid == uuid)
        .collect();
    let idh = uuid.simple().to_string();
    let base = format!("/sensors/{idh}");
    let mut body = flash(&q);
    body.push_str(&format!(
        "<table><tr><th>UUID</th><td><code>{idh}</code></td></tr><tr><th>Status</th><td>{}</td></tr>\
         <tr><th>Connected</th><td>{}</td></tr><tr><th>HMAC key</th><td>{}</td></tr>\
         <tr><th>Registered</th><td>{}</td></tr><tr><th>First seen</th><td>{}</td></tr><tr><th>Last seen</th><td>{}</td></tr>\
         <tr><th>Mail</th><td>{}</td></tr><tr><th>Stream limit</th><td>{}</td></tr><tr><th>Monitoring threshold</th><td>{}</td></tr><tr><th>Last error</th><td>{}</td></tr></table>",
        s.status.as_str(),
        if sessions.is_empty() { "no".to_string() } else { sessions.iter().map(|x| format!("type {} from {}", x.d4_type, x.ip)).collect::<Vec<_>>().join(", ") },
        if s.hmac_key.is_some() { "sensor-specific key (never shown again)" } else { "server default key" },
        opt_time(s.registered_at),
        opt_time(s.first_seen),
        opt_time(s.last_seen),
        esc(s.mail.as_deref().unwrap_or("")),
        s.stream_limit.map(|l| l.to_string()).unwrap_or_else(|| "default".into()),
        match s.monitoring_threshold {
            Some(m) => format!("{m} s"),
            None => format!("{} s (global)", st.config().monitoring_threshold_secs),
        },
        s.last_error.as_ref().map(|e| format!("{}: {}", fmt_time(e.time), esc(&e.message))).unwrap_or_default(),
    ));
    // History.
    let mut bars = Vec::new();
    let mut rows = String::new();
    for day in actions::last_days(7, t) {
        let stats = store.day_stats(day).await.map_err(err)?;
        let c = stats.get(&StatsKey::Sensor { uuid });
        bars.push((format!("{:02}-{:02}", day / 100 % 100, day % 100), c.bytes));
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
        rows.push_str(&format!(
            "<tr><td>{:04}-{:02}-{:02}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            day / 10000,
            day / 100 % 100,
            day % 100,
            c.frames,
            esc(&human_bytes(c.bytes)),
            esc(&types.join("; "))
        ));
    }
    body.push_str(&bar_chart(
        "Bytes per day (last 7 days)",
        &bars,
        human_bytes,
    ));
    body.push_str(&format!("<h2>History</h2><table><tr><th>Day</th><th>Frames</th><th>Bytes</th><th>Types</th></tr>{rows}</table>"));
    body.push_str(
        "<h2>Types</h2><table><tr><th>Type</th><th>First seen</th><th>Last seen</th></tr>",
    );
    for ty in &s.types {
        body.push_str(&format!(
            "<tr><td>{}{}</td><td>{}</td><td>{}</td></tr>",
            ty.d4_type,
            ty.ext
                .as_ref()
                .map(|e| format!(" ({})", esc(e)))
                .unwrap_or_default(),
            fmt_time(ty.first_seen),
            fmt_time(ty.last_seen)
        ));
    }
    body.push_str(
        "</table><h2>Last IPs</h2><table><tr><th>IP</th><th>Last seen</th><th></th></tr>",
    );
    let admin = v.user.role == Role::Admin;
    for ip in &s.last_ips {
        let act = if admin {
            button(
                &v,
                "/server/block",
                "Block this IP",
                &format!(
                    "{}{}{}",
                    hidden("kind", "ip"),
                    hidden("value", &ip.ip.to_string()),
                    hidden("reason", &format!("sensor {idh}"))
                ),
            )
        } else {
            String::new()
        };
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{act}</td></tr>",
            ip.ip,
            fmt_time(ip.time)
        ));
    }
    body.push_str("</table>");
    body.push_str(&format!(
        "<h2>Description</h2><p>{}</p>",
        if s.description.is_empty() {
            "<span class=\"muted\">none</span>".to_string()
        } else {
            esc(&s.description)
        }
    ));
    if admin {
        let csrf = html::csrf_field(&v.csrf);
        body.push_str(&format!(
            "<h2>Settings</h2>\
             <form method=\"post\" action=\"{base}/describe\">{csrf}<label>Description <input name=\"description\" size=\"60\" value=\"{}\"></label> <button type=\"submit\">Save</button></form>\
             <form method=\"post\" action=\"{base}/limit\">{csrf}<label>Stream limit (empty = default) <input name=\"limit\" value=\"{}\"></label> <button type=\"submit\">Save</button></form>\
             <form method=\"post\" action=\"{base}/monitoring\">{csrf}<label>Monitoring threshold in seconds (empty = global, {global} s) <input name=\"threshold\" value=\"{}\"></label> <button type=\"submit\">Save</button></form>\
             <form method=\"post\" action=\"{base}/key\">{csrf}<label>New HMAC key (empty = generate) <input name=\"key\" autocomplete=\"off\"></label> <button type=\"submit\">Set key</button></form>\
             <h2>Actions</h2><p>{} {} {} {} {} {}</p>",
            esc(&s.description),
            s.stream_limit.map(|l| l.to_string()).unwrap_or_default(),
            s.monitoring_threshold.map(|l| l.to_string()).unwrap_or_default(),
            button(&v, &format!("{base}/kick"), "Kick (close connections)", ""),
            button(&v, &format!("{base}/block"), "Block UUID", ""),
            button(&v, &format!("{base}/block-ips"), "Block its IPs", ""),
            if s.status != SensorStatus::Approved { button(&v, &format!("{base}/approve"), "Approve", "") } else { String::new() },
            if s.hmac_key.is_some() { button(&v, &format!("{base}/default-key"), "Use the server default key", "") } else { String::new() },
            button(&v, &format!("{base}/delete"), "Delete record", ""),
            global = st.config().monitoring_threshold_secs,
        ));
    }
    Ok(page(&format!("Sensor {idh}"), Some(&v), &body).into_response())
}

async fn sensor_post(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, action)): Path<(String, String)>,
    Form(form): Pairs,
) -> PageResult {
    let (v, f) = require_post(&st, &headers, &uri, form, Need::Admin).await?;
    let uuid = actions::parse_uuid(&id).map_err(|e| fail(&v, e))?;
    let store = st.store();
    let base = format!("/sensors/{}", uuid.simple());
    let r = |x: Result<(), Failure>| x.map_err(|e| fail(&v, e));
    let msg = match action.as_str() {
        "describe" => {
            r(actions::update_sensor(
                store,
                uuid,
                SensorUpdate {
                    description: Some(f.get("description").to_string()),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ()))?;
            "description-saved"
        }
        "limit" => {
            let limit = optional_u64(f.get("limit"), "the stream limit must be a number")
                .map_err(|e| fail(&v, e))?;
            r(actions::update_sensor(
                store,
                uuid,
                SensorUpdate {
                    stream_limit: Some(limit),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ()))?;
            "limit-saved"
        }
        "monitoring" => {
            let threshold = optional_u64(
                f.get("threshold"),
                "the monitoring threshold must be a number of seconds",
            )
            .map_err(|e| fail(&v, e))?;
            r(actions::update_sensor(
                store,
                uuid,
                SensorUpdate {
                    monitoring_threshold: Some(threshold),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ()))?;
            if threshold.is_some() {
                "threshold-saved"
            } else {
                "threshold-cleared"
            }
        }
        "key" => {
            let key = actions::rotate_key(store, uuid, Some(f.get("key").to_string()))
                .await
                .map_err(|e| fail(&v, e))?;
            tracing::info!(user = %v.user.name, sensor = %uuid.simple(), "web: sensor key set");
            return Ok(secret_page(
                &v,
                "New HMAC key",
                &format!("The new HMAC key of sensor {}:", uuid.simple()),
                &key,
                &base,
            ));
        }
        "default-key" => {
            r(actions::update_sensor(
                store,
                uuid,
                SensorUpdate {
                    hmac_key: Some(None),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ()))?;
            "default-key"
        }
        "kick" => {
            r(actions::kick(store, uuid).await)?;
            "kicked"
        }
        "block" => {
            r(actions::block_uuid(store, uuid, &format!("blocked by {}", v.user.name)).await)?;
            "uuid-blocked"
        }
        "block-ips" => {
            r(
                actions::block_ips_of(store, uuid, &format!("blocked by {}", v.user.name))
                    .await
                    .map(|_| ()),
            )?;
            "ips-blocked"
        }
        "approve" => {
            r(actions::approve(store, uuid).await.map(|_| ()))?;
            "approved"
        }
        "delete" | "reject" => {
            r(actions::delete_sensor(store, uuid).await)?;
            return Ok(back("/registration", "sensor-deleted"));
        }
        _ => return Err(fail(&v, Failure::not_found("unknown action"))),
    };
    tracing::info!(user = %v.user.name, sensor = %uuid.simple(), %action, "web: sensor action");
    if f.get("back") == "registration" {
        return Ok(back("/registration", msg));
    }
    Ok(back(&base, msg))
}

// ---- registration ----

async fn registration(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<MsgQuery>,
) -> PageResult {
    let v = require(&st, &headers, &uri, Need::Read).await?;
    let list = st
        .store()
        .list_sensors()
        .await
        .map_err(|e| fail(&v, e.into()))?;
    let admin = v.user.role == Role::Admin;
    let mut body = flash(&q);
    for (title, status) in [
        ("Pending", SensorStatus::Pending),
        ("Registered", SensorStatus::Approved),
    ] {
        body.push_str(&format!("<h2>{title}</h2><table><tr><th>Sensor</th><th>Registered</th><th>Mail</th><th>Third party</th><th></th></tr>"));
        for s in list.iter().filter(|s| s.status == status) {
            let id = s.uuid.simple().to_string();
            let mut acts = String::new();
            if admin {
                let b = hidden("back", "registration");
                if status == SensorStatus::Pending {
                    acts.push_str(&button(
                        &v,
                        &format!("/sensors/{id}/approve"),
                        "Approve",
                        &b,
                    ));
                    acts.push_str(&button(&v, &format!("/sensors/{id}/reject"), "Reject", &b));
                } else {
                    acts.push_str(&button(&v, &format!("/sensors/{id}/delete"), "Delete", &b));
                }
            }
            body.push_str(&format!(
                "<tr><td><a href=\"/sensors/{id}\"><code>{id}</code></a></td><td>{}</td><td>{}</td><td>{}</td><td>{acts}</td></tr>",
                opt_time(s.registered_at),
                esc(s.mail.as_deref().unwrap_or("")),
                if s.third_party { "yes" } else { "no" },
            ));
        }
        body.push_str("</table>");
    }
    if admin {
        body.push_str(&format!(
            "<h2>Register a sensor</h2><form method=\"post\" action=\"/registration\">{}\
             <p><label>UUID <input name=\"uuid\" size=\"36\" required></label></p>\
             <p><label>HMAC key (empty = generate one, shown once) <input name=\"key\" autocomplete=\"off\"></label></p>\
             <p><label>Description <input name=\"description\" size=\"60\"></label></p>\
             <p><label><input type=\"checkbox\" name=\"approve\" value=\"1\" checked> approve at once</label></p>\
             <p><button type=\"submit\">Register</button></p></form>",
            html::csrf_field(&v.csrf)
        ));
    }
    Ok(page("Registration", Some(&v), &body).into_response())
}

async fn registration_post(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Pairs,
) -> PageResult {
    let (v, f) = require_post(&st, &headers, &uri, form, Need::Admin).await?;
    let uuid = actions::parse_uuid(f.get("uuid")).map_err(|e| fail(&v, e))?;
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
    .map_err(|e| fail(&v, e))?;
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

// ---- monitoring ----

async fn monitoring(State(st): State<WebState>, headers: HeaderMap, uri: Uri) -> PageResult {
    let v = require(&st, &headers, &uri, Need::Read).await?;
    let threshold = st.config().monitoring_threshold_secs;
    let list = actions::monitoring_errors(st.store(), threshold, now())
        .await
        .map_err(|e| fail(&v, e))?;
    let mut body = format!(
        "<p>Sensors silent for more than their threshold: their own (set on the sensor's page), \
         else the global one, {threshold} s.</p>"
    );
    if list.is_empty() {
        body.push_str("<p class=\"flash\">No alert.</p>");
    } else {
        body.push_str("<table><tr><th>Sensor</th><th>Status</th><th>Last seen</th><th>Silent for</th><th>Threshold</th><th>Description</th></tr>");
        for s in &list {
            body.push_str(&format!(
                "<tr><td><a href=\"/sensors/{id}\"><code>{id}</code></a></td><td>{}</td><td>{}</td><td>{} s</td><td>{} s</td><td>{}</td></tr>",
                s.status, fmt_time(s.last_seen), s.silent_secs, s.threshold_secs, esc(&s.description), id = esc(&s.uuid)
            ));
        }
        body.push_str("</table>");
    }
    Ok(page("Monitoring", Some(&v), &body).into_response())
}

// ---- server management ----

async fn server_page(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<MsgQuery>,
) -> PageResult {
    let v = require(&st, &headers, &uri, Need::Read).await?;
    let store = st.store();
    let err = |e: d4_store::StoreError| fail(&v, e.into());
    let blocks = store.list_blocks(now()).await.map_err(err)?;
    let types = store.accepted_types().await.map_err(err)?;
    let exts = store.accepted_ext_types().await.map_err(err)?;
    let admin = v.user.role == Role::Admin;
    let mut body = flash(&q);
    body.push_str("<h2>Blocklist</h2><table><tr><th>Kind</th><th>Value</th><th>Reason</th><th>Created</th><th>Expires</th><th></th></tr>");
    for b in &blocks {
        let (kind, value) = actions::target_kind_value(&b.target);
        let act = if admin {
            button(
                &v,
                "/server/unblock",
                "Remove",
                &format!("{}{}", hidden("kind", kind), hidden("value", &value)),
            )
        } else {
            String::new()
        };
        body.push_str(&format!("<tr><td>{kind}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{act}</td></tr>",
            esc(&value), esc(&b.reason), fmt_time(b.created), b.expires.map(fmt_time).unwrap_or_else(|| "never".into())));
    }
    body.push_str("</table>");
    let csrf = html::csrf_field(&v.csrf);
    if admin {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/server/block\">{csrf}<select name=\"kind\"><option value=\"ip\">IP or CIDR</option>\
             <option value=\"uuid\">UUID</option><option value=\"ips_of_uuid\">IPs of a UUID</option></select> \
             <input name=\"value\" placeholder=\"192.0.2.0/24 or uuid\" required> <input name=\"reason\" placeholder=\"reason\"> \
             <input name=\"expires_in\" placeholder=\"expires in s (empty = never)\"> <button type=\"submit\">Block</button></form>"
        ));
    }
    body.push_str("<h2>Accepted types</h2><table><tr><th>Type</th><th>Name</th><th>Accepted</th><th></th></tr>");
    let names = [
        (1u8, "pcap"),
        (2, "meta header"),
        (3, "generic log"),
        (4, "dnscap"),
        (5, "pcapng"),
        (6, "ndjson"),
        (7, "yaf"),
        (8, "passive DNS"),
        (254, "extended"),
    ];
    let mut all: Vec<u8> = names.iter().map(|n| n.0).collect();
    for t in &types {
        if !all.contains(t) {
            all.push(*t);
        }
    }
    for t in all {
        let acc = types.contains(&t);
        let name = names.iter().find(|n| n.0 == t).map(|n| n.1).unwrap_or("");
        let act = if admin {
            button(
                &v,
                "/server/type",
                if acc { "Refuse" } else { "Accept" },
                &format!(
                    "{}{}",
                    hidden("type", &t.to_string()),
                    hidden("accepted", if acc { "0" } else { "1" })
                ),
            )
        } else {
            String::new()
        };
        body.push_str(&format!(
            "<tr><td>{t}</td><td>{name}</td><td>{}</td><td>{act}</td></tr>",
            if acc { "yes" } else { "no" }
        ));
    }
    body.push_str(
        "</table><h2>Accepted extended types (type 254)</h2><table><tr><th>Name</th><th></th></tr>",
    );
    for e in &exts {
        let act = if admin {
            button(
                &v,
                "/server/ext",
                "Refuse",
                &format!("{}{}", hidden("name", e), hidden("accepted", "0")),
            )
        } else {
            String::new()
        };
        body.push_str(&format!("<tr><td>{}</td><td>{act}</td></tr>", esc(e)));
    }
    body.push_str("</table>");
    if admin {
        body.push_str(&format!("<form method=\"post\" action=\"/server/ext\">{csrf}{}<input name=\"name\" placeholder=\"extended type\" required> <button type=\"submit\">Accept</button></form>", hidden("accepted", "1")));
        body.push_str(&format!("<form method=\"post\" action=\"/server/type\">{csrf}{}<input name=\"type\" placeholder=\"type number\" required> <button type=\"submit\">Accept type</button></form>", hidden("accepted", "1")));
    }
    Ok(page("Server management", Some(&v), &body).into_response())
}

async fn server_post(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(action): Path<String>,
    Form(form): Pairs,
) -> PageResult {
    let (v, f) = require_post(&st, &headers, &uri, form, Need::Admin).await?;
    let store = st.store();
    let fl = |e: Failure| fail(&v, e);
    let msg = match action.as_str() {
        "block" => {
            let target = actions::parse_target(f.get("kind"), f.get("value")).map_err(fl)?;
            let expires = optional_u64(f.get("expires_in"), "expires must be a number of seconds")
                .map_err(fl)?;
            actions::add_block(store, target.clone(), f.get("reason"), expires)
                .await
                .map_err(fl)?;
            if let d4_store::BlockTarget::Uuid(u) = target {
                actions::kick(store, u).await.map_err(fl)?;
            }
            "blocked"
        }
        "unblock" => {
            let target = actions::parse_target(f.get("kind"), f.get("value")).map_err(fl)?;
            actions::remove_block(store, target.clone())
                .await
                .map_err(fl)?;
            "unblocked"
        }
        "type" => {
            let t: u8 = f
                .get("type")
                .trim()
                .parse()
                .map_err(|_| fl(Failure::bad("invalid type (1..=255)")))?;
            let acc = f.get("accepted") == "1";
            actions::set_type(store, t, acc).await.map_err(fl)?;
            if acc {
                "type-accepted"
            } else {
                "type-refused"
            }
        }
        "ext" => {
            let name = f.get("name").trim();
            let acc = f.get("accepted") == "1";
            actions::set_ext(store, name, acc).await.map_err(fl)?;
            if acc {
                "ext-accepted"
            } else {
                "ext-refused"
            }
        }
        _ => return Err(fl(Failure::not_found("unknown action"))),
    };
    tracing::info!(user = %v.user.name, %action, "web: server change");
    Ok(back("/server", msg))
}

// ---- queues ----

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

async fn queues(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<MsgQuery>,
) -> PageResult {
    let v = require(&st, &headers, &uri, Need::Read).await?;
    let list = st
        .store()
        .list_queues()
        .await
        .map_err(|e| fail(&v, e.into()))?;
    let admin = v.user.role == Role::Admin;
    let mut body = flash(&q);
    body.push_str("<table><tr><th>Queue</th><th>Kind</th><th>Description</th><th>Sensor group</th><th>Length / max</th><th>Trimmed</th><th>Last updated</th><th></th></tr>");
    for qu in &list {
        let id = qu.config.uuid.simple().to_string();
        let acts = if admin {
            format!(
                "{}{}",
                button(&v, &format!("/queues/{id}/empty"), "Empty", ""),
                button(&v, &format!("/queues/{id}/delete"), "Delete", "")
            )
        } else {
            String::new()
        };
        body.push_str(&format!(
            "<tr><td><a href=\"/queues/{id}\"><code>{id}</code></a></td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td><td>{acts}</td></tr>",
            esc(&qu.config.kind.to_string()), esc(&qu.config.description),
            esc(&if qu.config.sensors.is_some() { group_text(&qu.config.sensors) } else { "every sensor".into() }),
            qu.len, qu.config.max_size, qu.trimmed, fmt_time(qu.last_updated)
        ));
    }
    body.push_str("</table>");
    if admin {
        body.push_str(&format!(
            "<h2>Create a queue</h2><form method=\"post\" action=\"/queues\">{}\
             <p><label>Type or extended type <input name=\"kind\" placeholder=\"8 or ja3-jl\" required></label></p>\
             <p><label>Description <input name=\"description\" size=\"60\"></label></p>\
             <p><label>Max size <input name=\"max_size\" value=\"{DEFAULT_QUEUE_MAX_SIZE}\"></label></p>\
             <p><label>Sensor group (UUIDs separated by spaces; empty = every sensor) <textarea name=\"sensors\" rows=\"2\" cols=\"70\"></textarea></label></p>\
             <p><button type=\"submit\">Create</button></p></form>",
            html::csrf_field(&v.csrf)
        ));
    }
    Ok(page("Analyzer queues", Some(&v), &body).into_response())
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
    })
}

async fn queue_create(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Pairs,
) -> PageResult {
    let (v, f) = require_post(&st, &headers, &uri, form, Need::Admin).await?;
    let config = form_queue(&f, Uuid::new_v4(), None).map_err(|e| fail(&v, e))?;
    let q = actions::create_queue(st.store(), config)
        .await
        .map_err(|e| fail(&v, e))?;
    let id = q.config.uuid.simple().to_string();
    tracing::info!(user = %v.user.name, queue = %id, "web: queue created");
    Ok(back(&format!("/queues/{id}"), "queue-created"))
}

async fn queue_page(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Query(q): Query<MsgQuery>,
) -> PageResult {
    let v = require(&st, &headers, &uri, Need::Read).await?;
    let uuid = actions::parse_uuid(&id).map_err(|e| fail(&v, e))?;
    let qu = actions::queue(st.store(), uuid)
        .await
        .map_err(|e| fail(&v, e))?;
    let sample = st
        .store()
        .queue_sample(uuid, 20)
        .await
        .map_err(|e| fail(&v, e.into()))?;
    let id = uuid.simple().to_string();
    let mut body = flash(&q);
    body.push_str(&format!(
        "<table><tr><th>UUID</th><td><code>{id}</code></td></tr><tr><th>Kind</th><td>{}</td></tr><tr><th>Length / max</th><td>{} / {}</td></tr>\
         <tr><th>Trimmed</th><td>{}</td></tr><tr><th>Sensor group</th><td>{}</td></tr><tr><th>Created</th><td>{}</td></tr></table>",
        esc(&qu.config.kind.to_string()), qu.len, qu.config.max_size, qu.trimmed,
        esc(&if qu.config.sensors.is_some() { group_text(&qu.config.sensors) } else { "every sensor".into() }), fmt_time(qu.created)
    ));
    body.push_str("<h2>Latest entries</h2><table><tr><th>Sensor</th><th>Entry</th></tr>");
    for e in &sample {
        let text: String = e.text().chars().take(500).collect();
        body.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td></tr>",
            e.sensor.map(|s| s.simple().to_string()).unwrap_or_default(),
            esc(&text)
        ));
    }
    body.push_str("</table>");
    if v.user.role == Role::Admin {
        body.push_str(&format!(
            "<h2>Edit</h2><form method=\"post\" action=\"/queues/{id}/edit\">{}\
             <p><label>Description <input name=\"description\" size=\"60\" value=\"{}\"></label></p>\
             <p><label>Max size <input name=\"max_size\" value=\"{}\"></label></p>\
             <p><label>Sensor group <textarea name=\"sensors\" rows=\"2\" cols=\"70\">{}</textarea></label></p>\
             <p><button type=\"submit\">Save</button></p></form><p>{} {}</p>",
            html::csrf_field(&v.csrf), esc(&qu.config.description), qu.config.max_size, esc(&group_text(&qu.config.sensors)),
            button(&v, &format!("/queues/{id}/empty"), "Empty", ""), button(&v, &format!("/queues/{id}/delete"), "Delete", "")
        ));
    }
    Ok(page(&format!("Queue {id}"), Some(&v), &body).into_response())
}

async fn queue_post(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, action)): Path<(String, String)>,
    Form(form): Pairs,
) -> PageResult {
    let (v, f) = require_post(&st, &headers, &uri, form, Need::Admin).await?;
    let uuid = actions::parse_uuid(&id).map_err(|e| fail(&v, e))?;
    let store = st.store();
    let qu = actions::queue(store, uuid).await.map_err(|e| fail(&v, e))?;
    let id = uuid.simple().to_string();
    match action.as_str() {
        "empty" => {
            let n = store
                .empty_queue(uuid)
                .await
                .map_err(|e| fail(&v, e.into()))?;
            tracing::info!(user = %v.user.name, queue = %id, removed = n, "web: queue emptied");
            Ok(back("/queues", "queue-emptied"))
        }
        "delete" => {
            store
                .delete_queue(uuid)
                .await
                .map_err(|e| fail(&v, e.into()))?;
            Ok(back("/queues", "queue-deleted"))
        }
        "edit" => {
            let config =
                form_queue(&f, uuid, Some(qu.config.kind.clone())).map_err(|e| fail(&v, e))?;
            actions::update_queue(store, config)
                .await
                .map_err(|e| fail(&v, e))?;
            Ok(back(&format!("/queues/{id}"), "queue-saved"))
        }
        _ => Err(fail(&v, Failure::not_found("unknown action"))),
    }
}

// ---- users ----

fn role_select(current: Role) -> String {
    let mut s = String::from("<select name=\"role\">");
    for r in [Role::Admin, Role::User, Role::SensorRegister] {
        s.push_str(&format!(
            "<option value=\"{0}\"{1}>{0}</option>",
            r.as_str(),
            if r == current { " selected" } else { "" }
        ));
    }
    s.push_str("</select>");
    s
}

async fn users(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<MsgQuery>,
) -> PageResult {
    let v = require(&st, &headers, &uri, Need::Admin).await?;
    let list = st
        .store()
        .list_users()
        .await
        .map_err(|e| fail(&v, e.into()))?;
    let mut body = flash(&q);
    body.push_str(
        "<table><tr><th>User</th><th>Role</th><th>API token</th><th>Created</th><th></th></tr>",
    );
    for u in &list {
        let base = format!("/users/{}", html::url_enc(&u.name));
        body.push_str(&format!(
            "<tr><td>{}</td><td><form class=\"inline\" method=\"post\" action=\"{}/role\">{}{} <button type=\"submit\">Set role</button></form></td><td>{}</td><td>{}</td><td>{} {} {}</td></tr>",
            esc(&u.name), esc(&base), html::csrf_field(&v.csrf), role_select(u.role),
            if u.api_token_hash.is_some() { "yes" } else { "no" }, fmt_time(u.created),
            button(&v, &format!("{base}/token"), "New API token", ""),
            button(&v, &format!("{base}/password"), "Reset password", ""),
            button(&v, &format!("{base}/delete"), "Delete", ""),
        ));
    }
    body.push_str(&format!(
        "</table><h2>Create a user</h2><form method=\"post\" action=\"/users\">{}\
         <p><label>Name <input name=\"name\" required></label> {}</p>\
         <p><label>Initial password (empty = generate; changed at first login) <input name=\"password\" type=\"password\" autocomplete=\"new-password\"></label></p>\
         <p><button type=\"submit\">Create</button></p></form>",
        html::csrf_field(&v.csrf), role_select(Role::User)
    ));
    Ok(page("Users", Some(&v), &body).into_response())
}

async fn user_create(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Pairs,
) -> PageResult {
    let (v, f) = require_post(&st, &headers, &uri, form, Need::Admin).await?;
    let role: Role = f
        .get("role")
        .parse()
        .map_err(|e: String| fail(&v, Failure::bad(e)))?;
    let name = f.get("name").trim().to_string();
    let pw = Some(f.get("password").to_string()).filter(|p| !p.is_empty());
    let generated = actions::create_user(st.store(), &name, role, pw)
        .await
        .map_err(|e| fail(&v, e))?;
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

async fn user_post(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((name, action)): Path<(String, String)>,
    Form(form): Pairs,
) -> PageResult {
    let (v, f) = require_post(&st, &headers, &uri, form, Need::Admin).await?;
    let store = st.store();
    let fl = |e: Failure| fail(&v, e);
    match action.as_str() {
        "role" => {
            let role: Role = f
                .get("role")
                .parse()
                .map_err(|e: String| fl(Failure::bad(e)))?;
            actions::set_role(store, &name, role).await.map_err(fl)?;
            Ok(back("/users", "role-set"))
        }
        "delete" => {
            actions::delete_user(store, &name, &v.user.name)
                .await
                .map_err(fl)?;
            Ok(back("/users", "user-deleted"))
        }
        "password" => {
            let pw = actions::reset_password(store, &name, None)
                .await
                .map_err(fl)?
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
        "token" => {
            let token = actions::rotate_token(store, &name).await.map_err(fl)?;
            Ok(secret_page(
                &v,
                "API token",
                &format!("New API token of {name} (the previous one no longer works):"),
                &token,
                "/users",
            ))
        }
        _ => Err(fl(Failure::not_found("unknown action"))),
    }
}

// ---- account ----

async fn account(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<MsgQuery>,
) -> PageResult {
    let v = require(&st, &headers, &uri, Need::Any).await?;
    let mut body = flash(&q);
    body.push_str(&format!(
        "<p>User <strong>{}</strong>, role <strong>{}</strong>. API token: {}.</p><p>{}</p>\
         <p><a href=\"/password\">Change password</a></p>\
         <p>Use the token with <code>Authorization: &lt;token&gt;</code> on <code>/api/v1</code> \
         (<a href=\"/api/v1/openapi.json\">OpenAPI</a>), e.g. \
         <code>POST /api/v1/add/sensor/register</code>.</p>",
        esc(&v.user.name),
        v.user.role.as_str(),
        if v.user.api_token_hash.is_some() {
            "set"
        } else {
            "none"
        },
        button(
            &v,
            "/account/token",
            if v.user.api_token_hash.is_some() {
                "Rotate my API token"
            } else {
                "Create my API token"
            },
            ""
        ),
    ));
    Ok(page("Account", Some(&v), &body).into_response())
}

async fn account_token(
    State(st): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Pairs,
) -> PageResult {
    let (v, _) = require_post(&st, &headers, &uri, form, Need::Any).await?;
    let token = actions::rotate_token(st.store(), &v.user.name)
        .await
        .map_err(|e| fail(&v, e))?;
    Ok(secret_page(
        &v,
        "API token",
        "Your new API token (the previous one no longer works):",
        &token,
        "/account",
    ))
}

/// `one` when `n` is 1, else `many` ("1 sensor", "0 sensors", "2 sensors").
fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// A form field holding a whole number, or nothing (empty: `None`, "the default").
fn optional_u64(field: &str, error: &str) -> Result<Option<u64>, Failure> {
    let field = field.trim();
    if field.is_empty() {
        return Ok(None);
    }
    field.parse().map(Some).map_err(|_| Failure::bad(error))
}
