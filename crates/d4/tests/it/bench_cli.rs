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
