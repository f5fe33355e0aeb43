//! `d4 forward add|list|show|enable|disable|remove` run as the real binary, on the
//! embedded store and through the store socket: secrets masked, refusals with clear
//! messages and exit status 2.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cli::Cli;
use crate::support::wait_for_file;

const PARTNER_UUID: &str = "6a1f0b2e-8d8c-4e43-9f0e-3f5a2c1d9b7e";

/// A self-signed certificate file, as a partner's `server.crt`; its SHA-256 pin.
fn partner_cert(dir: &std::path::Path) -> (PathBuf, String) {
    use sha2::Digest;
    let ck = rcgen::generate_simple_self_signed(vec!["partner.example".to_string()]).unwrap();
    let path = dir.join("server.crt");
    std::fs::write(&path, ck.cert.pem()).unwrap();
    let der: &[u8] = ck.cert.der();
    (path, hex::encode(sha2::Sha256::digest(der)))
}

#[test]
fn forward_rule_lifecycle() {
    let cli = Cli::new();
    let (crt, pin) = partner_cert(cli.dir.path());
    let crt = crt.to_str().unwrap();
    let out = cli.run(&[
        "forward",
        "add",
        "to-b",
        "--to",
        "127.0.0.1:4443",
        "--pin-from",
        crt,
        "--uuid",
        PARTNER_UUID,
        "--type",
        "8",
        "--type",
        "pcap",
        "--tag",
        "share",
        "--group",
        "not-created-yet",
        "--meta-tag",
        "tlp:green",
        "--pdns-client-ip",
        "pseudonymise",
        "--pdns-round",
        "60",
        "--pcap-prefix",
        "10.0.0.0/8",
        "--log-redact",
        r"user=\w+",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HMAC key"),
        "generated key printed: {stderr}"
    );
    let key_line = stderr.lines().find(|l| l.contains("HMAC key")).unwrap();
    let key = key_line.trim().rsplit(' ').next().unwrap().to_string();
    assert_eq!(key.len(), 64, "{stderr}");

    // show: secrets masked, unless asked.
    let shown = cli.json(&["forward", "show", "to-b"]);
    let rule = &shown["rule"];
    assert_eq!(rule["hmac_key"], "********");
    assert_eq!(rule["privacy"]["key"], "********");
    assert_eq!(rule["tls"]["pin_sha256"], pin.as_str());
    assert_eq!(rule["filter"]["types"], serde_json::json!([1, 8]));
    assert_eq!(
        rule["filter"]["groups"],
        serde_json::json!(["not-created-yet"])
    );
    assert_eq!(rule["privacy"]["pdns"]["client_ip"], "pseudonymise");
    assert_eq!(
        rule["privacy"]["pcap"]["prefixes"],
        serde_json::json!(["10.0.0.0/8"])
    );
    assert_eq!(rule["enabled"], true);
    let text = cli.ok(&["forward", "show", "to-b"]);
    assert!(text.contains("********") && !text.contains(&key), "{text}");
    assert!(text.contains("SERVER") && text.contains("(none)"), "{text}");
    let secret = cli.json(&["forward", "show", "to-b", "--show-secrets"]);
    assert_eq!(secret["rule"]["hmac_key"], key.as_str());
    assert_eq!(secret["rule"]["privacy"]["key"].as_str().unwrap().len(), 64);

    // A second rule: CA trust, given key, created disabled.
    cli.ok(&[
        "forward",
        "add",
        "to-c",
        "--to",
        "[::1]:4443",
        "--ca",
        crt,
        "--uuid",
        PARTNER_UUID,
        "--key",
        "k-at-c",
        "--disabled",
    ]);
    let list = cli.ok(&["forward", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{list}");
    assert!(
        lines[1].starts_with("to-b") && lines[1].contains("yes"),
        "{list}"
    );
    assert!(
        lines[1].contains("127.0.0.1:4443") && lines[1].contains("1,8"),
        "{list}"
    );
    assert!(
        lines[2].starts_with("to-c") && lines[2].contains("no"),
        "{list}"
    );
    let list = cli.json(&["forward", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["rule"]["hmac_key"], "********");
    assert_eq!(list[0]["total"]["frames_forwarded"], 0);

    // enable / disable.
    assert!(cli.ok(&["forward", "disable", "to-b"]).contains("disabled"));
    assert_eq!(
        cli.json(&["forward", "show", "to-b"])["rule"]["enabled"],
        false
    );
    cli.ok(&["forward", "enable", "to-b"]);
    assert_eq!(
        cli.json(&["forward", "show", "to-b"])["rule"]["enabled"],
        true
    );

    // set: only the partner settings given change (a wrong key fixed in place)
    let before = cli.json(&["forward", "show", "to-c", "--show-secrets"])["rule"].clone();
    let said = cli.ok(&[
        "forward",
        "set",
        "to-c",
        "--key",
        "right-key",
        "--to",
        "[::1]:5443",
    ]);
    assert!(said.contains("spool is kept"), "{said}");
    let after = cli.json(&["forward", "show", "to-c", "--show-secrets"])["rule"].clone();
    assert_eq!(after["hmac_key"], "right-key");
    assert_eq!(after["destination"], "[::1]:5443");
    for same in [
        "uuid", "tls", "filter", "privacy", "enabled", "tags", "created",
    ] {
        assert_eq!(after[same], before[same], "{same}");
    }
    cli.ok(&[
        "forward",
        "set",
        "to-c",
        "--pin",
        &pin,
        "--meta-tag",
        "tlp:amber",
    ]);
    let after = cli.json(&["forward", "show", "to-c"])["rule"].clone();
    assert_eq!(after["tls"]["pin_sha256"], pin.as_str());
    assert_eq!(after["tls"]["ca_pem"], serde_json::Value::Null);
    assert_eq!(after["tags"], serde_json::json!(["tlp:amber"]));
    cli.refused(&["forward", "set", "to-c", "--to", "no-port"], "host:port");
    cli.refused(&["forward", "set", "nope", "--key", "k"], "not found");
    cli.refused(&["forward", "set", "to-c"], "nothing to change");
    cli.ok(&["forward", "set", "to-c", "--plain"]);
    cli.refused(
        &["forward", "set", "to-c", "--to", "127.0.0.1:1"],
        "plain TCP",
    );
    cli.ok(&["forward", "set", "to-c", "--to", "127.0.0.1:1", "--plain"]);

    // remove.
    cli.ok(&["forward", "remove", "to-c"]);
    cli.refused(&["forward", "remove", "to-c"], "not found");
    cli.refused(&["forward", "show", "to-c"], "not found");
    cli.refused(&["forward", "enable", "to-c"], "not found");
    assert_eq!(cli.json(&["forward", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn forward_refusals_are_clear() {
    let cli = Cli::new();
    let (crt, _) = partner_cert(cli.dir.path());
    let crt = crt.to_str().unwrap();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "forward",
            "add",
            "r",
            "--to",
            "127.0.0.1:4443",
            "--uuid",
            PARTNER_UUID,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let refused = |args: Vec<String>, want: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        cli.refused(&a, want);
    };
    refused(base(&["--pin", "abcd"]), "64");
    refused(base(&["--pin", "ab", "--plain"]), "cannot be used with");
    let mut both = base(&["--pin", &"ab".repeat(32)]);
    both.extend(["--ca".to_string(), crt.to_string()]);
    refused(both, "cannot be used with");
    refused(base(&[]), "--pin-from");
    refused(
        base(&["--plain", "--type", "5"]),
        "type 5 cannot be forwarded",
    );
    refused(
        base(&["--plain", "--type", "2"]),
        "type 2 cannot be forwarded",
    );
    refused(base(&["--plain", "--type", "nope"]), "unknown D4 type");
    refused(
        base(&["--plain", "--log-redact", "(open"]),
        "redaction pattern",
    );
    refused(base(&["--plain", "--privacy-key", "12"]), "64 hex");
    refused(base(&["--plain", "--tag", "bad tag"]), "tag");
    refused(base(&["--plain", "--pcap-prefix", "10.0.0/8x"]), "prefix");
    let mut bad_to = base(&["--plain"]);
    bad_to[4] = "nohost".into();
    refused(bad_to, "host:port");
    let mut v5 = base(&["--plain"]);
    v5[6] = "b7d3c8e4-1c1a-5d3a-8c8e-0d8c6bba4c6f".into();
    refused(v5, "version 4");
    refused(base(&["--ca", "/nonexistent/ca.pem"]), "cannot read");
    // A duplicate name.
    let mut ok = base(&["--plain"]);
    ok.extend(["--key".to_string(), "k".to_string()]);
    let a: Vec<&str> = ok.iter().map(String::as_str).collect();
    cli.ok(&a);
    refused(ok, "already exists");
    // A group nobody created yet is fine: groups may come later.
    let mut g = base(&["--plain", "--group", "later"]);
    g[2] = "r2".into();
    let a: Vec<&str> = g.iter().map(String::as_str).collect();
    cli.ok(&a);
}

#[test]
fn forward_through_the_server_socket() {
    let cli = Cli::new();
    let mut server = cli
        .cmd(&["store-serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(&cli.data().join("d4.sock"));
    cli.ok(&[
        "forward",
        "add",
        "via-socket",
        "--to",
        "127.0.0.1:4443",
        "--plain",
        "--uuid",
        PARTNER_UUID,
        "--key",
        "k",
    ]);
    assert_eq!(
        cli.json(&["forward", "show", "via-socket"])["rule"]["destination"],
        "127.0.0.1:4443"
    );
    cli.ok(&["forward", "disable", "via-socket"]);
    assert!(cli.ok(&["forward", "list"]).contains("via-socket"));
    let _ = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status();
    let _ = wait_output_child(&mut server);
    // The rule is in the file.
    assert_eq!(
        cli.json(&["forward", "show", "via-socket"])["rule"]["enabled"],
        false
    );
}

fn wait_output_child(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("store-serve did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
