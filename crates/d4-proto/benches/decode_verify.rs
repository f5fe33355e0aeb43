//! Decode + verify throughput against plain HMAC-SHA256 over the same bytes.
//!
//! For 64 B, 1 KiB and 16 KiB payloads: `decode_verify/<size>` runs the streaming decoder
//! over a buffer of signed frames and verifies every HMAC; `hmac_sha256/<size>` computes a
//! plain HMAC-SHA256 (fresh key set-up each time, as any verifier must) over each frame's
//! bytes. Both run in the same process; at the end the ratio
//! `hmac time / decode+verify time` is printed (1.0 = decoding costs nothing on top of
//! the HMAC; goal ≥ 0.9 at 16 KiB).
//!
//! Run: `cargo bench -p d4-proto --bench decode_verify`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use bytes::Bytes;
use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use d4_proto::{Decoder, Encoder, HmacKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

const SIZES: [usize; 3] = [64, 1024, 16 * 1024];
const KEY: &[u8] = b"private key to change";

/// About 4 MiB of frames of one payload size.
fn wire(size: usize) -> (Bytes, Vec<(usize, usize)>) {
    let enc = Encoder::new(Uuid::new_v4(), KEY, 1);
    let count = (4 << 20) / (size + 62);
    let payload: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let mut out = Vec::new();
    let mut spans = Vec::new();
    for i in 0..count {
        let start = out.len();
        enc.encode_into(1_700_000_000 + i as u64, &payload, &mut out)
            .unwrap();
        spans.push((start, out.len()));
    }
    (Bytes::from(out), spans)
}

fn benches(c: &mut Criterion) {
    for size in SIZES {
        let (bytes, spans) = wire(size);
        let mut g = c.benchmark_group("decode_verify");
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &bytes, |b, bytes| {
            let key = HmacKey::new(KEY);
            b.iter(|| {
                let mut dec = Decoder::new();
                let mut input = bytes.clone();
                let mut ok = 0usize;
                while let Some(f) = dec.decode(&mut input).unwrap() {
                    ok += usize::from(key.verify(&f));
                }
                assert_eq!(ok, spans.len());
                black_box(ok)
            })
        });
        g.finish();

        let mut g = c.benchmark_group("hmac_sha256");
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &bytes, |b, bytes| {
            b.iter(|| {
                let mut acc = 0u8;
                for &(s, e) in &spans {
                    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(KEY).unwrap();
                    mac.update(&bytes[s..e]);
                    acc ^= mac.finalize().into_bytes()[0];
                }
                black_box(acc)
            })
        });
        g.finish();
    }
}

fn criterion_home() -> PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(h);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("criterion")
}

fn mean_ns(home: &std::path::Path, group: &str, size: usize) -> Option<f64> {
    let p = home
        .join(group)
        .join(size.to_string())
        .join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn main() {
    let home = criterion_home();
    // criterion reads CRITERION_HOME; setting it makes sure we read back what it wrote.
    std::env::set_var("CRITERION_HOME", &home);
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();

    println!("\nratio = plain HMAC-SHA256 time / decode+verify time (same bytes, same run):");
    for size in SIZES {
        let bytes = wire(size).0.len() as f64;
        match (
            mean_ns(&home, "hmac_sha256", size),
            mean_ns(&home, "decode_verify", size),
        ) {
            (Some(h), Some(d)) => println!(
                "  payload {:>6} B: decode+verify {:>8.1} MB/s, hmac {:>8.1} MB/s, ratio {:.3}",
                size,
                bytes / d * 1e3,
                bytes / h * 1e3,
                h / d
            ),
            _ => println!("  payload {size:>6} B: no estimates (filtered out or --test run)"),
        }
    }
}
