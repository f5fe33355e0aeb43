//! Benchmark (not a test): `d4 client` framing stdin to /dev/null at snaplen 65535, as a
//! ratio of plain HMAC-SHA256 throughput over the same 65535-byte chunks, both measured in
//! this run. Goal: ratio >= 0.7.
//!
//! `cargo bench -p d4 --bench client_framing` (env `D4_BENCH_MB`, default 512: input size).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

const SNAPLEN: usize = 65535;
const KEY: &[u8] = b"private key to change";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // cargo bench passes --bench; `cargo test --benches` passes nothing special: run once, small
    let quick = !std::env::args().any(|a| a == "--bench");
    let mb: usize = std::env::var("D4_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 8 } else { 256 });
    let rounds = if quick { 1 } else { 7 };
    let total = mb * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.bin");
    {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut buf = Vec::with_capacity(total);
        while buf.len() < total {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.extend_from_slice(&x.to_le_bytes());
        }
        buf.truncate(total);
        std::fs::write(&input, &buf).unwrap();
    }
    // rounds alternate (baseline, client) so that both see the same machine load
    let mut base = Vec::new();
    let mut client = Vec::new();
    let mut buf = vec![0u8; SNAPLEN];
    for _ in 0..rounds {
        // baseline: plain HMAC-SHA256 of every read of 65535 bytes of the same file, one core
        let t = Instant::now();
        let mut f = std::fs::File::open(&input).unwrap();
        let mut acc = 0u8;
        loop {
            let n = std::io::Read::read(&mut f, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(KEY).unwrap();
            m.update(&buf[..n]);
            acc ^= m.finalize().into_bytes()[0];
        }
        std::hint::black_box(acc);
        base.push(t.elapsed());

        // d4 client: the file on stdin (full reads of snaplen), stdout to /dev/null
        let t = Instant::now();
        let st = Command::new(env!("CARGO_BIN_EXE_d4"))
            .args([
                "client",
                "--uuid",
                "3b9cd0e3-a4c2-4d7a-9d8a-0d6c9c2f1a11",
                "--key",
                "private key to change",
                "--snaplen",
                "65535",
                "--destination",
                "stdout",
            ])
            .stdin(std::fs::File::open(&input).unwrap())
            .stdout(std::fs::File::create("/dev/null").unwrap())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        client.push(t.elapsed());
    }
    let mbps = |d: Duration| total as f64 / d.as_secs_f64() / 1e6;
    let (b, c) = (median(base), median(client));
    println!(
        "client_framing: {mb} MiB at snaplen {SNAPLEN}, median of {rounds}: \
         hmac-sha256 {:.0} MB/s, d4 client stdin->/dev/null {:.0} MB/s, ratio {:.2} (goal >= 0.70)",
        mbps(b),
        mbps(c),
        b.as_secs_f64() / c.as_secs_f64()
    );
}
