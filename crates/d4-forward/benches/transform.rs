//! Throughput of the privacy transforms, each beside its identity baseline (the same
//! stream cut into whole units with no settings), measured in the same run:
//! - passive DNS lines with the client IP pseudonymised (lines/s);
//! - a pcap stream with the addresses of 10.0.0.0/8 pseudonymised (MB/s).
//!
//! `cargo bench -p d4-forward --bench transform`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use d4_forward::transform::StreamTransform;
use d4_store::{AddressAction, PcapPrivacy, PdnsPrivacy, Privacy};

const KEY: &str = "1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202";
const LINES: usize = 20_000;
const PACKETS: usize = 5_000;

fn pdns_input() -> Vec<u8> {
    let mut s = Vec::new();
    for i in 0..LINES {
        // 4096 clients, 1000 names: caches see realistic repetition
        s.extend_from_slice(
            format!(
                "1322849924.{:06}||10.{}.{}.{}||8.8.8.8||IN||host{}.example.com.||A||192.0.2.{}||3600||1\n",
                i % 1_000_000,
                (i / 65536) % 256,
                (i / 256) % 16,
                i % 256,
                i % 1000,
                i % 250
            )
            .as_bytes(),
        );
    }
    s
}

fn pcap_input() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    s.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    s.extend_from_slice(&65535u32.to_le_bytes());
    s.extend_from_slice(&1u32.to_le_bytes());
    for i in 0..PACKETS {
        // Ethernet, IPv4 10.x -> 192.0.2.x, TCP, a payload of 0..1400 bytes
        let payload = (i * 37) % 1400;
        let mut p = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let total = 20 + 20 + payload;
        p.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            6,
            0,
            0,
        ]);
        p.extend_from_slice(&[10, (i % 7) as u8, (i / 256 % 256) as u8, (i % 256) as u8]);
        p.extend_from_slice(&[192, 0, 2, (i % 200) as u8]);
        p.extend_from_slice(&[
            0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff,
        ]);
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.resize(p.len() + payload, 0x61);
        s.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        s.extend_from_slice(&0u32.to_le_bytes());
        s.extend_from_slice(&(p.len() as u32).to_le_bytes());
        s.extend_from_slice(&(p.len() as u32).to_le_bytes());
        s.extend_from_slice(&p);
    }
    s
}

/// The whole input through one transform, in frames of at most 64 KiB.
fn run(privacy: &Privacy, d4_type: u8, input: &[u8]) -> usize {
    let Ok(mut t) = StreamTransform::new(privacy, d4_type, None) else {
        return 0;
    };
    let mut out = Vec::with_capacity(input.len());
    for (seq, frame) in input.chunks(65_536).enumerate() {
        let _ = t.push(seq as u64, frame, 0, &mut out);
    }
    t.finish(&mut out);
    out.len()
}

fn bench(c: &mut Criterion) {
    let pdns = pdns_input();
    let mut g = c.benchmark_group("pdns");
    g.throughput(Throughput::Elements(LINES as u64));
    let identity = Privacy::default();
    let pseudo = Privacy {
        key: KEY.into(),
        pdns: Some(PdnsPrivacy {
            client_ip: AddressAction::Pseudonymise,
            ..PdnsPrivacy::default()
        }),
        ..Privacy::default()
    };
    g.bench_function("identity", |b| {
        b.iter_batched(|| (), |_| run(&identity, 8, &pdns), BatchSize::SmallInput)
    });
    g.bench_function("client_ip_pseudonymised", |b| {
        b.iter_batched(|| (), |_| run(&pseudo, 8, &pdns), BatchSize::SmallInput)
    });
    g.finish();

    let pcap = pcap_input();
    let mut g = c.benchmark_group("pcap");
    g.throughput(Throughput::Bytes(pcap.len() as u64));
    let prefixes = Privacy {
        key: KEY.into(),
        pcap: Some(PcapPrivacy {
            prefixes: "10.0.0.0/8".parse().into_iter().collect(),
            truncate_payload: false,
        }),
        ..Privacy::default()
    };
    g.bench_function("identity", |b| {
        b.iter_batched(|| (), |_| run(&identity, 1, &pcap), BatchSize::SmallInput)
    });
    g.bench_function("prefix_pseudonymised", |b| {
        b.iter_batched(|| (), |_| run(&prefixes, 1, &pcap), BatchSize::SmallInput)
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
