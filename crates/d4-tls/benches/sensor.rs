//! `cargo bench -p d4-tls --bench sensor [-- PACKETS]`: the TLS sensor's packets/s over a
//! generated capture of mixed traffic (HTTP-like TCP, DNS, ICMP, and about 5 % of packets
//! in real TLS handshakes with certificates; `d4_testkit::tlsgen::write_mixed_pcap`), as a
//! ratio to a plain read of the same file's records in the same run, and the peak RSS.
//! The capture is written to a temporary file first and read back through the same pcap
//! reader `d4 tls -r` uses, so both passes pay the same parsing cost; the sensor pass also
//! builds every record's JSON. Goal (issue 17): ≥ 1,000,000 packets/s on one core.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::BufWriter;
use std::time::Instant;

use d4_packet::LinkType;
use d4_tls::sensor::{Sensor, SensorConfig};
use d4_tls::session::Record;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.pcap");
    let t = Instant::now();
    let tls_connections =
        d4_testkit::tlsgen::write_mixed_pcap(BufWriter::new(File::create(&path).unwrap()), n, 17)
            .unwrap();
    let written = n;
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "capture: {written} packets ({tls_connections} TLS connections), {:.1} MB, generated in {:.1} s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let rss_before = peak_rss_kib();

    let mut best_plain = f64::MAX;
    let mut best_sensor = f64::MAX;
    let mut sessions = 0u64;
    let mut stats = None;
    for round in 0..3 {
        // plain read: every record parsed and touched, nothing analysed
        let t = Instant::now();
        let mut bytes = 0u64;
        let mut count = 0u64;
        d4_pibs::for_each_record(File::open(&path).unwrap(), |rec| {
            bytes = bytes.wrapping_add(rec.data.len() as u64 + u64::from(rec.data[0]));
            count += 1;
            Ok(())
        })
        .unwrap();
        let plain = t.elapsed().as_secs_f64();
        assert_eq!(count, written);
        std::hint::black_box(bytes);
        best_plain = best_plain.min(plain);

        // the sensor: decode, reassembly, TLS, QUIC, records' JSON
        let t = Instant::now();
        let mut sensor = Sensor::new(SensorConfig::default());
        let mut out = Vec::new();
        let mut json = 0usize;
        d4_pibs::for_each_record(File::open(&path).unwrap(), |rec| {
            let ts = rec.ts_sec * 1_000_000_000 + u64::from(rec.ts_nsec);
            sensor.packet(ts, LinkType::from_pcap(rec.linktype), rec.data, &mut out);
            for s in out.drain(..) {
                json += Record::new(&s).line().len();
                sessions += u64::from(round == 0);
            }
            Ok(())
        })
        .unwrap();
        sensor.finish(&mut out);
        for s in out.drain(..) {
            json += Record::new(&s).line().len();
            sessions += u64::from(round == 0);
        }
        std::hint::black_box(json);
        let secs = t.elapsed().as_secs_f64();
        best_sensor = best_sensor.min(secs);
        stats = Some(sensor.stats());
    }
    let plain_pps = written as f64 / best_plain;
    let sensor_pps = written as f64 / best_sensor;
    println!("plain read : {:>12.0} packets/s", plain_pps);
    println!("d4 tls     : {:>12.0} packets/s", sensor_pps);
    println!(
        "ratio      : {:.2} of the plain read",
        sensor_pps / plain_pps
    );
    println!("sessions   : {sessions}");
    println!(
        "peak RSS   : {:.1} MB (before the passes: {:.1} MB)",
        peak_rss_kib() as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    if let Some(s) = stats {
        println!("counters   : {}", serde_json::to_string(&s).unwrap());
    }
}
