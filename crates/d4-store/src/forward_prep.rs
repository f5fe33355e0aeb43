//! What every backend does to a forwarding rule before it stores it: the checks of
//! [`validate::forward_rule`], times, a generated privacy key, one spelling of the values.

use crate::model::*;
use crate::{random_hex, validate, Result};

/// Bytes of a generated privacy key.
pub const PRIVACY_KEY_BYTES: usize = 32;

/// One spelling: lowercase hex, prefixes at their network address, no duplicates.
fn normalize(mut rule: ForwardRule) -> ForwardRule {
    if let Some(pin) = &mut rule.tls.pin_sha256 {
        *pin = pin.to_ascii_lowercase();
    }
    rule.privacy.key = rule.privacy.key.to_ascii_lowercase();
    if let Some(pcap) = &mut rule.privacy.pcap {
        for p in &mut pcap.prefixes {
            *p = p.trunc();
        }
        pcap.prefixes.sort();
        pcap.prefixes.dedup();
    }
    let f = &mut rule.filter;
    f.types.sort_unstable();
    f.types.dedup();
    f.sensors.sort();
    f.sensors.dedup();
    for list in [&mut f.ext_types, &mut f.tags, &mut f.groups] {
        list.sort();
        list.dedup();
    }
    rule
}

/// A rule about to be created at `now`.
pub(crate) fn for_create(mut rule: ForwardRule, now: u64) -> Result<ForwardRule> {
    validate::forward_rule(&rule)?;
    rule.created = now;
    rule.updated = now;
    if rule.privacy.key.is_empty() {
        rule.privacy.key = random_hex(PRIVACY_KEY_BYTES)?;
    }
    Ok(normalize(rule))
}

/// A rule replacing `old` at `now`: `created` kept, an empty privacy key keeps the old one.
pub(crate) fn for_update(
    mut rule: ForwardRule,
    old: &ForwardRule,
    now: u64,
) -> Result<ForwardRule> {
    validate::forward_rule(&rule)?;
    rule.created = old.created;
    rule.updated = now;
    if rule.privacy.key.is_empty() {
        rule.privacy.key = old.privacy.key.clone();
    }
    Ok(normalize(rule))
}
