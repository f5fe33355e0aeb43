//! `d4 bench server` runs end to end (a smoke test, not a timed one: no figure is
//! checked): it starts a real server, streams, runs both ceiling receivers (which fail
//! the command when they did not get every frame the client sent, each with a valid
//! HMAC) and measures memory with a few sensors.

use std::process::Command;

#[test]
fn bench_server_runs_every_part() {
    let out = Command::new(env!("CARGO_BIN_EXE_d4"))
        .args([
            "bench", "server", "--secs", "1", "--sizes", "64", "--conns", "2",
        ])
        .args(["--sensors", "3"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{err}");
    let rows = |after: &str| -> Vec<Vec<String>> {
        text.split(after)
            .nth(1)
            .unwrap_or_else(|| panic!("no {after:?} in:\n{text}"))
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with(' '))
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    let server = rows("ratio = ");
    assert_eq!(server.len(), 1, "{text}");
    assert_eq!(server[0][..2], ["64", "2"]);
    let ceilings = rows("Ceilings");
    assert_eq!(ceilings.len(), 1, "{text}");
    assert_eq!(ceilings[0][..2], ["64", "2"]);
    // payload conns verify ratio +write ratio +direct ratio server of-verify; +direct is
    // NaN where the filesystem has no O_DIRECT (tmpfs)
    for (i, v) in ceilings[0].iter().enumerate().skip(2) {
        let v: f64 = v.parse().unwrap();
        assert!(
            v > 0.0 || (matches!(i, 6 | 7) && v.is_nan()),
            "every ceiling figure measured: {text}"
        );
    }
    assert!(
        text.contains("with 3 connected sensors"),
        "memory part ran: {text}"
    );
}

/// `--json`: no table, one JSON object per line: one per measured case with the table's
/// figures under stable keys, then the memory figure.
#[test]
fn bench_server_json_lines() {
    let out = Command::new(env!("CARGO_BIN_EXE_d4"))
        .args(["bench", "server", "--json", "--secs", "1", "--sizes", "64"])
        .args(["--conns", "1", "--sensors", "10", "--ceiling", "false"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{err}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{text}")))
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "one stream case and the memory line: {text}"
    );
    let case = &lines[0];
    assert_eq!(case["case"], "stream", "{text}");
    assert_eq!(case["payload"], 64);
    assert_eq!(case["conns"], 1);
    for k in [
        "frames_per_s",
        "mb_per_s",
        "hmac_frames_per_s",
        "hmac_mb_per_s",
        "ratio",
        "server_us_per_frame",
        "client_us_per_frame",
        "hmac_eff",
        "cpu_hmac_us_per_frame",
        "cpu_net_us_per_frame",
        "cpu_pipeline_us_per_frame",
        "cpu_gzip_us_per_frame",
        "cpu_client_us_per_frame",
        "cpu_sys_percent",
    ] {
        assert!(case[k].is_number(), "{k} in {case}");
    }
    assert!(case["frames_per_s"].as_f64().unwrap() > 0.0, "{case}");
    assert!(case.get("load").is_some(), "{case}");
    assert!(
        case.get("verify_frames_per_s").is_none(),
        "no ceiling: {case}"
    );
    let mem = &lines[1];
    assert_eq!(mem["case"], "memory", "{text}");
    assert_eq!(mem["sensors"], 10);
    assert!(
        mem["rss_idle_mb"].is_number() && mem["rss_mb"].is_number(),
        "{mem}"
    );
}
