//! The rule settings of `d4 forward add` and `set`, and the rule they make.

use clap::{Args, ValueEnum};
use d4_store::{
    validate, AddressAction, ForwardFilter, ForwardRule, ForwardTls, JsonPrivacy, LogPrivacy,
    PcapPrivacy, PdnsPrivacy, Privacy,
};
use sha2::Digest;

use super::super::{bad, check, parse_net, parse_type, parse_uuid, R};

/// Bytes of a generated HMAC key (printed as hex).
const GENERATED_KEY_BYTES: usize = 32;

/// What becomes of the client IP of passive DNS lines.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(in crate::cmd::admin) enum ClientIp {
    Keep,
    Pseudonymise,
    Drop,
}

/// Every setting of a rule (`add`).
#[derive(Debug, Args)]
pub(in crate::cmd::admin) struct RuleArgs {
    /// Rule name: 1-64 of A-Z a-z 0-9 . _ -
    name: String,
    /// The partner's D4 server, HOST:PORT.
    #[arg(long = "to", value_name = "HOST:PORT")]
    to: String,
    #[command(flatten)]
    trust: TrustArgs,
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

/// How the partner's certificate is checked (one of them).
#[derive(Debug, Args)]
pub(in crate::cmd::admin) struct TrustArgs {
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
}

impl TrustArgs {
    fn given(&self) -> bool {
        self.ca.is_some() || self.pin.is_some() || self.pin_from.is_some() || self.plain
    }
}

/// The partner settings `set` can change.
#[derive(Debug, Args)]
pub(in crate::cmd::admin) struct SetArgs {
    pub(super) name: String,
    /// The partner's D4 server, HOST:PORT.
    #[arg(long = "to", value_name = "HOST:PORT")]
    to: Option<String>,
    #[command(flatten)]
    trust: TrustArgs,
    /// The sensor UUID this server uses at the partner.
    #[arg(long, value_name = "UUID")]
    uuid: Option<String>,
    /// Its HMAC key at the partner.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// Tag sent in the meta header of extended types (repeat; replaces the list).
    #[arg(long = "meta-tag", value_name = "T")]
    meta_tags: Vec<String>,
    /// Bound of the rule's spool, in bytes.
    #[arg(long, value_name = "BYTES")]
    spool_limit: Option<u64>,
    #[arg(long)]
    description: Option<String>,
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

/// The trust settings given (`None`: none of --ca, --pin, --pin-from, --plain).
fn trust_of(t: &TrustArgs) -> R<Option<ForwardTls>> {
    Ok(Some(if let Some(path) = &t.ca {
        let pem = read_file(path, "CA file")?;
        ForwardTls {
            ca_pem: Some(pem),
            ..Default::default()
        }
    } else if let Some(pin) = &t.pin {
        ForwardTls {
            pin_sha256: Some(normalize_pin(pin)?),
            ..Default::default()
        }
    } else if let Some(path) = &t.pin_from {
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
    } else if t.plain {
        ForwardTls {
            plain: true,
            ..Default::default()
        }
    } else {
        return Ok(None);
    }))
}

/// `rule` with the settings of `a` that were given.
pub(super) fn apply_set(mut rule: ForwardRule, a: SetArgs) -> R<ForwardRule> {
    let trust_given = a.trust.given();
    if a.to.is_none()
        && !trust_given
        && a.uuid.is_none()
        && a.key.is_none()
        && a.meta_tags.is_empty()
        && a.spool_limit.is_none()
        && a.description.is_none()
    {
        return bad("nothing to change: give at least one setting (see d4 forward set --help)");
    }
    if a.to.is_some() && rule.tls.plain && !trust_given {
        return bad(
            "the rule sends in plain TCP: to change its destination say how to reach the \
             new one (--plain again, or --ca, --pin or --pin-from)",
        );
    }
    if let Some(to) = a.to {
        check(validate::destination(&to))?;
        rule.destination = to;
    }
    if let Some(tls) = trust_of(&a.trust)? {
        rule.tls = tls;
    }
    if let Some(u) = &a.uuid {
        rule.uuid = parse_uuid(u)?;
    }
    if let Some(k) = a.key {
        rule.hmac_key = k;
    }
    if !a.meta_tags.is_empty() {
        rule.tags = a.meta_tags;
    }
    if let Some(l) = a.spool_limit {
        rule.spool_limit = l;
    }
    if let Some(d) = a.description {
        rule.description = d;
    }
    check(validate::forward_rule(&rule))?;
    Ok(rule)
}

/// The rule described by the arguments; whether its HMAC key was generated.
pub(super) fn rule_of(a: RuleArgs) -> R<(ForwardRule, bool)> {
    check(validate::forward_rule_name(&a.name))?;
    check(validate::destination(&a.to))?;
    let tls = match trust_of(&a.trust)? {
        Some(t) => t,
        None => {
            return bad(
                "say how to check the partner's certificate: --ca FILE, --pin SHA256, \
                 --pin-from FILE, or --plain",
            )
        }
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
