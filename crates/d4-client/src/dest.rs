//! Destinations: stdout, or a collector at `host:port` over TLS (default) or plain TCP.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::ConfigError;
use crate::wire::TLS_RECORD_MAX;

/// Where frames go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    /// A collector: host name or IP literal, and port.
    Remote {
        host: String,
        port: u16,
    },
}

impl Destination {
    /// `stdout`, `host:port`, `1.2.3.4:port` or `[::1]:port`.
    pub fn parse(s: &str) -> Result<Destination, ConfigError> {
        let t = s.trim();
        if t == "stdout" || t == "-" {
            return Ok(Destination::Stdout);
        }
        let bad = || ConfigError::BadDestination(t.to_string());
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
            h.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            (h, p)
        } else {
            let (h, p) = t.rsplit_once(':').ok_or_else(bad)?;
            if h.contains(':') {
                return Err(bad()); // a bare IPv6 address needs brackets
            }
            (h, p)
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty()
            || port == 0
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            return Err(bad());
        }
        Ok(Destination::Remote {
            host: host.to_string(),
            port,
        })
    }
}

/// A connected byte stream to the collector (TLS or plain TCP).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An established connection to the collector.
pub struct Link {
    pub stream: Box<dyn Stream>,
    /// TLS: the largest write that goes out as exactly one record (see [`crate::wire`]);
    /// `None` for plain TCP, where writes carry no boundaries.
    pub record_max: Option<usize>,
}

/// How to connect to a remote destination: resolved once, used at every reconnect.
#[derive(Clone)]
pub struct Connector {
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{} ({})",
            self.host,
            self.port,
            if self.tls.is_some() { "tls" } else { "tcp" }
        )
    }
}

impl Connector {
    /// Builds the TLS configuration (CA file, system roots, or no verification).
    pub fn new(
        host: &str,
        port: u16,
        tls: bool,
        ca: Option<&Path>,
        insecure: bool,
        timeout: Duration,
    ) -> Result<Connector, ConfigError> {
        let tls = if tls {
            let cfg = tls_config(ca, insecure)?;
            let name = ServerName::try_from(host.to_string())
                .map_err(|_| ConfigError::BadDestination(host.to_string()))?;
            Some((TlsConnector::from(Arc::new(cfg)), name))
        } else {
            None
        };
        Ok(Connector {
            host: host.to_string(),
            port,
            tls,
            timeout,
        })
    }

    /// One connection attempt (resolve, TCP connect, TLS handshake), bounded by the timeout.
    ///
    /// The TLS send buffer is unbounded (rustls's default limit of 64 KiB would cut a write
    /// wherever the buffer happens to fill, at any byte): the sender writes at most one
    /// batch before flushing, so what rustls holds is bounded by the batch size, and every
    /// write of at most [`TLS_RECORD_MAX`] bytes becomes exactly one record.
    pub async fn connect(&self) -> std::io::Result<Link> {
        let fut = async {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
                .await?
                .collect();
            let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
            for a in addrs {
                match TcpStream::connect(a).await {
                    Ok(s) => {
                        s.set_nodelay(true)?;
                        return match &self.tls {
                            None => Ok(Link {
                                stream: Box::new(s),
                                record_max: None,
                            }),
                            Some((c, name)) => {
                                let mut t = c.connect(name.clone(), s).await?;
                                t.get_mut().1.set_buffer_limit(None);
                                Ok(Link {
                                    stream: Box::new(t),
                                    record_max: Some(TLS_RECORD_MAX),
                                })
                            }
                        };
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            )),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS client configuration: verify against `ca` (PEM, one or more certificates), else the
/// system roots (plus the Mozilla roots when the system has none); `insecure` skips it.
pub fn tls_config(ca: Option<&Path>, insecure: bool) -> Result<ClientConfig, ConfigError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(e.to_string()))?;
    if insecure {
        tracing::warn!("--insecure: the collector's TLS certificate is NOT verified");
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoChainVerifier::any(provider())))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    if let Some(path) = ca {
        let raw = std::fs::read(path).map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
        let mut n = 0;
        for c in CertificateDer::pem_slice_iter(&raw) {
            let c = c.map_err(|e| ConfigError::BadCa(path.to_path_buf(), e.to_string()))?;
            roots
                .add(c)
                .map_err(|e| ConfigError::BadCa(path.to_path_buf(), e.to_string()))?;
            n += 1;
        }
        if n == 0 {
            return Err(ConfigError::BadCa(
                path.to_path_buf(),
                "no PEM certificate found".into(),
            ));
        }
    } else {
        let res = rustls_native_certs::load_native_certs();
        for e in &res.errors {
            tracing::debug!(error = %e, "loading a system root certificate");
        }
        let (ok, _bad) = roots.add_parsable_certificates(res.certs);
        if ok == 0 {
            tracing::debug!("no system root certificates: using the Mozilla roots");
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// A verifier that checks no chain and no name: it accepts any server certificate
/// ([`NoChainVerifier::any`]: `--insecure`, the benchmark, tests against a self-signed collector)
/// or exactly the one whose DER has a pinned SHA-256 ([`NoChainVerifier::pinned`]: a forwarding
/// rule's `pin_sha256`). Either way the handshake signatures are checked with the
/// provider's algorithms.
#[derive(Debug)]
pub struct NoChainVerifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// Lowercase hex SHA-256 of the certificate's DER.
    pin: Option<String>,
}

impl NoChainVerifier {
    pub fn any(provider: Arc<rustls::crypto::CryptoProvider>) -> NoChainVerifier {
        NoChainVerifier {
            provider,
            pin: None,
        }
    }

    pub fn pinned(
        provider: Arc<rustls::crypto::CryptoProvider>,
        pin_sha256: &str,
    ) -> NoChainVerifier {
        NoChainVerifier {
            provider,
            pin: Some(pin_sha256.to_ascii_lowercase()),
        }
    }
}

impl ServerCertVerifier for NoChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pin) = &self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        use sha2::Digest;
        let got = hex::encode(sha2::Sha256::digest(end_entity.as_ref()));
        if &got == pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate SHA-256 {got} is not the pinned one"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_verifier_accepts_exactly_its_certificate() {
        use sha2::Digest;
        let der = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x07]);
        let other = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x08]);
        let pin = hex::encode(sha2::Sha256::digest(der.as_ref())).to_ascii_uppercase();
        let name = ServerName::try_from("partner.example").unwrap();
        let check = |v: &NoChainVerifier, c: &CertificateDer<'_>| {
            v.verify_server_cert(c, &[], &name, &[], UnixTime::now())
                .is_ok()
        };
        let pinned = NoChainVerifier::pinned(provider(), &pin);
        assert!(
            check(&pinned, &der),
            "the pin is compared case-insensitively"
        );
        assert!(!check(&pinned, &other));
        let any = NoChainVerifier::any(provider());
        assert!(check(&any, &der) && check(&any, &other));
    }

    #[test]
    fn parses_destinations() {
        assert_eq!(Destination::parse("stdout").unwrap(), Destination::Stdout);
        assert_eq!(
            Destination::parse("d4.example.org:4443\n").unwrap(),
            Destination::Remote {
                host: "d4.example.org".into(),
                port: 4443
            }
        );
        assert_eq!(
            Destination::parse("127.0.0.1:1").unwrap(),
            Destination::Remote {
                host: "127.0.0.1".into(),
                port: 1
            }
        );
        assert_eq!(
            Destination::parse("[::1]:4443").unwrap(),
            Destination::Remote {
                host: "::1".into(),
                port: 4443
            }
        );
        for bad in [
            "",
            "host",
            "host:",
            "host:0",
            "host:70000",
            "::1:4443",
            "[zz]:1",
            "a b:1",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }
}
