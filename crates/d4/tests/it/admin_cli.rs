//! The admin CLI (`d4 sensor|blocklist|queue|types|store-serve`) run as the real binary,
//! on the embedded store and through the store socket.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cli::{wait_output, Cli};
use crate::support::wait_for_file;

const UUID: &str = "3b2a3f5c53c44fd89c8e0d8c6bba4c6f";

fn sigint(child: &Child) {
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn admin_sensor_lifecycle() {
    let cli = Cli::new();
    let out = cli.ok(&[
        "sensor",
        "register",
        "3b2a3f5c-53c4-4fd8-9c8e-0d8c6bba4c6f",
        "--key",
        "s3cret",
        "--mail",
        "a@b.c",
    ]);
    assert!(out.contains(UUID) && out.contains("pending"), "{out}");
    let err = cli.fails(&["sensor", "register", UUID], 2);
    assert!(err.contains("already registered"), "{err}");
    let list = cli.json(&["sensor", "list", "--pending"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["status"], "pending");
    assert_eq!(list[0]["key"], "own");
    assert!(
        !cli.ok(&["sensor", "list", "--json"]).contains("s3cret"),
        "keys are never printed"
    );
    cli.ok(&["sensor", "approve", UUID]);
    assert!(cli
        .json(&["sensor", "list", "--pending"])
        .as_array()
        .unwrap()
        .is_empty());
    let table = cli.ok(&["sensor", "list"]);
    assert!(
        table.contains("approved") && table.contains(UUID),
        "{table}"
    );
    cli.ok(&["sensor", "describe", UUID, "honeypot in DC 2"]);
    cli.ok(&["sensor", "set-limit", UUID, "500"]);
    cli.ok(&["sensor", "set-key", UUID, "--default"]);
    let s = cli.json(&["sensor", "show", UUID]);
    assert_eq!(s["description"], "honeypot in DC 2");
    assert_eq!(s["stream_limit"], 500);
    assert_eq!(s["key"], "default");
    let o = cli.run_stdin(&["sensor", "set-key", UUID, "--stdin"], Some("new key\n"));
    assert!(o.status.success());
    assert_eq!(cli.json(&["sensor", "show", UUID])["key"], "own");
    let human = cli.ok(&["sensor", "show", UUID]);
    assert!(
        human.contains("honeypot in DC 2") && !human.contains("new key"),
        "{human}"
    );
    // Block, unblock, kick.
    cli.ok(&["sensor", "block", UUID, "--ips"]);
    cli.ok(&["sensor", "block", UUID]);
    let blocks = cli.json(&["blocklist", "uuid", "list"]);
    assert_eq!(blocks.as_array().unwrap().len(), 2, "{blocks}");
    cli.ok(&["sensor", "unblock", UUID]);
    assert!(cli
        .json(&["blocklist", "uuid", "list"])
        .as_array()
        .unwrap()
        .is_empty());
    cli.fails(&["sensor", "unblock", UUID], 2);
    cli.ok(&["sensor", "kick", UUID]);
    let blocks = cli.json(&["blocklist", "uuid", "list"]);
    assert_eq!(blocks[0]["reason"], "kick");
    assert!(blocks[0]["expires"].as_u64().unwrap() > blocks[0]["created"].as_u64().unwrap());
    // Bad input: exit 2 with a clear message.
    let err = cli.fails(&["sensor", "approve", "not-a-uuid"], 2);
    assert!(err.contains("invalid uuid"), "{err}");
    cli.fails(
        &["sensor", "approve", "00000000000000000000000000000001"],
        2,
    );
    cli.fails(&["sensor", "set-limit", UUID, "-3"], 2);
    cli.fails(&["sensor", "bogus-subcommand"], 2);
    cli.ok(&["sensor", "delete", UUID]);
    cli.fails(&["sensor", "show", UUID], 2);
}

#[test]
fn admin_blocklists() {
    let cli = Cli::new();
    cli.ok(&[
        "blocklist",
        "ip",
        "add",
        "198.51.100.7/24",
        "2001:db8::/32",
        "192.0.2.1",
    ]);
    cli.ok(&[
        "blocklist",
        "ip",
        "add",
        "203.0.113.5",
        "--expires",
        "600",
        "--reason",
        "scan",
    ]);
    let list = cli.json(&["blocklist", "ip", "list"]);
    let nets: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["target"]["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nets.len(), 4, "{list}");
    for n in [
        "198.51.100.0/24",
        "2001:db8::/32",
        "192.0.2.1/32",
        "203.0.113.5/32",
    ] {
        assert!(nets.contains(&n.to_string()), "{n} in {nets:?}");
    }
    let scan = list
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["reason"] == "scan")
        .unwrap();
    assert!(scan["expires"].is_u64());
    let err = cli.fails(&["blocklist", "ip", "add", "300.1.1.1"], 2);
    assert!(err.contains("invalid IP"), "{err}");
    cli.fails(&["blocklist", "ip", "add", "192.0.2.9", "--ips"], 2);
    cli.ok(&["blocklist", "ip", "remove", "198.51.100.0/24", "192.0.2.1"]);
    cli.fails(&["blocklist", "ip", "remove", "192.0.2.1"], 2);
    assert_eq!(
        cli.json(&["blocklist", "ip", "list"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    cli.ok(&["blocklist", "uuid", "add", UUID]);
    cli.ok(&["blocklist", "uuid", "add", UUID, "--ips"]);
    let table = cli.ok(&["blocklist", "uuid", "list"]);
    assert!(table.contains("(its IPs)"), "{table}");
    cli.ok(&["blocklist", "uuid", "remove", UUID, "--ips"]);
    cli.ok(&["blocklist", "uuid", "remove", UUID]);
    assert!(cli.ok(&["blocklist", "uuid", "list"]).contains("(none)"));
    // IP entries are not listed as uuids and vice versa.
    assert_eq!(
        cli.json(&["blocklist", "uuid", "list"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn admin_types() {
    let cli = Cli::new();
    let t = cli.json(&["types", "list"]);
    assert_eq!(t["types"], serde_json::json!([1, 2, 3, 4, 5, 6, 7, 8, 254]));
    assert!(t["ext_types"]
        .as_array()
        .unwrap()
        .contains(&"ja3-jl".into()));
    cli.ok(&["types", "refuse", "pcapng", "7", "--ext", "maltrail"]);
    let t = cli.json(&["types", "list"]);
    assert_eq!(t["types"], serde_json::json!([1, 2, 3, 4, 6, 8, 254]));
    assert!(!t["ext_types"]
        .as_array()
        .unwrap()
        .contains(&"maltrail".into()));
    cli.ok(&["types", "accept", "yaf", "--ext", "my-sensor.v2"]);
    let t = cli.json(&["types", "list"]);
    assert!(t["types"].as_array().unwrap().contains(&7.into()));
    assert!(t["ext_types"]
        .as_array()
        .unwrap()
        .contains(&"my-sensor.v2".into()));
    let table = cli.ok(&["types", "list"]);
    assert!(
        table.contains("pcapng") && table.contains("refused"),
        "{table}"
    );
    let err = cli.fails(&["types", "accept", "bogus"], 2);
    assert!(
        err.contains("unknown D4 type") && err.contains("passivedns"),
        "{err}"
    );
    cli.fails(&["types", "accept", "0"], 2);
    cli.fails(&["types", "accept", "--ext", "../etc"], 2);
    cli.fails(&["types", "refuse"], 2);
}

#[test]
fn admin_queues_embedded() {
    let cli = Cli::new();
    let q = cli.ok(&[
        "queue",
        "create",
        "--type",
        "passivedns",
        "--description",
        "pdns",
        "--max-size",
        "3",
    ]);
    // The hyphenated form, as the Redis key `analyzer:8:<uuid>` (issue 14: was 32 hex).
    let q = q.trim().to_string();
    assert_eq!(q.len(), 36, "{q}");
    assert_eq!(
        uuid::Uuid::parse_str(&q).unwrap().hyphenated().to_string(),
        q
    );
    let g = cli.json(&["queue", "create", "--ext", "ja3-jl", "--sensor", UUID]);
    assert_eq!(
        g["config"]["kind"],
        serde_json::json!({"kind": "ext", "value": "ja3-jl"})
    );
    cli.fails(&["queue", "create", "--type", "254"], 2);
    cli.fails(&["queue", "create", "--type", "8", "--max-size", "0"], 2);
    cli.fails(&["queue", "create"], 2);
    cli.fails(&["queue", "create", "--type", "8", "--uuid", &q], 2);
    let out = cli.ok(&["queue", "push", &q, "l1", "l2", "l3", "l4", "l5"]);
    assert!(out.contains("5 entries pushed, 2 trimmed"), "{out}");
    let list = cli.json(&["queue", "list"]);
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["config"]["description"] == "pdns")
        .unwrap();
    assert_eq!(
        (row["len"].as_u64(), row["trimmed"].as_u64()),
        (Some(3), Some(2))
    );
    let shown = cli.ok(&["queue", "show", &q]);
    assert!(shown.contains("l5") && shown.contains("pdns"), "{shown}");
    // Pop: oldest first, one per line.
    assert_eq!(cli.ok(&["queue", "pop", &q, "-n", "2"]), "l3\nl4\n");
    let o = cli.run_stdin(
        &["queue", "push", &q, "--sensor", UUID],
        Some("from stdin\r\nsecond\n"),
    );
    assert!(o.status.success());
    assert_eq!(
        cli.ok(&["queue", "pop", &q, "--with-sensor"]),
        format!("-\tl5\n{UUID}\tfrom stdin\n{UUID}\tsecond\n")
    );
    assert_eq!(cli.ok(&["queue", "pop", &q]), "");
    cli.ok(&[
        "queue",
        "update",
        &q,
        "--max-size",
        "10",
        "--description",
        "renamed",
    ]);
    cli.ok(&["queue", "push", &q, "a", "b"]);
    assert!(cli
        .ok(&["queue", "empty", &q])
        .contains("2 entries removed"));
    cli.ok(&["queue", "delete", &q]);
    cli.fails(&["queue", "delete", &q], 2);
    cli.fails(&["queue", "pop", &q], 2);
    cli.fails(&["queue", "pop", "nope"], 2);
}

#[test]
fn admin_over_the_store_socket() {
    let cli = Cli::new();
    // A process holds the database and serves the socket (as `d4 server` does).
    let mut server = cli
        .cmd(&["store-serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sock = cli.data().join("d4.sock");
    wait_for_file(&sock);
    cli.ok(&["sensor", "register", UUID, "--approve"]);
    assert_eq!(cli.json(&["sensor", "show", UUID])["status"], "approved");
    let q = cli
        .ok(&["queue", "create", "--type", "3"])
        .trim()
        .to_string();
    // The stdout analyzer follows the queue while other processes push.
    let mut follower = cli
        .cmd(&["queue", "pop", &q, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap());
    cli.ok(&["queue", "push", &q, "first", "second"]);
    let mut got = Vec::new();
    for _ in 0..2 {
        let mut l = String::new();
        lines.read_line(&mut l).unwrap();
        got.push(l);
    }
    cli.ok(&["queue", "push", &q, "third"]);
    let mut l = String::new();
    lines.read_line(&mut l).unwrap();
    got.push(l);
    assert_eq!(got, ["first\n", "second\n", "third\n"]);
    sigint(&follower);
    let o = wait_output(follower, Duration::from_secs(20));
    assert!(
        o.status.success(),
        "follower stops cleanly on SIGINT: {:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(cli.json(&["queue", "list"])[0]["len"], 0);
    cli.ok(&["sensor", "kick", UUID]);
    sigint(&server);
    let o = wait_output(server, Duration::from_secs(20));
    assert!(o.status.success());
    assert!(!sock.exists(), "socket removed at exit");
    // The data is in the file: the CLI now opens it directly.
    assert_eq!(cli.json(&["sensor", "show", UUID])["status"], "approved");
    server = cli
        .cmd(&["store-serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(&sock);
    // A second store-serve is refused while one runs.
    let err = cli.fails(&["store-serve"], 1);
    assert!(
        err.contains("locked") || err.contains("another process"),
        "{err}"
    );
    sigint(&server);
    assert!(wait_output(server, Duration::from_secs(20))
        .status
        .success());
}

#[test]
fn admin_locked_store_without_socket_is_a_clear_error() {
    let cli = Cli::new();
    let q = cli
        .ok(&["queue", "create", "--type", "8"])
        .trim()
        .to_string();
    // `queue pop --follow` on the embedded store holds the database and serves nothing.
    let spawn = || {
        cli.cmd(&["queue", "pop", &q, "--follow"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut follower = spawn();
    let start = Instant::now();
    let err = loop {
        // Our own probe may have held the file when the follower started: restart it.
        if follower.try_wait().unwrap().is_some() {
            follower = spawn();
        }
        let o = cli.run(&["sensor", "list"]);
        if o.status.code() == Some(1) {
            break String::from_utf8(o.stderr).unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the follower never held the store"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        err.contains("locked by another process") && err.contains("d4.sock"),
        "{err}"
    );
    sigint(&follower);
    assert!(wait_output(follower, Duration::from_secs(20))
        .status
        .success());
    // A Redis nobody answers: a clear connection error naming it.
    let err = cli.fails(&["sensor", "list", "--redis", "redis://127.0.0.1:1"], 1);
    assert!(err.contains("redis"), "{err}");
}

#[test]
fn admin_cli_on_the_redis_store() {
    let redis = d4_testkit::RedisServer::start();
    let url = redis.url_db(0);
    let cli = Cli::new();
    let u = uuid::Uuid::new_v4().simple().to_string();
    cli.ok(&["sensor", "register", &u, "--key", "k", "--redis", &url]);
    cli.ok(&["sensor", "approve", &u, "--redis", &url]);
    let list = cli.ok(&["sensor", "list", "--redis", &url]);
    assert!(list.contains(&u), "{list}");
    // Not in the embedded store of the data dir.
    assert!(!cli.ok(&["sensor", "list"]).contains(&u));
}

/// A store split like d4-core's databases, as `d4 server --redis …/0 --redis-metadata …/1
/// --redis-queue …/2` writes it (here through the library with the same settings).
fn split_store(redis: &d4_testkit::RedisServer, entries: usize) -> (uuid::Uuid, uuid::Uuid) {
    use d4_store::{QueueConfig, QueueEntry, QueueKind, SensorRegistration, StoreConfig};
    let mut cfg = StoreConfig::new("/nonexistent-unused");
    cfg.redis_url = Some(redis.url_db(0));
    cfg.redis_metadata_url = Some(redis.url_db(1));
    cfg.redis_queue_url = Some(redis.url_db(2));
    let (queue, sensor) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = d4_store::open(&cfg).await.unwrap();
        store
            .register_sensor(SensorRegistration {
                uuid: sensor,
                hmac_key: Some("k".into()),
                mail: None,
                third_party: false,
                description: Some("split".into()),
                approve: true,
            })
            .await
            .unwrap();
        store
            .create_queue(
                QueueConfig {
                    uuid: queue,
                    kind: QueueKind::Type(8),
                    description: "pdns".into(),
                    max_size: 10_000,
                    sensors: None,
                    groups: Vec::new(),
                },
                1,
            )
            .await
            .unwrap();
        let lines = (0..entries)
            .map(|i| QueueEntry::new(format!("line {i}")))
            .collect();
        store.push_entries(vec![queue], lines, 2).await.unwrap();
    });
    (queue, sensor)
}

fn queue_len(list: &serde_json::Value, queue: uuid::Uuid) -> Option<u64> {
    list.as_array()?
        .iter()
        .find(|q| q["config"]["uuid"] == queue.hyphenated().to_string())?["len"]
        .as_u64()
}

/// Issue 14: the admin commands follow the server's split databases — by flags, by the
/// `D4_*` variables, and by the server's `d4.toml` — where they used to read the queue
/// list in the main database (length 0, nothing popped).
#[test]
fn admin_follows_split_redis_databases() {
    let redis = d4_testkit::RedisServer::start();
    let (queue, sensor) = split_store(&redis, 240);
    let (db0, db1, db2) = (redis.url_db(0), redis.url_db(1), redis.url_db(2));
    let cli = Cli::new();

    // Flags.
    let list = cli.json(&[
        "queue",
        "list",
        "--redis",
        &db0,
        "--redis-metadata",
        &db1,
        "--redis-queue",
        &db2,
    ]);
    assert_eq!(queue_len(&list, queue), Some(240), "{list}");
    let popped = cli.ok(&[
        "queue",
        "pop",
        &queue.simple().to_string(),
        "-n",
        "3",
        "--redis",
        &db0,
        "--redis-metadata",
        &db1,
        "--redis-queue",
        &db2,
    ]);
    assert_eq!(popped, "line 0\nline 1\nline 2\n");

    // The D4_* variables `d4 server` reads.
    let env_cmd = |args: &[&str]| {
        let mut c = cli.cmd(args);
        c.env("D4_REDIS", &db0)
            .env("D4_REDIS_METADATA", &db1)
            .env("D4_REDIS_QUEUE", &db2);
        c.output().unwrap()
    };
    let o = env_cmd(&["queue", "list", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(queue_len(&list, queue), Some(237), "{list}");
    let o = env_cmd(&["sensor", "list"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&sensor.simple().to_string()));
    let o = env_cmd(&["queue", "pop", &queue.hyphenated().to_string(), "-n", "2"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "line 3\nline 4\n");

    // The server's d4.toml in the data dir, no flag at all.
    std::fs::create_dir_all(cli.data()).unwrap();
    std::fs::write(
        cli.data().join("d4.toml"),
        format!("redis = \"{db0}\"\nredis_metadata = \"{db1}\"\nredis_queue = \"{db2}\"\n"),
    )
    .unwrap();
    let list = cli.json(&["queue", "list"]);
    assert_eq!(queue_len(&list, queue), Some(235), "{list}");
    assert!(cli
        .ok(&["sensor", "list"])
        .contains(&sensor.simple().to_string()));
    assert_eq!(
        cli.ok(&["queue", "pop", &queue.simple().to_string(), "-n", "1"]),
        "line 5\n"
    );
    // ... or named by --config from elsewhere.
    let elsewhere = Cli::new();
    let cfg = cli.data().join("d4.toml");
    let list = elsewhere.json(&["queue", "list", "--config", cfg.to_str().unwrap()]);
    assert_eq!(queue_len(&list, queue), Some(234), "{list}");

    // A queue URL without the main one is a clear error.
    let err = elsewhere.fails(&["queue", "list", "--redis-queue", &db2], 2);
    assert!(err.contains("--redis"), "{err}");
}

/// Issue 14: queue ids print hyphenated (the form of the Redis key
/// `analyzer:<type>:<uuid>` that d4-core analyzers are configured with) and are accepted
/// in both forms; a d4-core analyzer given the printed id gets the entries.
#[test]
fn queue_ids_print_as_d4core_analyzers_need_them() {
    let redis = d4_testkit::RedisServer::start();
    let url = redis.url_db(0);
    let cli = Cli::new();
    let printed = cli
        .ok(&["queue", "create", "--type", "8", "--redis", &url])
        .trim()
        .to_string();
    let q = uuid::Uuid::parse_str(&printed).unwrap();
    assert_eq!(printed, q.hyphenated().to_string(), "printed hyphenated");
    let list = cli.ok(&["queue", "list", "--redis", &url]);
    assert!(list.contains(&printed), "{list}");
    // Both forms accepted.
    cli.ok(&[
        "queue",
        "push",
        &q.simple().to_string(),
        "a",
        "b",
        "--redis",
        &url,
    ]);
    cli.ok(&["queue", "push", &printed, "c", "--redis", &url]);
    let shown = cli.ok(&["queue", "show", &q.simple().to_string(), "--redis", &url]);
    assert!(shown.contains(&printed), "{shown}");
    // analyzer-d4-passivedns with `my-uuid = <printed id>`.
    let got = d4_testkit::d4core_analyzer(&url, "8", &printed);
    assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
}
