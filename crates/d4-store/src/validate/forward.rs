//! Checks of forwarding rules ([`forward_rule`]): what the store refuses and what the CLI,
//! REST API and Sharing page refuse early with the same message.

use d4_proto::types;

use super::{description, ext_name, hmac_key, invalid, short};
use crate::model::*;
use crate::Result;

/// Longest forwarding rule name, in bytes.
pub const MAX_RULE_NAME_LEN: usize = 64;
/// Longest meta-header tag of a rule (MISP tags such as `tlp:green`), in characters.
pub const MAX_META_TAG_CHARS: usize = 256;
/// Longest regular expression or JSON field name of a rule's privacy settings.
pub const MAX_PATTERN_CHARS: usize = 1024;
/// Most entries in one list of a rule (types, sensors, tags, prefixes, patterns...).
pub const MAX_RULE_LIST: usize = 1024;
/// Longest rounding or aggregation period of the passive DNS transform: one week.
pub const MAX_PDNS_PERIOD_SECS: u64 = 7 * 86_400;
/// Largest compiled size of a redaction pattern (the regex crate's limit), in bytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Forwarding rule names: `[A-Za-z0-9_.-]{1,64}`, not starting with '.' (they name spool
/// folders, metric labels and URL paths).
pub fn forward_rule_name(name: &str) -> Result<()> {
    if super::is_safe_name(name, MAX_RULE_NAME_LEN) && name != "journal" {
        Ok(())
    } else {
        Err(invalid(format!(
            "rule name {:?}: 1 to {MAX_RULE_NAME_LEN} characters of A-Z a-z 0-9 . _ -, \
             not starting with '.', not `journal` (the forwarder's own folder)",
            short(name)
        )))
    }
}

/// A partner destination: `host:port` with a DNS name, an IPv4 address or `[IPv6]`, and a
/// port from 1 to 65535.
pub fn destination(dest: &str) -> Result<()> {
    let bad = || {
        invalid(format!(
            "destination {:?}: expected host:port (a name, an IPv4 address or [IPv6], port 1-65535)",
            short(dest)
        ))
    };
    let (host, port) = dest.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 && !port.starts_with('+') => {}
        _ => return Err(bad()),
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| bad());
    }
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if name_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// A SHA-256 fingerprint: 64 hex digits (the store keeps them lowercase).
pub fn pin_sha256(pin: &str) -> Result<()> {
    if pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(invalid(format!(
            "certificate pin {:?}: expected the SHA-256 of the partner's certificate as 64 \
             hex digits",
            short(pin)
        )))
    }
}

/// A rule's TLS trust: no CA and no pin when `plain`, else exactly one of them; a CA is PEM
/// text with at least one certificate.
pub fn forward_tls(tls: &ForwardTls) -> Result<()> {
    match (&tls.ca_pem, &tls.pin_sha256, tls.plain) {
        (None, None, true) => Ok(()),
        (_, _, true) => Err(invalid(
            "plain TCP takes neither a CA nor a certificate pin",
        )),
        (Some(_), Some(_), false) => Err(invalid(
            "give either the partner's CA or its certificate pin, not both",
        )),
        (None, None, false) => Err(invalid(
            "the partner's certificate must be checked: give its CA (PEM) or its SHA-256 pin, \
             or choose plain TCP",
        )),
        (Some(pem), None, false) => {
            if pem.contains("-----BEGIN CERTIFICATE-----") && pem.len() <= 1 << 20 {
                Ok(())
            } else {
                Err(invalid(
                    "the CA must be PEM text holding at least one certificate \
                     (-----BEGIN CERTIFICATE-----)",
                ))
            }
        }
        (None, Some(pin), false) => pin_sha256(pin),
    }
}

/// A privacy key: 64 hex digits (32 bytes), or empty when the store is to generate it.
pub fn privacy_key(key: &str) -> Result<()> {
    if key.is_empty() || (key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())) {
        Ok(())
    } else {
        Err(invalid(
            "the privacy key must be 64 hex digits (32 bytes); leave it empty to generate one",
        ))
    }
}

/// A D4 type a rule may forward: any but 0 (reserved), 2 (meta headers: the forwarder
/// writes its own), 5 (pcapng) and 7 (YAF), which cannot be merged across sensors.
pub fn forward_type(t: u8) -> Result<()> {
    let why = match t {
        types::RESERVED => "reserved",
        types::META_HEADER => "meta headers are written by the forwarder itself",
        types::PCAPNG => "pcapng streams cannot be merged across sensors",
        types::YAF => "YAF streams cannot be merged across sensors",
        _ => return Ok(()),
    };
    Err(invalid(format!("type {t} cannot be forwarded ({why})")))
}

/// A printable text of 1 to `max` characters.
fn printable(what: &str, s: &str, max: usize) -> Result<()> {
    if s.trim().is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{what} {:?}: 1 to {max} printable characters",
            short(s)
        )));
    }
    Ok(())
}

fn bounded<T>(what: &str, list: &[T]) -> Result<()> {
    if list.len() > MAX_RULE_LIST {
        return Err(invalid(format!(
            "too many {what} (at most {MAX_RULE_LIST})"
        )));
    }
    Ok(())
}

/// A redaction pattern: a regular expression of the `regex` crate that compiles within
/// 1 MiB and matches something (an empty match would insert the replacement everywhere).
pub fn redact_pattern(p: &str) -> Result<()> {
    printable("redaction pattern", p, MAX_PATTERN_CHARS)?;
    let re = regex::RegexBuilder::new(p)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| invalid(format!("redaction pattern {:?}: {e}", short(p))))?;
    if re.is_match("") {
        return Err(invalid(format!(
            "redaction pattern {:?} matches the empty text",
            short(p)
        )));
    }
    Ok(())
}

fn filter(f: &ForwardFilter) -> Result<()> {
    bounded("types", &f.types)?;
    bounded("extended types", &f.ext_types)?;
    bounded("sensors", &f.sensors)?;
    bounded("tags", &f.tags)?;
    bounded("groups", &f.groups)?;
    for t in &f.types {
        forward_type(*t)?;
    }
    for e in &f.ext_types {
        ext_name(e)?;
    }
    if !f.ext_types.is_empty() && !f.types.is_empty() && !f.types.contains(&types::EXTENDED) {
        return Err(invalid(format!(
            "extended types are filtered but type {} is not forwarded: add it to the types",
            types::EXTENDED
        )));
    }
    // the same checks as the sensors' tags and the groups' names they select
    for t in &f.tags {
        super::tag(t)?;
    }
    for g in &f.groups {
        super::group_name(g)?;
    }
    Ok(())
}

fn privacy(p: &Privacy) -> Result<()> {
    privacy_key(&p.key)?;
    if let Some(d) = &p.pdns {
        for (what, secs) in [
            ("rounding", d.round_secs),
            ("aggregation", d.aggregate_secs),
        ] {
            if secs > MAX_PDNS_PERIOD_SECS {
                return Err(invalid(format!(
                    "passive DNS {what} period {secs} s: at most {MAX_PDNS_PERIOD_SECS} s"
                )));
            }
        }
    }
    if let Some(c) = &p.pcap {
        bounded("prefixes", &c.prefixes)?;
    }
    if let Some(j) = &p.json {
        bounded("JSON fields", &j.drop)?;
        bounded("JSON fields", &j.pseudonymise)?;
        for f in j.drop.iter().chain(&j.pseudonymise) {
            printable("JSON field", f, MAX_PATTERN_CHARS)?;
        }
    }
    if let Some(l) = &p.log {
        bounded("redaction patterns", &l.redact)?;
        for r in &l.redact {
            redact_pattern(r)?;
        }
        if l.replacement.chars().count() > MAX_PATTERN_CHARS
            || l.replacement.chars().any(char::is_control)
        {
            return Err(invalid(format!(
                "the redaction replacement must have at most {MAX_PATTERN_CHARS} printable \
                 characters"
            )));
        }
    }
    Ok(())
}

/// A forwarding rule: its name, description, destination, TLS trust, identity at the
/// partner (a v4 UUID and an HMAC key as [`hmac_key`]), filter (forwardable types,
/// extended type names, tag and group names), meta-header tags and privacy settings (key,
/// periods, regular expressions that compile).
pub fn forward_rule(r: &ForwardRule) -> Result<()> {
    forward_rule_name(&r.name)?;
    description(&r.description)?;
    destination(&r.destination)?;
    forward_tls(&r.tls)?;
    if r.uuid.get_version_num() != 4 {
        return Err(invalid(format!(
            "uuid {}: the partner registers sensors with version 4 UUIDs",
            r.uuid
        )));
    }
    hmac_key(&r.hmac_key)?;
    filter(&r.filter)?;
    bounded("meta tags", &r.tags)?;
    for t in &r.tags {
        printable("meta tag", t, MAX_META_TAG_CHARS)?;
    }
    privacy(&r.privacy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn rule() -> ForwardRule {
        ForwardRule {
            name: "to-partner".into(),
            enabled: true,
            description: String::new(),
            destination: "d4.example.org:4443".into(),
            tls: ForwardTls {
                pin_sha256: Some("ab".repeat(32)),
                ..Default::default()
            },
            uuid: Uuid::new_v4(),
            hmac_key: "secret".into(),
            filter: ForwardFilter::default(),
            tags: vec!["tlp:green".into()],
            privacy: Privacy::default(),
            spool_limit: 0,
            created: 0,
            updated: 0,
        }
    }

    #[test]
    fn a_plain_rule_passes() {
        assert!(forward_rule(&rule()).is_ok());
    }

    #[test]
    fn names_and_destinations() {
        for bad in ["", ".x", "a b", "a/b", &"x".repeat(65)] {
            assert!(forward_rule_name(bad).is_err(), "{bad:?}");
        }
        for good in [
            "d4.example.org:4443",
            "127.0.0.1:1",
            "[::1]:4443",
            "host_1:65535",
        ] {
            assert!(destination(good).is_ok(), "{good:?}");
        }
        for bad in [
            "host",
            "host:",
            "host:0",
            "host:65536",
            ":80",
            "[::1:80",
            "::1:80",
            "a b:1",
            "host:+1",
            "-a.b:1",
        ] {
            assert!(destination(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tls_trust_is_exactly_one() {
        let pin = Some("0f".repeat(32));
        let ca = Some("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n".into());
        let t = |ca_pem: Option<String>, pin_sha256: Option<String>, plain| ForwardTls {
            ca_pem,
            pin_sha256,
            plain,
        };
        assert!(forward_tls(&t(None, pin.clone(), false)).is_ok());
        assert!(forward_tls(&t(ca.clone(), None, false)).is_ok());
        assert!(forward_tls(&t(None, None, true)).is_ok());
        assert!(forward_tls(&t(ca.clone(), pin.clone(), false)).is_err());
        assert!(forward_tls(&t(None, None, false)).is_err());
        assert!(forward_tls(&t(None, pin, true)).is_err());
        assert!(forward_tls(&t(Some("not pem".into()), None, false)).is_err());
        assert!(pin_sha256(&"AB".repeat(32)).is_ok());
        for bad in ["ab", &"ab".repeat(33), &"g0".repeat(32)] {
            assert!(pin_sha256(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn types_filters_and_privacy() {
        for t in [0, 2, 5, 7] {
            let mut r = rule();
            r.filter.types = vec![t];
            let err = forward_rule(&r).unwrap_err().to_string();
            assert!(err.contains(&format!("type {t}")), "{err}");
        }
        let mut r = rule();
        r.filter.types = vec![1, 3, 4, 6, 8, 254];
        r.filter.ext_types = vec!["ja3-jl".into()];
        r.filter.tags = vec!["share".into()];
        r.filter.groups = vec!["dmz".into()];
        assert!(forward_rule(&r).is_ok());
        r.filter.types = vec![8];
        assert!(forward_rule(&r).is_err(), "ext types without 254");
        let mut r = rule();
        r.filter.tags = vec!["bad tag".into()];
        assert!(forward_rule(&r).is_err());
        // a filter names groups as groups are named (no ':' nor a leading '.')
        for bad in ["tlp:green", ".hidden"] {
            let mut r = rule();
            r.filter.groups = vec![bad.into()];
            let err = forward_rule(&r).unwrap_err().to_string();
            assert!(err.contains("group name"), "{bad}: {err}");
        }
        let mut r = rule();
        r.uuid = Uuid::new_v5(&Uuid::NAMESPACE_DNS, b"x");
        assert!(forward_rule(&r).is_err());
        let mut r = rule();
        r.hmac_key = String::new();
        assert!(forward_rule(&r).is_err());
        let mut r = rule();
        r.privacy.key = "12".into();
        assert!(forward_rule(&r).is_err());
        r.privacy.key = "Ab".repeat(32);
        assert!(forward_rule(&r).is_ok());
        r.privacy.log = Some(LogPrivacy {
            redact: vec!["(unclosed".into()],
            replacement: String::new(),
        });
        assert!(forward_rule(&r).is_err());
        r.privacy.log = Some(LogPrivacy {
            redact: vec!["a*".into()],
            replacement: String::new(),
        });
        assert!(forward_rule(&r).is_err(), "empty match");
        r.privacy.log = Some(LogPrivacy {
            redact: vec![r"\b\d{1,3}(\.\d{1,3}){3}\b".into()],
            replacement: "[ip]".into(),
        });
        assert!(forward_rule(&r).is_ok());
        r.privacy.pdns = Some(PdnsPrivacy {
            round_secs: MAX_PDNS_PERIOD_SECS + 1,
            ..Default::default()
        });
        assert!(forward_rule(&r).is_err());
    }
}
