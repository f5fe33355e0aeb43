//! `d4 bench forward`: forwarding throughput (issue #20) as a ratio to the ingest of the
//! same server without forwarding, measured in the same run.
//!
//! Two servers A and B on loopback (temporary data dirs). B registers A's rule identity
//! (third party, approved); A gets a rule to B (types 1 and 8, passive DNS client IP
//! pseudonymised, pcap addresses in 10.0.0.0/8 pseudonymised; TLS pinned to B's
//! certificate). Per case (type 8 passive DNS lines, type 1 pcap with
//! 10.x addresses) one connection streams generated data into A for `--secs`:
//! (a) with the rule disabled, until A drained its journals: A's ingest;
//! (b) with the rule enabled, until B's files hold every line / packet: forwarding
//! end to end. The ratio is (b)/(a).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use super::load::{connect, connector, wait_drained};
use super::{start_server, Child, ServerBench, KEY};

const RULE: &str = "bench";
const RULE_KEY: &str = "key of A at B";
/// UDP payload of every generated packet: records of one length, so B's pcap files are
/// counted by their size.
const PCAP_PAYLOAD: usize = 400;
/// A pcap record: record header, Ethernet, IPv4, UDP, payload.
const PCAP_RECORD: u64 = 16 + 14 + 20 + 8 + PCAP_PAYLOAD as u64;

#[derive(Debug, clap::Args)]
pub struct ForwardBench {
    /// Seconds of streaming per measurement (two measurements per case).
    #[arg(long, default_value_t = 3)]
    pub secs: u64,
    /// The `d4` binary whose servers are measured (default: this one).
    #[arg(long, value_name = "PATH")]
    pub server_exe: Option<PathBuf>,
    /// Instead of the table, print one JSON object per case (keys: docs/forward.md
    /// "Benchmark").
    #[arg(long)]
    pub json: bool,
}

/// One case: a D4 type, the frames opening a session, and one batch of frames repeated
/// (`units` lines or packets of `bytes` payload bytes per batch).
struct Case {
    name: &'static str,
    d4_type: u8,
    unit: &'static str,
    head: Vec<Vec<u8>>,
    batch: Vec<Vec<u8>>,
    units: u64,
    bytes: u64,
}

/// Passive DNS lines with 10.x client IPs, 4 KiB-ish frames of whole lines.
fn pdns_case() -> Case {
    let mut batch = Vec::new();
    let mut units = 0;
    for f in 0..64u32 {
        let mut p = Vec::new();
        for j in 0..48u32 {
            let i = f * 48 + j;
            p.extend(
                format!(
                    "1700000000||10.{}.{}.{}||192.0.2.53||IN||host{i}.example||A||198.51.100.{}||300||1\n",
                    i % 200,
                    (i / 7) % 250,
                    1 + i % 250,
                    i % 250
                )
                .as_bytes(),
            );
            units += 1;
        }
        batch.push(p);
    }
    let bytes = batch.iter().map(|p| p.len() as u64).sum();
    Case {
        name: "pdns",
        d4_type: 8,
        unit: "lines",
        head: Vec::new(),
        batch,
        units,
        bytes,
    }
}

/// An Ethernet/IPv4/UDP packet record (pcap record header included).
fn record(src: [u8; 4], dst: [u8; 4], i: u32, payload: usize) -> Vec<u8> {
    let udp_len = (8 + payload) as u16;
    let ip_len = 20 + udp_len;
    let mut p = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    p.extend([0x45, 0]);
    p.extend(ip_len.to_be_bytes());
    p.extend([0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend(src);
    p.extend(dst);
    p.extend([0x30, 0x39, 0, 53]);
    p.extend(udp_len.to_be_bytes());
    p.extend([0, 0]);
    p.extend(vec![0x5a; payload]);
    let mut r = Vec::new();
    r.extend((1_700_000_000u32 + i).to_le_bytes());
    r.extend(0u32.to_le_bytes());
    r.extend((p.len() as u32).to_le_bytes());
    r.extend((p.len() as u32).to_le_bytes());
    r.extend(p);
    r
}

/// pcap: a global header frame, then frames of whole records between 10.x and others.
fn pcap_case() -> Case {
    let mut header = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    header.extend([0u8; 8]);
    header.extend(65535u32.to_le_bytes());
    header.extend(1u32.to_le_bytes());
    let mut batch = Vec::new();
    let mut units = 0;
    for f in 0..16u32 {
        let mut p = Vec::new();
        for j in 0..32u32 {
            let i = f * 32 + j;
            let a = [10, (i % 200) as u8, (i % 250) as u8, 7];
            let b = [198, 51, 100, (i % 250) as u8];
            let (s, d) = if i % 2 == 0 { (a, b) } else { (b, a) };
            p.extend(record(s, d, i, PCAP_PAYLOAD));
            units += 1;
        }
        batch.push(p);
    }
    let bytes = batch.iter().map(|p| p.len() as u64).sum();
    Case {
        name: "pcap",
        d4_type: 1,
        unit: "packets",
        head: vec![header],
        batch,
        units,
        bytes,
    }
}

/// What one measurement streamed: units, payload bytes, and the clock.
struct Sent {
    units: u64,
    bytes: u64,
    started: Instant,
}

/// One connection (one sensor) streams the case into `srv` for `secs`.
async fn stream(srv: &Child, case: &Case, secs: u64) -> anyhow::Result<Sent> {
    let c = connector()?;
    let mut s = connect(srv.tls, &c).await?;
    let enc = d4_proto::Encoder::new(Uuid::new_v4(), KEY, case.d4_type);
    let mut head = Vec::new();
    for p in &case.head {
        enc.encode_into(1_700_000_000, p, &mut head)?;
    }
    let mut wire = Vec::new();
    for p in &case.batch {
        enc.encode_into(1_700_000_000, p, &mut wire)?;
    }
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(secs);
    s.write_all(&head).await?;
    let mut n = 0u64;
    while Instant::now() < stop_at {
        s.write_all(&wire).await?;
        n += 1;
    }
    let _ = s.shutdown().await;
    let mut b = [0u8; 16];
    let _ = tokio::time::timeout(Duration::from_secs(60), s.read(&mut b)).await;
    Ok(Sent {
        units: n * case.units,
        bytes: n * case.bytes,
        started,
    })
}

/// Every file below `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Units B holds of the rule's stream of one type: lines of its type-8 files, records of
/// its type-1 files (B's files are plain; pcap files open with a 24-byte header). Reads
/// each file only from where the previous poll stopped.
#[derive(Default)]
struct Tally {
    seen: std::collections::HashMap<PathBuf, (u64, u64)>,
}

impl Tally {
    fn units(&mut self, b: &Path, rule: Uuid, case: &Case) -> u64 {
        let dir = b
            .join(rule.simple().to_string())
            .join(case.d4_type.to_string());
        for f in files(&dir) {
            let Ok(len) = std::fs::metadata(&f).map(|m| m.len()) else {
                continue;
            };
            let (off, n) = self.seen.entry(f.clone()).or_insert((0, 0));
            if case.d4_type == 1 {
                *n = len.saturating_sub(24) / PCAP_RECORD;
                continue;
            }
            if len <= *off {
                continue;
            }
            let Ok(mut file) = std::fs::File::open(&f) else {
                continue;
            };
            use std::io::{Read, Seek};
            if file.seek(std::io::SeekFrom::Start(*off)).is_err() {
                continue;
            }
            let mut buf = Vec::new();
            if file.read_to_end(&mut buf).is_err() {
                continue;
            }
            *off += buf.len() as u64;
            *n += buf.iter().filter(|&&c| c == b'\n').count() as u64;
        }
        self.seen.values().map(|(_, n)| n).sum()
    }
}

/// Runs `d4 ARGS --data-dir DIR` (the admin commands reach the running server through
/// its socket).
fn admin(exe: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(exe)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .with_context(|| format!("running d4 {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "d4 {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The figures of one case.
struct Figures {
    ingest: f64,
    ingest_mb: f64,
    fwd: f64,
    fwd_mb: f64,
    units_a: u64,
    units_b: u64,
}

pub async fn forward_bench(fb: ForwardBench) -> anyhow::Result<()> {
    let exe = match &fb.server_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let sb = ServerBench {
        secs: fb.secs,
        sensors: 0,
        conns: vec![1],
        sizes: vec![],
        fsync: true,
        journal_direct: true,
        server_exe: Some(exe.clone()),
        redis: None,
        ceiling: false,
        json: fb.json,
    };
    let b = start_server(&sb)?;
    let a = start_server(&sb)?;
    let rule_uuid = Uuid::new_v4();
    let u = rule_uuid.to_string();
    admin(
        &exe,
        b.dir.path(),
        &[
            "sensor",
            "register",
            &u,
            "--key",
            RULE_KEY,
            "--third-party",
            "--description",
            "organisation A (bench)",
            "--approve",
        ],
    )?;
    let to = b.tls.to_string();
    let crt = b.dir.path().join("tls").join("server.crt");
    let crt = crt.to_string_lossy().into_owned();
    let mut add = vec!["forward", "add", RULE, "--to", &to];
    add.extend(["--pin-from", &crt, "--uuid", &u, "--key", RULE_KEY]);
    add.extend([
        "--type",
        "1",
        "--type",
        "8",
        "--pdns-client-ip",
        "pseudonymise",
    ]);
    add.extend(["--pcap-prefix", "10.0.0.0/8", "--disabled"]);
    admin(&exe, a.dir.path(), &add)?;

    if !fb.json {
        println!(
            "Forwarding A -> B over TLS pinned to B's certificate ({} s per measurement; ratio = forwarded / ingest)",
            fb.secs
        );
        println!();
        println!(
            "  {:<5} {:>8} {:>14} {:>10} {:>14} {:>10} {:>7}",
            "case", "unit", "ingest/s", "ingest MB/s", "forwarded/s", "fwd MB/s", "ratio"
        );
    }
    for case in [pdns_case(), pcap_case()] {
        let f = measure(&exe, &a, &b, rule_uuid, &case, fb.secs).await?;
        let ratio = f.fwd / f.ingest;
        if fb.json {
            println!(
                "{}",
                json!({
                    "case": "forward",
                    "type": case.d4_type,
                    "name": case.name,
                    "unit": case.unit,
                    "tls": true,
                    "secs": fb.secs,
                    "ingest_units_per_s": f.ingest,
                    "ingest_mb_per_s": f.ingest_mb,
                    "forwarded_units_per_s": f.fwd,
                    "forwarded_mb_per_s": f.fwd_mb,
                    "ratio": ratio,
                    "units_ingest": f.units_a,
                    "units_forwarded": f.units_b,
                })
            );
        } else {
            println!(
                "  {:<5} {:>8} {:>14.0} {:>10.1} {:>14.0} {:>10.1} {:>7.2}",
                case.name, case.unit, f.ingest, f.ingest_mb, f.fwd, f.fwd_mb, ratio
            );
        }
    }
    Ok(())
}

/// (a) then (b) for one case.
async fn measure(
    exe: &Path,
    a: &Child,
    b: &Child,
    rule: Uuid,
    case: &Case,
    secs: u64,
) -> anyhow::Result<Figures> {
    // (a) ingest without forwarding
    admin(exe, a.dir.path(), &["forward", "disable", RULE])?;
    tokio::time::sleep(Duration::from_millis(1000)).await; // the engine reloads its rules
    let s = stream(a, case, secs).await?;
    wait_drained(a.dir.path()).await;
    let ta = s.started.elapsed().as_secs_f64();
    // (b) forwarded, end to end: until B's files hold every unit sent
    admin(exe, a.dir.path(), &["forward", "enable", RULE])?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut tally = Tally::default();
    let before = tally.units(b.dir.path(), rule, case);
    let s2 = stream(a, case, secs).await?;
    let limit = Duration::from_secs(120 + 20 * secs);
    let mut got = 0;
    while s2.started.elapsed() < limit {
        got = tally.units(b.dir.path(), rule, case).saturating_sub(before);
        if got >= s2.units {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tb = s2.started.elapsed().as_secs_f64();
    if got < s2.units {
        bail!(
            "{}: B holds {got} of {} {} after {tb:.0} s",
            case.name,
            s2.units,
            case.unit
        );
    }
    Ok(Figures {
        ingest: s.units as f64 / ta,
        ingest_mb: s.bytes as f64 / ta / 1e6,
        fwd: s2.units as f64 / tb,
        fwd_mb: s2.bytes as f64 / tb / 1e6,
        units_a: s.units,
        units_b: s2.units,
    })
}
