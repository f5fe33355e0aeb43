//! The OpenAPI 3.0 document of `d4 pibs serve` (`GET /openapi.json`), written by hand:
//! every path, its parameters, its answers and the auth schemes.

use serde_json::{json, Map, Value};

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name, "in": "path", "required": true,
        "description": description, "schema": { "type": "string" }
    })
}

fn query_param(name: &str, description: &str) -> Value {
    json!({
        "name": name, "in": "query", "required": false,
        "description": description, "schema": { "type": "string" }
    })
}

fn window() -> Vec<Value> {
    vec![
        query_param(
            "since",
            "Only attacks ending at or after this time: unix seconds, RFC 3339 or YYYY-MM-DD (its 00:00:00 UTC).",
        ),
        query_param(
            "until",
            "Only attacks starting at or before this time: unix seconds, RFC 3339 or YYYY-MM-DD (its 23:59:59 UTC).",
        ),
    ]
}

fn paging() -> Vec<Value> {
    vec![
        json!({ "name": "limit", "in": "query", "required": false,
                "description": "Items per page (1 to 1000, default 100).",
                "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }),
        query_param(
            "cursor",
            "The previous answer's `next` (or x-dribble-cursor).",
        ),
    ]
}

fn op(summary: &str, params: Vec<Value>, ok: &str, errors: &[&str]) -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": ok,
            "content": { "application/json": { "schema": { "type": "object" } } }
        }),
    );
    for code in ["401", "429", "500"].iter().chain(errors) {
        responses.insert(
            (*code).to_string(),
            json!({ "$ref": "#/components/responses/Error" }),
        );
    }
    json!({ "get": { "summary": summary, "parameters": params, "responses": responses } })
}

fn all(parts: Vec<Vec<Value>>) -> Vec<Value> {
    parts.into_iter().flatten().collect()
}

const ATTACK: &str = "{\"id\", \"victim\", \"start\", \"end\", \"start_iso\", \"end_iso\", \"packets\", \"peak_pps\", \"est_attack_pps\", \"ports\": [{\"port\", \"packets\"}], \"protocols\": {}, \"kinds\": {}, \"sensors\": [], \"buckets\", \"asn\", \"prefix\"}";

/// The document.
pub fn document() -> Value {
    let paths = json!({
        "/attacks": op(
            "Attacks (runs of 5-minute buckets of one victim), newest first; by victim address with asn or prefix",
            all(vec![window(), vec![
                query_param("asn", "Victims whose longest prefix-to-AS match this AS originates (needs --pfx2as)."),
                query_param("prefix", "Victims inside this network (192.0.2.0/24, 2001:db8::/32)."),
                query_param("port", "Attacks that hit this victim port."),
                query_param("min_pps", "Attacks whose peak packets/s (backscatter seen) is at least this."),
            ], paging()]),
            &format!("{{\"attacks\": [{ATTACK}], \"next\": cursor | null}}"),
            &["400"]),
        "/victim/{ip}": op(
            "A victim: its attacks, its bucket timeline, its route (pfx2as) and names (passive DNS)",
            all(vec![vec![path_param("ip", "IPv4 or IPv6 address")], window()]),
            "{\"victim\", \"asn\", \"prefix\", \"names\": [], \"attacks\": [...], \"timeline\": [{\"start\", \"start_iso\", \"first_seen\", \"last_seen\", \"packets\", \"darknet_addrs\", \"ports\", \"kinds\", \"protocols\", \"sensors\"}], \"timeline_truncated\"}",
            &["400"]),
        "/daily/{date}": op(
            "One UTC day: attacks overlapping it, victims, packets, top 10 victims, ports and ASes",
            vec![path_param("date", "YYYY-MM-DD")],
            "{\"date\", \"attacks\", \"victims\", \"packets\", \"top_victims\": [{\"victim\", \"packets\", \"attacks\", \"asn\"}], \"top_ports\": [{\"port\", \"packets\"}], \"top_asns\": [{\"asn\", \"packets\", \"victims\"}], \"truncated\"}",
            &["400"]),
        "/asn/{asn}": op(
            "Reverse pivot: the victims of an AS (longest-match origin), with their attack counts, by address",
            all(vec![vec![path_param("asn", "AS number (64500 or AS64500)")], window(), paging()]),
            "{\"asn\", \"prefixes\": [], \"victims\": [{\"victim\", \"attacks\", \"packets\", \"peak_pps\", \"first\", \"last\", \"first_iso\", \"last_iso\", \"asn\", \"prefix\"}], \"next\"}",
            &["400", "422"]),
        "/prefix/{net}": op(
            "Reverse pivot: the victims inside a network, with their attack counts, by address",
            all(vec![vec![path_param("net", "network, e.g. 192.0.2.0/24 (the slash unescaped)")], window(), paging()]),
            "{\"prefix\", \"victims\": [...], \"next\"}",
            &["400", "422"]),
        "/info": op(
            "The store's counts, the prefix-to-AS table and the version",
            vec![],
            "{\"victims\", \"buckets\", \"attacks\", \"files\", \"oldest_bucket\", \"newest_bucket\", \"attack_gap\", \"darknet_size\", \"pfx2as\": {\"routes\", \"bad_lines\", ...} | null, \"passive_dns\", \"version\"}",
            &[]),
        "/openapi.json": op("This document", vec![], "OpenAPI 3.0 document", &[]),
    });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "d4 pibs serve",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Backscatter (DDoS victims seen from a darknet): attacks, victims' timelines, daily summaries and pivots by AS and prefix. Every answer is JSON; errors are {\"error\": \"...\"}. Times are unix seconds and RFC 3339 UTC (`*_iso`)."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "token": { "type": "apiKey", "in": "header", "name": "Authorization",
                           "description": "The raw token, or `Bearer <token>`." },
                "basic": { "type": "http", "scheme": "basic" }
            },
            "responses": {
                "Error": {
                    "description": "An error",
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "properties": { "error": { "type": "string" } },
                        "required": ["error"]
                    } } }
                }
            }
        },
        "security": [ { "token": [] }, { "basic": [] } ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route the router serves is in the document.
    #[test]
    fn every_path() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/attacks",
            "/victim/{ip}",
            "/daily/{date}",
            "/asn/{asn}",
            "/prefix/{net}",
            "/info",
            "/openapi.json",
        ] {
            assert!(paths.contains_key(p), "{p}");
            assert!(paths[p]["get"]["responses"]["200"].is_object(), "{p}");
        }
        assert_eq!(paths.len(), 7);
        assert_eq!(doc["openapi"], "3.0.3");
    }
}
