//! `d4 pibs` end to end: the real binary on captures built in code.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Command, Output};

use d4_pibs::packet::{PROTO_TCP, PROTO_UDP};
use d4_pibs::synth::*;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
const V: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const W: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 8);
const D: Ipv4Addr = Ipv4Addr::new(10, 9, 9, 9);
const R: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

fn tcp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    eth_ip(&ipv4(
        src,
        dst,
        PROTO_TCP,
        &[],
        &tcp_header(sport, dport, flags),
    ))
}

/// Every case of the issue in one capture, with the reference CSV lines it must produce.
fn mixed() -> (Vec<(u64, Vec<u8>)>, Vec<&'static str>) {
    let v6: Ipv6Addr = "2001:db8::7".parse().unwrap();
    let d6: Ipv6Addr = "2001:db8:dead::1".parse().unwrap();
    let quoted = ipv4(D, W, PROTO_TCP, &[], &tcp_header(3333, 8080, 0x02));
    let records = vec![
        // handshake A -> B: nothing
        (1_700_000_000, tcp4(A, B, 40000, 80, 0x02)),
        (1_700_000_000, tcp4(B, A, 80, 40000, 0x12)),
        (1_700_000_001, tcp4(A, B, 40000, 80, 0x10)),
        // SYN/ACK from a never-seen host
        (1_700_000_002, tcp4(V, D, 443, 1111, 0x12)),
        // RST and RST/ACK
        (1_700_000_003, tcp4(V, D, 443, 1112, 0x04)),
        (1_700_000_003, tcp4(V, D, 443, 1113, 0x14)),
        // ECE: SYN/ACK/ECE
        (1_700_000_004, tcp4(W, D, 25, 1114, 0x52)),
        // IPv6 with a hop-by-hop header
        (
            1_700_000_005,
            eth_ip(&ipv6(v6, d6, PROTO_TCP, true, &tcp_header(80, 2222, 0x12))),
        ),
        // VLAN and QinQ
        (
            1_700_000_006,
            ethernet(
                0x0800,
                &[0x8100],
                &ipv4(V, D, PROTO_TCP, &[], &tcp_header(443, 1115, 0x12)),
            ),
        ),
        (
            1_700_000_006,
            ethernet(
                0x0800,
                &[0x88A8, 0x8100],
                &ipv4(V, D, PROTO_TCP, &[], &tcp_header(443, 1116, 0x14)),
            ),
        ),
        // IP options
        (
            1_700_000_007,
            eth_ip(&ipv4(
                W,
                D,
                PROTO_TCP,
                &[0x94, 0x04, 0, 0],
                &tcp_header(25, 1117, 0x12),
            )),
        ),
        // ICMP host unreachable quoting a spoofed TCP SYN to W: backscatter, no CSV line
        (
            1_700_000_008,
            eth_ip(&ipv4(R, D, 1, &[], &icmp_error(3, 1, &quoted[..28]))),
        ),
        // truncated frames: skipped
        (1_700_000_009, tcp4(V, D, 443, 1118, 0x12)[..40].to_vec()),
        (1_700_000_009, vec![0u8; 5]),
        // UDP, ARP: ignored
        (
            1_700_000_010,
            eth_ip(&ipv4(D, B, PROTO_UDP, &[], &udp_header(5000, 53))),
        ),
        (1_700_000_010, ethernet(0x0806, &[], &[0u8; 28])),
    ];
    let expected = vec![
        "#timestamp, source IP, TCP flags, source port",
        "1700000002,198.51.100.7,18,443",
        "1700000003,198.51.100.7,4,443",
        "1700000003,198.51.100.7,20,443",
        "1700000004,198.51.100.8,82,25",
        "1700000005,2001:db8::7,18,80",
        "1700000006,198.51.100.7,18,443",
        "1700000006,198.51.100.7,20,443",
        "1700000007,198.51.100.8,18,25",
    ];
    (records, expected)
}

fn d4(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d4"))
        .args(args)
        .output()
        .expect("run d4")
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn stdout_lines(o: &Output) -> Vec<String> {
    assert!(
        o.status.success(),
        "status {:?}, stderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn backscatter_csv_on_mixed_capture_in_every_container() {
    let dir = tempfile::tempdir().unwrap();
    let (records, expected) = mixed();
    let pcap = pcap_file(1, &records);
    let ng = pcapng_file(1, &records);
    let gz = |b: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    };
    for (name, bytes) in [
        ("mixed.pcap", pcap.clone()),
        ("mixed.pcapng", ng.clone()),
        ("mixed.cap.gz", gz(&pcap)),
        ("mixed.pcapng.gz", gz(&ng)),
        // the name does not matter: gzip is recognised by content
        ("no-extension", gz(&pcap)),
    ] {
        let p = dir.path().join(name);
        write(&p, &bytes);
        let out = d4(&["pibs", "-r", p.to_str().unwrap(), "-b"]);
        assert_eq!(stdout_lines(&out), expected, "{name}");
    }
}

#[test]
fn write_pcap_then_reread_gives_the_same_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (records, expected) = mixed();
    let input = dir.path().join("in.pcap");
    write(&input, &pcap_file(1, &records));
    let out_pcap = dir.path().join("out.pcap");
    let out = d4(&[
        "pibs",
        "-r",
        input.to_str().unwrap(),
        "-w",
        out_pcap.to_str().unwrap(),
    ]);
    // -w alone prints nothing on stdout
    assert!(stdout_lines(&out).is_empty());
    // 8 TCP + 1 ICMP backscatter packets were written
    let mut n = 0;
    d4_pibs::for_each_record(std::fs::File::open(&out_pcap).unwrap(), |_| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 9);
    let again = d4(&["pibs", "-r", out_pcap.to_str().unwrap(), "-b"]);
    assert_eq!(stdout_lines(&again), expected);
}

#[test]
fn json_summaries_per_victim() {
    let dir = tempfile::tempdir().unwrap();
    let (records, _) = mixed();
    let input = dir.path().join("in.pcap");
    write(&input, &pcap_file(1, &records));
    let out = d4(&["pibs", "-r", input.to_str().unwrap(), "--json"]);
    let lines = stdout_lines(&out);
    let victims: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(victims.len(), 3, "{lines:?}");
    let v = &victims[0];
    assert_eq!(v["victim"], "198.51.100.7");
    assert_eq!(v["packets"], 5);
    assert_eq!(v["first_seen"], 1_700_000_002u64);
    assert_eq!(v["last_seen"], 1_700_000_006u64);
    assert_eq!(v["ports"][0]["port"], 443);
    assert_eq!(v["tcp_flags"]["SYN,ACK"], 2);
    assert_eq!(v["tcp_flags"]["RST,ACK"], 2);
    assert_eq!(v["tcp_flags"]["RST"], 1);
    assert_eq!(v["buckets"][0]["start"], 1_700_000_000u64 / 300 * 300);
    let w = &victims[1];
    assert_eq!(w["victim"], "198.51.100.8");
    assert_eq!(w["packets"], 3);
    assert_eq!(w["tcp"], 2);
    assert_eq!(w["icmp"], 1);
    assert_eq!(w["icmp_types"]["3/1"], 1);
    // threshold: only victims with a bucket of at least 4 packets
    let out = d4(&[
        "pibs",
        "-r",
        input.to_str().unwrap(),
        "--json",
        "--threshold",
        "4",
    ]);
    assert_eq!(stdout_lines(&out).len(), 1);
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // missing file: exit 2
    let out = d4(&["pibs", "-r", dir.path().join("nope.pcap").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    // not a capture: exit 1, message on stderr
    let junk = dir.path().join("junk.pcap");
    write(&junk, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n");
    let out = d4(&["pibs", "-r", junk.to_str().unwrap(), "-b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a pcap"));
    // a capture cut inside a record: what came before is reported, exit 0
    let (records, expected) = mixed();
    let cap = pcap_file(1, &records);
    let cut = dir.path().join("cut.pcap");
    write(&cut, &cap[..cap.len() - 7]);
    let out = d4(&["pibs", "-r", cut.to_str().unwrap(), "-b"]);
    assert_eq!(stdout_lines(&out), expected);
    // a huge declared record length: an error, not an allocation of gigabytes
    let mut huge = pcap_file(1, &records[..1]);
    huge[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
    huge[36..40].copy_from_slice(&u32::MAX.to_le_bytes());
    let hp = dir.path().join("huge.pcap");
    write(&hp, &huge);
    let out = d4(&["pibs", "-r", hp.to_str().unwrap(), "-b"]);
    assert_ne!(out.status.code(), Some(101), "panicked");
}
