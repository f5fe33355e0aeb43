//! Axum extractors for the checks every handler shares, so no handler repeats them:
//!
//! - [`Auth<R>`]: the API caller (`Authorization: <token>`), allowed to do `R`; refusals
//!   are JSON (401 without or with a wrong token, 403 for a role that may not).
//! - [`Login<R>`]: the logged-in browser user of a page, allowed to do `R`; else a redirect
//!   to the login page (no session), to the password page (change required) or a 403 page.
//! - [`FormPost<R, P>`]: a state-changing form POST: the form, the session, its CSRF token,
//!   the role, then the path extractor `P` — in that order, so nothing about the path is
//!   told to a caller that may not ask.
//! - Path extractors: [`SensorId`] / [`QueueId`] (a valid uuid: 400), [`KnownSensor`] /
//!   [`KnownQueue`] (one that exists: 404), [`Action<A>`] (a known `{action}`: 404). They
//!   answer as the front end of the request does: an error page for a logged-in browser
//!   (the [`Viewer`] the auth extractor left in the request), JSON for the API.
//!
//! `R` is one of the role markers [`AnyRole`], [`Register`], [`Read`], [`Admin`].

use std::collections::HashMap;
use std::marker::PhantomData;

use axum::extract::{Form, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use d4_store::{Queue, Sensor, User};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::actions;
use crate::auth::{self, Need, Viewer};
use crate::failure::{Failure, Res};
use crate::{view, Fields, WebState};

/// What a route needs, as a type.
pub trait Access: Send + Sync + 'static {
    const NEED: Need;
}

/// Any logged-in user (own account, password).
pub struct AnyRole;
/// Register sensors: sensor_register, user, admin.
pub struct Register;
/// Read the UI / API: user, admin.
pub struct Read;
/// Change anything: admin.
pub struct Admin;

impl Access for AnyRole {
    const NEED: Need = Need::Any;
}
impl Access for Register {
    const NEED: Need = Need::Register;
}
impl Access for Read {
    const NEED: Need = Need::Read;
}
impl Access for Admin {
    const NEED: Need = Need::Admin;
}

fn role_refused(user: &User) -> Failure {
    Failure::forbidden(format!(
        "forbidden: role {} may not do this",
        user.role.as_str()
    ))
}

/// The token's user, when allowed to do `need` (also used by `/metrics`, whose auth is
/// conditional).
pub(crate) async fn api_user(st: &WebState, headers: &HeaderMap, need: Need) -> Res<User> {
    let has_header = headers.contains_key(header::AUTHORIZATION);
    match auth::token_user(st.store(), headers).await? {
        Some(u) if auth::allowed(u.role, need) => Ok(u),
        Some(u) => Err(role_refused(&u)),
        // d4-core's texts, word for word (its `token_required` decorator).
        None if has_header => Err(Failure::new(StatusCode::UNAUTHORIZED, "Invalid Token")),
        None => Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "Authentication needed",
        )),
    }
}

/// The API caller, allowed to do `R`.
pub struct Auth<R> {
    pub user: User,
    _role: PhantomData<R>,
}

impl<R: Access> FromRequestParts<WebState> for Auth<R> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, st: &WebState) -> Res<Self> {
        let user = api_user(st, &parts.headers, R::NEED).await?;
        Ok(Auth {
            user,
            _role: PhantomData,
        })
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The logged-in browser user of a page, allowed to do `R`.
pub struct Login<R> {
    pub viewer: Viewer,
    _role: PhantomData<R>,
}

impl<R: Access> FromRequestParts<WebState> for Login<R> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &WebState) -> Result<Self, Response> {
        let viewer = page_viewer(st, &parts.headers, &parts.uri, R::NEED).await?;
        parts.extensions.insert(viewer.clone());
        Ok(Login {
            viewer,
            _role: PhantomData,
        })
    }
}

async fn page_viewer(
    st: &WebState,
    headers: &HeaderMap,
    uri: &Uri,
    need: Need,
) -> Result<Viewer, Response> {
    let Some(v) = auth::viewer(st, headers).await else {
        let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        return Err(see_other(&format!("/login?next={}", view::url_enc(next))));
    };
    if v.user.must_change_password && uri.path() != "/password" {
        return Err(see_other("/password"));
    }
    if !auth::allowed(v.user.role, need) {
        return Err(view::error_page(Some(&v), &role_refused(&v.user)));
    }
    Ok(v)
}

/// A state-changing form POST by a logged-in user allowed to do `R`, with the path
/// extracted by `P` (checked after the user).
pub struct FormPost<R, P = ()> {
    pub viewer: Viewer,
    pub fields: Fields,
    pub path: P,
    _role: PhantomData<R>,
}

impl<R, P> FromRequest<WebState> for FormPost<R, P>
where
    R: Access,
    P: FromRequestParts<WebState> + Send,
    P::Rejection: IntoResponse,
{
    type Rejection = Response;

    async fn from_request(req: Request, st: &WebState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let mut form_req = Request::new(body);
        *form_req.method_mut() = parts.method.clone();
        *form_req.uri_mut() = parts.uri.clone();
        *form_req.headers_mut() = parts.headers.clone();
        let Form(pairs) = Form::<Vec<(String, String)>>::from_request(form_req, st)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields = Fields::from_pairs(pairs);
        let Some(v) = auth::viewer(st, &parts.headers).await else {
            return Err(view::error_page(
                None,
                &Failure::forbidden("not logged in (or the session expired): log in again"),
            ));
        };
        if !crate::ct_eq(fields.get("csrf"), &v.csrf) {
            tracing::warn!(user = %v.user.name, path = %parts.uri.path(), "web: CSRF token missing or invalid");
            return Err(view::error_page(
                Some(&v),
                &Failure::forbidden("CSRF token missing or invalid: reload the page and retry"),
            ));
        }
        if v.user.must_change_password && !matches!(parts.uri.path(), "/password" | "/logout") {
            return Err(see_other("/password"));
        }
        if !auth::allowed(v.user.role, R::NEED) {
            return Err(view::error_page(Some(&v), &role_refused(&v.user)));
        }
        parts.extensions.insert(v.clone());
        let path = P::from_request_parts(&mut parts, st)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(FormPost {
            viewer: v,
            fields,
            path,
            _role: PhantomData,
        })
    }
}

/// A refusal of a path extractor, answered as the request's front end answers.
pub struct Rejected {
    failure: Failure,
    viewer: Option<Viewer>,
}

impl Rejected {
    fn new(parts: &Parts, failure: Failure) -> Rejected {
        Rejected {
            failure,
            viewer: parts.extensions.get::<Viewer>().cloned(),
        }
    }
}

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        match &self.viewer {
            Some(v) => view::error_page(Some(v), &self.failure),
            None => self.failure.into_response(),
        }
    }
}

/// A path parameter by name.
async fn param(parts: &mut Parts, st: &WebState, name: &str) -> Result<String, Rejected> {
    let Path(mut map) = Path::<HashMap<String, String>>::from_request_parts(parts, st)
        .await
        .map_err(|e| Rejected::new(parts, Failure::bad(e.body_text())))?;
    Ok(map.remove(name).unwrap_or_default())
}

async fn uuid_param(parts: &mut Parts, st: &WebState) -> Result<Uuid, Rejected> {
    let raw = param(parts, st, "uuid").await?;
    actions::parse_uuid(&raw).map_err(|f| Rejected::new(parts, f))
}

/// The `{uuid}` of a sensor route (valid, maybe unknown).
pub struct SensorId(pub Uuid);

impl FromRequestParts<WebState> for SensorId {
    type Rejection = Rejected;

    async fn from_request_parts(parts: &mut Parts, st: &WebState) -> Result<Self, Rejected> {
        uuid_param(parts, st).await.map(SensorId)
    }
}

/// The sensor of a `{uuid}` route, which must exist.
pub struct KnownSensor(pub Sensor);

impl FromRequestParts<WebState> for KnownSensor {
    type Rejection = Rejected;

    async fn from_request_parts(parts: &mut Parts, st: &WebState) -> Result<Self, Rejected> {
        let uuid = uuid_param(parts, st).await?;
        match actions::sensor(st.store(), uuid).await {
            Ok(s) => Ok(KnownSensor(s)),
            Err(f) => Err(Rejected::new(parts, f)),
        }
    }
}

/// The `{uuid}` of a queue route (valid, maybe unknown).
pub struct QueueId(pub Uuid);

impl FromRequestParts<WebState> for QueueId {
    type Rejection = Rejected;

    async fn from_request_parts(parts: &mut Parts, st: &WebState) -> Result<Self, Rejected> {
        uuid_param(parts, st).await.map(QueueId)
    }
}

/// The queue of a `{uuid}` route, which must exist.
pub struct KnownQueue(pub Queue);

impl FromRequestParts<WebState> for KnownQueue {
    type Rejection = Rejected;

    async fn from_request_parts(parts: &mut Parts, st: &WebState) -> Result<Self, Rejected> {
        let uuid = uuid_param(parts, st).await?;
        match actions::queue(st.store(), uuid).await {
            Ok(q) => Ok(KnownQueue(q)),
            Err(f) => Err(Rejected::new(parts, f)),
        }
    }
}

/// The `{name}` of a forwarding rule route: a valid name (400) of a rule that exists (404).
pub struct KnownRule(pub d4_store::ForwardRule);

impl FromRequestParts<WebState> for KnownRule {
    type Rejection = Rejected;

    async fn from_request_parts(parts: &mut Parts, st: &WebState) -> Result<Self, Rejected> {
        let name = param(parts, st, "name").await?;
        if let Err(e) = d4_store::validate::forward_rule_name(&name) {
            return Err(Rejected::new(parts, e.into()));
        }
        match st.store().get_forward_rule(name.clone()).await {
            Ok(Some(r)) => Ok(KnownRule(r)),
            Ok(None) => Err(Rejected::new(
                parts,
                Failure::not_found(format!("unknown forwarding rule {name}")),
            )),
            Err(e) => Err(Rejected::new(parts, e.into())),
        }
    }
}

/// The `{action}` of a form route, one of the names of `A` (kebab-case serde enum); an
/// unknown name is a 404.
pub struct Action<A>(pub A);

impl<A: DeserializeOwned + Send> FromRequestParts<WebState> for Action<A> {
    type Rejection = Rejected;

    async fn from_request_parts(parts: &mut Parts, st: &WebState) -> Result<Self, Rejected> {
        let raw = param(parts, st, "action").await?;
        serde_json::from_value(serde_json::Value::String(raw))
            .map(Action)
            .map_err(|_| Rejected::new(parts, Failure::not_found("unknown action")))
    }
}
