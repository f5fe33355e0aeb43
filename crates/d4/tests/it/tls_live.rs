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

#[cfg(feature = "live-capture")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_on_loopback_is_captured_live() {
    use std::io::{BufRead, BufReader};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // a TLS server on a free loopback port
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

    // the sensor, filtered to this port (TLS 1.2 so the certificate is in clear)
    let mut child = crate::tls_cli::d4()
        .args(["tls", "-i", "lo", "--stats-secs", "1", "tcp", "port"])
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

    // a client handshake: TLS 1.2, SNI live.test, ALPN h2
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut ccfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(d4_client::dest::NoVerify(provider)))
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
    drop(s);

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
