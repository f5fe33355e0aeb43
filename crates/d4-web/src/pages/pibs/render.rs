//! Pure renderers of the backscatter API's JSON answers (docs/pibs.md's shapes) into HTML:
//! the search form, attack tables, the day's summary, a victim's header and its timeline
//! chart (inline SVG, no script), and the reverse pivot's victim list. Every shown victim,
//! AS and prefix links to its own search. Lenient: a missing or odd field shows as "—".
//! maud escapes every splice.

use std::net::IpAddr;

use ipnet::IpNet;
use maud::{html, Markup};
use serde_json::Value;

use crate::pages::pssl::render::{field, items, shown, text};
use crate::pssl_client::segment;
use crate::view::fmt_time;

/// What a search text asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// Nothing: today's attacks.
    Empty,
    Ip(IpAddr),
    Net(IpNet),
    Asn(u32),
    /// `YYYY-MM-DD`
    Day(String),
    Unknown,
}

/// Classifies a search text: an address, a network, `AS64500` or a bare number (an AS),
/// or a date.
pub fn classify(q: &str) -> Search {
    let q = q.trim();
    if q.is_empty() {
        return Search::Empty;
    }
    if let Ok(ip) = q.parse::<IpAddr>() {
        return Search::Ip(ip.to_canonical());
    }
    if let Ok(n) = q.parse::<IpNet>() {
        return Search::Net(n.trunc());
    }
    let digits = q
        .strip_prefix("AS")
        .or_else(|| q.strip_prefix("as"))
        .unwrap_or(q);
    if let Ok(a) = digits.parse::<u32>() {
        return Search::Asn(a);
    }
    let b = q.as_bytes();
    if b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return Search::Day(q.to_string());
    }
    Search::Unknown
}

/// The page's address for the search of `q`.
pub fn search_href(q: &str) -> String {
    format!("/pibs?q={}", segment(q))
}

/// A victim's page.
pub fn victim_href(ip: &str) -> String {
    format!("/pibs/victim/{}", segment(ip))
}

fn victim_link(v: &Value) -> Markup {
    match v.as_str() {
        Some(ip) => html! { a href=(victim_href(ip)) { code { (ip) } } },
        None => shown(v),
    }
}

fn asn_link(v: &Value) -> Markup {
    match v.as_u64() {
        Some(a) => html! { a href=(search_href(&format!("AS{a}"))) { "AS" (a) } },
        None => shown(v),
    }
}

fn prefix_link(v: &Value) -> Markup {
    match v.as_str() {
        Some(p) => html! { a href=(search_href(p)) { code { (p) } } },
        None => shown(v),
    }
}

/// A unix time field as `YYYY-MM-DD HH:MM:SS`.
fn time(v: &Value) -> Markup {
    match v.as_u64() {
        Some(t) => html! { (fmt_time(t)) },
        None => shown(v),
    }
}

/// A rate with at most two decimals.
fn rate(v: &Value) -> Markup {
    match v.as_f64() {
        Some(r) if r >= 100.0 => html! { (format!("{r:.0}")) },
        Some(r) => html! { (format!("{r:.2}")) },
        None => shown(v),
    }
}

/// `[{"port", "packets"}]` as `443 (800), 80 (100)`, the first `n`.
fn top_ports(v: &Value, n: usize) -> Markup {
    let list = items(v);
    if list.is_empty() {
        return shown(&Value::Null);
    }
    let parts: Vec<String> = list
        .iter()
        .take(n)
        .map(|p| {
            format!(
                "{} ({})",
                text(field(p, "port")).unwrap_or_default(),
                text(field(p, "packets")).unwrap_or_default()
            )
        })
        .collect();
    let more = list.len().saturating_sub(n);
    html! { (parts.join(", ")) @if more > 0 { " …" } }
}

/// `{"k": n}` as `k n, k n`.
fn counts(v: &Value) -> Markup {
    match v.as_object().filter(|m| !m.is_empty()) {
        Some(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, n)| format!("{k} {}", text(n).unwrap_or_default()))
                .collect();
            html! { (parts.join(", ")) }
        }
        None => shown(&Value::Null),
    }
}

/// The search form, holding `q`.
pub fn search_form(q: &str) -> Markup {
    html! {
        form method="get" action="/pibs" {
            input type="search" name="q" value=(q) size="50" maxlength="100"
                placeholder="victim IP, prefix (192.0.2.0/24), AS (AS64500) or day (2026-12-07)";
            " " button type="submit" { "Search" }
        }
    }
}

/// Attacks (`/attacks`' or `/victim`'s `attacks`).
pub fn attacks_table(list: &Value) -> Markup {
    let list = items(list);
    if list.is_empty() {
        return html! { p { "No attack." } };
    }
    html! {
        table {
            tr {
                th { "Victim" } th { "Start (UTC)" } th { "End (UTC)" } th { "Packets" }
                th { "Peak pps" } th { "Est. attack pps" } th { "Ports" } th { "Kinds" }
                th { "AS" } th { "Prefix" }
            }
            @for a in list {
                tr {
                    td { (victim_link(field(a, "victim"))) }
                    td { (time(field(a, "start"))) }
                    td { (time(field(a, "end"))) }
                    td { (shown(field(a, "packets"))) }
                    td { (rate(field(a, "peak_pps"))) }
                    td { (rate(field(a, "est_attack_pps"))) }
                    td { (top_ports(field(a, "ports"), 3)) }
                    td { (counts(field(a, "kinds"))) }
                    td { (asn_link(field(a, "asn"))) }
                    td { (prefix_link(field(a, "prefix"))) }
                }
            }
        }
    }
}

/// `/daily/<date>`: the counts and the three top lists.
pub fn daily(v: &Value) -> Markup {
    html! {
        p {
            (shown(field(v, "attacks"))) " attacks on " (shown(field(v, "victims"))) " victims, "
            (shown(field(v, "packets"))) " backscatter packets."
            @if field(v, "truncated").as_bool() == Some(true) {
                " " span.error { "(Too many attacks: the counts are partial.)" }
            }
        }
        div.row {
            div {
                h3 { "Top victims" }
                table {
                    tr { th { "Victim" } th { "Packets" } th { "Attacks" } th { "AS" } }
                    @for t in items(field(v, "top_victims")) {
                        tr {
                            td { (victim_link(field(t, "victim"))) }
                            td { (shown(field(t, "packets"))) }
                            td { (shown(field(t, "attacks"))) }
                            td { (asn_link(field(t, "asn"))) }
                        }
                    }
                }
            }
            div {
                h3 { "Top ports" }
                table {
                    tr { th { "Port" } th { "Packets" } }
                    @for t in items(field(v, "top_ports")) {
                        tr { td { (shown(field(t, "port"))) } td { (shown(field(t, "packets"))) } }
                    }
                }
            }
            div {
                h3 { "Top ASes" }
                @if items(field(v, "top_asns")).is_empty() {
                    p.muted { "None (the API has no prefix-to-AS table: "
                              code { "d4 pibs serve --pfx2as" } ")." }
                } @else {
                    table {
                        tr { th { "AS" } th { "Packets" } th { "Victims" } }
                        @for t in items(field(v, "top_asns")) {
                            tr {
                                td { (asn_link(field(t, "asn"))) }
                                td { (shown(field(t, "packets"))) }
                                td { (shown(field(t, "victims"))) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `/victim/<ip>`'s header: route and names.
pub fn victim_header(v: &Value) -> Markup {
    let names = items(field(v, "names"));
    html! {
        table.kv {
            tr { th { "Victim" } td { code { (shown(field(v, "victim"))) } } }
            tr { th { "Origin AS" } td { (asn_link(field(v, "asn"))) } }
            tr { th { "Prefix" } td { (prefix_link(field(v, "prefix"))) } }
            tr {
                th { "Names (passive DNS)" }
                td {
                    @if let Some(e) = field(v, "names_error").as_str() {
                        span.error { (e) }
                    } @else if names.is_empty() {
                        span.muted { "none known" }
                    } @else {
                        @for (i, n) in names.iter().enumerate() {
                            @if i > 0 { ", " }
                            code { (shown(n)) }
                        }
                    }
                }
            }
        }
    }
}

/// Chart size (SVG user units).
const W: u64 = 720;
const H: u64 = 160;

/// A victim's timeline (`/victim`'s `timeline`): packets per 5-minute bucket over time, as
/// bars on a time axis (gaps stay gaps).
pub fn timeline_chart(timeline: &Value) -> Markup {
    let points: Vec<(u64, u64)> = items(timeline)
        .iter()
        .filter_map(|b| Some((field(b, "start").as_u64()?, field(b, "packets").as_u64()?)))
        .collect();
    let (Some(t0), Some(t1)) = (
        points.iter().map(|p| p.0).min(),
        points.iter().map(|p| p.0).max(),
    ) else {
        return html! { p { "No bucket in this window." } };
    };
    let slots = (t1 - t0) / 300 + 1;
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    let bar = (W / slots).max(1);
    html! {
        figure {
            figcaption { "Backscatter packets per 5 minutes, " (fmt_time(t0)) " to " (fmt_time(t1 + 299)) " UTC (peak " (max) ")" }
            svg xmlns="http://www.w3.org/2000/svg" width=(W) height=(H + 30) role="img"
                viewBox={ "0 0 " (W) " " (H + 30) } {
                @for (start, packets) in &points {
                    @let x = (start - t0) / 300 * W / slots;
                    @let h = (packets.saturating_mul(H) / max).max(1);
                    rect x=(x) y=(H - h) width=(bar) height=(h) fill="#b04a4a" {
                        title { (fmt_time(*start)) ": " (packets) " packets" }
                    }
                }
                line x1="0" y1=(H) x2=(W) y2=(H) stroke="#999" {}
                text x="0" y=(H + 20) font-size="11" { (fmt_time(t0)) }
                text x=(W) y=(H + 20) font-size="11" text-anchor="end" { (fmt_time(t1 + 299)) }
            }
        }
    }
}

/// `/asn/<asn>` or `/prefix/<net>` victims.
pub fn victims_table(list: &Value) -> Markup {
    let list = items(list);
    if list.is_empty() {
        return html! { p { "No victim." } };
    }
    html! {
        table {
            tr {
                th { "Victim" } th { "Attacks" } th { "Packets" } th { "Peak pps" }
                th { "First (UTC)" } th { "Last (UTC)" } th { "AS" } th { "Prefix" }
            }
            @for v in list {
                tr {
                    td { (victim_link(field(v, "victim"))) }
                    td { (shown(field(v, "attacks"))) }
                    td { (shown(field(v, "packets"))) }
                    td { (rate(field(v, "peak_pps"))) }
                    td { (time(field(v, "first"))) }
                    td { (time(field(v, "last"))) }
                    td { (asn_link(field(v, "asn"))) }
                    td { (prefix_link(field(v, "prefix"))) }
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
    fn searches() {
        assert_eq!(classify(""), Search::Empty);
        assert_eq!(
            classify(" 192.0.2.1 "),
            Search::Ip("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            classify("::ffff:192.0.2.1"),
            Search::Ip("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            classify("192.0.2.9/24"),
            Search::Net("192.0.2.0/24".parse().unwrap())
        );
        assert_eq!(classify("AS64500"), Search::Asn(64500));
        assert_eq!(classify("64500"), Search::Asn(64500));
        assert_eq!(classify("2026-12-07"), Search::Day("2026-12-07".into()));
        assert_eq!(classify("victim.example"), Search::Unknown);
        assert_eq!(classify("2026-1a-07"), Search::Unknown);
    }

    #[test]
    fn chart_places_buckets_on_a_time_axis() {
        // three buckets: 0, +5 min and +20 min: 5 slots of 144 units
        let t = json!([
            {"start": 1000 * 300, "packets": 10},
            {"start": 1001 * 300, "packets": 40},
            {"start": 1004 * 300, "packets": 20},
        ]);
        let svg = timeline_chart(&t).into_string();
        assert!(
            svg.contains(r#"<rect x="0" y="120" width="144" height="40""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<rect x="144" y="0" width="144" height="160""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<rect x="576" y="80" width="144" height="80""#),
            "{svg}"
        );
        assert!(svg.contains("peak 40"));
        assert!(timeline_chart(&json!([]))
            .into_string()
            .contains("No bucket"));
    }

    #[test]
    fn hostile_text_is_escaped() {
        let a = json!([{"victim": "<script>", "asn": 1, "prefix": "x\"y", "ports": [],
                        "kinds": {"<b>": 1}}]);
        let html = attacks_table(&a).into_string();
        assert!(
            !html.contains("<script>") && !html.contains("<b>"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;"));
    }
}
