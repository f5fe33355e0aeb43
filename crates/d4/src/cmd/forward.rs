//! `d4 forward`: forwarding rules that share accepted frames with partner D4 servers —
//! `add`, `list`, `show`, `enable`, `disable`, `set`, `remove`. A rule lives in the store (every
//! server on one Redis shares it); the server's forwarding engine applies it. Mounted
//! inside the admin commands (same store access, exit statuses and output helpers).

use std::sync::Arc;

use clap::{Args, Subcommand};
use d4_store::validate;
use d4_store::{
    ForwardFilter, ForwardRule, ForwardServerStats, ForwardStats, ForwardTls, Store, StoreError,
};

use super::output::{fmt_time, print_json, table};
use super::{check, type_name, CommonArgs, R};

#[path = "forward_rule.rs"]
mod rule;
use rule::{apply_set, rule_of, RuleArgs, SetArgs};
#[cfg(test)]
use rule::{normalize_pin, pin_of_pem};

#[derive(Debug, Args)]
pub struct ForwardArgs {
    #[command(flatten)]
    pub(super) store: CommonArgs,
    #[command(subcommand)]
    pub(super) cmd: ForwardCmd,
}

#[derive(Debug, Subcommand)]
pub(super) enum ForwardCmd {
    /// Add a rule.
    Add(Box<RuleArgs>),
    /// One line per rule: enabled, destination, types, forwarded frames, spooled, lag, last
    /// error.
    List,
    /// One rule (secrets masked) and its counters per server.
    Show {
        name: String,
        /// Print the HMAC key and the privacy key.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Enable a rule.
    Enable { name: String },
    /// Disable a rule: it stops reading; its spool is kept and sent once enabled again.
    Disable { name: String },
    /// Change a rule's partner settings (only the options given), keeping its spool and
    /// counters: what was spooled goes to the new destination, framed again with the new
    /// UUID and key (e.g. after the partner refused a wrong key). Filters and privacy
    /// settings: remove and add the rule, or use the REST API or the Sharing page.
    Set(Box<SetArgs>),
    /// Remove a rule and its counters (and its spool: frames not sent yet are dropped).
    Remove { name: String },
}

fn types_text(f: &ForwardFilter) -> String {
    let mut parts: Vec<String> = f.types.iter().map(u8::to_string).collect();
    if parts.is_empty() {
        parts.push("all".into());
    }
    for e in &f.ext_types {
        parts.push(format!("254:{e}"));
    }
    parts.join(",")
}

fn trust_text(t: &ForwardTls) -> String {
    match (&t.ca_pem, &t.pin_sha256, t.plain) {
        (_, _, true) => "plain TCP (no TLS)".into(),
        (Some(_), _, _) => "TLS, certificate checked against the rule's CA".into(),
        (_, Some(pin), _) => format!("TLS, certificate pinned sha256:{pin}"),
        _ => "-".into(),
    }
}

fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn error_text(s: &ForwardStats) -> String {
    match &s.last_error {
        Some(e) => format!("{e} ({})", fmt_time(s.last_error_time)),
        None => "-".into(),
    }
}

/// The JSON of `show --json`: the rule (masked unless asked) and its counters.
#[derive(serde::Serialize)]
struct ShowJson<'a> {
    rule: &'a ForwardRule,
    total: ForwardStats,
    servers: &'a [ForwardServerStats],
}

/// The JSON of one `list --json` entry.
#[derive(serde::Serialize)]
struct ListJson<'a> {
    rule: &'a ForwardRule,
    total: &'a ForwardStats,
}

fn print_rule(r: &ForwardRule) {
    outln!("name:          {}", r.name);
    outln!("enabled:       {}", if r.enabled { "yes" } else { "no" });
    outln!("description:   {}", r.description);
    outln!("destination:   {}", r.destination);
    outln!("trust:         {}", trust_text(&r.tls));
    outln!("uuid:          {}", r.uuid.hyphenated());
    outln!("hmac key:      {}", r.hmac_key);
    outln!("filter:        {}", r.filter.summary());
    let types: Vec<String> = r
        .filter
        .types
        .iter()
        .map(|t| format!("{t} ({})", type_name(*t)))
        .collect();
    outln!(
        "  types:       {}",
        if types.is_empty() {
            "all".into()
        } else {
            types.join(", ")
        }
    );
    for (what, list) in [
        ("ext types", &r.filter.ext_types),
        ("tags", &r.filter.tags),
        ("groups", &r.filter.groups),
    ] {
        if !list.is_empty() {
            outln!("  {:<12} {}", format!("{what}:"), list.join(", "));
        }
    }
    for s in &r.filter.sensors {
        outln!("  sensor:      {}", s.simple());
    }
    outln!(
        "meta tags:     {}",
        if r.tags.is_empty() {
            "-".into()
        } else {
            r.tags.join(", ")
        }
    );
    outln!("privacy key:   {}", r.privacy.key);
    if let Some(p) = &r.privacy.pdns {
        outln!(
            "passive DNS:   client IP {:?}, round {} s, aggregate {} s",
            p.client_ip,
            p.round_secs,
            p.aggregate_secs
        );
    }
    if let Some(p) = &r.privacy.pcap {
        let nets: Vec<String> = p.prefixes.iter().map(|n| n.to_string()).collect();
        outln!(
            "pcap:          pseudonymise {}{}",
            if nets.is_empty() {
                "nothing".into()
            } else {
                nets.join(", ")
            },
            if p.truncate_payload {
                "; payloads truncated"
            } else {
                ""
            }
        );
    }
    if let Some(j) = &r.privacy.json {
        outln!(
            "JSON:          drop [{}], pseudonymise [{}]",
            j.drop.join(", "),
            j.pseudonymise.join(", ")
        );
    }
    if let Some(l) = &r.privacy.log {
        outln!(
            "log:           redact {} pattern(s) with {:?}",
            l.redact.len(),
            if l.replacement.is_empty() {
                "[REDACTED]"
            } else {
                &l.replacement
            }
        );
        for p in &l.redact {
            outln!("  pattern:     {p}");
        }
    }
    outln!("spool limit:   {}", bytes_text(r.spool_limit_bytes()));
    outln!("created:       {}", fmt_time(Some(r.created)));
    outln!("updated:       {}", fmt_time(Some(r.updated)));
}

fn stats_row(server: &str, time: Option<u64>, s: &ForwardStats) -> Vec<String> {
    vec![
        server.to_string(),
        if s.connected { "yes" } else { "no" }.into(),
        s.frames_forwarded.to_string(),
        bytes_text(s.bytes_forwarded),
        format!("{} ({})", s.frames_spooled, bytes_text(s.bytes_spooled)),
        s.frames_filtered.to_string(),
        s.duplicates.to_string(),
        s.dropped.to_string(),
        format!("{} s", s.lag_secs),
        fmt_time(time),
        error_text(s),
    ]
}

async fn get(store: &dyn Store, name: &str) -> R<ForwardRule> {
    check(validate::forward_rule_name(name))?;
    match store.get_forward_rule(name.to_string()).await? {
        Some(r) => Ok(r),
        None => Err(StoreError::NotFound(format!("forwarding rule {name}")).into()),
    }
}

/// Run `d4 forward ...`.
pub(super) async fn forward(store: Arc<dyn Store>, cmd: ForwardCmd, json: bool) -> R<()> {
    match cmd {
        ForwardCmd::Add(args) => {
            let (rule, generated) = rule_of(*args)?;
            let rule = store.create_forward_rule(rule, d4_store::now()).await?;
            if json {
                print_json(&rule.masked())?;
            } else {
                outln!(
                    "added rule {} ({}): {} to {}",
                    rule.name,
                    if rule.enabled { "enabled" } else { "disabled" },
                    rule.filter.summary(),
                    rule.destination
                );
            }
            if generated {
                eprintln!(
                    "d4: the partner must register sensor {} with this HMAC key: {}",
                    rule.uuid.hyphenated(),
                    rule.hmac_key
                );
            }
        }
        ForwardCmd::List => {
            let rules = store.list_forward_rules().await?;
            let mut rows = Vec::new();
            let mut out = Vec::new();
            for r in rules {
                let stats = store.forward_stats(r.name.clone()).await?;
                let total = ForwardStats::total(&stats);
                if json {
                    out.push((r.masked(), total));
                    continue;
                }
                rows.push(vec![
                    r.name.clone(),
                    if r.enabled { "yes" } else { "no" }.into(),
                    r.destination.clone(),
                    types_text(&r.filter),
                    total.frames_forwarded.to_string(),
                    total.frames_spooled.to_string(),
                    format!("{} s", total.lag_secs),
                    error_text(&total),
                ]);
            }
            if json {
                let list: Vec<ListJson> = out
                    .iter()
                    .map(|(rule, total)| ListJson { rule, total })
                    .collect();
                print_json(&list)?;
            } else {
                table(
                    &[
                        "NAME",
                        "ENABLED",
                        "DESTINATION",
                        "TYPES",
                        "FORWARDED",
                        "SPOOLED",
                        "LAG",
                        "LAST ERROR",
                    ],
                    rows,
                );
            }
        }
        ForwardCmd::Show { name, show_secrets } => {
            let rule = get(&*store, &name).await?;
            let rule = if show_secrets { rule } else { rule.masked() };
            let servers = store.forward_stats(name).await?;
            let total = ForwardStats::total(&servers);
            if json {
                print_json(&ShowJson {
                    rule: &rule,
                    total,
                    servers: &servers,
                })?;
                return Ok(());
            }
            print_rule(&rule);
            outln!();
            let mut rows: Vec<Vec<String>> = servers
                .iter()
                .map(|s| stats_row(&s.server_id, Some(s.time), &s.stats))
                .collect();
            if servers.len() > 1 {
                rows.push(stats_row("(total)", None, &total));
            }
            table(
                &[
                    "SERVER",
                    "CONNECTED",
                    "FRAMES",
                    "BYTES",
                    "SPOOLED",
                    "FILTERED",
                    "DUPLICATES",
                    "DROPPED",
                    "LAG",
                    "REPORTED",
                    "LAST ERROR",
                ],
                rows,
            );
        }
        ForwardCmd::Enable { name } => set_enabled(&*store, name, true, json).await?,
        ForwardCmd::Disable { name } => set_enabled(&*store, name, false, json).await?,
        ForwardCmd::Set(args) => {
            let name = args.name.clone();
            let rule = apply_set(get(&*store, &name).await?, *args)?;
            let rule = store.update_forward_rule(rule, d4_store::now()).await?;
            if json {
                print_json(&rule.masked())?;
            } else {
                outln!(
                    "rule {} now sends to {} ({}) as {} (its spool is kept)",
                    rule.name,
                    rule.destination,
                    trust_text(&rule.tls),
                    rule.uuid.hyphenated()
                );
            }
        }
        ForwardCmd::Remove { name } => {
            check(validate::forward_rule_name(&name))?;
            if !store.delete_forward_rule(name.clone()).await? {
                return Err(StoreError::NotFound(format!("forwarding rule {name}")).into());
            }
            if json {
                print_json(&serde_json::json!({ "removed": name }))?;
            } else {
                outln!("removed rule {name}");
            }
        }
    }
    Ok(())
}

async fn set_enabled(store: &dyn Store, name: String, enabled: bool, json: bool) -> R<()> {
    check(validate::forward_rule_name(&name))?;
    let rule = store.set_forward_rule_enabled(name, enabled).await?;
    if json {
        print_json(&rule.masked())?;
    } else {
        outln!(
            "rule {} {}",
            rule.name,
            if enabled { "enabled" } else { "disabled" }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins() {
        let colon = (0..32).map(|_| "AB").collect::<Vec<_>>().join(":");
        assert_eq!(normalize_pin(&colon).ok(), Some("ab".repeat(32)));
        assert!(normalize_pin("abcd").is_err());
        // SHA-256 of the DER bytes "hello" base64-encoded in a PEM block.
        let pem = "-----BEGIN CERTIFICATE-----\naGVs\nbG8=\n-----END CERTIFICATE-----\n";
        assert_eq!(
            pin_of_pem(pem).as_deref(),
            Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        assert_eq!(pin_of_pem("no pem"), None);
    }
}
