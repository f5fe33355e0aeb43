//! Forwarding rules (admin only): list, create, show, replace, delete, enable, disable.
//! Secrets (`hmac_key`, `privacy.key`) are shown as [`SECRET_MASK`]; a PUT carrying the
//! mask (or no `hmac_key`) keeps the stored secret.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use d4_store::{
    validate, ForwardFilter, ForwardRule, ForwardServerStats, ForwardStats, ForwardTls, Privacy,
    Store, SECRET_MASK,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{body, done, ok, ApiResult};
use crate::extract::{Admin, Auth};
use crate::failure::{Failure, Res};
use crate::WebState;

/// Bytes of an HMAC key generated for a rule created without one.
const GENERATED_KEY_BYTES: usize = 32;

/// A rule as the API takes it: a [`ForwardRule`] without its times, with `enabled`
/// (default true on create, unchanged on PUT) and `hmac_key` (generated on create, kept on
/// PUT) optional. Unknown fields (`created`, `updated` of a GET) are ignored.
#[derive(Deserialize)]
pub(crate) struct RuleReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    description: String,
    destination: String,
    #[serde(default)]
    tls: ForwardTls,
    uuid: Uuid,
    #[serde(default)]
    hmac_key: Option<String>,
    #[serde(default)]
    filter: ForwardFilter,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    privacy: Privacy,
    #[serde(default)]
    spool_limit: u64,
}

/// A rule with its counters, as GET answers.
#[derive(Serialize)]
struct RuleView {
    rule: ForwardRule,
    servers: Vec<ForwardServerStats>,
    total: ForwardStats,
}

async fn view(store: &dyn Store, rule: &ForwardRule) -> Res<RuleView> {
    let servers = store.forward_stats(rule.name.clone()).await?;
    Ok(RuleView {
        rule: rule.masked(),
        total: ForwardStats::total(&servers),
        servers,
    })
}

fn check_name(name: &str) -> Res<()> {
    Ok(validate::forward_rule_name(name)?)
}

/// The rule of a request; `stored` (PUT) supplies the secrets and `enabled` it omits.
fn rule_of(req: RuleReq, name: String, stored: Option<&ForwardRule>) -> Res<ForwardRule> {
    let mut tls = req.tls;
    if let Some(pin) = &mut tls.pin_sha256 {
        // Also the `AA:BB:...` form of certificate viewers.
        *pin = pin.trim().replace(':', "").to_ascii_lowercase();
    }
    let hmac_key = match (req.hmac_key, stored) {
        (Some(k), _) => k,
        (None, Some(s)) => s.hmac_key.clone(),
        (None, None) => d4_store::random_hex(GENERATED_KEY_BYTES)?,
    };
    let mut rule = ForwardRule {
        name,
        enabled: req
            .enabled
            .unwrap_or_else(|| stored.is_none_or(|s| s.enabled)),
        description: req.description,
        destination: req.destination,
        tls,
        uuid: req.uuid,
        hmac_key,
        filter: req.filter,
        tags: req.tags,
        privacy: req.privacy,
        spool_limit: req.spool_limit,
        created: 0,
        updated: 0,
    };
    if let Some(s) = stored {
        rule.keep_masked_secrets(s);
    }
    if rule.hmac_key == SECRET_MASK || rule.privacy.key == SECRET_MASK {
        return Err(Failure::bad(
            "a masked secret (********) can only be sent back to the rule it came from",
        ));
    }
    validate::forward_rule(&rule)?;
    Ok(rule)
}

async fn known(store: &dyn Store, name: &str) -> Res<ForwardRule> {
    check_name(name)?;
    store
        .get_forward_rule(name.to_string())
        .await?
        .ok_or_else(|| Failure::not_found(format!("unknown forwarding rule {name}")))
}

pub(super) async fn rules(State(st): State<WebState>, _: Auth<Admin>) -> ApiResult {
    let store = st.store();
    let mut out = Vec::new();
    for r in store.list_forward_rules().await? {
        out.push(view(store, &r).await?);
    }
    ok(serde_json::json!({ "rules": out }))
}

pub(super) async fn rule_create(State(st): State<WebState>, _: Auth<Admin>, b: Bytes) -> ApiResult {
    let req: RuleReq = body(&b)?;
    let name = req
        .name
        .clone()
        .ok_or_else(|| Failure::bad("the rule needs a name"))?;
    check_name(&name)?;
    let generated = req.hmac_key.is_none();
    let rule = rule_of(req, name, None)?;
    let rule = st
        .store()
        .create_forward_rule(rule, d4_store::now())
        .await?;
    tracing::info!(rule = %rule.name, "api: forwarding rule created");
    let mut answer = serde_json::json!({ "rule": rule.masked() });
    if generated {
        // The only time a generated key is shown: the partner registers it.
        answer["hmac_key"] = serde_json::Value::String(rule.hmac_key.clone());
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

pub(super) async fn rule_get(
    State(st): State<WebState>,
    _: Auth<Admin>,
    Path(name): Path<String>,
) -> ApiResult {
    let rule = known(st.store(), &name).await?;
    ok(view(st.store(), &rule).await?)
}

pub(super) async fn rule_put(
    State(st): State<WebState>,
    _: Auth<Admin>,
    Path(name): Path<String>,
    b: Bytes,
) -> ApiResult {
    let stored = known(st.store(), &name).await?;
    let req: RuleReq = body(&b)?;
    if req.name.as_deref().is_some_and(|n| n != name) {
        return Err(Failure::bad(
            "the body's name differs from the path's: rules cannot be renamed",
        ));
    }
    let rule = rule_of(req, name, Some(&stored))?;
    let rule = st
        .store()
        .update_forward_rule(rule, d4_store::now())
        .await?;
    ok(serde_json::json!({ "rule": rule.masked() }))
}

pub(super) async fn rule_delete(
    State(st): State<WebState>,
    _: Auth<Admin>,
    Path(name): Path<String>,
) -> ApiResult {
    check_name(&name)?;
    if !st.store().delete_forward_rule(name.clone()).await? {
        return Err(Failure::not_found(format!(
            "unknown forwarding rule {name}"
        )));
    }
    done()
}

async fn set_enabled(st: &WebState, name: String, enabled: bool) -> ApiResult {
    check_name(&name)?;
    let rule = st.store().set_forward_rule_enabled(name, enabled).await?;
    ok(serde_json::json!({ "rule": rule.masked() }))
}

pub(super) async fn rule_enable(
    State(st): State<WebState>,
    _: Auth<Admin>,
    Path(name): Path<String>,
) -> ApiResult {
    set_enabled(&st, name, true).await
}

pub(super) async fn rule_disable(
    State(st): State<WebState>,
    _: Auth<Admin>,
    Path(name): Path<String>,
) -> ApiResult {
    set_enabled(&st, name, false).await
}
