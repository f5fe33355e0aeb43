//! The web UI and the CLI accept and refuse the same inputs: one table of inputs (keys,
//! mails, descriptions, extended type names, type numbers, queue settings, block reasons,
//! sensor names, tags, group names)
//! run through the real `d4` CLI and through the REST API of a real `d4 server` on the
//! same data dir. Both go through `d4_store::validate`; each row must be accepted by both
//! or refused by both, and a refusal by the store's checks reads the same on both sides.

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};

use crate::support::server::*;
use d4_store::{Role, StoreConfig, User};
use serde_json::{json, Value};
use uuid::Uuid;

const TOKEN: &str = "validation-parity-token-0123456789abcdef0123456789abcdef01234567";

/// One REST API request with the API token: (status, body).
async fn api(addr: SocketAddr, method: &str, path: &str, body: &Value) -> (u16, String) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let headers = [
        ("Authorization", TOKEN),
        ("Content-Type", "application/json"),
    ];
    http(addr, method, &format!("/api/v1{path}"), &headers, &body).await
}

/// The real `d4` CLI on the server's data dir (it reaches the store through `d4.sock`).
fn cli(dir: &std::path::Path, args: &[String]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_d4"));
    c.args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    clean_env(&mut c);
    c.env_remove("RUST_LOG");
    c.output().unwrap()
}

/// One input, as the CLI and the API take it.
struct Case {
    what: &'static str,
    cli: Vec<String>,
    method: &'static str,
    path: String,
    body: Value,
    accepted: bool,
    /// Refused by a `d4_store::validate` check (not by argument or path parsing): the CLI
    /// prints the reason the API answers.
    same_message: bool,
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A sensor registration with these options, on both sides (fresh UUIDs).
fn register(
    what: &'static str,
    key: Option<&str>,
    mail: Option<&str>,
    description: Option<&str>,
    accepted: bool,
) -> Case {
    let mut args = s(&["sensor", "register", &Uuid::new_v4().simple().to_string()]);
    let mut body = json!({ "uuid": Uuid::new_v4().simple().to_string() });
    for (flag, field, v) in [
        ("--key", "hmac_key", key),
        ("--mail", "mail", mail),
        ("--description", "description", description),
    ] {
        if let Some(v) = v {
            args.push(flag.into());
            args.push(v.into());
            body[field] = v.into();
        }
    }
    Case {
        what,
        cli: args,
        method: "POST",
        path: "/sensors".into(),
        body,
        accepted,
        same_message: !accepted,
    }
}

fn ext(what: &'static str, name: &str, accepted: bool) -> Case {
    Case {
        what,
        cli: s(&["types", "accept", "--ext", name]),
        method: "PUT",
        path: format!("/types/ext/{name}"),
        body: json!({"accepted": true}),
        accepted,
        same_message: !accepted,
    }
}

fn d4_type(what: &'static str, t: &str, accepted: bool, same_message: bool) -> Case {
    Case {
        what,
        cli: s(&["types", "accept", t]),
        method: "PUT",
        path: format!("/types/{t}"),
        body: json!({"accepted": true}),
        accepted,
        same_message,
    }
}

fn queue(what: &'static str, kind: &str, max: u64, description: &str, accepted: bool) -> Case {
    let kind_flag = if kind.parse::<u64>().is_ok() {
        "--type"
    } else {
        "--ext"
    };
    Case {
        what,
        cli: s(&[
            "queue",
            "create",
            kind_flag,
            kind,
            "--max-size",
            &max.to_string(),
            "--description",
            description,
        ]),
        method: "POST",
        path: "/queues".into(),
        body: json!({"kind": kind, "max_size": max, "description": description}),
        accepted,
        same_message: !accepted,
    }
}

fn block(what: &'static str, ip: &str, reason: &str, accepted: bool) -> Case {
    Case {
        what,
        cli: s(&["blocklist", "ip", "add", ip, "--reason", reason]),
        method: "POST",
        path: "/blocklist".into(),
        body: json!({"kind": "ip", "value": ip, "reason": reason}),
        accepted,
        same_message: !accepted,
    }
}

/// A settings change of an existing sensor.
fn describe(what: &'static str, sensor: &str, description: &str, accepted: bool) -> Case {
    Case {
        what,
        cli: s(&["sensor", "describe", sensor, description]),
        method: "PUT",
        path: format!("/sensors/{sensor}"),
        body: json!({ "description": description }),
        accepted,
        same_message: !accepted,
    }
}

/// A sensor's name (`d4 sensor set --name`, `POST /sensors/{uuid}/name`).
fn name(what: &'static str, sensor: &str, name: &str, accepted: bool) -> Case {
    Case {
        what,
        cli: s(&["sensor", "set", sensor, "--name", name]),
        method: "POST",
        path: format!("/sensors/{sensor}/name"),
        body: json!({ "name": name }),
        accepted,
        same_message: !accepted,
    }
}

/// A tag added to a sensor (`d4 sensor set --tag`, `POST /sensors/{uuid}/tags`).
fn tag(what: &'static str, sensor: &str, tag: &str, accepted: bool) -> Case {
    Case {
        what,
        cli: s(&["sensor", "set", sensor, "--tag", tag]),
        method: "POST",
        path: format!("/sensors/{sensor}/tags"),
        body: json!({ "add": [tag] }),
        accepted,
        same_message: !accepted,
    }
}

/// A new sensor group (`d4 group add`, `POST /groups`), under a name for each side.
fn group(what: &'static str, cli_name: &str, api_name: &str, accepted: bool) -> Case {
    Case {
        what,
        cli: s(&["group", "add", cli_name]),
        method: "POST",
        path: "/groups".into(),
        body: json!({ "name": api_name }),
        accepted,
        same_message: !accepted,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_api_and_cli_accept_and_refuse_the_same_inputs() {
    let dir = tempfile::tempdir().unwrap();
    // An admin with a known API token, written before the server holds the store.
    {
        let store = d4_store::open(&StoreConfig::new(dir.path())).await.unwrap();
        store
            .create_user(User {
                name: "parity".into(),
                role: Role::Admin,
                password_hash: "unused".into(),
                must_change_password: false,
                api_token_hash: Some(d4_store::hash_secret(TOKEN)),
                created: d4_store::now(),
                session_epoch: 1,
            })
            .await
            .unwrap();
    }
    let srv = ServerProc::start(dir.path(), &["--web-plain"]);
    let web = web_addr(&srv.log_text(), "http");

    // A sensor known to both sides, for the settings changes.
    let known = Uuid::new_v4().simple().to_string();
    let o = cli(
        dir.path(),
        &s(&["sensor", "register", &known, "--key", "k"]),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let k100 = "k".repeat(100);
    let k101 = "k".repeat(101);
    let mail257 = format!("{}@example.org", "m".repeat(245));
    let d1024 = "é".repeat(1024);
    let d1025 = "d".repeat(1025);
    let x64 = "x".repeat(64);
    let x65 = "x".repeat(65);
    let r257 = "r".repeat(257);
    let cases = vec![
        register("good key", Some("s3cret"), None, None, true),
        register("100-char key", Some(&k100), None, None, true),
        register("empty key", Some(""), None, None, false),
        register("101-char key", Some(&k101), None, None, false),
        register("key with a control char", Some("a\tb"), None, None, false),
        register("key with a newline", Some("a\nb"), None, None, false),
        register("good mail", Some("k"), Some("a@b.c"), None, true),
        register("257-char mail", Some("k"), Some(&mail257), None, false),
        register("1024-char description", None, None, Some(&d1024), true),
        register("1025-char description", None, None, Some(&d1025), false),
        describe("describe: 1024 chars", &known, &d1024, true),
        describe("describe: 1025 chars", &known, &d1025, false),
        Case {
            what: "stream limit 0",
            cli: s(&["sensor", "set-limit", &known, "0"]),
            method: "PUT",
            path: format!("/sensors/{known}"),
            body: json!({"stream_limit": 0}),
            accepted: false,
            same_message: false,
        },
        ext("good ext name", "my-sensor.v2", true),
        ext("64-char ext name", &x64, true),
        ext("65-char ext name", &x65, false),
        ext("ext name starting with '.'", ".hidden", false),
        ext("ext name with a '+'", "a+b", false),
        d4_type("type 7", "7", true, false),
        d4_type("type 0", "0", false, true),
        d4_type("type 256", "256", false, false),
        queue("good type queue", "8", 100, "pdns", true),
        queue("good ext queue", "ja3-jl", 100, "", true),
        queue("type 0 queue", "0", 100, "", false),
        queue("type 254 queue", "254", 100, "", false),
        queue("bad ext queue", ".x", 100, "", false),
        queue("max size 0", "8", 0, "", false),
        queue("1025-char queue description", "8", 100, &d1025, false),
        name("64-char name", &known, &x64, true),
        name("65-char name", &known, &x65, false),
        name("name with a tab", &known, "a\tb", false),
        tag("good tag", &known, "tlp:green", true),
        tag("tag with a space", &known, "a b", false),
        tag("65-char tag", &known, &x65, false),
        group("good group", "eu-cli", "eu-api", true),
        group("group name with ':'", "a:b", "a:b", false),
        group("65-char group name", &x65, &x65, false),
        block("good reason", "192.0.2.1", "scanner", true),
        block("257-char reason", "192.0.2.2", &r257, false),
    ];

    let mut failures = Vec::new();
    for c in &cases {
        let o = cli(dir.path(), &c.cli);
        let cli_ok = o.status.success();
        let cli_err = String::from_utf8_lossy(&o.stderr).into_owned();
        let (status, body) = api(web, c.method, &c.path, &c.body).await;
        let web_ok = (200..300).contains(&status);
        if cli_ok != c.accepted || web_ok != c.accepted {
            failures.push(format!(
                "{}: expected {}, CLI {} ({cli_err:?}), web {status} ({body})",
                c.what,
                if c.accepted { "accepted" } else { "refused" },
                if cli_ok { "accepted" } else { "refused" },
            ));
            continue;
        }
        if !c.accepted {
            if o.status.code() != Some(2) || status != 400 {
                failures.push(format!(
                    "{}: a refusal is bad input: CLI exit {:?} ({cli_err:?}), web {status}",
                    c.what,
                    o.status.code()
                ));
            }
            if c.same_message {
                let reason = serde_json::from_str::<Value>(&body).unwrap()["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if reason.is_empty() || !cli_err.contains(&reason) {
                    failures.push(format!(
                        "{}: different messages: CLI {cli_err:?}, web {reason:?}",
                        c.what
                    ));
                }
            }
        }
    }
    srv.stop();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
