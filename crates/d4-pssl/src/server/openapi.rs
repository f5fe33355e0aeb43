//! The OpenAPI 3.0 document of `d4 pssl serve` (`GET /openapi.json`), written by hand:
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

/// `limit`, `cursor` and their `dribble-paginate-*` header forms.
fn paging() -> Vec<Value> {
    vec![
        json!({ "name": "limit", "in": "query", "required": false,
                "description": "Items per page (at most 10000).",
                "schema": { "type": "integer", "minimum": 1, "maximum": 10000 } }),
        query_param(
            "cursor",
            "The previous answer's x-dribble-cursor (or `next`).",
        ),
        json!({ "name": "dribble-paginate-count", "in": "header", "required": false,
                "description": "As `limit`.", "schema": { "type": "integer" } }),
        json!({ "name": "dribble-paginate-cursor", "in": "header", "required": false,
                "description": "As `cursor`.", "schema": { "type": "string" } }),
    ]
}

fn op(summary: &str, params: Vec<Value>, ok: &str, errors: &[&str]) -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": ok,
            "headers": { "x-dribble-cursor": {
                "description": "Cursor of the next page, when there is one.",
                "schema": { "type": "string" } } },
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

fn with(mut v: Vec<Value>, more: Vec<Value>) -> Vec<Value> {
    v.extend(more);
    v
}

/// The document.
pub fn document() -> Value {
    let sha1 = || path_param("sha1", "SHA-1 of the certificate's DER (40 hex, any case).");
    let md5 = || path_param("md5", "The JA3 or JA3S digest (32 hex).");
    let paths = json!({
        "/v2pssl/query/{ip}": op(
            "CIRCL PSSL v2: certificates an address presented",
            with(vec![path_param("ip", "IPv4 or IPv6 address")], paging()),
            "{\"<ip>\": {\"certificates\", \"subjects\", \"ports\", \"seen\"}}",
            &["400"]),
        "/v2pssl/query/{ip}/{len}": op(
            "CIRCL PSSL v2: certificates of the addresses of a network (IPv4 /23 or longer, IPv6 /64 or longer by default)",
            with(vec![path_param("ip", "network address"), path_param("len", "prefix length")], paging()),
            "{\"<ip>\": {...}} for the addresses with data",
            &["400", "422"]),
        "/v2pssl/cquery/{sha1}": op(
            "CIRCL PSSL v2: addresses that presented a certificate",
            with(vec![sha1()], paging()),
            "{\"certificate\", \"seen\", \"hits\", \"first_seen\", \"last_seen\", \"ports\"}",
            &["400"]),
        "/v2pssl/cfetch/{sha1}": op(
            "CIRCL PSSL v2: a certificate (PEM and details)",
            vec![sha1()],
            "{\"pem\", \"info\": {\"subject\", \"issuer\", \"fingerprint\", \"keylength\", \"key\", \"not_before\", \"not_after\", \"extension\", ..., \"weak\": [{\"check\", \"subtest\", \"how\"}]}, \"first_seen\", \"last_seen\", \"hits\"}",
            &["400", "404"]),
        "/ja3/{md5}": op(
            "lookup-d4-passivessl: sessions of a JA3 digest, oldest first",
            with(vec![md5()], paging()),
            "{\"Sessions\": [record, ...] | null}",
            &["400"]),
        "/ja3s/{md5}": op(
            "lookup-d4-passivessl: sessions of a JA3S digest, oldest first",
            with(vec![md5()], paging()),
            "{\"Sessions\": [record, ...] | null}",
            &["400"]),
        "/ja4/{ja4}": op(
            "Sessions of a JA4 fingerprint, oldest first",
            with(vec![path_param("ja4", "JA4 value")], paging()),
            "{\"Sessions\": [record, ...] | null}",
            &["400"]),
        "/sessions": op(
            "Sessions by exactly one of ja3, ja3s, ja4, sni, ip",
            with(vec![
                query_param("ja3", "JA3 digest"), query_param("ja3s", "JA3S digest"),
                query_param("ja4", "JA4"), query_param("sni", "server name"),
                query_param("ip", "client or server address"),
            ], paging()),
            "{\"items\": [record, ...], \"next\"}",
            &["400"]),
        "/certificate/{hash}": op(
            "A certificate by SHA-1 or SHA-256, with its key and sightings",
            vec![path_param("hash", "SHA-1 (40 hex) or SHA-256 (64 hex)")],
            "{\"sha1\", \"sha256\", \"subject\", \"issuer\", \"serial\", \"not_before\", \"not_after\", \"sans\", \"is_ca\", \"self_signed\", \"spki_sha256\", \"key\": {..., \"weak\": [{\"check\", \"subtest\", \"how\"}]} | null, \"first_seen\", \"last_seen\", \"hits\", \"chain_positions\", \"pem\"}",
            &["400", "404"]),
        "/certificate/{hash}/ips": op(
            "Server addresses and ports that presented a certificate",
            with(vec![path_param("hash", "SHA-1 or SHA-256")], paging()),
            "{\"items\": [{\"ip\", \"port\", \"first_seen\", \"last_seen\", \"count\"}], \"next\"}",
            &["400", "404"]),
        "/sni/{name}": op(
            "Leaf certificates seen with a server name (case-insensitive)",
            with(vec![path_param("name", "server name")], paging()),
            "{\"items\": [{\"sha1\", \"subject\", \"first_seen\", \"last_seen\", \"count\"}], \"next\"}",
            &["400"]),
        "/subject/{text}": op(
            "Certificates whose subject contains a text (case-insensitive)",
            with(vec![path_param("text", "substring")], paging()),
            "{\"items\": [{\"sha1\", \"subject\"}], \"next\"}",
            &["400", "422"]),
        "/key/{spki_sha256}": op(
            "A public key and the certificates holding it",
            with(vec![path_param("spki_sha256", "SHA-256 of the SubjectPublicKeyInfo (64 hex)")], paging()),
            "{\"key\": {...} | null, \"items\": [\"<sha1>\"], \"next\"}",
            &["400"]),
        "/fingerprint/{kind}/{value}": op(
            "Client (ja3, ja4) or server (ja3s) addresses seen with a fingerprint",
            with(vec![path_param("kind", "ja3, ja3s or ja4"), path_param("value", "the fingerprint")], paging()),
            "{\"items\": [{\"ip\", \"first_seen\", \"last_seen\", \"count\"}], \"next\"}",
            &["400"]),
        "/weak": op(
            "Weak public keys: findings of the per-key checks and the batch GCD, by SPKI SHA-256",
            paging(),
            "{\"items\": [{\"spki_sha256\", \"check\", \"subtest\", \"how\", \"found\", \"certificates\": [\"<sha1>\"]}], \"next\"}",
            &["400"]),
        "/info": op(
            "The store's counts, backend and version",
            vec![],
            "{\"certificates\", \"keys\", \"sessions\", \"ips\", \"ja3\", \"ja3s\", \"ja4\", \"sni\", \"ip_certificate_links\", \"backend\", \"version\"}",
            &[]),
        "/openapi.json": op("This document", vec![], "OpenAPI 3.0 document", &[]),
    });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "d4 pssl serve",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Passive SSL lookups: the CIRCL Passive SSL API v2 (PyPSSL), lookup-d4-passivessl's /ja3 and /ja3s, and d4-rs pivots. Every answer is JSON; errors are {\"error\": \"...\"}. Times are RFC 3339 UTC."
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
        let paths = doc["paths"].as_object().unwrap_or_else(|| unreachable!());
        for p in [
            "/v2pssl/query/{ip}",
            "/v2pssl/query/{ip}/{len}",
            "/v2pssl/cquery/{sha1}",
            "/v2pssl/cfetch/{sha1}",
            "/ja3/{md5}",
            "/ja3s/{md5}",
            "/ja4/{ja4}",
            "/sessions",
            "/certificate/{hash}",
            "/certificate/{hash}/ips",
            "/sni/{name}",
            "/subject/{text}",
            "/key/{spki_sha256}",
            "/fingerprint/{kind}/{value}",
            "/weak",
            "/info",
            "/openapi.json",
        ] {
            assert!(paths.contains_key(p), "{p}");
            assert!(paths[p]["get"]["responses"]["200"].is_object(), "{p}");
        }
        assert_eq!(paths.len(), 17);
        assert_eq!(doc["openapi"], "3.0.3");
    }
}
