//! Pure renderers of the certificate and public key views: a certificate's details
//! (`/certificate/<sha>`), its public key, the other certificates of that key
//! (`/key/<spki>`), the addresses that served it (`/certificate/<sha>/ips`) and its PEM.

use maud::{html, Markup};
use serde_json::Value;

use super::render::{cert_link, field, items, key_link, opt_search_link, search_link, shown, text};

/// A long hex value (RSA modulus, EC point) shortened, the whole value on hover and in a
/// `<details>`.
pub fn long_hex(v: &Value) -> Markup {
    let Some(s) = v.as_str().filter(|s| s.len() > 40) else {
        return html! { code { (shown(v)) } };
    };
    let head: String = s.chars().take(16).collect();
    let tail: String = s
        .chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    html! {
        details {
            summary title=(s) { code { (head) "…" (tail) } " (" (s.len() / 2) " bytes)" }
            div.hex { (s) }
        }
    }
}

/// Chain positions as words: 0 is the leaf, above it the issuers.
fn positions(v: &Value) -> Markup {
    let list: Vec<String> = items(v)
        .iter()
        .filter_map(Value::as_u64)
        .map(|p| match p {
            0 => "0 (leaf)".to_string(),
            n => format!("{n} (issuer)"),
        })
        .collect();
    if list.is_empty() {
        return shown(&Value::Null);
    }
    html! { (list.join(", ")) }
}

/// A SAN as a link to its search (`DNS:`/`IP Address:` prefixes, when present, dropped
/// from the searched text).
fn san(v: &Value) -> Markup {
    let Some(s) = v.as_str() else {
        return shown(v);
    };
    let bare = ["DNS:", "IP Address:", "IP:"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s)
        .trim();
    search_link(bare)
}

/// The certificate's details (`/certificate/<sha>`).
pub fn cert_details(c: &Value) -> Markup {
    let sans = items(field(c, "sans"));
    html! {
        table {
            tr { th { "Subject" } td { (shown(field(c, "subject"))) } }
            tr { th { "Issuer" } td { (shown(field(c, "issuer"))) } }
            tr { th { "Serial" } td { code { (shown(field(c, "serial"))) } } }
            tr { th { "Valid from" } td { (shown(field(c, "not_before"))) } }
            tr { th { "Valid until" } td { (shown(field(c, "not_after"))) } }
            tr {
                th { "Subject alternative names" }
                td {
                    @if sans.is_empty() { (shown(&Value::Null)) }
                    @for (i, s) in sans.iter().enumerate() { @if i > 0 { ", " } (san(s)) }
                }
            }
            tr { th { "CA" } td { (shown(field(c, "is_ca"))) } }
            tr { th { "Self-signed" } td { (shown(field(c, "self_signed"))) } }
            tr { th { "SHA-1" } td { (opt_cert_link(field(c, "sha1"))) } }
            tr { th { "SHA-256" } td { code { (shown(field(c, "sha256"))) } } }
            tr { th { "Chain positions" } td { (positions(field(c, "chain_positions"))) } }
            tr { th { "First seen" } td { (shown(field(c, "first_seen"))) } }
            tr { th { "Last seen" } td { (shown(field(c, "last_seen"))) } }
            tr { th { "Hits" } td { (shown(field(c, "hits"))) } }
        }
    }
}

fn opt_cert_link(v: &Value) -> Markup {
    match v.as_str() {
        Some(s) => cert_link(s),
        None => shown(v),
    }
}

/// A public key's details (the `key` object of `/certificate` and `/key`).
pub fn key_details(k: &Value) -> Markup {
    if !k.is_object() {
        return html! { p { "The public key's details are not known." } };
    }
    let row = |name: &str, v: &Value| -> Markup {
        html! { @if text(v).is_some() { tr { th { (name) } td { (long_hex(v)) } } } }
    };
    html! {
        table {
            tr {
                th { "SPKI SHA-256" }
                td {
                    @match field(k, "spki_sha256").as_str() {
                        Some(s) => (key_link(s)),
                        None => (shown(&Value::Null)),
                    }
                }
            }
            tr { th { "Type" } td { (shown(field(k, "key_type"))) } }
            tr { th { "Bits" } td { (shown(field(k, "bits"))) } }
            (row("Curve", field(k, "curve")))
            (row("Exponent", field(k, "exponent")))
            (row("Modulus", field(k, "modulus")))
            (row("Point x", field(k, "x")))
            (row("Point y", field(k, "y")))
        }
    }
}

/// The certificates of one key (`/key/<spki>` items), without `this_sha1`.
pub fn key_certificates(list: &Value, this_sha1: Option<&str>) -> Markup {
    let others: Vec<&str> = items(list)
        .iter()
        .filter_map(Value::as_str)
        .filter(|s| Some(*s) != this_sha1)
        .collect();
    html! {
        @if others.is_empty() {
            p { "No other certificate with this key." }
        } @else {
            ul { @for s in &others { li { (cert_link(s)) } } }
        }
    }
}

/// The addresses that served a certificate (`/certificate/<sha>/ips` items).
pub fn cert_ips(list: &Value) -> Markup {
    let list = items(list);
    if list.is_empty() {
        return html! { p { "No address seen serving it." } };
    }
    html! {
        table {
            tr { th { "Address" } th { "Port" } th { "First seen" } th { "Last seen" } th { "Count" } }
            @for r in list {
                tr {
                    td { (opt_search_link(field(r, "ip"))) }
                    td { (shown(field(r, "port"))) }
                    td { (shown(field(r, "first_seen"))) }
                    td { (shown(field(r, "last_seen"))) }
                    td { (shown(field(r, "count"))) }
                }
            }
        }
    }
}

/// The PEM in a `<details>`.
pub fn pem(c: &Value) -> Markup {
    html! {
        @if let Some(p) = field(c, "pem").as_str() {
            details { summary { "PEM" } pre { (p) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cert() -> Value {
        json!({
            "sha1": "a".repeat(40), "sha256": "b".repeat(64),
            "subject": "CN=<script>alert(1)</script>", "issuer": "CN=Test CA",
            "serial": "1234567890", "not_before": "2019-01-01T00:00:00Z",
            "not_after": "2029-01-01T00:00:00Z",
            "sans": ["a.example", "DNS:b.example", "IP Address:192.0.2.1"],
            "is_ca": false, "self_signed": true, "spki_sha256": "c".repeat(64),
            "key": {"spki_sha256": "c".repeat(64), "key_type": "RSA", "bits": 2048,
                    "modulus": "d".repeat(512), "exponent": 65537, "curve": null,
                    "x": null, "y": null},
            "first_seen": "2019-06-12T10:00:00Z", "last_seen": null, "hits": 12,
            "chain_positions": [0, 1],
            "pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        })
    }

    #[test]
    fn certificate_details() {
        let c = cert();
        let h = cert_details(&c).into_string();
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains("CN=&lt;script&gt;alert(1)&lt;/script&gt;"));
        for want in [
            "CN=Test CA",
            "1234567890",
            "2029-01-01T00:00:00Z",
            "href=\"/pssl?q=a.example\"",
            "href=\"/pssl?q=b.example\"",
            "href=\"/pssl?q=192.0.2.1\"",
            "0 (leaf), 1 (issuer)",
            "2019-06-12T10:00:00Z",
            "<td>12</td>",
            &format!("href=\"/pssl/cert/{}\"", "a".repeat(40)),
            &"b".repeat(64),
        ] {
            assert!(h.contains(want), "{want}: {h}");
        }
        // is_ca false, self_signed true.
        assert!(h.contains("<th>CA</th><td>no</td>"), "{h}");
        assert!(h.contains("<th>Self-signed</th><td>yes</td>"), "{h}");
        let p = pem(&c).into_string();
        assert!(
            p.starts_with("<details><summary>PEM</summary><pre>-----BEGIN CERTIFICATE-----\nMIIB")
        );
    }

    #[test]
    fn rsa_key_is_shortened_with_the_whole_value_kept() {
        let c = cert();
        let h = key_details(field(&c, "key")).into_string();
        assert!(h.contains(&format!("href=\"/pssl/key/{}\"", "c".repeat(64))));
        assert!(h.contains("RSA") && h.contains("2048") && h.contains("65537"));
        // 512 hex digits: 256 bytes; shown as 16 + … + 8, the full value in title and body.
        assert!(
            h.contains(&format!("{}…{}", "d".repeat(16), "d".repeat(8))),
            "{h}"
        );
        assert!(h.contains("(256 bytes)"));
        assert_eq!(h.matches(&"d".repeat(512)).count(), 2, "{h}");
        // Null fields have no row.
        assert!(!h.contains("Curve") && !h.contains("Point x"));
        let ec = json!({"spki_sha256": "e".repeat(64), "key_type": "EC", "bits": 256,
                        "curve": "P-256", "x": "0f".repeat(32), "y": "1e".repeat(32)});
        let h = key_details(&ec).into_string();
        assert!(h.contains("P-256") && h.contains("Point x") && h.contains(&"0f".repeat(32)));
        assert!(!h.contains("Modulus"));
        assert!(key_details(&Value::Null)
            .into_string()
            .contains("not known"));
    }

    #[test]
    fn same_key_and_ips() {
        let me = "a".repeat(40);
        let other = "f".repeat(40);
        let h = key_certificates(&json!([me, other]), Some(&me)).into_string();
        assert!(
            h.contains(&format!("/pssl/cert/{other}")) && !h.contains(&format!("/pssl/cert/{me}"))
        );
        assert!(key_certificates(&json!([me]), Some(&me))
            .into_string()
            .contains("No other"));
        let h = cert_ips(
            &json!([{"ip": "2001:db8::1", "port": 443, "first_seen": "2019-01-01T00:00:00Z",
                                  "last_seen": "2019-02-01T00:00:00Z", "count": 5}]),
        )
        .into_string();
        assert!(h.contains("href=\"/pssl?q=2001%3Adb8%3A%3A1\"") && h.contains("<td>443</td>"));
        assert!(
            h.contains("2019-02-01T00:00:00Z") && h.contains("<td>5</td>"),
            "{h}"
        );
        assert!(cert_ips(&json!([])).into_string().contains("No address"));
    }
}
