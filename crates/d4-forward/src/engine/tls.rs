//! The connection to a partner: plain TCP, or TLS verified against the partner's CA (PEM
//! text in the rule) or against a pinned SHA-256 of its end-entity certificate.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use d4_store::ForwardTls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

/// A connected partner: bytes go out through `write`; `tcp` is the raw socket (to see
/// whether the partner closed it).
pub struct Link {
    pub stream: Box<dyn Write + Send>,
    pub tcp: TcpStream,
    /// TLS: writes are cut to one record each (see `d4_client::wire`).
    pub tls: bool,
}

impl Link {
    /// Whether the partner closed the connection. A D4 server sends nothing after the
    /// handshake but TLS session tickets: what arrives is read from the raw socket and
    /// dropped (the TLS state is only used to write).
    pub fn peer_closed(&self) -> bool {
        if self.tcp.set_nonblocking(true).is_err() {
            return true;
        }
        let mut b = [0u8; 4096];
        let closed = loop {
            match (&self.tcp).read(&mut b) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break true,
            }
        };
        let _ = self.tcp.set_nonblocking(false);
        closed
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How a rule connects: resolved at every attempt, the TLS settings built once.
pub struct Dialer {
    host: String,
    port: u16,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    timeout: Duration,
}

/// `host:port` or `[v6]:port`.
pub fn split_destination(dest: &str) -> Result<(String, u16), String> {
    let bad = || format!("bad destination {dest:?} (host:port)");
    let (h, p) = if let Some(rest) = dest.strip_prefix('[') {
        rest.split_once("]:").ok_or_else(bad)?
    } else {
        dest.rsplit_once(':').ok_or_else(bad)?
    };
    let port: u16 = p.parse().map_err(|_| bad())?;
    if h.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((h.to_string(), port))
}

impl Dialer {
    pub fn new(destination: &str, tls: &ForwardTls, timeout: Duration) -> Result<Dialer, String> {
        let (host, port) = split_destination(destination)?;
        let tls = if tls.plain {
            None
        } else {
            let builder = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?;
            let cfg = if let Some(pin) = &tls.pin_sha256 {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(
                        d4_client::dest::NoChainVerifier::pinned(provider(), pin),
                    ))
                    .with_no_client_auth()
            } else if let Some(pem) = &tls.ca_pem {
                let mut roots = RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let c = c.map_err(|e| format!("partner CA: {e}"))?;
                    roots.add(c).map_err(|e| format!("partner CA: {e}"))?;
                }
                if roots.is_empty() {
                    return Err("partner CA: no PEM certificate".into());
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            } else {
                return Err("TLS needs the partner's CA or a pinned certificate".into());
            };
            let name = ServerName::try_from(host.clone())
                .map_err(|_| format!("bad server name {host:?}"))?;
            Some((Arc::new(cfg), name))
        };
        Ok(Dialer {
            host,
            port,
            tls,
            timeout,
        })
    }

    /// One connection attempt (resolve, connect, TLS handshake), bounded by the timeout.
    pub fn connect(&self) -> io::Result<Link> {
        let addrs: Vec<_> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(tcp) => {
                    tcp.set_nodelay(true)?;
                    tcp.set_write_timeout(Some(self.timeout))?;
                    tcp.set_read_timeout(Some(self.timeout))?;
                    let raw = tcp.try_clone()?;
                    return match &self.tls {
                        None => Ok(Link {
                            stream: Box::new(tcp),
                            tcp: raw,
                            tls: false,
                        }),
                        Some((cfg, name)) => {
                            let mut conn = rustls::ClientConnection::new(cfg.clone(), name.clone())
                                .map_err(io::Error::other)?;
                            conn.set_buffer_limit(None);
                            let mut s = rustls::StreamOwned::new(conn, tcp);
                            while s.conn.is_handshaking() {
                                s.conn.complete_io(&mut s.sock)?;
                            }
                            Ok(Link {
                                stream: Box::new(TlsWriter(s)),
                                tcp: raw,
                                tls: true,
                            })
                        }
                    };
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// A TLS stream as a writer (flush pushes the records out).
struct TlsWriter(rustls::StreamOwned<rustls::ClientConnection, TcpStream>);

impl Write for TlsWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Drop for TlsWriter {
    fn drop(&mut self) {
        self.0.conn.send_close_notify();
        let _ = self.0.conn.complete_io(&mut self.0.sock);
        let mut b = [0u8; 0];
        let _ = self.0.sock.read(&mut b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert_eq!(split_destination("a.b:1").unwrap(), ("a.b".into(), 1));
        assert_eq!(split_destination("[::1]:44").unwrap(), ("::1".into(), 44));
        assert!(split_destination("nope").is_err());
        assert!(split_destination("h:0").is_err());
    }

    #[test]
    fn tls_settings_are_checked() {
        let t = Duration::from_secs(1);
        let plain = ForwardTls {
            plain: true,
            ..Default::default()
        };
        assert!(Dialer::new("127.0.0.1:9", &plain, t).is_ok());
        assert!(Dialer::new("127.0.0.1:9", &ForwardTls::default(), t).is_err());
        let bad_ca = ForwardTls {
            ca_pem: Some("not a pem".into()),
            ..Default::default()
        };
        assert!(Dialer::new("127.0.0.1:9", &bad_ca, t).is_err());
        let pin = ForwardTls {
            pin_sha256: Some("00".repeat(32)),
            ..Default::default()
        };
        assert!(Dialer::new("localhost:9", &pin, t).is_ok());
    }
}
