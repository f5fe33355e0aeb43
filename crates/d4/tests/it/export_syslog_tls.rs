//! `d4 export` to syslog receivers that parse RFC 5424 (UDP, and TCP with RFC 6587 octet
//! counting), and to a TLS server with its own CA (rcgen) that asks for a client
//! certificate: the right CA and client certificate deliver everything; a CA that did
//! not sign the server's certificate delivers nothing and leaves the queue as it was.

use std::io::{BufReader, Read};
use std::net::{TcpListener, UdpSocket};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::export_util::*;

/// One RFC 5424 message, parsed here independently of the exporter's code.
#[derive(Debug)]
struct Msg {
    pri: u32,
    time: chrono::DateTime<chrono::FixedOffset>,
    host: String,
    app: String,
    procid: String,
    msgid: String,
    sd: String,
    body: String,
}

fn parse_5424(raw: &[u8]) -> Msg {
    let s = std::str::from_utf8(raw).unwrap();
    let rest = s.strip_prefix('<').unwrap();
    let (pri, rest) = rest.split_once('>').unwrap();
    let rest = rest.strip_prefix("1 ").expect("VERSION 1");
    let mut f = rest.splitn(7, ' ');
    let mut next = || f.next().unwrap().to_string();
    let time = next();
    let (host, app, procid, msgid, sd, body) = (next(), next(), next(), next(), next(), next());
    Msg {
        pri: pri.parse().unwrap(),
        time: chrono::DateTime::parse_from_rfc3339(&time).unwrap(),
        host,
        app,
        procid,
        msgid,
        sd,
        body,
    }
}

fn check_messages(msgs: &[Msg], n: usize, pid: u32, from: chrono::DateTime<chrono::Utc>) {
    assert_eq!(msgs.len(), n);
    let to = chrono::Utc::now();
    for (i, m) in msgs.iter().enumerate() {
        // local3 (19) × 8 + warning (4)
        assert_eq!(m.pri, 19 * 8 + 4, "{m:?}");
        assert_eq!(m.host, "sensor-gw.example", "{m:?}");
        assert_eq!(m.app, "d4-test", "{m:?}");
        assert_eq!(m.procid, pid.to_string(), "{m:?}");
        assert_eq!(m.msgid, "type-3", "the queue's type: {m:?}");
        assert_eq!(m.sd, "-", "{m:?}");
        assert_eq!(m.body, entry(i), "{m:?}");
        assert!(m.time >= from && m.time <= to, "{m:?} not in {from}..{to}");
    }
}

const SYSLOG_FLAGS: &[&str] = &[
    "--until-empty",
    "--facility",
    "local3",
    "--severity",
    "warning",
    "--app-name",
    "d4-test",
    "--hostname",
    "sensor-gw.example",
];

fn run_pid(mut c: std::process::Command) -> (u32, String) {
    let child = c.spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (pid, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn syslog_udp_rfc5424() {
    const N: usize = 300;
    let (dir, queue) = queue_of(N);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&sock)
        .set_recv_buffer_size(4 << 20)
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let to = format!("syslog://{}", sock.local_addr().unwrap());
    let from = chrono::Utc::now();
    let (pid, _) = run_pid(export(dir.path(), queue, &to, SYSLOG_FLAGS));
    let mut msgs = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while msgs.len() < N {
        let n = sock.recv(&mut buf).expect("all messages within 10 s");
        msgs.push(parse_5424(&buf[..n]));
    }
    check_messages(&msgs, N, pid, from);
    assert_eq!(queue_len(dir.path(), queue), 0);
}

/// RFC 6587 §3.4.1: `MSG-LEN SP SYSLOG-MSG`, read here byte by byte.
fn read_octet_counted<R: Read>(r: &mut R) -> Option<Vec<u8>> {
    let mut len = 0usize;
    let mut digits = 0;
    let mut b = [0u8; 1];
    loop {
        if r.read(&mut b).ok()? == 0 {
            return None;
        }
        match b[0] {
            b'0'..=b'9' => {
                len = len * 10 + usize::from(b[0] - b'0');
                digits += 1;
            }
            b' ' if digits > 0 => break,
            other => panic!("bad octet-counting frame byte {other:#x}"),
        }
    }
    let mut msg = vec![0u8; len];
    r.read_exact(&mut msg).ok()?;
    Some(msg)
}

fn syslog_tcp(url_of: impl Fn(std::net::SocketAddr) -> String) {
    const N: usize = 300;
    let (dir, queue) = queue_of(N);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = url_of(l.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut r = BufReader::new(s);
        while let Some(m) = read_octet_counted(&mut r) {
            tx.send(m).unwrap();
        }
    });
    let from = chrono::Utc::now();
    let (pid, _) = run_pid(export(dir.path(), queue, &to, SYSLOG_FLAGS));
    let msgs: Vec<Msg> = (0..N)
        .map(|_| parse_5424(&rx.recv_timeout(Duration::from_secs(10)).unwrap()))
        .collect();
    check_messages(&msgs, N, pid, from);
    assert_eq!(queue_len(dir.path(), queue), 0);
}

#[test]
fn syslog_tcp_octet_counting() {
    syslog_tcp(|a| format!("syslog+tcp://{a}"));
}

#[test]
fn syslog_tcp_by_query() {
    syslog_tcp(|a| format!("syslog://{a}?proto=tcp"));
}

/// A CA, a server certificate for localhost/127.0.0.1 signed by it, and a client
/// certificate signed by it, as PEM files in `dir`.
struct Pki {
    ca: std::path::PathBuf,
    server: rustls::ServerConfig,
    client_cert: std::path::PathBuf,
    client_key: std::path::PathBuf,
}

fn pki(dir: &std::path::Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "d4 export test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let srv_key = KeyPair::generate().unwrap();
    let srv = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&srv_key, &ca)
        .unwrap();
    let cli_key = KeyPair::generate().unwrap();
    let cli = CertificateParams::new(vec!["d4-export-client".to_string()])
        .unwrap()
        .signed_by(&cli_key, &ca)
        .unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let ca_pem = write("ca.pem", ca.pem());
    let client_cert = write("client.pem", cli.pem());
    let client_key = write("client.key", cli_key.serialize_pem());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![srv.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(srv_key.serialize_der().into()),
        )
        .unwrap();
    Pki {
        ca: ca_pem,
        server,
        client_cert,
        client_key,
    }
}

/// Accepts TLS connections forever; each one's lines go to `got` (a connection is
/// dropped after `limit` lines when given: the receiver goes away).
pub fn tls_receiver(l: TcpListener, config: rustls::ServerConfig, got: Got, limit: Option<usize>) {
    let config = Arc::new(config);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                return;
            };
            read_lines(rustls::StreamOwned::new(conn, s), &got, limit);
        }
    });
}

#[test]
fn tls_with_own_ca_and_client_certificate() {
    const N: usize = 1000;
    let (dir, queue) = queue_of(N);
    let pki = pki(dir.path());
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Got::default();
    tls_receiver(l, pki.server, got.clone(), None);
    let ca = pki.ca.display().to_string();
    let cert = pki.client_cert.display().to_string();
    let key = pki.client_key.display().to_string();
    // by name: the certificate is for localhost
    let to = format!("tls://localhost:{port}");
    let (out, _) = run_ok(
        export(
            dir.path(),
            queue,
            &to,
            &["--until-empty", "--ca", &ca, "--cert", &cert, "--key", &key],
        ),
        60,
    );
    got.wait_distinct(N, 10);
    assert_eq!(check_delivery(&got.snapshot(), N, 0), 0);
    assert_eq!(summary(&out)["entries"], N as u64);
    assert_eq!(queue_len(dir.path(), queue), 0);
}

#[test]
fn tls_wrong_ca_sends_nothing_and_keeps_the_queue() {
    const N: usize = 50;
    let (dir, queue) = queue_of(N);
    let pki = pki(dir.path());
    let other = tempfile::tempdir().unwrap();
    let stranger = self::pki(other.path()); // a CA that did not sign the server's cert
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Got::default();
    tls_receiver(l, pki.server, got.clone(), None);
    let mut child = export(
        dir.path(),
        queue,
        &format!("tls://127.0.0.1:{port}"),
        &["--ca", &stranger.ca.display().to_string()],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    // SIGTERM: it stops while waiting to reconnect, the batch unacknowledged
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "no exit 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("sink unavailable"), "{err}");
    assert!(
        err.to_lowercase().contains("certificate"),
        "the reason is the certificate: {err}"
    );
    // logged once per outage, not per try
    assert_eq!(err.matches("sink unavailable").count(), 1, "{err}");
    assert_eq!(got.total(), 0);
    // every entry is still there for the next run (the leased batch included)
    let left = leftover(dir.path(), queue);
    assert_eq!(left, (0..N).map(entry).collect::<Vec<_>>());
}

/// The TLS receiver drops each connection after some lines (without close_notify): the
/// exporter reconnects, verifies the server again and resends the unacknowledged batch.
#[test]
fn tls_receiver_drops_connections() {
    const N: usize = 600;
    let (dir, queue) = queue_of(N);
    let pki = pki(dir.path());
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Got::default();
    // every connection goes away after at least 170 lines
    tls_receiver(l, pki.server, got.clone(), Some(170));
    let ca = pki.ca.display().to_string();
    let cert = pki.client_cert.display().to_string();
    let key = pki.client_key.display().to_string();
    let (out, _) = run_ok(
        export(
            dir.path(),
            queue,
            &format!("tls://127.0.0.1:{port}"),
            &[
                "--until-empty",
                "--pop-max",
                "50",
                "--rate",
                "1000",
                "--ca",
                &ca,
                "--cert",
                &cert,
                "--key",
                &key,
            ],
        ),
        120,
    );
    got.wait_distinct(N, 10);
    let conns = got.snapshot();
    assert!(conns.len() >= 4, "{} connections", conns.len());
    check_delivery(&conns, N, 50);
    assert!(summary(&out)["connections"].as_u64().unwrap() >= 4);
}
