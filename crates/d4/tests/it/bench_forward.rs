//! `d4 bench forward` runs end to end (a smoke test, not a timed one: no figure is
//! checked): two real servers, a forwarding rule over pinned TLS, both cases measured
//! with and without forwarding, every line and packet arriving at B.

use std::process::Command;

#[test]
fn bench_forward_prints_both_cases() {
    let out = Command::new(env!("CARGO_BIN_EXE_d4"))
        .args(["bench", "forward", "--secs", "1", "--json"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{err}");
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    for (row, (t, unit)) in rows.iter().zip([(8, "lines"), (1, "packets")]) {
        assert_eq!(row["case"], "forward", "{row}");
        assert_eq!(row["type"], t, "{row}");
        assert_eq!(row["unit"], unit, "{row}");
        assert_eq!(row["tls"], true, "{row}");
        for k in [
            "ingest_units_per_s",
            "ingest_mb_per_s",
            "forwarded_units_per_s",
            "forwarded_mb_per_s",
            "ratio",
        ] {
            let v = row[k].as_f64().unwrap_or_else(|| panic!("{k} in {row}"));
            assert!(v > 0.0, "{k} measured: {row}");
        }
        assert!(row["units_forwarded"].as_u64().unwrap_or(0) > 0, "{row}");
    }
}
