//! The "Sharing" pages (admin only): forwarding rules with their counters, one rule's page
//! (settings, counters per server, edit form) and its actions (enable, disable, remove).
//! Lists in the form are words separated by spaces or commas; redaction patterns one per
//! line. Secrets are never shown: an empty key field keeps the stored (or generates a new)
//! key.

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use d4_store::{
    validate, AddressAction, ForwardFilter, ForwardRule, ForwardServerStats, ForwardStats,
    ForwardTls, JsonPrivacy, LogPrivacy, PcapPrivacy, PdnsPrivacy, Privacy,
};
use maud::{html, Markup};
use serde::Deserialize;

use super::{back, optional_u64, MsgQuery, OrPage, PageResult};
use crate::extract::{Action, Admin, FormPost, KnownRule, Login};
use crate::failure::{Failure, Res};
use crate::view::{button, csrf_field, human_bytes, opt_time, page, secret_page, url_enc};
use crate::{Fields, WebState};

/// Bytes of an HMAC key generated for a rule created without one.
const GENERATED_KEY_BYTES: usize = 32;

/// Words of a list field (spaces, commas or new lines between them).
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn joined<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(" ")
}

fn parse_list<T>(field: &str, what: &str, parse: impl Fn(&str) -> Option<T>) -> Res<Vec<T>> {
    words(field)
        .iter()
        .map(|w| {
            parse(w.as_str()).ok_or_else(|| Failure::bad(format!("{what}: {w:?} is not valid")))
        })
        .collect()
}

/// The rule of the form; `stored` (edit) supplies the name and the secrets left empty.
fn form_rule(f: &Fields, stored: Option<&ForwardRule>) -> Res<(ForwardRule, Option<String>)> {
    let name = match stored {
        Some(s) => s.name.clone(),
        None => f.get("name").trim().to_string(),
    };
    validate::forward_rule_name(&name)?;
    let tls = match f.get("trust") {
        "ca" => ForwardTls {
            ca_pem: Some(f.get("ca_pem").trim().to_string() + "\n"),
            ..Default::default()
        },
        "plain" => ForwardTls {
            plain: true,
            ..Default::default()
        },
        _ => ForwardTls {
            pin_sha256: Some(f.get("pin").trim().replace(':', "").to_ascii_lowercase()),
            ..Default::default()
        },
    };
    let uuid = validate::parse_uuid(f.get("uuid"))?;
    let key = f.get("hmac_key").trim();
    let (hmac_key, generated) = match (key.is_empty(), stored) {
        (false, _) => (key.to_string(), None),
        (true, Some(s)) => (s.hmac_key.clone(), None),
        (true, None) => {
            let k = d4_store::random_hex(GENERATED_KEY_BYTES)?;
            (k.clone(), Some(k))
        }
    };
    let types = parse_list(f.get("types"), "types", d4_proto::types::parse)?;
    let sensors = parse_list(f.get("sensors"), "sensors", |w| {
        validate::parse_uuid(w).ok()
    })?;
    let prefixes = parse_list(f.get("pcap_prefixes"), "pcap prefixes", |w| {
        w.parse::<ipnet::IpNet>()
            .ok()
            .or_else(|| w.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
    })?;
    let client_ip = match f.get("pdns_client_ip") {
        "pseudonymise" => AddressAction::Pseudonymise,
        "drop" => AddressAction::Drop,
        _ => AddressAction::Keep,
    };
    let round_secs =
        optional_u64(f.get("pdns_round"), "the rounding period must be a number")?.unwrap_or(0);
    let aggregate_secs = optional_u64(
        f.get("pdns_aggregate"),
        "the aggregation period must be a number",
    )?
    .unwrap_or(0);
    let redact: Vec<String> = f
        .get("log_redact")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let json_drop = words(f.get("json_drop"));
    let json_pseudonymise = words(f.get("json_pseudonymise"));
    let truncate = f.has("pcap_truncate");
    let privacy_key = f.get("privacy_key").trim();
    let rule = ForwardRule {
        name,
        enabled: f.has("enabled"),
        description: f.get("description").trim().to_string(),
        destination: f.get("destination").trim().to_string(),
        tls,
        uuid,
        hmac_key,
        filter: ForwardFilter {
            types,
            ext_types: words(f.get("ext_types")),
            sensors,
            tags: words(f.get("tags")),
            groups: words(f.get("groups")),
        },
        tags: words(f.get("meta_tags")),
        privacy: Privacy {
            // Empty: generated on create, kept on edit (by the store).
            key: privacy_key.to_string(),
            pdns: (client_ip != AddressAction::Keep || round_secs > 0 || aggregate_secs > 0)
                .then_some(PdnsPrivacy {
                    client_ip,
                    round_secs,
                    aggregate_secs,
                }),
            pcap: (!prefixes.is_empty() || truncate).then_some(PcapPrivacy {
                prefixes,
                truncate_payload: truncate,
            }),
            json: (!json_drop.is_empty() || !json_pseudonymise.is_empty()).then_some(JsonPrivacy {
                drop: json_drop,
                pseudonymise: json_pseudonymise,
            }),
            log: (!redact.is_empty()).then(|| LogPrivacy {
                redact,
                replacement: f.get("log_replacement").to_string(),
            }),
        },
        spool_limit: optional_u64(f.get("spool_limit"), "the spool limit must be a number")?
            .unwrap_or(0),
        created: 0,
        updated: 0,
    };
    validate::forward_rule(&rule)?;
    Ok((rule, generated))
}

/// The add / edit form, filled from `r` (a new rule: `None`).
fn rule_form(v: &crate::auth::Viewer, r: Option<&ForwardRule>) -> Markup {
    let action = match r {
        Some(r) => format!("/sharing/{}/edit", url_enc(&r.name)),
        None => "/sharing".into(),
    };
    let trust = match r.map(|r| &r.tls) {
        Some(t) if t.plain => "plain",
        Some(t) if t.ca_pem.is_some() => "ca",
        _ => "pin",
    };
    let pdns = r.and_then(|r| r.privacy.pdns.clone()).unwrap_or_default();
    let pcap = r.and_then(|r| r.privacy.pcap.clone()).unwrap_or_default();
    let json = r.and_then(|r| r.privacy.json.clone()).unwrap_or_default();
    let log = r.and_then(|r| r.privacy.log.clone()).unwrap_or_default();
    let filter = r.map(|r| r.filter.clone()).unwrap_or_default();
    let client_ip = match pdns.client_ip {
        AddressAction::Keep => "keep",
        AddressAction::Pseudonymise => "pseudonymise",
        AddressAction::Drop => "drop",
    };
    let keep = if r.is_some() {
        "empty: keep the stored one"
    } else {
        "empty: generate one"
    };
    html! {
        form method="post" action=(action) {
            (csrf_field(&v.csrf))
            @if r.is_none() {
                p { label { "Name " input name="name" required placeholder="to-partner-b"; } }
            }
            p { label { "Description " input name="description" size="60"
                value=(r.map(|r| r.description.as_str()).unwrap_or("")); } }
            p { label { "Enabled " input type="checkbox" name="enabled"
                checked[r.is_none_or(|r| r.enabled)]; } }
            h3 { "Partner" }
            p { label { "Destination (host:port) " input name="destination" required
                value=(r.map(|r| r.destination.as_str()).unwrap_or("")); } }
            p { label { "Certificate check "
                select name="trust" {
                    option value="pin" selected[trust == "pin"] { "pinned SHA-256" }
                    option value="ca" selected[trust == "ca"] { "CA certificate (PEM)" }
                    option value="plain" selected[trust == "plain"] { "plain TCP, no TLS" }
                } } }
            p { label { "SHA-256 pin " input name="pin" size="70"
                value=(r.and_then(|r| r.tls.pin_sha256.as_deref()).unwrap_or("")); } }
            p { label { "CA (PEM) " textarea name="ca_pem" rows="4" cols="70" {
                (r.and_then(|r| r.tls.ca_pem.as_deref()).unwrap_or("")) } } }
            p { label { "UUID at the partner " input name="uuid" size="40" required
                value=(r.map(|r| r.uuid.hyphenated().to_string()).unwrap_or_default()); } }
            p { label { "HMAC key at the partner (" (keep) ") "
                input type="password" name="hmac_key" autocomplete="off"; } }
            h3 { "Filter" }
            p { label { "Types (e.g. 1 8 254; empty = every type) " input name="types" value=(joined(&filter.types)); } }
            p { label { "Extended types " input name="ext_types" value=(joined(&filter.ext_types)); } }
            p { label { "Sensors (UUIDs) " input name="sensors" size="70"
                value=(filter.sensors.iter().map(|u| u.simple().to_string()).collect::<Vec<_>>().join(" ")); } }
            p { label { "Sensor tags " input name="tags" value=(joined(&filter.tags)); } }
            p { label { "Sensor groups " input name="groups" value=(joined(&filter.groups)); } }
            p { label { "Meta-header tags (e.g. tlp:green) " input name="meta_tags"
                value=(r.map(|r| joined(&r.tags)).unwrap_or_default()); } }
            h3 { "Privacy" }
            p { label { "Passive DNS client IP "
                select name="pdns_client_ip" {
                    option value="keep" selected[client_ip == "keep"] { "keep" }
                    option value="pseudonymise" selected[client_ip == "pseudonymise"] { "pseudonymise" }
                    option value="drop" selected[client_ip == "drop"] { "drop" }
                } } }
            p { label { "Passive DNS: round times to (s) " input name="pdns_round" value=(pdns.round_secs); } }
            p { label { "Passive DNS: aggregate over (s) " input name="pdns_aggregate" value=(pdns.aggregate_secs); } }
            p { label { "pcap: pseudonymise prefixes " input name="pcap_prefixes" size="60" value=(joined(&pcap.prefixes)); } }
            p { label { "pcap: truncate payloads " input type="checkbox" name="pcap_truncate" checked[pcap.truncate_payload]; } }
            p { label { "JSON: drop fields " input name="json_drop" value=(joined(&json.drop)); } }
            p { label { "JSON: pseudonymise fields " input name="json_pseudonymise" value=(joined(&json.pseudonymise)); } }
            p { label { "Logs: redact (one regular expression per line) "
                textarea name="log_redact" rows="3" cols="70" { (log.redact.join("\n")) } } }
            p { label { "Logs: replacement (empty = [REDACTED]) " input name="log_replacement" value=(log.replacement); } }
            p { label { "Privacy key, 64 hex digits (" (keep) ") "
                input type="password" name="privacy_key" autocomplete="off" size="70"; } }
            p { label { "Spool limit in bytes (empty = 1 GiB) " input name="spool_limit"
                value=(r.filter(|r| r.spool_limit > 0).map(|r| r.spool_limit.to_string()).unwrap_or_default()); } }
            p { button type="submit" { (if r.is_some() { "Save" } else { "Add" }) } }
        }
    }
}

fn trust_text(t: &ForwardTls) -> String {
    match (&t.ca_pem, &t.pin_sha256, t.plain) {
        (_, _, true) => "plain TCP".into(),
        (Some(_), _, _) => "CA".into(),
        (_, Some(p), _) => format!("pin {}…", &p[..p.len().min(16)]),
        _ => "-".into(),
    }
}

fn types_text(f: &ForwardFilter) -> String {
    if f.types.is_empty() {
        "all".into()
    } else {
        joined(&f.types)
    }
}

fn error_text(s: &ForwardStats) -> String {
    match &s.last_error {
        Some(e) => format!("{e} ({})", opt_time(s.last_error_time)),
        None => String::new(),
    }
}

fn stats_cells(s: &ForwardStats) -> Markup {
    html! {
        td { (s.frames_forwarded) " / " (human_bytes(s.bytes_forwarded)) }
        td { (s.frames_spooled) " / " (human_bytes(s.bytes_spooled)) }
        td { (s.lag_secs) " s" }
        td { (if s.connected { "yes" } else { "no" }) }
        td { (error_text(s)) }
    }
}

pub(super) async fn sharing(
    State(st): State<WebState>,
    Query(q): Query<MsgQuery>,
    Login { viewer: v, .. }: Login<Admin>,
) -> PageResult {
    let store = st.store();
    let rules = store.list_forward_rules().await.or_page(&v)?;
    let mut rows = Vec::new();
    for r in rules {
        let stats = store.forward_stats(r.name.clone()).await.or_page(&v)?;
        rows.push((ForwardStats::total(&stats), r));
    }
    let body = html! {
        (q.flash())
        p { "Rules that share accepted frames with partner D4 servers, after their privacy transforms. See docs/forward.md." }
        table {
            tr {
                th { "Rule" } th { "Enabled" } th { "Destination" } th { "Trust" } th { "Types" }
                th { "Filter" } th { "Forwarded frames / bytes" } th { "Spooled" } th { "Lag" }
                th { "Connected" } th { "Last error" } th {}
            }
            @for (t, r) in &rows {
                @let path = format!("/sharing/{}", url_enc(&r.name));
                tr {
                    td { a href=(path) { (r.name) } }
                    td { (if r.enabled { "yes" } else { "no" }) }
                    td { code { (r.destination) } }
                    td { (trust_text(&r.tls)) }
                    td { (types_text(&r.filter)) }
                    td { (r.filter.summary()) }
                    (stats_cells(t))
                    td {
                        @if r.enabled {
                            (button(&v, &format!("{path}/disable"), "Disable", html! {}))
                        } @else {
                            (button(&v, &format!("{path}/enable"), "Enable", html! {}))
                        }
                        (button(&v, &format!("{path}/remove"), "Remove", html! {}))
                    }
                }
            }
        }
        @if rows.is_empty() { p { "No rule yet." } }
        h2 { "Add a rule" }
        (rule_form(&v, None))
    };
    Ok(page("Sharing", Some(&v), body).into_response())
}

pub(super) async fn sharing_create(
    State(st): State<WebState>,
    FormPost {
        viewer: v,
        fields: f,
        ..
    }: FormPost<Admin>,
) -> PageResult {
    let (rule, generated) = form_rule(&f, None).or_page(&v)?;
    let rule = st
        .store()
        .create_forward_rule(rule, d4_store::now())
        .await
        .or_page(&v)?;
    tracing::info!(user = %v.user.name, rule = %rule.name, "web: forwarding rule created");
    let path = format!("/sharing/{}", url_enc(&rule.name));
    match generated {
        Some(key) => Ok(secret_page(
            &v,
            "Rule added",
            &format!(
                "The partner must register sensor {} with this HMAC key:",
                rule.uuid.hyphenated()
            ),
            &key,
            &path,
        )),
        None => Ok(back(&path, "rule-added")),
    }
}

fn server_row(s: &ForwardServerStats) -> Markup {
    html! {
        tr {
            td { code { (s.server_id) } }
            (stats_cells(&s.stats))
            td { (s.stats.frames_filtered) }
            td { (s.stats.duplicates) }
            td { (s.stats.dropped) }
            td { (opt_time(Some(s.time))) }
        }
    }
}

pub(super) async fn rule_page(
    State(st): State<WebState>,
    Query(q): Query<MsgQuery>,
    Login { viewer: v, .. }: Login<Admin>,
    KnownRule(r): KnownRule,
) -> PageResult {
    let servers = st.store().forward_stats(r.name.clone()).await.or_page(&v)?;
    let total = ForwardStats::total(&servers);
    let path = format!("/sharing/{}", url_enc(&r.name));
    let body = html! {
        (q.flash())
        table {
            tr { th { "Enabled" } td { (if r.enabled { "yes" } else { "no" }) } }
            tr { th { "Description" } td { (r.description) } }
            tr { th { "Destination" } td { code { (r.destination) } } }
            tr { th { "Trust" } td { (trust_text(&r.tls)) } }
            tr { th { "UUID at the partner" } td { code { (r.uuid.hyphenated()) } } }
            tr { th { "Filter" } td { (r.filter.summary()) } }
            tr { th { "Meta-header tags" } td { (joined(&r.tags)) } }
            tr { th { "Spool limit" } td { (human_bytes(r.spool_limit_bytes())) } }
            tr { th { "Created" } td { (opt_time(Some(r.created))) } }
            tr { th { "Updated" } td { (opt_time(Some(r.updated))) } }
        }
        p {
            @if r.enabled {
                (button(&v, &format!("{path}/disable"), "Disable", html! {}))
            } @else {
                (button(&v, &format!("{path}/enable"), "Enable", html! {}))
            }
            " "
            (button(&v, &format!("{path}/remove"), "Remove", html! {}))
        }
        h2 { "Counters per server" }
        table {
            tr {
                th { "Server" } th { "Forwarded frames / bytes" } th { "Spooled" } th { "Lag" }
                th { "Connected" } th { "Last error" } th { "Filtered" } th { "Duplicates" }
                th { "Dropped" } th { "Reported" }
            }
            @for s in &servers { (server_row(s)) }
            @if servers.len() > 1 {
                tr {
                    td { strong { "total" } }
                    (stats_cells(&total))
                    td { (total.frames_filtered) } td { (total.duplicates) } td { (total.dropped) } td {}
                }
            }
        }
        @if servers.is_empty() { p { "No server has reported yet." } }
        h2 { "Edit" }
        (rule_form(&v, Some(&r)))
    };
    Ok(page(&format!("Sharing rule {}", r.name), Some(&v), body).into_response())
}

/// The actions of `POST /sharing/{name}/{action}`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RuleAction {
    Enable,
    Disable,
    Remove,
    Edit,
}

pub(super) async fn rule_post(
    State(st): State<WebState>,
    FormPost {
        viewer: v,
        fields: f,
        path: (KnownRule(r), Action(action)),
        ..
    }: FormPost<Admin, (KnownRule, Action<RuleAction>)>,
) -> PageResult {
    let store = st.store();
    let path = format!("/sharing/{}", url_enc(&r.name));
    let user = &v.user.name;
    match action {
        RuleAction::Enable | RuleAction::Disable => {
            let on = matches!(action, RuleAction::Enable);
            store
                .set_forward_rule_enabled(r.name.clone(), on)
                .await
                .or_page(&v)?;
            tracing::info!(%user, rule = %r.name, enabled = on, "web: forwarding rule switched");
            Ok(back(
                &path,
                if on { "rule-enabled" } else { "rule-disabled" },
            ))
        }
        RuleAction::Remove => {
            store
                .delete_forward_rule(r.name.clone())
                .await
                .or_page(&v)?;
            tracing::info!(%user, rule = %r.name, "web: forwarding rule removed");
            Ok(back("/sharing", "rule-removed"))
        }
        RuleAction::Edit => {
            let (rule, _) = form_rule(&f, Some(&r)).or_page(&v)?;
            store
                .update_forward_rule(rule, d4_store::now())
                .await
                .or_page(&v)?;
            tracing::info!(%user, rule = %r.name, "web: forwarding rule saved");
            Ok(back(&path, "rule-saved"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_form_makes_the_rule() {
        let f = fields(&[
            ("name", "to-b"),
            ("enabled", "on"),
            ("destination", "127.0.0.1:4443"),
            ("trust", "pin"),
            ("pin", &"AB:".repeat(32)[..95]),
            ("uuid", "6a1f0b2e-8d8c-4e43-9f0e-3f5a2c1d9b7e"),
            ("types", "8, pcap"),
            ("tags", "share"),
            ("pdns_client_ip", "pseudonymise"),
            ("pcap_prefixes", "10.0.0.0/8 192.0.2.1"),
            ("log_redact", "user=\\w+\n\n"),
        ]);
        let (r, generated) = form_rule(&f, None).unwrap();
        assert!(generated.is_some_and(|k| k.len() == 64 && k == r.hmac_key));
        assert!(r.enabled);
        assert_eq!(r.tls.pin_sha256, Some("ab".repeat(32)));
        assert_eq!(r.filter.types, vec![8, 1]);
        assert_eq!(
            r.privacy.pdns.as_ref().map(|p| p.client_ip),
            Some(AddressAction::Pseudonymise)
        );
        assert_eq!(r.privacy.pcap.as_ref().map(|p| p.prefixes.len()), Some(2));
        assert_eq!(
            r.privacy.log.as_ref().map(|l| l.redact.clone()),
            Some(vec!["user=\\w+".to_string()])
        );
        // Editing with empty secrets keeps the stored key.
        let mut stored = r.clone();
        stored.hmac_key = "stored".into();
        let (e, g) = form_rule(&f, Some(&stored)).unwrap();
        assert_eq!((e.hmac_key.as_str(), g), ("stored", None));
        // Refusals carry the store's message.
        let bad = fields(&[
            ("name", "x"),
            ("destination", "h:1"),
            ("trust", "pin"),
            ("pin", "12"),
            ("uuid", "6a1f0b2e-8d8c-4e43-9f0e-3f5a2c1d9b7e"),
        ]);
        assert!(form_rule(&bad, None).unwrap_err().reason.contains("pin"));
        let bad = fields(&[
            ("name", "x"),
            ("destination", "h:1"),
            ("trust", "plain"),
            ("uuid", "6a1f0b2e-8d8c-4e43-9f0e-3f5a2c1d9b7e"),
            ("types", "5"),
        ]);
        assert!(form_rule(&bad, None).unwrap_err().reason.contains("type 5"));
    }
}
