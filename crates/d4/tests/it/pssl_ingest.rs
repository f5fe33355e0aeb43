//! `d4 pssl ingest`, the real binary: the JSON lines `d4 tls -r` writes for generated
//! handshakes (from a file and from stdin), the capture itself, certificate folders and a
//! `.tar.gz`, bad lines, the same input twice, the collector's `ja3-jl` queue end to end,
//! and PostgreSQL. The results are read back from the store; the expected values come from
//! the tests' own inputs (certificate SHA-1s computed from the DER the handshakes or rcgen
//! made).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use d4_pssl::{EmbeddedStore, Page, PostgresStore, PsslStore};
use d4_store::QueueKind;
use serde_json::Value;
use sha1::{Digest, Sha1};

use crate::support::server::{create_queue, register_sensor, ServerProc};
use crate::tls_cli::{capture, cases, d4, visible_certificates, Case};

fn sha1_hex(der: &[u8]) -> String {
    hex::encode(Sha1::digest(der))
}

/// `d4 pssl --data-dir DIR ingest ARGS...`, stdin from `input` (else empty).
fn ingest(dir: &Path, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut c = d4();
    c.arg("pssl")
        .arg("--data-dir")
        .arg(dir)
        .arg("ingest")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(bytes) = input {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn summary(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn embedded(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(&dir.join("pssl.redb")).unwrap()
}

/// The handshakes of a capture: per server address, the SHA-1 of the certificates a
/// passive sensor sees (TLS 1.3 sends them encrypted), computed from the generated DER.
struct Capture {
    pcap: Vec<u8>,
    sessions: usize,
    /// (server IP, port, visible certificates' SHA-1 in the order sent)
    servers: Vec<(IpAddr, u16, Vec<String>)>,
}

impl Capture {
    fn certificates(&self) -> BTreeSet<String> {
        self.servers
            .iter()
            .flat_map(|(_, _, c)| c.iter().cloned())
            .collect()
    }
}

fn make_capture(all: &[Case]) -> Capture {
    let (pcap, want) = capture(all);
    let servers = all
        .iter()
        .map(|c| {
            let (t, e) = &want[&c.cap.client.port()];
            let certs = visible_certificates(t, e)
                .iter()
                .map(|d| sha1_hex(d))
                .collect();
            (c.cap.server.ip(), c.cap.server.port(), certs)
        })
        .collect();
    Capture {
        pcap,
        sessions: all.len(),
        servers,
    }
}

fn some_cases() -> Vec<Case> {
    cases().into_iter().step_by(2).collect()
}

/// Every (server, leaf certificate) of the capture is in the store, with every
/// certificate and its key.
fn check_store(store: &dyn PsslStore, cap: &Capture) {
    for (ip, port, chain) in &cap.servers {
        for sha1 in chain {
            let v = store
                .certificate(sha1)
                .unwrap()
                .unwrap_or_else(|| panic!("{sha1} missing"));
            assert_eq!(&v.certificate.sha1, sha1);
            assert_eq!(sha1_hex(&v.certificate.der), *sha1, "DER kept whole");
            assert!(v.key.is_some(), "{sha1}: key");
        }
        let Some(leaf) = chain.first() else { continue };
        let net = ipnet::IpNet::from(*ip);
        let got = store.ip_certificates(net, &Page::first(100)).unwrap();
        let entry = got.items.iter().find(|e| e.ip == *ip).expect("server ip");
        assert!(
            entry.certificates.iter().any(|s| &s.value == leaf),
            "{ip}: {leaf} not among {:?}",
            entry.certificates
        );
        assert!(entry.ports.contains(port));
    }
}

#[test]
fn json_lines_stdin_pcap_and_twice() {
    let dir = tempfile::tempdir().unwrap();
    let cap = make_capture(&some_cases());
    assert!(cap.certificates().len() >= 2, "the cases send certificates");
    let pcap = dir.path().join("c.pcap");
    std::fs::write(&pcap, &cap.pcap).unwrap();
    let tls = d4().arg("tls").arg("-r").arg(&pcap).output().unwrap();
    assert!(tls.status.success());
    let jsonl = dir.path().join("records.jsonl");
    std::fs::write(&jsonl, &tls.stdout).unwrap();
    let want_certs = cap.certificates().len() as u64;

    // a file of JSON lines
    let a = dir.path().join("a");
    let s = summary(&ingest(&a, &[jsonl.to_str().unwrap()], None));
    assert_eq!(s["records_ok"], cap.sessions as u64, "{s}");
    assert_eq!(s["records_bad"], 0, "{s}");
    assert_eq!(s["new_sessions"], cap.sessions as u64, "{s}");
    assert_eq!(s["new_certificates"], want_certs, "{s}");
    assert_eq!(s["commits"], 1, "{s}");
    let info = {
        let store = embedded(&a);
        check_store(&store, &cap);
        store.info().unwrap()
    };
    assert_eq!(info.certificates, want_certs);
    assert_eq!(info.sessions, cap.sessions as u64);

    // the same input again: nothing new, the store unchanged
    let s = summary(&ingest(&a, &[jsonl.to_str().unwrap()], None));
    assert_eq!(s["records_ok"], cap.sessions as u64, "{s}");
    for k in ["new_sessions", "new_certificates", "new_keys"] {
        assert_eq!(s[k], 0, "{k}: {s}");
    }
    assert_eq!(s["known_sessions"], cap.sessions as u64, "{s}");
    assert_eq!(embedded(&a).info().unwrap(), info);

    // stdin (`-` and nothing), with small batches
    let b = dir.path().join("b");
    let s = summary(&ingest(&b, &["--batch", "3"], Some(&tls.stdout)));
    assert_eq!(s["new_sessions"], cap.sessions as u64, "{s}");
    assert!(s["commits"].as_u64().unwrap() > 1, "{s}");
    assert_eq!(embedded(&b).info().unwrap(), info);

    // the capture itself, gzip too: the same sessions through the sensor
    let c = dir.path().join("c");
    let s = summary(&ingest(&c, &[pcap.to_str().unwrap()], None));
    assert_eq!(s["new_sessions"], cap.sessions as u64, "{s}");
    assert_eq!(s["new_certificates"], want_certs, "{s}");
    assert!(s["packets"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(embedded(&c).info().unwrap(), info);
    let gz = dir.path().join("c.pcap.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&cap.pcap).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let s = summary(&ingest(
        &c,
        &["--format", "pcap", gz.to_str().unwrap()],
        None,
    ));
    assert_eq!(s["known_sessions"], cap.sessions as u64, "{s}");
    assert_eq!(s["new_sessions"], 0, "{s}");
}

#[test]
fn bad_lines_are_counted_and_missing_files_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let cap = make_capture(&some_cases()[..2]);
    let pcap = dir.path().join("c.pcap");
    std::fs::write(&pcap, &cap.pcap).unwrap();
    let tls = d4().arg("tls").arg("-r").arg(&pcap).output().unwrap();
    let good = String::from_utf8(tls.stdout).unwrap();
    let text = format!("not json\n{good}{{}}\n{{\"ServerPort\":\"99999\",\"JA3Digest\":\"x\"}}\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    let file = dir.path().join("mixed.jsonl.gz");
    std::fs::write(&file, gz.finish().unwrap()).unwrap();
    let data = dir.path().join("data");
    let s = summary(&ingest(&data, &[file.to_str().unwrap()], None));
    assert_eq!(s["records_ok"], 2, "{s}");
    assert_eq!(s["records_bad"], 3, "{s}");
    assert_eq!(s["bad_by_reason"]["json"], 1, "{s}");
    assert_eq!(s["bad_by_reason"]["empty"], 1, "{s}");
    assert_eq!(s["bad_by_reason"]["field"], 1, "{s}");

    // a missing input: the others are read, the exit status is 1
    let other = tempfile::tempdir().unwrap();
    let out = ingest(
        other.path(),
        &["/nonexistent/in.jsonl", file.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["new_sessions"], 2, "{s}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/in.jsonl"));
}

/// A self-signed certificate for `name`: (DER, PEM).
fn cert(name: &str) -> (Vec<u8>, String) {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    (ck.cert.der().to_vec(), ck.cert.pem())
}

/// badkeys' Fermat test certificate: with the checks on (the default) its key is found
/// weak and recorded; with `--no-key-checks` nothing is checked; a missing `--bad-primes`
/// folder is an error.
#[test]
fn weak_keys_at_ingest() {
    let crt = d4_testkit::vector("keys/rsa-fermat.crt");
    let expected: Value =
        serde_json::from_slice(&d4_testkit::vector_bytes("keys/expected.json")).unwrap();
    let spki = expected["keys"]["rsa-fermat.crt"]["spkisha256"]
        .as_str()
        .unwrap()
        .to_string();
    let crt = crt.to_str().unwrap();

    let off = tempfile::tempdir().unwrap();
    let s = summary(&ingest(off.path(), &["--no-key-checks", crt], None));
    assert_eq!(s["new_keys"], 1);
    assert_eq!(s["keys_checked"], 0);
    assert!(embedded(off.path()).key_weakness(&spki).unwrap().is_empty());

    let on = tempfile::tempdir().unwrap();
    let s = summary(&ingest(on.path(), &[crt], None));
    assert_eq!(
        (s["keys_checked"].as_u64(), s["weak_keys_found"].as_u64()),
        (Some(1), Some(1))
    );
    let found = embedded(on.path()).key_weakness(&spki).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].check.as_str(), found[0].how.as_str()),
        ("fermat", "check")
    );

    let missing = on.path().join("no-such-dir");
    let out = ingest(
        on.path(),
        &["--bad-primes", missing.to_str().unwrap(), crt],
        None,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--bad-primes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn certificate_folders_and_archives() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(certs.join("sub")).unwrap();
    let (a_der, a_pem) = cert("a.example.test");
    let (b_der, b_pem) = cert("b.example.test");
    let (c_der, _) = cert("c.example.test");
    std::fs::write(certs.join("ab.pem"), format!("{a_pem}{b_pem}")).unwrap();
    std::fs::write(certs.join("sub/c.der"), &c_der).unwrap();
    std::fs::write(certs.join("junk.txt"), "no certificate here\n").unwrap();

    let data = dir.path().join("data");
    let certs_arg = certs.to_str().unwrap();
    let s = summary(&ingest(&data, &[certs_arg], None));
    assert_eq!(s["certificates_read"], 2, "not recursive: {s}");
    assert_eq!(s["certificate_files_bad"], 1, "{s}");
    let s = summary(&ingest(&data, &["-r", certs_arg], None));
    assert_eq!(s["certificates_read"], 3, "{s}");
    assert_eq!(s["new_certificates"], 1, "only c is new: {s}");
    {
        let store = embedded(&data);
        for (der, cn) in [
            (&a_der, "a.example.test"),
            (&b_der, "b.example.test"),
            (&c_der, "c.example.test"),
        ] {
            let v = store.certificate(&sha1_hex(der)).unwrap().expect(cn);
            assert_eq!(&v.certificate.der, der);
            assert!(v.certificate.sans.iter().any(|s| s == cn), "{v:?}");
            assert!(v.certificate.self_signed);
        }
    }

    // a .tar.gz of a PEM and a DER file; a DER file given alone
    let (d_der, d_pem) = cert("d.example.test");
    let (e_der, _) = cert("e.example.test");
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, bytes) in [("x/d.pem", d_pem.as_bytes()), ("x/e.der", &e_der[..])] {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes).unwrap();
    }
    let archive = dir.path().join("more.tgz");
    std::fs::write(&archive, tar.into_inner().unwrap().finish().unwrap()).unwrap();
    let (f_der, _) = cert("f.example.test");
    let lone = dir.path().join("f.crt");
    std::fs::write(&lone, &f_der).unwrap();
    let s = summary(&ingest(
        &data,
        &[archive.to_str().unwrap(), lone.to_str().unwrap()],
        None,
    ));
    assert_eq!(s["certificates_read"], 3, "{s}");
    assert_eq!(s["new_certificates"], 3, "{s}");
    let store = embedded(&data);
    for der in [&d_der, &e_der, &f_der] {
        assert!(store.certificate(&sha1_hex(der)).unwrap().is_some());
    }
    assert_eq!(store.info().unwrap().certificates, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_queue_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = ServerProc::start(&data, &["--mode", "registration"]);
    let store = srv.store().await;
    store
        .set_ext_type_accepted("ja3-jl".into(), true)
        .await
        .unwrap();
    let key = "tls sensor key";
    let uuid = register_sensor(&store, key, "d4 tls").await;
    let q = create_queue(&store, QueueKind::Ext("ja3-jl".into()), "pssl", 10_000).await;
    let cap = make_capture(&some_cases());
    let cap_path = dir.path().join("c.pcap");
    std::fs::write(&cap_path, &cap.pcap).unwrap();
    let conf = dir.path().join("sensor");
    std::fs::create_dir(&conf).unwrap();
    for (name, value) in [
        ("uuid", uuid.to_string()),
        ("key", key.to_string()),
        ("destination", srv.tls.unwrap().to_string()),
        ("type", "1".to_string()),
        ("source", "/nonexistent/file".to_string()),
    ] {
        std::fs::write(conf.join(name), format!("{value}\n")).unwrap();
    }
    let out = d4()
        .arg("tls")
        .arg("-r")
        .arg(&cap_path)
        .arg("--d4")
        .arg(&conf)
        .arg("--insecure")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Instant::now();
    let mut queued = 0;
    while t.elapsed() < Duration::from_secs(60) {
        queued = store.queue_len(q.uuid).await.unwrap();
        if queued >= cap.sessions as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(queued, cap.sessions as u64, "{}", srv.log_text());
    // a record file that is gone by now: counted, skipped, acknowledged
    store
        .push_entries(
            vec![q.uuid],
            vec![d4_store::QueueEntry::new("/nonexistent/gone.json")],
            d4_store::now(),
        )
        .await
        .unwrap();

    let (data2, qs) = (data.clone(), q.uuid.to_string());
    let out = tokio::task::spawn_blocking(move || {
        ingest(
            &data2,
            &["--queue", &qs, "--until-empty", "--pop-max", "3"],
            None,
        )
    })
    .await
    .unwrap();
    let s = summary(&out);
    assert_eq!(s["files_read"], cap.sessions as u64, "{s}");
    assert_eq!(s["files_missing"], 1, "{s}");
    assert_eq!(s["new_sessions"], cap.sessions as u64, "{s}");
    assert_eq!(store.queue_len(q.uuid).await.unwrap(), 0, "drained");

    // without --until-empty the consumer waits for entries; SIGTERM ends it cleanly
    let mut waiting = d4()
        .arg("pssl")
        .arg("--data-dir")
        .arg(&data)
        .args(["ingest", "--queue", &q.uuid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kill = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(waiting.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let t = Instant::now();
    let status = loop {
        if let Some(st) = waiting.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let out = waiting.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["records_ok"], 0, "{s}");
    let data3 = data.clone();
    let cap = tokio::task::spawn_blocking(move || {
        let pssl = embedded(&data3);
        check_store(&pssl, &cap);
        assert_eq!(
            pssl.info().unwrap().certificates,
            cap.certificates().len() as u64
        );
        cap
    })
    .await
    .unwrap();

    // `d4 pssl serve --queue`: answers for the capture's server addresses, and ingests
    // what the sensor sends next while it serves.
    let (mut served, port) = d4_testkit::http::spawn_listening("d4 pssl serve", |port| {
        d4().arg("pssl")
            .arg("--data-dir")
            .arg(&data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--queue", &q.uuid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    });
    let lookups = |cap: Capture| async move {
        tokio::task::spawn_blocking(move || served_answers(port, &cap))
            .await
            .unwrap()
    };
    let first_sessions = cap.sessions as u64;
    lookups(cap).await;
    let more = make_capture(&cases().into_iter().skip(1).step_by(2).collect::<Vec<_>>());
    let more_path = dir.path().join("more.pcap");
    std::fs::write(&more_path, &more.pcap).unwrap();
    let out = d4()
        .arg("tls")
        .arg("-r")
        .arg(&more_path)
        .arg("--d4")
        .arg(&conf)
        .arg("--insecure")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = first_sessions + more.sessions as u64;
    let t = Instant::now();
    loop {
        let info = tokio::task::spawn_blocking(move || {
            let r = d4_testkit::http::get(port, "/info", &[]);
            serde_json::from_str::<Value>(&r.body).unwrap()
        })
        .await
        .unwrap();
        if info["sessions"].as_u64() >= Some(want) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "serve --queue did not ingest the new sessions: {info}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    lookups(more).await;
    assert_eq!(
        store.queue_len(q.uuid).await.unwrap(),
        0,
        "drained by serve"
    );
    let kill = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(served.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let t = Instant::now();
    let status = loop {
        if let Some(st) = served.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "serve still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "serve --queue exits 0 on SIGTERM");
}

/// `/v2pssl/query/<ip>` and `/v2pssl/cquery/<leaf>` of `d4 pssl serve` name every server
/// address of the capture with its leaf certificate and port.
fn served_answers(port: u16, cap: &Capture) {
    for (ip, srv_port, chain) in &cap.servers {
        let Some(leaf) = chain.first() else { continue };
        let r = d4_testkit::http::get(port, &format!("/v2pssl/query/{ip}"), &[]);
        assert_eq!(r.status, 200, "{}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        let certs = v[ip.to_string()]["certificates"]
            .as_array()
            .unwrap_or_else(|| panic!("{ip} missing: {v}"));
        assert!(certs.iter().any(|c| c == leaf.as_str()), "{ip}: {v}");
        assert!(
            v[ip.to_string()]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == *srv_port),
            "{ip}: {v}"
        );
        let r = d4_testkit::http::get(port, &format!("/v2pssl/cquery/{leaf}"), &[]);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["certificate"], leaf.as_str());
        assert!(
            v["seen"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == &ip.to_string()),
            "{leaf}: {v}"
        );
        assert!(v["hits"].as_u64().unwrap() >= 1, "{v}");
    }
}

#[test]
fn postgres_backend() {
    let db = d4_testkit::PostgresServer::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let cap = make_capture(&some_cases());
    let pcap = dir.path().join("c.pcap");
    std::fs::write(&pcap, &cap.pcap).unwrap();
    let tls = d4().arg("tls").arg("-r").arg(&pcap).output().unwrap();
    let (der, pem) = cert("pg.example.test");
    let run = || {
        summary(&ingest(
            dir.path(),
            &["--postgres", db.url(), "-"],
            Some(&tls.stdout),
        ))
    };
    let s = run();
    assert_eq!(s["new_sessions"], cap.sessions as u64, "{s}");
    assert_eq!(
        s["new_certificates"],
        cap.certificates().len() as u64,
        "{s}"
    );
    let s = run();
    assert_eq!(s["new_sessions"], 0, "{s}");
    assert_eq!(s["known_sessions"], cap.sessions as u64, "{s}");
    let s = summary(&ingest(
        dir.path(),
        &["--postgres", db.url(), "--certs", "-"],
        Some(pem.as_bytes()),
    ));
    assert_eq!(s["new_certificates"], 1, "{s}");
    assert!(!dir.path().join("pssl.redb").exists(), "no embedded file");
    let store = PostgresStore::open(db.url()).unwrap();
    check_store(&store, &cap);
    assert!(store.certificate(&sha1_hex(&der)).unwrap().is_some());
}

/// A slow feed on stdin that never ends (`d4 tls -i eth0 | d4 pssl ingest`): SIGTERM commits
/// what was read, prints the summary and exits 0; nothing read is lost.
#[test]
fn sigterm_on_a_quiet_stdin_feed_commits_what_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let cap = make_capture(&some_cases());
    let tls = d4()
        .arg("tls")
        .arg("-r")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let records = {
        let mut tls = tls;
        tls.stdin.take().unwrap().write_all(&cap.pcap).unwrap();
        let out = tls.wait_with_output().unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let mut child = d4()
        .arg("pssl")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["ingest", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut feed = child.stdin.take().unwrap();
    feed.write_all(&records).unwrap();
    feed.flush().unwrap();
    // the feed stays open (quiet): the records are read, then SIGTERM
    std::thread::sleep(Duration::from_millis(2500));
    let kill = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "ingest still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(feed);
    let out = child.wait_with_output().unwrap();
    let s = summary(&out);
    assert_eq!(s["records_ok"], cap.sessions as u64, "{s}");
    assert_eq!(s["new_sessions"], cap.sessions as u64, "{s}");
    check_store(&embedded(dir.path()), &cap);
}
