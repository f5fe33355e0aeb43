//! `d4 forward`: forwarding rules that share accepted frames with partner D4 servers —
//! `add`, `list`, `show`, `enable`, `disable`, `remove`. A rule lives in the store (every
//! server on one Redis shares it); the server's forwarding engine applies it. Mounted
//! inside the admin commands (same store access, exit statuses and output helpers).

use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use d4_store::{
    validate, AddressAction, ForwardFilter, ForwardRule, ForwardServerStats, ForwardStats,
    ForwardTls, JsonPrivacy, LogPrivacy, PcapPrivacy, PdnsPrivacy, Privacy, Store, StoreError,
};
use sha2::Digest;

use super::output::{fmt_time, print_json, table};
use super::{bad, check, parse_net, parse_type, parse_uuid, type_name, CommonArgs, R};

/// Bytes of a generated HMAC key (printed as hex).
const GENERATED_KEY_BYTES: usize = 32;

#[derive(Debug, Args)]
pub struct ForwardArgs {
    #[command(flatten)]
    pub(super) store: CommonArgs,
    #[command(subcommand)]
    pub(super) cmd: ForwardCmd,
}

/// What becomes of the client IP of passive DNS lines.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum ClientIp {
    Keep,
    Pseudonymise,
    Drop,
}

/// Every setting of a rule (`add`).
#[derive(Debug, Args)]
pub(super) struct RuleArgs {
    /// Rule name: 1-64 of A-Z a-z 0-9 . _ -
    name: String,
    /// The partner's D4 server, HOST:PORT.
    #[arg(long = "to", value_name = "HOST:PORT")]
    to: String,
    /// Check the partner's certificate against this CA (PEM file; the partner's
    /// self-signed server.crt works).
    #[arg(long, value_name = "FILE", group = "trust")]
    ca: Option<std::path::PathBuf>,
    /// Pin the partner's certificate: its SHA-256 (64 hex digits, or AA:BB:.. form).
    #[arg(long, value_name = "SHA256", group = "trust")]
    pin: Option<String>,
    /// Pin the certificate in this PEM file (e.g. the partner's server.crt).
    #[arg(long, value_name = "FILE", group = "trust")]
    pin_from: Option<std::path::PathBuf>,
    /// Plain TCP, no TLS (a partner behind a TLS terminator on a trusted network).
    #[arg(long, group = "trust")]
    plain: bool,
    /// The sensor UUID this server uses at the partner (registered there).
    #[arg(long, value_name = "UUID")]
    uuid: String,
    /// Its HMAC key at the partner (default: a random key, printed once).
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// D4 type to forward, by number or name (repeat; default: every type).
    #[arg(long = "type", value_name = "N")]
    types: Vec<String>,
    /// Extended type to forward (repeat; default: every extended type).
    #[arg(long = "ext", value_name = "NAME")]
    ext: Vec<String>,
    /// Only frames of this sensor (repeat). With --tag and --group: any of them selects.
    #[arg(long = "sensor", value_name = "UUID")]
    sensors: Vec<String>,
    /// Only frames of sensors with this tag (repeat).
    #[arg(long = "tag", value_name = "T")]
    tags: Vec<String>,
    /// Only frames of sensors in this group (repeat; the group may be created later).
    #[arg(long = "group", value_name = "G")]
    groups: Vec<String>,
    /// Tag sent in the meta header of extended types, e.g. tlp:green (repeat).
    #[arg(long = "meta-tag", value_name = "T")]
    meta_tags: Vec<String>,
    /// Passive DNS: what becomes of the client IP.
    #[arg(long, value_enum, value_name = "ACTION")]
    pdns_client_ip: Option<ClientIp>,
    /// Passive DNS: round timestamps down to this many seconds.
    #[arg(long, value_name = "SECS")]
    pdns_round: Option<u64>,
    /// Passive DNS: aggregate identical lines over windows of this many seconds.
    #[arg(long, value_name = "SECS")]
    pdns_aggregate: Option<u64>,
    /// pcap: pseudonymise addresses inside this prefix (Crypto-PAn; repeat).
    #[arg(long = "pcap-prefix", value_name = "CIDR")]
    pcap_prefixes: Vec<String>,
    /// pcap: cut packets after their transport header.
    #[arg(long)]
    pcap_truncate: bool,
    /// JSON lines: drop this field (a key or a dotted path; repeat).
    #[arg(long = "json-drop", value_name = "F")]
    json_drop: Vec<String>,
    /// JSON lines: pseudonymise this field (repeat).
    #[arg(long = "json-pseudonymise", value_name = "F")]
    json_pseudonymise: Vec<String>,
    /// Log lines: replace every match of this regular expression (repeat).
    #[arg(long = "log-redact", value_name = "REGEX")]
    log_redact: Vec<String>,
    /// Log lines: the replacement text (default: [REDACTED]).
    #[arg(long, value_name = "TEXT")]
    log_replacement: Option<String>,
    /// The privacy key (64 hex digits; default: a random one).
    #[arg(long, value_name = "HEX")]
    privacy_key: Option<String>,
    /// Bound of the rule's spool, in bytes (default: 1 GiB).
    #[arg(long, value_name = "BYTES")]
    spool_limit: Option<u64>,
    /// Create the rule disabled.
    #[arg(long)]
    disabled: bool,
    #[arg(long, default_value = "")]
    description: String,
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
    /// Remove a rule and its counters.
    Remove { name: String },
}

/// A SHA-256 pin given as 64 hex digits or as `AA:BB:...`, normalised to lowercase hex.
pub(super) fn normalize_pin(pin: &str) -> R<String> {
    let hex: String = pin
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    check(validate::pin_sha256(&hex))?;
    Ok(hex)
}

/// The SHA-256 (lowercase hex) of the first certificate of a PEM text.
pub(super) fn pin_of_pem(pem: &str) -> Option<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let len = pem[start..].find(END)?;
    let b64: String = pem[start..start + len]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .ok()?;
    Some(hex::encode(sha2::Sha256::digest(&der)))
}

fn read_file(path: &std::path::Path, what: &str) -> R<String> {
    std::fs::read_to_string(path)
        .or_else(|e| bad(format!("cannot read {what} {}: {e}", path.display())))
}

fn random_key() -> R<String> {
    Ok(d4_store::random_hex(GENERATED_KEY_BYTES)?)
}

/// The rule described by the arguments; whether its HMAC key was generated.
fn rule_of(a: RuleArgs) -> R<(ForwardRule, bool)> {
    check(validate::forward_rule_name(&a.name))?;
    check(validate::destination(&a.to))?;
    let tls = if let Some(path) = &a.ca {
        let pem = read_file(path, "CA file")?;
        ForwardTls {
            ca_pem: Some(pem),
            ..Default::default()
        }
    } else if let Some(pin) = &a.pin {
        ForwardTls {
            pin_sha256: Some(normalize_pin(pin)?),
            ..Default::default()
        }
    } else if let Some(path) = &a.pin_from {
        let pem = read_file(path, "certificate")?;
        match pin_of_pem(&pem) {
            Some(pin) => ForwardTls {
                pin_sha256: Some(pin),
                ..Default::default()
            },
            None => {
                return bad(format!(
                    "{}: no PEM certificate (-----BEGIN CERTIFICATE-----) found",
                    path.display()
                ))
            }
        }
    } else if a.plain {
        ForwardTls {
            plain: true,
            ..Default::default()
        }
    } else {
        return bad(
            "say how to check the partner's certificate: --ca FILE, --pin SHA256, \
             --pin-from FILE, or --plain",
        );
    };
    let uuid = parse_uuid(&a.uuid)?;
    let (hmac_key, generated) = match a.key {
        Some(k) => (k, false),
        None => (random_key()?, true),
    };
    let mut types = Vec::new();
    for t in &a.types {
        let t = parse_type(t)?;
        check(validate::forward_type(t))?;
        types.push(t);
    }
    let mut sensors = Vec::new();
    for s in &a.sensors {
        sensors.push(parse_uuid(s)?);
    }
    let mut prefixes = Vec::new();
    for p in &a.pcap_prefixes {
        prefixes.push(parse_net(p)?);
    }
    let pdns = (a.pdns_client_ip.is_some() || a.pdns_round.is_some() || a.pdns_aggregate.is_some())
        .then(|| PdnsPrivacy {
            client_ip: match a.pdns_client_ip {
                Some(ClientIp::Pseudonymise) => AddressAction::Pseudonymise,
                Some(ClientIp::Drop) => AddressAction::Drop,
                Some(ClientIp::Keep) | None => AddressAction::Keep,
            },
            round_secs: a.pdns_round.unwrap_or(0),
            aggregate_secs: a.pdns_aggregate.unwrap_or(0),
        });
    let pcap = (!prefixes.is_empty() || a.pcap_truncate).then_some(PcapPrivacy {
        prefixes,
        truncate_payload: a.pcap_truncate,
    });
    let json =
        (!a.json_drop.is_empty() || !a.json_pseudonymise.is_empty()).then_some(JsonPrivacy {
            drop: a.json_drop,
            pseudonymise: a.json_pseudonymise,
        });
    let log = (!a.log_redact.is_empty() || a.log_replacement.is_some()).then(|| LogPrivacy {
        redact: a.log_redact,
        replacement: a.log_replacement.unwrap_or_default(),
    });
    let rule = ForwardRule {
        name: a.name,
        enabled: !a.disabled,
        description: a.description,
        destination: a.to,
        tls,
        uuid,
        hmac_key,
        filter: ForwardFilter {
            types,
            ext_types: a.ext,
            sensors,
            tags: a.tags,
            groups: a.groups,
        },
        tags: a.meta_tags,
        privacy: Privacy {
            key: a.privacy_key.unwrap_or_default(),
            pdns,
            pcap,
            json,
            log,
        },
        spool_limit: a.spool_limit.unwrap_or(0),
        created: 0,
        updated: 0,
    };
    check(validate::forward_rule(&rule))?;
    Ok((rule, generated))
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
