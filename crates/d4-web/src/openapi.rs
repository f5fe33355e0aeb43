//! The OpenAPI 3 document of `/api/v1`, built from one table of endpoints.

use serde_json::{json, Map, Value};

/// (method, path, summary, role needed, has JSON body)
pub const ENDPOINTS: &[(&str, &str, &str, &str, bool)] = &[
    ("post", "/add/sensor/register", "Register a sensor (pending). Body {uuid, hmac_key, mail?, third_party?}. 200 {uuid}; 400 Invalid uuid / Mandatory parameter(s) not provided; 409 Sensor already registered", "sensor_register", true),
    ("get", "/sensors/monitoring/errors", "Sensors silent longer than their monitoring threshold (their own, else the global one)", "user", false),
    ("get", "/me", "The token's user", "any", false),
    ("post", "/me/token", "Rotate the caller's API token (returned once)", "any", false),
    ("post", "/me/password", "Change the caller's password {current, new}", "any", true),
    ("get", "/sensors", "Every sensor (the HMAC key is never returned), with its name, tags and, for a third party, partner meta; ?tag=T and ?group=NAME filter", "user", false),
    ("post", "/sensors", "Register a sensor as admin {uuid, hmac_key?, mail?, description?, third_party?, approve? (default true)}; 201", "admin", true),
    ("get", "/sensors/{uuid}", "One sensor", "user", false),
    ("put", "/sensors/{uuid}", "Change description, stream_limit (null = default), mail, third_party, monitoring_threshold (seconds, null = global), name (\"\" removes it), tags (the whole list)", "admin", true),
    ("delete", "/sensors/{uuid}", "Delete the sensor record (reject a registration)", "admin", false),
    ("post", "/sensors/{uuid}/approve", "Approve a pending sensor", "admin", false),
    ("post", "/sensors/{uuid}/name", "Set the sensor's name {name} (\"\" removes it)", "admin", true),
    ("post", "/sensors/{uuid}/tags", "Change the sensor's tags {tags?: replace with this list, add?: [tag], remove?: [tag]}; tags are A-Z a-z 0-9 _ . : = -", "admin", true),
    ("get", "/groups", "Sensor groups {groups: [{name, description, sensors}]}", "user", false),
    ("post", "/groups", "Create a sensor group {name, description?, sensors?: [uuid]}; 201", "admin", true),
    ("get", "/groups/{name}", "One sensor group", "user", false),
    ("put", "/groups/{name}", "Change a group's description and/or members {description?, sensors?: [uuid]}", "admin", true),
    ("delete", "/groups/{name}", "Delete a sensor group", "admin", false),
    ("post", "/sensors/{uuid}/key", "Set {hmac_key} or generate a new HMAC key; the response is the only time it is shown", "admin", true),
    ("put", "/sensors/{uuid}/monitoring", "Set the sensor's monitoring threshold {threshold_secs} (seconds >= 1, null = global); returns {uuid, monitoring_threshold, threshold_secs}", "admin", true),
    ("delete", "/sensors/{uuid}/monitoring", "Clear the sensor's monitoring threshold (use the global one)", "admin", false),
    ("post", "/sensors/{uuid}/kick", "Close the sensor's connections (30 s UUID block)", "admin", false),
    ("post", "/sensors/{uuid}/block", "Block the UUID, or {ips: true} every IP presenting it and the IPs it was seen from", "admin", true),
    ("get", "/sensors/{uuid}/stats", "Per-day frames/bytes by type and IP (?days=7)", "user", false),
    ("get", "/blocklist", "Blocks in force", "user", false),
    ("post", "/blocklist", "Add a block {kind: ip|uuid|ips_of_uuid, value, reason?, expires_in?}", "admin", true),
    ("delete", "/blocklist", "Remove a block {kind, value}", "admin", true),
    ("get", "/types", "Accepted types and extended types", "user", false),
    ("put", "/types/{type}", "Accept or refuse a D4 type {accepted}", "admin", true),
    ("put", "/types/ext/{name}", "Accept or refuse an extended type {accepted}", "admin", true),
    ("get", "/queues", "Analyzer queues with length and trimmed counter", "user", false),
    ("get", "/queues/alerts", "Queue alerts in force (evaluated on the call): a list of {queue, name, kind: fill|age|trimmed, since, value, threshold}", "user", false),
    ("post", "/queues", "Create a queue {kind: type number or ext name, description?, max_size?, sensors?: [uuid], groups?: [group name]}; 201", "admin", true),
    ("get", "/queues/{uuid}", "One queue", "user", false),
    ("put", "/queues/{uuid}", "Replace a queue's settings (same body as create)", "admin", true),
    ("delete", "/queues/{uuid}", "Delete a queue and its entries", "admin", false),
    ("post", "/queues/{uuid}/empty", "Remove every entry", "admin", false),
    ("get", "/queues/{uuid}/sample", "The latest entries, newest first (?n=20)", "user", false),
    ("get", "/users", "Users", "admin", false),
    ("post", "/users", "Create a user {name, role, password?} (generated password returned once); 201", "admin", true),
    ("put", "/users/{name}", "Change a user's role {role}", "admin", true),
    ("delete", "/users/{name}", "Delete a user (not yourself, not the last admin)", "admin", false),
    ("post", "/users/{name}/token", "Create or rotate a user's API token (returned once)", "admin", false),
    ("post", "/users/{name}/password", "Reset a user's password {password?} (generated and returned once when absent); it must be changed at next login and the user's web sessions end", "admin", true),
    ("delete", "/users/{name}/token", "Revoke a user's API token", "admin", false),
    ("get", "/forward", "Forwarding rules with their counters: {rules: [{rule, total, servers}]}; hmac_key and privacy.key shown as ********", "admin", false),
    ("post", "/forward", "Create a forwarding rule {name, destination, tls: {ca_pem | pin_sha256 | plain}, uuid, hmac_key? (generated and returned once when absent), enabled? (default true), description?, filter?: {types, ext_types, sensors, tags, groups}, tags?, privacy?: {key?, pdns?, pcap?, json?, log?}, spool_limit?}; 201 {rule, hmac_key?}", "admin", true),
    ("get", "/forward/{name}", "One forwarding rule (secrets masked) with its counters: {rule, total, servers: [{server_id, time, stats}]}", "admin", false),
    ("put", "/forward/{name}", "Replace a forwarding rule (same body as create; a secret sent as ******** or hmac_key left out keeps the stored one; enabled left out is unchanged)", "admin", true),
    ("delete", "/forward/{name}", "Delete a forwarding rule and its counters", "admin", false),
    ("post", "/forward/{name}/enable", "Enable a forwarding rule", "admin", false),
    ("post", "/forward/{name}/disable", "Disable a forwarding rule (its spool is kept)", "admin", false),
    ("get", "/stats", "Per-day totals, sensors and types (?days=7)", "user", false),
    ("get", "/sessions", "Live sensor sessions", "user", false),
];

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, role, has_body) in ENDPOINTS {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": summary,
            "description": format!("Role: {role}."),
            "parameters": params,
            "security": [{"token": []}],
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
                "409": {"$ref": "#/components/responses/Error"}
            }
        });
        if *has_body {
            op["requestBody"] =
                json!({"content": {"application/json": {"schema": {"type": "object"}}}});
        }
        if let Some(obj) = entry.as_object_mut() {
            obj.insert(method.to_string(), op);
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "d4-rs REST API", "version": env!("CARGO_PKG_VERSION")},
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "The user's API token, bare or as `Bearer <token>`"}},
            "responses": {"Error": {"description": "Error",
                "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"status": {"type": "string", "example": "error"},
                                   "reason": {"type": "string"}}}}}}}
        },
        "paths": paths,
    })
}
