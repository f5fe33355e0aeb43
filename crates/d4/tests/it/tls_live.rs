//! `d4 tls -i`: a real TLS handshake made on the loopback interface is captured live
//! (libpcap, feature `live-capture`; needs root or CAP_NET_RAW, which CI has). Without the
//! feature, `-i` says clearly what is missing.

use std::process::Stdio;

#[cfg(not(feature = "live-capture"))]
#[test]
fn live_capture_without_libpcap_is_a_clear_error() {
    let out = crate::tls_cli::d4()
        .args(["tls", "-i", "lo"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("live-capture"));
}

/// A TLS server on a free loopback port (certificate for `live.test`, ALPN h2); its port
/// and certificate.
#[cfg(feature = "live-capture")]
async fn tls_server() -> (u16, Vec<u8>) {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["live.test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = cert.der().to_vec();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut scfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    scfg.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(scfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut s) = acceptor.accept(tcp).await {
                    let mut b = [0u8; 5];
                    let _ = s.read_exact(&mut b).await;
                    let _ = s.write_all(b"world").await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    (port, der)
}

/// One TLS 1.2 handshake (SNI live.test, ALPN h2) and a request/response; the client port.
#[cfg(feature = "live-capture")]
async fn tls_client(port: u16) -> u16 {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut ccfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(d4_client::dest::NoChainVerifier::any(provider)))
        .with_no_client_auth();
    ccfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let client_port = tcp.local_addr().unwrap().port();
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(ccfg))
        .connect(
            rustls::pki_types::ServerName::try_from("live.test").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    s.write_all(b"hello").await.unwrap();
    let mut b = [0u8; 5];
    s.read_exact(&mut b).await.unwrap();
    client_port
}

/// Starts `d4 tls -i lo ARGS... tcp port PORT`, waits until it captures; the child, its
/// log and its stdout lines.
#[cfg(feature = "live-capture")]
fn start_live(
    port: u16,
    args: &[&str],
) -> (
    std::process::Child,
    std::sync::Arc<std::sync::Mutex<String>>,
    std::sync::mpsc::Receiver<String>,
) {
    use std::io::{BufRead, BufReader};
    use std::sync::Arc;
    use std::time::Duration;
    let mut child = crate::tls_cli::d4()
        .args(["tls", "-i", "lo", "--stats-secs", "1"])
        .args(args)
        .args(["tcp", "port"])
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("capturing") {
                let _ = ready_tx.send(());
            }
            log2.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    if ready_rx.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = child.kill();
        panic!(
            "d4 tls -i lo did not start capturing (root or CAP_NET_RAW needed):\n{}",
            log.lock().unwrap()
        );
    }
    let stdout = child.stdout.take().unwrap();
    let (rec_tx, rec_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = rec_tx.send(line);
        }
    });
    (child, log, rec_rx)
}

#[cfg(feature = "live-capture")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_on_loopback_is_captured_live() {
    use std::time::Duration;
    let (port, der) = tls_server().await;
    let (mut child, log, rec_rx) = start_live(port, &[]);
    let client_port = tls_client(port).await;

    let line = rec_rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("no record:\n{}", log.lock().unwrap()));
    let r = crate::tls_cli::parse_record(&line);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let st = child.wait().unwrap();
    assert!(st.success(), "{st:?}\n{}", log.lock().unwrap());
    assert_eq!(r["ClientIP"], "127.0.0.1");
    assert_eq!(r["ClientPort"], client_port.to_string());
    assert_eq!(r["ServerPort"], port.to_string());
    assert_eq!(r["SNI"], "live.test");
    assert_eq!(r["ALPN"], serde_json::json!(["h2"]));
    assert_eq!(r["Version"], "TLS 1.2");
    assert_eq!(r["Complete"], true);
    assert!(r["JA4"].as_str().unwrap().starts_with("t12d"), "{r}");
    use sha1::Digest;
    assert_eq!(
        r["Certificates"][0]["CertHash"],
        hex::encode(sha1::Sha1::digest(&der))
    );
    assert!(log.lock().unwrap().contains("libpcap counters"));
}

/// Live capture that cannot wait: with the collector away and the spool full, records are
/// counted as dropped (logged, exit status 1), never lost silently, and the capture goes on.
#[cfg(feature = "live-capture")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_records_are_counted_as_dropped_when_the_spool_is_full() {
    use std::time::Duration;
    let (port, _) = tls_server().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spool = tempfile::tempdir().unwrap();
    let dest = format!("127.0.0.1:{closed}");
    let spool_dir = spool.path().display().to_string();
    let (mut child, log, _rec) = start_live(
        port,
        &[
            "--destination",
            &dest,
            "--key",
            "k",
            "--insecure",
            "--spool-dir",
            &spool_dir,
            "--spool-max",
            "1",
            "--live-buffer",
            "1",
            "--drain-timeout",
            "1",
        ],
    );
    // enough sessions to fill the client's queue and its one-batch spool
    for _ in 0..150 {
        tls_client(port).await;
        // a debug build captures slowly: spare the kernel's ring
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = std::time::Instant::now();
    while !log.lock().unwrap().contains("live records are dropped")
        && t.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let st = child.wait().unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(st.code(), Some(1), "{log}");
    assert!(log.contains("live records are dropped"), "{log}");
    let dropped: u64 = log
        .split("\"records_dropped\":")
        .last()
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "{log}");
    let records: u64 = log
        .split("\"records\":")
        .last()
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // the first records went to the client before its queue and spool filled; the rest
    // were counted (none waited: the capture went on)
    assert!(records > dropped, "{log}");
    assert!(log.contains("libpcap"), "{log}");
}
