//! `d4 tls` end to end: the real binary on captures of real handshakes (rustls and
//! OpenSSL, made in memory by `d4_testkit::tlsgen`), wrapped into TCP over IPv4, IPv6 and
//! VLAN, cut into random segments, reordered, retransmitted, started mid-flow. The expected
//! fingerprints and certificate hashes come from `tlsgen::expected`, a separate, simple
//! reading of the same bytes.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use d4_testkit::tlsgen::{self, CaptureSpec, HandshakeSpec, KeyKind, Stack, Version};
use serde_json::Value;
use sha1::{Digest, Sha1};

pub struct Case {
    pub spec: HandshakeSpec,
    pub cap: CaptureSpec,
}

fn spec(stack: Stack, version: Version, key: KeyKind, chain: bool, grease: bool) -> HandshakeSpec {
    HandshakeSpec {
        stack,
        version,
        key,
        chain,
        sni: Some("www.example.test".into()),
        alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        grease,
    }
}

fn cap(n: u16, ipv6: bool, vlan: Option<u16>, mid: bool) -> CaptureSpec {
    let (client, server): (SocketAddr, SocketAddr) = if ipv6 {
        (
            format!("[2001:db8::{n:x}]:{}", 40000 + n).parse().unwrap(),
            "[2001:db8:ffff::1]:443".parse().unwrap(),
        )
    } else {
        (
            format!("10.1.0.{n}:{}", 40000 + n).parse().unwrap(),
            "192.0.2.10:443".parse().unwrap(),
        )
    };
    CaptureSpec {
        ipv6,
        vlan,
        client,
        server,
        seed: 1000 + u64::from(n),
        max_segment: 200 + 97 * usize::from(n % 7),
        reorder: true,
        retransmit: true,
        start_mid_flow: mid,
        fin: true,
        start_ts_us: 1_700_000_000_000_000 + u64::from(n) * 1_000_000,
    }
}

/// The matrix: both stacks, every version they do, RSA and ECDSA, chains, GREASE, over
/// IPv4, IPv6 and VLAN, some started mid-flow.
pub fn cases() -> Vec<Case> {
    use KeyKind::*;
    use Stack::*;
    use Version::*;
    let specs = [
        spec(Rustls, Tls12, Rsa2048, true, false),
        spec(Rustls, Tls13, EcdsaP256, false, false),
        spec(Rustls, Tls12, EcdsaP256, false, true),
        spec(OpenSsl, Tls10, Rsa2048, false, false),
        spec(OpenSsl, Tls11, EcdsaP256, true, false),
        spec(OpenSsl, Tls12, Rsa2048, true, true),
        spec(OpenSsl, Tls13, Rsa2048, false, true),
    ];
    let mut out = Vec::new();
    let mut n = 1u16;
    for s in specs {
        for (ipv6, vlan, mid) in [
            (false, None, false),
            (true, None, true),
            (false, Some(42), false),
        ] {
            out.push(Case {
                spec: s.clone(),
                cap: cap(n, ipv6, vlan, mid),
            });
            n += 1;
        }
    }
    out
}

/// One pcap holding every case, the transcripts and their expectations by client port.
pub fn capture(
    cases: &[Case],
) -> (
    Vec<u8>,
    HashMap<u16, (tlsgen::Transcript, tlsgen::Expected)>,
) {
    let mut frames = Vec::new();
    let mut want = HashMap::new();
    for c in cases {
        let t = tlsgen::handshake(&c.spec).unwrap_or_else(|e| panic!("{:?}: {e}", c.spec));
        let e = tlsgen::expected(&t);
        frames.extend(tlsgen::tcp_frames(&t, &c.cap));
        want.insert(c.cap.client.port(), (t, e));
    }
    // flows interleave in capture time order
    frames.sort_by_key(|(ts, _)| *ts);
    (tlsgen::pcap_file(1, &frames), want)
}

pub fn d4() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_d4"));
    c.env("NO_COLOR", "1").env("RUST_LOG", "info");
    c
}

fn run_tls(args: &[&str], dir: &Path, input: Option<&[u8]>) -> Output {
    let mut c = d4();
    c.arg("tls").args(args).current_dir(dir);
    c.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(bytes) = input {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Parses a record. Its big integers (RSA moduli, serial numbers: unquoted, as Go writes
/// them) do not fit serde_json's numbers, so integers of more than 18 digits are read as
/// strings of their digits.
pub fn parse_record(line: &str) -> Value {
    let mut out = String::with_capacity(line.len() + 64);
    let b = line.as_bytes();
    let (mut in_str, mut esc, mut i) = (false, false, 0);
    while i < b.len() {
        let c = b[i];
        if in_str {
            in_str = esc || c != b'"';
            esc = !esc && c == b'\\';
        } else if c == b'"' {
            in_str = true;
        } else if c.is_ascii_digit() || c == b'-' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'-') {
                i += 1;
            }
            let num = &line[start..i];
            if num.len() > 18 {
                out.push('"');
                out.push_str(num);
                out.push('"');
            } else {
                out.push_str(num);
            }
            continue;
        }
        out.push(c as char);
        i += 1;
    }
    let short: String = line.chars().take(300).collect();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {short}..."))
}

pub fn records(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(parse_record)
        .collect()
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_owned()
}

/// The certificates a capture shows in clear: the chain, except under TLS 1.3.
pub fn visible_certificates<'a>(t: &'a tlsgen::Transcript, e: &tlsgen::Expected) -> &'a [Vec<u8>] {
    if e.cert_sha1.is_empty() {
        &[]
    } else {
        &t.cert_chain_der
    }
}

/// Checks one record against the expectation of its handshake.
pub fn check(r: &Value, t: &tlsgen::Transcript, e: &tlsgen::Expected, c: &CaptureSpec) {
    let ctx = format!(
        "record of client port {} ({:?} {:?})",
        c.client.port(),
        r["JA3"],
        r["Version"]
    );
    assert_eq!(s(r, "ClientIP"), c.client.ip().to_string(), "{ctx}");
    assert_eq!(s(r, "ClientPort"), c.client.port().to_string(), "{ctx}");
    assert_eq!(s(r, "ServerIP"), c.server.ip().to_string(), "{ctx}");
    assert_eq!(s(r, "ServerPort"), c.server.port().to_string(), "{ctx}");
    assert_eq!(s(r, "JA3"), e.ja3, "{ctx}");
    assert_eq!(s(r, "JA3Digest"), e.ja3_digest, "{ctx}");
    assert_eq!(s(r, "JA3S"), e.ja3s, "{ctx}");
    assert_eq!(s(r, "JA3SDigest"), e.ja3s_digest, "{ctx}");
    assert_eq!(s(r, "JA4"), e.ja4, "{ctx}");
    assert_eq!(s(r, "JA4_r"), e.ja4_r, "{ctx}");
    assert_eq!(s(r, "SNI"), e.sni.clone().unwrap_or_default(), "{ctx}");
    assert_eq!(s(r, "Transport"), "tcp");
    assert_eq!(r["Complete"], Value::Bool(true), "{ctx}");
    let certs: Vec<&Value> = r["Certificates"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let hashes: Vec<String> = certs.iter().map(|c| s(c, "CertHash")).collect();
    assert_eq!(hashes, e.cert_sha1, "{ctx}");
    let sha256: Vec<String> = certs.iter().map(|c| s(c, "CertSHA256")).collect();
    assert_eq!(sha256, e.cert_sha256, "{ctx}");
    // TLS 1.3 sends its certificates encrypted; before, the chain is in clear
    assert_eq!(certs.len(), visible_certificates(t, e).len(), "{ctx}");
    if certs.is_empty() {
        assert_eq!(r["Certificates"], Value::Null);
        assert_eq!(s(r, "TLSH"), "");
    }
    for (c, der) in certs.iter().zip(visible_certificates(t, e)) {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(s(c, "Raw"))
            .unwrap();
        assert_eq!(&raw, der);
        assert!(c["RawSubjectPublicKeyInfo"].is_string());
        assert!(c["IsCA"].is_boolean());
        assert!(c["Subject"].is_object() && c["Issuer"].is_object());
    }
}

#[test]
fn records_match_the_handshakes_in_every_shape() {
    let dir = tempfile::tempdir().unwrap();
    let all = cases();
    let (pcap, want) = capture(&all);
    let path = dir.path().join("tls.pcap");
    std::fs::write(&path, &pcap).unwrap();
    let out = run_tls(&["-r", "tls.pcap", "-w", "certs"], dir.path(), None);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), all.len(), "one record per session: {log}");
    let mut seen = std::collections::HashSet::new();
    for r in &recs {
        let port: u16 = s(r, "ClientPort").parse().unwrap();
        let case = all.iter().find(|c| c.cap.client.port() == port).unwrap();
        let (t, e) = &want[&port];
        check(r, t, e, &case.cap);
        assert!(seen.insert(port), "one record per session");
    }
    // -w: every certificate once, as <sha1>.crt holding the DER
    let mut expected_files = std::collections::BTreeSet::new();
    for (t, e) in want.values() {
        for der in visible_certificates(t, e) {
            expected_files.insert(format!("{}.crt", hex::encode(Sha1::digest(der))));
            let p = dir
                .path()
                .join("certs")
                .join(format!("{}.crt", hex::encode(Sha1::digest(der))));
            assert_eq!(&std::fs::read(&p).unwrap(), der);
        }
    }
    let files: std::collections::BTreeSet<String> = std::fs::read_dir(dir.path().join("certs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, expected_files);
    assert!(log.contains("d4 tls done"), "{log}");
}

#[test]
fn gzip_from_stdin_and_one_file_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<Case> = cases().into_iter().take(6).collect();
    let (pcap, want) = capture(&all);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&pcap).unwrap();
    let gz = gz.finish().unwrap();
    let out = run_tls(&["-r", "-", "-j", "records"], dir.path(), Some(&gz));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "-j writes files instead of stdout");
    let mut n = 0;
    for e in std::fs::read_dir(dir.path().join("records")).unwrap() {
        let p = e.unwrap().path();
        let body = std::fs::read(&p).unwrap();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        use sha2::Digest as _;
        assert_eq!(
            name,
            hex::encode(sha2::Sha256::digest(body.strip_suffix(b"\n").unwrap()))
        );
        let r = parse_record(std::str::from_utf8(&body).unwrap().trim_end());
        let port: u16 = s(&r, "ClientPort").parse().unwrap();
        let case = all.iter().find(|c| c.cap.client.port() == port).unwrap();
        let (t, e) = &want[&port];
        check(&r, t, e, &case.cap);
        n += 1;
    }
    assert_eq!(n, all.len());
}

#[test]
fn a_flow_that_ends_before_the_certificates_is_reported_partial() {
    let dir = tempfile::tempdir().unwrap();
    let c = &cases()[0];
    let t = tlsgen::handshake(&c.spec).unwrap();
    // only the client's bytes: the ClientHello and nothing from the server
    let client_only = tlsgen::Transcript {
        writes: t
            .writes
            .iter()
            .filter(|(from_client, _)| *from_client)
            .take(1)
            .cloned()
            .collect(),
        ..t.clone()
    };
    let frames = tlsgen::tcp_frames(&client_only, &c.cap);
    std::fs::write(dir.path().join("p.pcap"), tlsgen::pcap_file(1, &frames)).unwrap();
    let out = run_tls(&["-r", "p.pcap"], dir.path(), None);
    assert!(out.status.success());
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 1);
    let e = tlsgen::expected(&t);
    assert_eq!(s(&recs[0], "JA3"), e.ja3);
    assert_eq!(s(&recs[0], "JA3S"), "");
    assert_eq!(recs[0]["Complete"], Value::Bool(false));
    assert_eq!(recs[0]["Certificates"], Value::Null);
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_tls(&["-r", "missing.pcap"], dir.path(), None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pcap"));
    let out = run_tls(&[], dir.path(), None);
    assert_eq!(out.status.code(), Some(2));
    std::fs::write(dir.path().join("x.pcap"), tlsgen::pcap_file(1, &[])).unwrap();
    let out = run_tls(
        &["-r", "x.pcap", "tcp", "port", "nonsense"],
        dir.path(),
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("filter"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // a BPF filter applies to files too: nothing on port 443 passes `port 80`
    let (pcap, _) = capture(&cases()[..1]);
    std::fs::write(dir.path().join("y.pcap"), pcap).unwrap();
    let out = run_tls(&["-r", "y.pcap", "tcp", "port", "80"], dir.path(), None);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let out = run_tls(&["-r", "y.pcap", "tcp", "port", "443"], dir.path(), None);
    assert_eq!(records(&out.stdout).len(), 1);
}

#[test]
fn quic_initials_are_fingerprinted_with_q() {
    let dir = tempfile::tempdir().unwrap();
    let mut frames = Vec::new();
    let mut want = HashMap::new();
    // one packet; three packets in reverse order; GREASE; IPv6
    let specs = [
        (tlsgen::QuicSpec::new(), "10.7.0.1:50001"),
        (
            tlsgen::QuicSpec {
                crypto_per_packet: 200,
                reverse: true,
                dcid: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
                ..tlsgen::QuicSpec::new()
            },
            "10.7.0.2:50002",
        ),
        (
            tlsgen::QuicSpec {
                grease: true,
                crypto_per_packet: 700,
                ..tlsgen::QuicSpec::new()
            },
            "10.7.0.3:50003",
        ),
        (
            tlsgen::QuicSpec {
                sni: None,
                alpn: vec![],
                ..tlsgen::QuicSpec::new()
            },
            "[2001:db8::77]:50004",
        ),
    ];
    for (i, (spec, client)) in specs.iter().enumerate() {
        let q = tlsgen::quic_initials(spec).unwrap();
        let client: SocketAddr = client.parse().unwrap();
        let server: SocketAddr = if client.is_ipv6() {
            "[2001:db8::443]:443".parse().unwrap()
        } else {
            "192.0.2.44:443".parse().unwrap()
        };
        frames.extend(tlsgen::udp_frames(
            &q.datagrams,
            client,
            server,
            None,
            1_700_000_000_000_000 + i as u64 * 1_000_000,
        ));
        want.insert(
            client.port(),
            tlsgen::expected_quic(&q.client_hello).unwrap(),
        );
    }
    std::fs::write(dir.path().join("q.pcap"), tlsgen::pcap_file(1, &frames)).unwrap();
    let out = run_tls(&["-r", "q.pcap"], dir.path(), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), specs.len(), "{recs:?}");
    for r in &recs {
        let port: u16 = s(r, "ClientPort").parse().unwrap();
        let e = &want[&port];
        assert!(e.ja4.starts_with('q'));
        assert_eq!(s(r, "JA4"), e.ja4, "{r}");
        assert_eq!(s(r, "JA4_r"), e.ja4_r, "{r}");
        assert_eq!(s(r, "JA3"), e.ja3, "{r}");
        assert_eq!(s(r, "SNI"), e.sni.clone().unwrap_or_default());
        assert_eq!(s(r, "Transport"), "quic");
        assert_eq!(s(r, "ServerPort"), "443");
        assert_eq!(r["Certificates"], Value::Null);
    }
    // the same datagrams with the QUIC decoder off: nothing
    let out = run_tls(&["-r", "q.pcap", "--no-quic"], dir.path(), None);
    assert!(records(&out.stdout).is_empty());
}

#[test]
fn pcapng_captures_are_read_too() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<Case> = cases().into_iter().skip(6).take(6).collect();
    let mut frames = Vec::new();
    let mut want = HashMap::new();
    for c in &all {
        let t = tlsgen::handshake(&c.spec).unwrap();
        let e = tlsgen::expected(&t);
        frames.extend(tlsgen::tcp_frames(&t, &c.cap));
        want.insert(c.cap.client.port(), (t, e));
    }
    frames.sort_by_key(|(ts, _)| *ts);
    std::fs::write(dir.path().join("c.pcapng"), tlsgen::pcapng_file(1, &frames)).unwrap();
    let out = run_tls(&["-r", "c.pcapng"], dir.path(), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), all.len());
    for r in &recs {
        let port: u16 = s(r, "ClientPort").parse().unwrap();
        let case = all.iter().find(|c| c.cap.client.port() == port).unwrap();
        let (t, e) = &want[&port];
        check(r, t, e, &case.cap);
    }
}
