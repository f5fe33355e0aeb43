//! Pure renderers of the passive SSL API's JSON answers (docs/pssl.md's shapes) into
//! HTML: the search form, the IP table, session tables, name and subject lists, and the
//! links that make every shown value its own search. Lenient: a missing or odd field
//! shows as "—", never as an error. maud escapes every splice.

use maud::{html, Markup};
use serde_json::Value;

use crate::pssl_client::{segment, PsslError};

/// `v[k]`, or null.
pub fn field<'a>(v: &'a Value, k: &str) -> &'a Value {
    v.get(k).unwrap_or(&Value::Null)
}

/// A scalar as text (`None` for null, objects and missing values; arrays joined by `, `).
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.to_string()),
        Value::Array(a) if !a.is_empty() => {
            Some(a.iter().filter_map(text).collect::<Vec<_>>().join(", "))
        }
        _ => None,
    }
}

/// A value, or a muted dash.
pub fn shown(v: &Value) -> Markup {
    match text(v) {
        Some(t) => html! { (t) },
        None => html! { span.muted { "—" } },
    }
}

/// The elements of an array (none when it is not one).
pub fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The search page's address for `q`.
pub fn search_href(q: &str) -> String {
    format!("/pssl?q={}", segment(q))
}

/// A link to the search of `value`, shown as code.
pub fn search_link(value: &str) -> Markup {
    html! { a href=(search_href(value)) { code { (value) } } }
}

/// A link to the search of a value that may be missing.
pub fn opt_search_link(v: &Value) -> Markup {
    match v.as_str().filter(|s| !s.is_empty()) {
        Some(s) => search_link(s),
        None => shown(v),
    }
}

/// A link to a certificate's view.
pub fn cert_link(sha: &str) -> Markup {
    html! { a href={ "/pssl/cert/" (segment(sha)) } { code { (sha) } } }
}

/// A link to a public key's view (its SPKI SHA-256).
pub fn key_link(spki: &str) -> Markup {
    html! { a href={ "/pssl/key/" (segment(spki)) } { code { (spki) } } }
}

/// The search form, holding `q`.
pub fn search_form(q: &str) -> Markup {
    html! {
        form method="get" action="/pssl" {
            input type="search" name="q" value=(q) size="70" maxlength="512"
                placeholder="IP, CIDR, SHA-1/SHA-256, SPKI SHA-256, JA3/JA3S, JA4, server name, subject";
            " " button type="submit" { "Search" }
        }
    }
}

/// What can be searched (under an empty search box).
pub fn search_help() -> Markup {
    html! {
        ul {
            li { "an IP address or network (" code { "192.0.2.1" } ", " code { "192.0.2.0/24" } ", "
                 code { "2001:db8::/64" } "): the certificates its servers showed" }
            li { "a certificate's SHA-1 (40 hex) or SHA-256 (64 hex), or a public key's SPKI SHA-256 (64 hex)" }
            li { "a JA3 or JA3S digest (32 hex) or a JA4 fingerprint: the TLS sessions that had it" }
            li { "any other text: certificates seen with that server name (SNI), and whose subject holds it" }
        }
    }
}

/// An API failure as a message of the page.
pub fn api_error(what: &str, e: &PsslError) -> Markup {
    html! { p.error { (what) ": " (e.to_string()) } }
}

/// A "next page" link, when there is a next page.
pub fn next_link(href: Option<String>) -> Markup {
    html! { @if let Some(h) = href { p { a href=(h) { "Next page →" } } } }
}

/// The answer of `/v2pssl/query/<ip or cidr>`: one row per (address, certificate).
pub fn ip_table(json: &Value) -> Markup {
    let Some(map) = json.as_object() else {
        return html! { p.error { "Unexpected answer (not an object)." } };
    };
    let mut addrs: Vec<(&String, &Value)> = map.iter().collect();
    addrs.sort_by_key(|(a, _)| (a.parse::<std::net::IpAddr>().ok(), a.to_string()));
    if addrs.is_empty() {
        return html! { p { "No certificate known for this address or network." } };
    }
    html! {
        table {
            tr {
                th { "Address" } th { "Ports" } th { "Certificate (SHA-1)" } th { "First seen" }
                th { "Last seen" } th { "Count" } th { "Subject" }
            }
            @for (addr, entry) in &addrs {
                @let certs = items(field(entry, "certificates"));
                @let ports = field(entry, "ports");
                @if certs.is_empty() {
                    tr { td { (search_link(addr)) } td { (shown(ports)) } td {} td {} td {} td {} td {} }
                }
                @for c in certs {
                    @let sha1 = c.as_str().unwrap_or_default();
                    @let seen = field(field(entry, "seen"), sha1);
                    tr {
                        td { (search_link(addr)) }
                        td { (shown(ports)) }
                        td { (cert_link(sha1)) }
                        td { (shown(field(seen, "first_seen"))) }
                        td { (shown(field(seen, "last_seen"))) }
                        td { (shown(field(seen, "count"))) }
                        td { (shown(field(field(field(entry, "subjects"), sha1), "values"))) }
                    }
                }
            }
        }
    }
}

/// An `ip:port` pair of a session record, the address linked.
fn endpoint(rec: &Value, ip: &str, port: &str) -> Markup {
    html! {
        (opt_search_link(field(rec, ip)))
        @if let Some(p) = text(field(rec, port)) { ":" (p) }
    }
}

/// Session records (`{"items": [...]}` of `/sessions`, or `{"Sessions": [...]}`).
pub fn sessions_table(list: &Value) -> Markup {
    let list = items(list);
    if list.is_empty() {
        return html! { p { "No session." } };
    }
    html! {
        table {
            tr {
                th { "Time" } th { "Client" } th { "Server" } th { "SNI" } th { "JA3" }
                th { "JA3S" } th { "JA4" } th { "Certificates" }
            }
            @for r in list {
                tr {
                    td { (shown(field(r, "Timestamp"))) }
                    td { (endpoint(r, "ClientIP", "ClientPort")) }
                    td { (endpoint(r, "ServerIP", "ServerPort")) }
                    td { (opt_search_link(field(r, "SNI"))) }
                    td { (opt_search_link(field(r, "JA3Digest"))) }
                    td { (opt_search_link(field(r, "JA3SDigest"))) }
                    td { (opt_search_link(field(r, "JA4"))) }
                    td {
                        @for (i, c) in items(field(r, "Certificates")).iter().enumerate() {
                            @if let Some(h) = field(c, "CertHash").as_str() {
                                @if i > 0 { br; }
                                (cert_link(h))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `/sni/<name>` items: leaf certificates seen with the name.
pub fn sni_table(list: &Value) -> Markup {
    let list = items(list);
    if list.is_empty() {
        return html! { p { "No certificate seen with this server name." } };
    }
    html! {
        table {
            tr {
                th { "Certificate (SHA-1)" } th { "First seen" } th { "Last seen" } th { "Count" }
                th { "Subject" }
            }
            @for c in list {
                tr {
                    td { (cert_link(field(c, "sha1").as_str().unwrap_or_default())) }
                    td { (shown(field(c, "first_seen"))) }
                    td { (shown(field(c, "last_seen"))) }
                    td { (shown(field(c, "count"))) }
                    td { (shown(field(c, "subject"))) }
                }
            }
        }
    }
}

/// `/subject/<text>` items.
pub fn subject_table(list: &Value) -> Markup {
    let list = items(list);
    if list.is_empty() {
        return html! { p { "No certificate whose subject holds this text." } };
    }
    html! {
        table {
            tr { th { "Certificate (SHA-1)" } th { "Subject" } }
            @for c in list {
                tr {
                    td { (cert_link(field(c, "sha1").as_str().unwrap_or_default())) }
                    td { (shown(field(c, "subject"))) }
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
    fn ip_table_rows_links_and_escaping() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let j = json!({
            "198.51.100.9": {"certificates": [b], "subjects": {}, "ports": [8443]},
            "192.0.2.1": {
                "certificates": [a],
                "subjects": {a.clone(): {"values": ["CN=<script>x</script>"]}},
                "ports": [443, 8443],
                "seen": {a.clone(): {"first_seen": "2019-06-12T10:00:00Z",
                                     "last_seen": "2020-01-01T00:00:00Z", "count": 7}}
            }
        });
        let h = ip_table(&j).into_string();
        assert!(h.contains(&format!("href=\"/pssl/cert/{a}\"")), "{h}");
        assert!(h.contains("href=\"/pssl?q=192.0.2.1\""), "{h}");
        assert!(h.contains("443, 8443") && h.contains("2019-06-12T10:00:00Z"));
        assert!(h.contains("<td>7</td>"), "{h}");
        assert!(!h.contains("<script>") && h.contains("CN=&lt;script&gt;x&lt;/script&gt;"));
        // Addresses in address order: 192.0.2.1 before 198.51.100.9.
        assert!(h.find("192.0.2.1").unwrap() < h.find("198.51.100.9").unwrap());
        // No seen entry: dashes.
        assert!(h.contains("—"));
        assert!(ip_table(&json!({}))
            .into_string()
            .contains("No certificate known"));
        assert!(ip_table(&json!([]))
            .into_string()
            .contains("Unexpected answer"));
    }

    #[test]
    fn sessions_link_every_value() {
        let j = json!({"items": [{
            "ServerIP": "192.0.2.1", "ServerPort": "443", "ClientIP": "2001:db8::5",
            "ClientPort": "50000", "Timestamp": "2019-06-12T10:00:00Z",
            "JA3Digest": "d41d8cd98f00b204e9800998ecf8427e", "JA3SDigest": null,
            "JA4": "t13d1516h2_8daaf6152771_e5627efa2ab1", "SNI": "a.example/<b>",
            "Certificates": [{"CertHash": "c".repeat(40)}, {"CertHash": "d".repeat(40)}]
        }], "next": null});
        let h = sessions_table(field(&j, "items")).into_string();
        for want in [
            "href=\"/pssl?q=192.0.2.1\"",
            ":443",
            "href=\"/pssl?q=2001%3Adb8%3A%3A5\"",
            ":50000",
            "href=\"/pssl?q=d41d8cd98f00b204e9800998ecf8427e\"",
            "href=\"/pssl?q=t13d1516h2_8daaf6152771_e5627efa2ab1\"",
            "href=\"/pssl?q=a.example%2F%3Cb%3E\"",
            "a.example/&lt;b&gt;",
            &format!("href=\"/pssl/cert/{}\"", "c".repeat(40)),
            &format!("href=\"/pssl/cert/{}\"", "d".repeat(40)),
        ] {
            assert!(h.contains(want), "{want}: {h}");
        }
        assert!(sessions_table(&Value::Null)
            .into_string()
            .contains("No session"));
    }

    #[test]
    fn sni_and_subject_lists() {
        let s = "e".repeat(40);
        let j = json!([{"sha1": s, "subject": "CN=a.example", "first_seen": "2019-01-01T00:00:00Z",
                        "last_seen": null, "count": 3}]);
        let h = sni_table(&j).into_string();
        assert!(h.contains(&format!("/pssl/cert/{s}")) && h.contains("CN=a.example"));
        assert!(h.contains("<td>3</td>"), "{h}");
        let h = subject_table(&json!([{"sha1": s, "subject": "O=\"Q&A\""}])).into_string();
        assert!(h.contains("O=&quot;Q&amp;A&quot;"), "{h}");
        assert!(subject_table(&json!([]))
            .into_string()
            .contains("No certificate"));
    }

    #[test]
    fn scalars() {
        assert_eq!(text(&json!(true)).unwrap(), "yes");
        assert_eq!(text(&json!([1, "a"])).unwrap(), "1, a");
        assert_eq!(text(&json!([])), None);
        assert_eq!(text(&json!({"a": 1})), None);
        assert!(shown(&Value::Null).into_string().contains("—"));
    }
}
