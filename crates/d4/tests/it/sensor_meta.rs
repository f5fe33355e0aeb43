//! Sensor names, tags and groups through the admin CLI (`d4 sensor set|list`, `d4 group`,
//! `d4 queue --group`), and the receiving side of sharing: a third-party sensor's meta
//! header `tags` and `misp:org` kept on its record, shown by the sensor page, the REST API
//! and `d4 sensor show`, and saved with the data.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::server::*;
use d4_proto::Encoder;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

fn d4(data: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_d4"));
    clean_env(&mut c);
    c.args(args)
        .env("D4_DATA_DIR", data)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(data: &Path, args: &[&str]) -> String {
    let o = d4(data, args);
    assert!(
        o.status.success(),
        "{args:?}: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn json(data: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(data, &a)).unwrap()
}

#[test]
fn cli_names_tags_groups_and_group_queues() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.as_path();
    let a = "3b2a3f5c53c44fd89c8e0d8c6bba4c6f";
    let b = "6f1e0c2a9b8d4e7f8a1b2c3d4e5f6a7b";
    ok(data, &["sensor", "register", a, "--approve"]);
    ok(data, &["sensor", "register", b, "--approve"]);
    // Names and tags.
    let out = ok(
        data,
        &[
            "sensor",
            "set",
            a,
            "--name",
            "tap paris",
            "--tag",
            "share",
            "--tag",
            "tlp:green",
        ],
    );
    assert!(
        out.contains("tap paris") && out.contains("share,tlp:green"),
        "{out}"
    );
    ok(
        data,
        &["sensor", "set", b, "--tag", "share", "--tag", "honeypot"],
    );
    ok(data, &["sensor", "set", b, "--untag", "honeypot"]);
    let s = json(data, &["sensor", "show", b]);
    assert_eq!(s["tags"], serde_json::json!(["share"]));
    assert_eq!(s["key"], "default", "the JSON shape stays additive");
    let table = ok(data, &["sensor", "list"]);
    let header = table.lines().next().unwrap();
    for col in [
        "UUID",
        "NAME",
        "STATUS",
        "KEY",
        "TYPES",
        "TAGS",
        "DESCRIPTION",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(table.contains("tap paris"), "{table}");
    let tagged = json(data, &["sensor", "list", "--tag", "tlp:green"]);
    assert_eq!(tagged.as_array().unwrap().len(), 1);
    assert_eq!(tagged[0]["name"], "tap paris");
    assert_eq!(
        json(data, &["sensor", "list", "--tag", "share"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Refused inputs: exit status 2, the store's message.
    let o = d4(data, &["sensor", "set", a, "--tag", "bad tag"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("tag"));
    let o = d4(data, &["sensor", "set", a]);
    assert_eq!(o.status.code(), Some(2));

    // Groups.
    let out = ok(
        data,
        &[
            "group",
            "add",
            "eu",
            "--description",
            "partners",
            "--sensor",
            a,
        ],
    );
    assert!(out.contains("group eu created (1 sensor"), "{out}");
    let o = d4(data, &["group", "add", "eu"]);
    assert_eq!(o.status.code(), Some(2), "exists");
    let o = d4(data, &["group", "add", "no:colons"]);
    assert_eq!(o.status.code(), Some(2), "bad name");
    ok(data, &["group", "add-sensor", "eu", b]);
    let g = json(data, &["group", "show", "eu"]);
    assert_eq!(g["sensors"].as_array().unwrap().len(), 2);
    let shown = ok(data, &["group", "show", "eu"]);
    assert!(
        shown.contains("tap paris"),
        "members with their names: {shown}"
    );
    let list = ok(data, &["group", "list"]);
    assert!(list.contains("eu") && list.contains("partners"), "{list}");
    let members = json(data, &["sensor", "list", "--group", "eu"]);
    assert_eq!(members.as_array().unwrap().len(), 2);
    ok(data, &["group", "remove-sensor", "eu", b]);
    let members = json(data, &["sensor", "list", "--group", "eu"]);
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(members[0]["uuid"], "3b2a3f5c-53c4-4fd8-9c8e-0d8c6bba4c6f");
    let s = json(data, &["sensor", "show", a]);
    assert_eq!(s["groups"], serde_json::json!(["eu"]));
    let o = d4(data, &["sensor", "list", "--group", "nope"]);
    assert_eq!(o.status.code(), Some(2), "unknown group");

    // A queue fed by the group, then by every sensor again.
    let q = ok(data, &["queue", "create", "--type", "8", "--group", "eu"]);
    let q = q.trim();
    let shown = json(data, &["queue", "show", q]);
    assert_eq!(
        shown["queue"]["config"]["groups"],
        serde_json::json!(["eu"])
    );
    let list = ok(data, &["queue", "list"]);
    assert!(list.contains("group(s) eu"), "{list}");
    ok(data, &["queue", "update", q, "--all-sensors"]);
    let shown = json(data, &["queue", "show", q]);
    assert!(shown["queue"]["config"].get("groups").is_none(), "{shown}");
    ok(
        data,
        &["queue", "update", q, "--group", "eu", "--group", "other"],
    );
    let shown = json(data, &["queue", "show", q]);
    assert_eq!(
        shown["queue"]["config"]["groups"],
        serde_json::json!(["eu", "other"])
    );

    ok(data, &["group", "remove", "eu"]);
    let o = d4(data, &["group", "show", "eu"]);
    assert_eq!(o.status.code(), Some(2));
}

const PARTNER_KEY: &str = "key of partner org B";

fn frame(uuid: Uuid, t: u8, payload: &[u8]) -> Vec<u8> {
    Encoder::new(uuid, PARTNER_KEY.as_bytes(), t)
        .encode(d4_store::now(), payload)
        .unwrap()
}

/// One HTTPS request (Connection: close) to the server's web UI: (status, body).
async fn https(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let fut = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut s = tls_connector()
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let req = http_request("GET", path, headers, "");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let (status, _, body) = parse_response(&out);
        (status, body)
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("HTTPS request timed out")
}

/// A partner's stream (type 2 meta header with `tags` and `misp:org`, then type 254) from a
/// sensor marked third party: its record, the sensor page, the REST API and `d4 sensor
/// show` show the partner's organisation and tags; the saved header keeps them. An
/// ordinary sensor sending the same header gets no partner record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_party_meta_header_is_kept_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path(), &[]);
    let store = srv.store().await;
    let org = "55f6ea5e-2c60-40e5-964f-47a8950d210f";
    let mut sensors = Vec::new();
    for third_party in [true, false] {
        let u = Uuid::new_v4();
        store
            .register_sensor(d4_store::SensorRegistration {
                uuid: u,
                hmac_key: Some(PARTNER_KEY.into()),
                mail: None,
                third_party,
                description: Some("org B's server".into()),
                approve: true,
            })
            .await
            .unwrap();
        sensors.push(u);
    }
    let (partner, ordinary) = (sensors[0], sensors[1]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let header = format!(
        r#"{{"type":"maltrail","encoding":"utf-8","tags":["tlp:green","misp-galaxy:sector=\"Finance\""],"misp:org":"{org}"}}"#
    );
    for u in [partner, ordinary] {
        let mut wire = frame(u, 2, header.as_bytes());
        wire.extend(frame(u, 254, b"2024-01-01 10:00:00 line one\n"));
        let mut s = open(srv.plain, &wire).await;
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.shutdown().await.unwrap();
    }
    let got = wait_for(10, || {
        let store = store.clone();
        async move { store.get_sensor(partner).await.ok()??.partner }
    })
    .await
    .expect("partner meta recorded");
    assert_eq!(got.org.as_deref(), Some(org));
    assert_eq!(
        got.tags,
        vec![
            "tlp:green".to_string(),
            "misp-galaxy:sector=\"Finance\"".to_string()
        ]
    );
    assert_eq!(got.ext_type.as_deref(), Some("maltrail"));
    assert_eq!(got.ip, Some("127.0.0.1".parse().unwrap()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store.get_sensor(ordinary).await.unwrap().unwrap().partner,
        None,
        "only third-party sensors get a partner record"
    );
    // The saved header keeps the tags and the organisation.
    let saved = wait_for(10, || async {
        files(srv.dir.join(partner.simple().to_string()).as_path())
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "json"))
    })
    .await
    .expect("meta header saved");
    let text = String::from_utf8(content(&saved).unwrap()).unwrap();
    assert!(text.contains(org) && text.contains("tlp:green"), "{text}");

    // The sensor page (a web login made in the store) and the REST API.
    let web = web_addr(&srv.log_text(), "https");
    let token = "token-of-the-sensor-meta-test-0123456789abcdef";
    let epoch = 7;
    store
        .create_user(d4_store::User {
            name: "viewer".into(),
            role: d4_store::Role::User,
            password_hash: "unused: the test logs in with a web login made in the store".into(),
            must_change_password: false,
            api_token_hash: Some(d4_store::hash_secret(token)),
            created: 1,
            session_epoch: epoch,
        })
        .await
        .unwrap();
    // a session id as the web UI makes them: 64 characters
    let login = "login-id-of-the-sensor-meta-test-0123456789abcdef0123456789abcde";
    assert_eq!(login.len(), 64);
    let now = d4_store::now();
    store
        .create_web_login(d4_store::WebLogin {
            id_hash: d4_store::hash_secret(login),
            user: "viewer".into(),
            csrf_token: "c".repeat(64),
            created: now,
            expires: now + 3600,
            epoch,
        })
        .await
        .unwrap();
    let sid = partner.simple().to_string();
    let (status, page) = https(
        web,
        &format!("/sensors/{sid}"),
        &[("Cookie", &format!("d4_session={login}"))],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    for want in [org, "tlp:green", "Partner organisation", "maltrail"] {
        assert!(page.contains(want), "{want}: {page}");
    }
    let (status, body) = https(
        web,
        &format!("/api/v1/sensors/{sid}"),
        &[("Authorization", token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["partner"]["org"], org);
    assert_eq!(v["partner"]["tags"][0], "tlp:green");
    // The CLI, through the server's store socket.
    let shown = ok(&srv.dir, &["sensor", "show", &sid]);
    assert!(shown.contains("partner meta: org 55f6ea5e"), "{shown}");
}
