//! CPU and memory figures of the server and of this process, read from `/proc`.

use std::process::Command;

pub(super) fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds used so far by a process or thread, from its `stat` file: (user, system).
pub(super) fn stat_cpu(path: &str) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(path).ok()?;
    // fields after the parenthesised command name; utime and stime are 14 and 15
    let rest = s.rsplit_once(')')?.1.to_owned();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let u: u64 = f.get(11)?.parse().ok()?;
    let k: u64 = f.get(12)?.parse().ok()?;
    Some((u as f64 / clock_ticks(), k as f64 / clock_ticks()))
}

/// CPU seconds (user + system) used so far by a process (`self` or a pid).
pub(super) fn cpu_secs(pid: &str) -> f64 {
    stat_cpu(&format!("/proc/{pid}/stat")).map_or(0.0, |(u, k)| u + k)
}

/// The server's CPU seconds so far, split: (total, system part, network tasks =
/// tokio workers, gzip threads). What is left of the total is the session pipelines
/// (journal, workers) and housekeeping; threads that ended still count in the total.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ServerCpu {
    pub(super) total: f64,
    pub(super) sys: f64,
    pub(super) net: f64,
    pub(super) gzip: f64,
}

impl std::ops::Sub for ServerCpu {
    type Output = ServerCpu;
    fn sub(self, o: ServerCpu) -> ServerCpu {
        ServerCpu {
            total: self.total - o.total,
            sys: self.sys - o.sys,
            net: self.net - o.net,
            gzip: self.gzip - o.gzip,
        }
    }
}

pub(super) fn server_cpu(pid: &str) -> ServerCpu {
    let (u, k) = stat_cpu(&format!("/proc/{pid}/stat")).unwrap_or_default();
    let mut c = ServerCpu {
        total: u + k,
        sys: k,
        ..Default::default()
    };
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.filter_map(Result::ok) {
            let base = t.path();
            let comm = std::fs::read_to_string(base.join("comm")).unwrap_or_default();
            let Some((u, k)) = stat_cpu(&base.join("stat").to_string_lossy()) else {
                continue;
            };
            if comm.starts_with("tokio-rt-worker") {
                c.net += u + k;
            } else if comm.starts_with("d4-gzip") {
                c.gzip += u + k;
            }
        }
    }
    c
}

pub(super) fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}
