//! Operations side of the web UI inside the real `d4 server`: the collector's counters in
//! `/metrics` (connections, frames and bytes by type, refusals by reason, worker lag) and
//! the web settings read from `d4.toml` / `D4_*` / flags (with `--print-config`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::server::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// One plain-HTTP GET (Connection: close): (status, body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, "GET", path, &[], "").await
}

/// The value of one sample line (`name{labels} value`) of a Prometheus text.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_frames_refusals_and_lag() {
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(
        dir.path(),
        &[
            "--mode",
            "shared-secret",
            "--allow-reference-key",
            "--web-plain",
            "--metrics-public",
        ],
    );
    let web = web_addr(&srv.log_text(), "http");
    let (status, body) = http_get(web, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    // Fixed label set from the first scrape: every refusal reason, zeros included.
    for reason in [
        "bad_hmac",
        "oversize",
        "type_not_accepted",
        "type_254_first",
        "uuid_changed",
        "type_changed",
        "duplicate",
        "ip_blocked",
        "uuid_blocked",
        "not_registered",
        "kicked",
        "header_timeout",
        "idle_timeout",
        "tls_handshake_failed",
    ] {
        assert_eq!(
            sample(&body, &format!("d4_refused_total{{reason=\"{reason}\"}}")),
            Some(0),
            "{reason}: {body}"
        );
    }
    assert_eq!(
        sample(&body, "d4_connections_total{listener=\"plain\"}"),
        Some(0)
    );

    // A sensor streams 5 frames of type 3 over plain TCP and stays connected.
    let good = Uuid::new_v4();
    let enc = d4_proto::Encoder::new(good, KEY, 3);
    let mut sensor = tokio::net::TcpStream::connect(srv.plain).await.unwrap();
    let mut payload_bytes = 0u64;
    for i in 0..5 {
        let line = format!("metrics line {i}\n");
        payload_bytes += line.len() as u64;
        sensor
            .write_all(&enc.encode(d4_store::now(), line.as_bytes()).unwrap())
            .await
            .unwrap();
    }
    // Another over TLS, type 8.
    let mut tls_sensor = connect_tls(srv.tls.unwrap()).await;
    let enc8 = d4_proto::Encoder::new(Uuid::new_v4(), KEY, 8);
    tls_sensor
        .write_all(
            &enc8
                .encode(d4_store::now(), b"{\"rrname\":\"x\"}\n")
                .unwrap(),
        )
        .await
        .unwrap();
    tls_sensor.flush().await.unwrap();
    // A stranger with the wrong key, twice: bad_hmac.
    for _ in 0..2 {
        let bad = d4_proto::Encoder::new(Uuid::new_v4(), b"not the key", 3);
        let mut s = tokio::net::TcpStream::connect(srv.plain).await.unwrap();
        s.write_all(&bad.encode(d4_store::now(), b"x\n").unwrap())
            .await
            .unwrap();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
    }
    // A declared payload over the limit: oversize.
    {
        let mut h = d4_proto::Encoder::new(Uuid::new_v4(), KEY, 3)
            .header(d4_store::now(), &[])
            .unwrap();
        h[58..62].copy_from_slice(&50_000_000u32.to_le_bytes());
        let mut s = tokio::net::TcpStream::connect(srv.plain).await.unwrap();
        s.write_all(&h).await.unwrap();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
    }

    let want = [
        ("d4_frames_accepted_total{type=\"3\"}", 5),
        ("d4_bytes_accepted_total{type=\"3\"}", payload_bytes),
        ("d4_frames_accepted_total{type=\"8\"}", 1),
        ("d4_refused_total{reason=\"bad_hmac\"}", 2),
        ("d4_refused_total{reason=\"oversize\"}", 1),
        ("d4_connections_total{listener=\"plain\"}", 4),
        ("d4_connections_total{listener=\"tls\"}", 1),
        ("d4_connections{listener=\"plain\"}", 1),
        ("d4_connections{listener=\"tls\"}", 1),
        ("d4_worker_pending_frames", 0),
    ];
    let body = wait_for(20, || async {
        let (_, body) = http_get(web, "/metrics").await;
        want.iter()
            .all(|(series, v)| sample(&body, series) == Some(*v))
            .then_some(body)
    })
    .await;
    let Some(body) = body else {
        let (_, body) = http_get(web, "/metrics").await;
        panic!("counters never matched {want:?}:\n{body}")
    };
    assert_eq!(
        sample(&body, "d4_refused_total{reason=\"kicked\"}"),
        Some(0)
    );
    assert!(sample(&body, "d4_worker_lag_seconds").is_some());
    assert!(sample(&body, "d4_worker_pending_bytes").is_some());
    assert!(sample(&body, "d4_worker_sessions_behind").is_some());
    assert!(body.contains("# TYPE d4_refused_total counter"));
    assert!(body.contains("# TYPE d4_connections gauge"));
    assert!(body.contains("# HELP d4_frames_accepted_total "));
    // The store's lines are still there.
    assert!(body.contains("d4_sensors_connected"), "{body}");

    // A kick is counted as such.
    let store = srv.store().await;
    store.request_kick(good, d4_store::now()).await.unwrap();
    let kicked = wait_for(15, || async {
        let (_, body) = http_get(web, "/metrics").await;
        (sample(&body, "d4_refused_total{reason=\"kicked\"}") == Some(1)
            && sample(&body, "d4_connections{listener=\"plain\"}") == Some(0))
        .then_some(())
    })
    .await;
    assert!(kicked.is_some(), "kick not counted: {}", srv.log_text());
    drop(sensor);
    drop(tls_sensor);
    srv.stop();
}

fn d4() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_d4"));
    crate::support::server::clean_env(&mut cmd);
    cmd
}

/// The effective configuration printed by `--print-config`, as `key -> TOML value text`.
fn print_config(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::collections::HashMap<String, String> {
    let out = d4()
        .args(["server", "--data-dir"])
        .arg(dir)
        .arg("--print-config")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn web_settings_come_from_the_file_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    // Defaults.
    let c = print_config(dir.path(), &[], &[]);
    assert_eq!(c["web_listen"], "\"127.0.0.1:7000\"");
    assert_eq!(c["web_plain"], "false");
    assert_eq!(c["monitoring_threshold"], "3600");
    assert_eq!(c["metrics_public"], "false");

    // The file (<data>/d4.toml, read by default).
    let port = d4_testkit::free_port();
    std::fs::write(
        dir.path().join("d4.toml"),
        format!(
            "listen = \"\"\nplain_listen = [\"127.0.0.1:0\"]\nweb_listen = \"127.0.0.1:{port}\"\n\
             web_plain = true\nmonitoring_threshold = 120\nmetrics_public = true\n"
        ),
    )
    .unwrap();
    let c = print_config(dir.path(), &[], &[]);
    assert_eq!(c["web_listen"], format!("\"127.0.0.1:{port}\""));
    assert_eq!(c["web_plain"], "true");
    assert_eq!(c["monitoring_threshold"], "120");
    assert_eq!(c["metrics_public"], "true");

    // Environment over the file, flags over the environment.
    let env = [
        ("D4_WEB_LISTEN", "127.0.0.1:7100"),
        ("D4_WEB_PLAIN", "false"),
        ("D4_MONITORING_THRESHOLD", "300"),
        ("D4_METRICS_PUBLIC", "false"),
    ];
    let c = print_config(dir.path(), &[], &env);
    assert_eq!(c["web_listen"], "\"127.0.0.1:7100\"");
    assert_eq!(c["web_plain"], "false");
    assert_eq!(c["monitoring_threshold"], "300");
    assert_eq!(c["metrics_public"], "false");
    let c = print_config(
        dir.path(),
        &[
            "--web-listen",
            "",
            "--web-plain",
            "--monitoring-threshold",
            "42",
            "--metrics-public=true",
        ],
        &env,
    );
    assert_eq!(c["web_listen"], "\"\"");
    assert_eq!(c["web_plain"], "true");
    assert_eq!(c["monitoring_threshold"], "42");
    assert_eq!(c["metrics_public"], "true");
    let c = print_config(dir.path(), &["--web-plain=false"], &[]);
    assert_eq!(c["web_plain"], "false");

    // The server really serves the web UI where the file says: plain HTTP, public metrics.
    let mut child = d4()
        .args(["server", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let ready = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with("d4-web-ready ") => break l,
            Ok(l) => seen.push(l),
            Err(_) => {
                let _ = child.kill();
                panic!("no web ready line: {seen:?}");
            }
        }
    };
    assert_eq!(ready, format!("d4-web-ready http://127.0.0.1:{port}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, body) = rt.block_on(http_get(addr, "/metrics"));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "public metrics (file): {body}");
    assert!(
        body.contains("d4_refused_total{reason=\"bad_hmac\"} 0"),
        "{body}"
    );
}

#[test]
fn pssl_settings_come_from_the_file_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let c = print_config(dir.path(), &[], &[]);
    assert!(!c.contains_key("pssl_url") && !c.contains_key("pssl_token_file"));
    std::fs::write(
        dir.path().join("d4.toml"),
        "pssl_url = \"http://127.0.0.1:8500\"\npssl_token_file = \"/etc/d4/a.token\"\n",
    )
    .unwrap();
    let c = print_config(dir.path(), &[], &[]);
    assert_eq!(c["pssl_url"], "\"http://127.0.0.1:8500\"");
    assert_eq!(c["pssl_token_file"], "\"/etc/d4/a.token\"");
    let env = [
        ("D4_WEB_PSSL_URL", "http://127.0.0.1:8501"),
        ("D4_WEB_PSSL_TOKEN_FILE", "/etc/d4/b.token"),
    ];
    let c = print_config(dir.path(), &[], &env);
    assert_eq!(c["pssl_url"], "\"http://127.0.0.1:8501\"");
    assert_eq!(c["pssl_token_file"], "\"/etc/d4/b.token\"");
    let c = print_config(
        dir.path(),
        &[
            "--pssl-url",
            "http://10.0.0.5:8500",
            "--pssl-token-file",
            "/etc/d4/c.token",
        ],
        &env,
    );
    assert_eq!(c["pssl_url"], "\"http://10.0.0.5:8500\"");
    assert_eq!(c["pssl_token_file"], "\"/etc/d4/c.token\"");
}
