//! Pure renderers of weak-key findings: the "Weak key" warning of the certificate and key
//! views (a key's `weak` list, `[{"check", "subtest", "how"}]`), and the weak keys page
//! (`/weak` items, each certificate with the addresses that served it, from
//! `/certificate/<sha1>/ips`). Lenient like [`super::render`]; maud escapes every splice.

use std::collections::HashMap;

use maud::{html, Markup};
use serde_json::Value;

use super::render::{cert_link, field, items, key_link, opt_search_link, shown};

/// How many addresses of each certificate the weak keys page asks and shows.
pub const IPS_PER_CERT: u32 = 5;

/// What the page learned of one certificate's addresses.
#[derive(Debug, Clone)]
pub enum CertIps {
    /// The `/certificate/<sha1>/ips` items, and whether more follow.
    Seen(Value, bool),
    /// The call failed: its message.
    Failed(String),
}

/// `how` in words (`check`, `batch_gcd`; anything else as is).
fn how_text(how: &Value) -> Markup {
    match how.as_str() {
        Some("check") => html! { "per-key check" },
        Some("batch_gcd") => html! { "batch GCD over the store" },
        _ => shown(how),
    }
}

/// One finding's check and subtest, as `check` or `check / subtest`.
fn check_text(w: &Value) -> Markup {
    html! {
        code { (shown(field(w, "check"))) }
        @if let Some(s) = field(w, "subtest").as_str().filter(|s| !s.is_empty()) {
            " / " code { (s) }
        }
    }
}

/// The warning of a key with findings (`key.weak` of `/certificate/<sha>`); nothing when
/// the list is empty or absent (an older server).
pub fn weak_warning(key: &Value) -> Markup {
    let found = items(field(key, "weak"));
    if found.is_empty() {
        return html! {};
    }
    html! {
        div.error.weak {
            p { strong { "Weak key" } ": the weak-key checks found this public key breakable \
                (its private key may be known to others)." }
            ul {
                @for w in found {
                    li { (check_text(w)) " (" (how_text(field(w, "how"))) ")" }
                }
            }
        }
    }
}

/// The weak keys page's table: one row per finding (`/weak` items), its certificates and,
/// per certificate, the addresses in `ips` (certificates not in `ips` were not asked: a
/// link to their view says where to look).
pub fn weak_table(list: &Value, ips: &HashMap<String, CertIps>) -> Markup {
    let list = items(list);
    if list.is_empty() {
        return html! { p { "No weak key is known." } };
    }
    html! {
        table {
            tr {
                th { "Public key (SPKI SHA-256)" } th { "Check" } th { "How found" }
                th { "First found" } th { "Certificates and their addresses" }
            }
            @for w in list {
                tr {
                    td {
                        @match field(w, "spki_sha256").as_str() {
                            Some(s) => (key_link(s)),
                            None => (shown(&Value::Null)),
                        }
                    }
                    td { (check_text(w)) }
                    td { (how_text(field(w, "how"))) }
                    td { (shown(field(w, "found"))) }
                    td { (certificates(items(field(w, "certificates")), ips)) }
                }
            }
        }
    }
}

fn certificates(certs: &[Value], ips: &HashMap<String, CertIps>) -> Markup {
    if certs.is_empty() {
        return html! { span.muted { "no certificate" } };
    }
    html! {
        ul {
            @for c in certs {
                @if let Some(sha1) = c.as_str() {
                    li { (cert_link(sha1)) (addresses(ips.get(sha1))) }
                }
            }
        }
    }
}

fn addresses(seen: Option<&CertIps>) -> Markup {
    match seen {
        None => html! { " " span.muted { "(addresses on its page)" } },
        Some(CertIps::Failed(e)) => html! { " " span.error { "addresses: " (e) } },
        Some(CertIps::Seen(list, more)) => {
            let list = items(list);
            html! {
                @if list.is_empty() {
                    " " span.muted { "(no address seen)" }
                } @else {
                    ": "
                    @for (i, r) in list.iter().enumerate() {
                        @if i > 0 { ", " }
                        (opt_search_link(field(r, "ip")))
                        @if let Some(p) = field(r, "port").as_u64() { " port " (p) }
                    }
                    @if *more { ", …" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn warning_lists_the_findings_and_is_absent_when_clean() {
        let key = json!({"spki_sha256": "c".repeat(64),
            "weak": [{"check": "fermat", "subtest": null, "how": "check"},
                     {"check": "<b>x</b>", "subtest": "p2", "how": "batch_gcd"}]});
        let h = weak_warning(&key).into_string();
        assert!(h.contains("Weak key"), "{h}");
        assert!(h.contains("<code>fermat</code> (per-key check)"), "{h}");
        assert!(
            h.contains("<code>&lt;b&gt;x&lt;/b&gt;</code> / <code>p2</code> (batch GCD"),
            "{h}"
        );
        assert!(!h.contains("<b>x"), "{h}");
        for clean in [
            json!({"spki_sha256": "c".repeat(64), "weak": []}),
            json!({"spki_sha256": "c".repeat(64)}),
            Value::Null,
        ] {
            assert_eq!(weak_warning(&clean).into_string(), "", "{clean}");
        }
    }

    #[test]
    fn table_shows_certificates_and_their_addresses() {
        let (k, c1, c2, c3) = (
            "e".repeat(64),
            "1".repeat(40),
            "2".repeat(40),
            "3".repeat(40),
        );
        let list = json!([{"spki_sha256": k, "check": "fermat", "subtest": null,
            "how": "check", "found": "2024-05-01T00:00:00Z", "certificates": [c1, c2, c3]}]);
        let mut ips = HashMap::new();
        ips.insert(
            c1.clone(),
            CertIps::Seen(
                json!([{"ip": "192.0.2.5", "port": 443}, {"ip": "2001:db8::7", "port": 8443}]),
                true,
            ),
        );
        ips.insert(c2.clone(), CertIps::Failed("timed out".into()));
        let h = weak_table(&list, &ips).into_string();
        for want in [
            format!("href=\"/pssl/key/{k}\""),
            "<code>fermat</code>".into(),
            "per-key check".into(),
            "2024-05-01T00:00:00Z".into(),
            format!("href=\"/pssl/cert/{c1}\""),
            format!("href=\"/pssl/cert/{c3}\""),
            "href=\"/pssl?q=192.0.2.5\"".into(),
            " port 443, ".into(),
            "href=\"/pssl?q=2001%3Adb8%3A%3A7\"".into(),
            " port 8443, …".into(),
            "addresses: timed out".into(),
            "(addresses on its page)".into(),
        ] {
            assert!(h.contains(&want), "{want}: {h}");
        }
        let mut none = HashMap::new();
        none.insert(c1.clone(), CertIps::Seen(json!([]), false));
        assert!(weak_table(&list, &none)
            .into_string()
            .contains("(no address seen)"));
        assert!(weak_table(&json!([]), &HashMap::new())
            .into_string()
            .contains("No weak key"));
    }
}
