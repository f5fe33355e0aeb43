//! `d4 bench server`'s schedule and report: for every payload size and connection count,
//! the server row, the CPU split, the ceiling rows and the Redis row; then the memory with
//! many connected sensors.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::ceiling::{ceiling, hmac_ceiling, Keep};
use super::load::{connect, connector, stream};
use super::procfs::{loadavg, rss_kb};
use super::{start_server, start_server_with, ServerBench, KEY};

pub(super) async fn server_bench(b: ServerBench) -> anyhow::Result<()> {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("warning: cannot raise the open files limit: {e}");
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    // `--json`: no tables, one object per case (`emit`); tables otherwise (`table`)
    let table = !b.json;
    let emit = |v: Value| {
        if b.json {
            outln!("{v}");
        }
    };
    if table {
        outln!("d4 bench server: {cpus} CPUs, load average {}", load.trim());
        outln!(
            "journal fsync: {}, journal O_DIRECT: {}",
            b.fsync,
            b.journal_direct
        );
        print_stream_header();
    }
    let mut cpu_split = Vec::new();
    let mut ceilings = Vec::new();
    for &size in &b.sizes {
        for &conns in &b.conns {
            let srv = start_server(&b)?;
            // The HMAC ceiling is measured just before and just after the stream; the
            // better of the two counts (other load on the machine only lowers it).
            let h1 = tokio::task::spawn_blocking(move || hmac_ceiling(size, 1.0)).await?;
            let r = stream(&srv, conns, size, b.secs).await?;
            let h2 = tokio::task::spawn_blocking(move || hmac_ceiling(size, 1.0)).await?;
            let (hfps, hmbs) = if h2.0 > h1.0 {
                (h2.0, h2.1)
            } else {
                (h1.0, h1.1)
            };
            let hcpu = if h1.2 > 0.0 && h2.2 > 0.0 {
                h1.2.min(h2.2)
            } else {
                h1.2.max(h2.2)
            };
            let fps = r.frames as f64 / r.secs;
            let mbs = fps * (size + 62) as f64 / 1e6;
            let per = |cpu: f64| cpu / (r.frames.max(1) as f64) * 1e6;
            let load_now = loadavg();
            let mut case = json!({
                "case": "stream",
                "payload": size,
                "conns": conns,
                "frames_per_s": fps,
                "mb_per_s": mbs,
                "hmac_frames_per_s": hfps,
                "hmac_mb_per_s": hmbs,
                "ratio": fps / hfps,
                "server_us_per_frame": per(r.server.total),
                "client_us_per_frame": per(r.client_cpu),
                "hmac_eff": hcpu * 1e6 / per(r.server.total).max(1e-9),
                "load": load_now.parse::<f64>().ok(),
                "cpu_hmac_us_per_frame": hcpu * 1e6,
                "cpu_net_us_per_frame": per(r.server.net),
                "cpu_pipeline_us_per_frame": per(r.server.total - r.server.net - r.server.gzip),
                "cpu_gzip_us_per_frame": per(r.server.gzip),
                "cpu_client_us_per_frame": per(r.client_cpu),
                "cpu_sys_percent": 100.0 * r.server.sys / r.server.total.max(1e-9),
            });
            if table {
                outln!(
                    "{:>7} {:>5} {:>10.0} {:>8.1} {:>10.0} {:>8.1} {:>6.2} {:>9.2} {:>9.2} {:>8.2} {:>5}",
                    size,
                    conns,
                    fps,
                    mbs,
                    hfps,
                    hmbs,
                    fps / hfps,
                    per(r.server.total),
                    per(r.client_cpu),
                    hcpu * 1e6 / per(r.server.total).max(1e-9),
                    load_now
                );
            }
            cpu_split.push(format!(
                "{:>7} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>6.0}%",
                size,
                conns,
                hcpu * 1e6,
                per(r.server.net),
                per(r.server.total - r.server.net - r.server.gzip),
                per(r.server.gzip),
                per(r.client_cpu),
                100.0 * r.server.sys / r.server.total.max(1e-9)
            ));
            drop(srv);
            if b.ceiling {
                let verify = ceiling(Keep::Nothing, conns, size, b.secs).await?;
                let write = ceiling(Keep::File, conns, size, b.secs).await?;
                // O_DIRECT is not supported everywhere (tmpfs): n/a then
                let direct = match ceiling(Keep::Direct, conns, size, b.secs).await {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("+direct ceiling not measured: {e:#}");
                        f64::NAN
                    }
                };
                ceilings.push(format!(
                    "{:>7} {:>5} {:>10.0} {:>6.2} {:>10.0} {:>6.2} {:>11.0} {:>6.2} {:>6.2} {:>8.2}",
                    size,
                    conns,
                    verify,
                    verify / hfps,
                    write,
                    write / hfps,
                    direct,
                    direct / hfps,
                    fps / hfps,
                    fps / verify
                ));
                // NaN (no O_DIRECT) becomes null
                extend(
                    &mut case,
                    json!({
                        "verify_frames_per_s": verify,
                        "verify_ratio": verify / hfps,
                        "write_frames_per_s": write,
                        "write_ratio": write / hfps,
                        "direct_frames_per_s": direct,
                        "direct_ratio": direct / hfps,
                        "server_ratio": fps / hfps,
                        "of_verify": fps / verify,
                    }),
                );
            }
            if let Some(url) = b.redis.as_deref() {
                let srv = start_server_with(&b, Some(url))?;
                let r = stream(&srv, conns, size, b.secs).await?;
                let rfps = r.frames as f64 / r.secs;
                if table {
                    outln!(
                        "{:>7} {:>5} {:>10.0} {:>8.1}   redis store: {:.2} of the embedded store",
                        size,
                        conns,
                        rfps,
                        rfps * (size + 62) as f64 / 1e6,
                        rfps / fps
                    );
                }
                extend(
                    &mut case,
                    json!({
                        "redis_frames_per_s": rfps,
                        "redis_mb_per_s": rfps * (size + 62) as f64 / 1e6,
                        "redis_of_embedded": rfps / fps,
                    }),
                );
                drop(srv);
            }
            emit(case);
        }
    }
    if table {
        print_tables(cpu_split, ceilings);
    }
    // memory with N connected (authenticated) sensors
    let srv = start_server(&b)?;
    let pid = srv.child.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = rss_kb(pid);
    let c = connector()?;
    let mut held = Vec::new();
    for i in 0..b.sensors {
        let mut s = connect(srv.tls, &c).await?;
        let enc = d4_proto::Encoder::new(Uuid::new_v4(), KEY, 3);
        s.write_all(&enc.encode(1_700_000_000, format!("hello {i}\n").as_bytes())?)
            .await?;
        s.flush().await?;
        held.push(s);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = rss_kb(pid);
    let load_now = loadavg();
    if table {
        outln!(
            "RSS: {} MB idle, {} MB with {} connected sensors (goal < 200 MB), load {}",
            rss0 / 1024,
            rss1 / 1024,
            b.sensors,
            load_now
        );
    }
    emit(json!({
        "case": "memory",
        "sensors": b.sensors,
        "rss_idle_mb": rss0 / 1024,
        "rss_mb": rss1 / 1024,
        "load": load_now.parse::<f64>().ok(),
    }));
    drop(held);
    drop(srv);
    Ok(())
}

/// Adds the fields of `more` (an object) to `case` (an object).
fn extend(case: &mut Value, more: Value) {
    if let (Value::Object(c), Value::Object(m)) = (case, more) {
        c.extend(m);
    }
}

fn print_stream_header() {
    outln!(
        "ratio = frames/s over TLS / plain HMAC-SHA256 frames/s on one core (best of 1 s before \
         and 1 s after the stream); \
         srv µs/f = server CPU time per frame; HMAC eff = HMAC CPU time per frame / server CPU time per frame"
    );
    outln!(
        "{:>7} {:>5} {:>10} {:>8} {:>10} {:>8} {:>6} {:>9} {:>9} {:>8} {:>5}",
        "payload",
        "conns",
        "frames/s",
        "MB/s",
        "HMAC f/s",
        "HMAC MB/s",
        "ratio",
        "srv µs/f",
        "cli µs/f",
        "HMAC eff",
        "load"
    );
}

fn print_tables(cpu_split: Vec<String>, ceilings: Vec<String>) {
    outln!(
        "CPU µs per frame: plain HMAC-SHA256; server network tasks (TLS, decode, HMAC \
         check); server pipelines (journal, fsync, workers); gzip; bench client (TLS \
         encrypt); server system-time share"
    );
    outln!(
        "{:>7} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "payload",
        "conns",
        "HMAC",
        "net",
        "pipeline",
        "gzip",
        "client",
        "sys"
    );
    for l in cpu_split {
        outln!("{l}");
    }
    if !ceilings.is_empty() {
        outln!(
            "Ceilings, same client, no server: a minimal TLS receiver that checks every \
             frame's HMAC and stores nothing (verify), or also appends every payload to a \
             file once, no fsync: buffered (+write) or O_DIRECT in 1 MiB writes (+direct); \
             ratios to the same HMAC baseline as the server row; of verify = server \
             frames/s / verify frames/s"
        );
        outln!(
            "{:>7} {:>5} {:>10} {:>6} {:>10} {:>6} {:>11} {:>6} {:>6} {:>8}",
            "payload",
            "conns",
            "verify f/s",
            "ratio",
            "+write f/s",
            "ratio",
            "+direct f/s",
            "ratio",
            "server",
            "of verify"
        );
        for l in ceilings {
            outln!("{l}");
        }
    }
}
