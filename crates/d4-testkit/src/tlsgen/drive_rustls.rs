//! Both endpoints of a rustls (ring) connection in one thread: the bytes each one writes are
//! recorded and fed to the other until the handshake is done and a request and a response
//! have crossed. TLS 1.2 and 1.3 only (rustls has nothing older).

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::{ClientConfig, Connection, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use super::certs::Credentials;
use super::{HandshakeSpec, Version, APP_REQUEST, APP_RESPONSE};

type Writes = Vec<(bool, Vec<u8>)>;

fn configs(
    spec: &HandshakeSpec,
    creds: &Credentials,
) -> Result<(ClientConfig, ServerConfig), String> {
    let version: &'static SupportedProtocolVersion = match spec.version {
        Version::Tls12 => &rustls::version::TLS12,
        Version::Tls13 => &rustls::version::TLS13,
        v => return Err(format!("rustls does not support {v:?}")),
    };
    let provider = Arc::new(default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(creds.root_der.clone()))
        .map_err(|e| format!("trust anchor: {e}"))?;
    let mut client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])
        .map_err(|e| format!("rustls client: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = spec.alpn.clone();
    client.enable_sni = spec.sni.is_some();
    let chain = creds
        .chain_der
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(creds.key_pkcs8.clone()));
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| format!("rustls server: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("rustls server certificate: {e}"))?;
    server.alpn_protocols = spec.alpn.clone();
    Ok((client, server))
}

/// Moves everything `from` wants to write to `to`, recording each write.
fn pump(
    from: &mut Connection,
    to: &mut Connection,
    from_client: bool,
    log: &mut Writes,
) -> Result<bool, String> {
    let mut moved = false;
    while from.wants_write() {
        let mut buf = Vec::new();
        from.write_tls(&mut buf)
            .map_err(|e| format!("write_tls: {e}"))?;
        if buf.is_empty() {
            break;
        }
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            to.read_tls(&mut rd).map_err(|e| format!("read_tls: {e}"))?;
            to.process_new_packets().map_err(|e| {
                format!(
                    "rustls {}: {e}",
                    if from_client { "server" } else { "client" }
                )
            })?;
        }
        log.push((from_client, buf));
        moved = true;
    }
    Ok(moved)
}

fn exchange(
    client: &mut Connection,
    server: &mut Connection,
    log: &mut Writes,
) -> Result<(), String> {
    for _ in 0..64 {
        let a = pump(client, server, true, log)?;
        let b = pump(server, client, false, log)?;
        if !a && !b {
            return Ok(());
        }
    }
    Err("rustls: the endpoints never went quiet".into())
}

fn read_all(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = conn.reader().read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Runs one rustls handshake and a request/response; returns the writes.
pub(crate) fn run(spec: &HandshakeSpec, creds: &Credentials) -> Result<Writes, String> {
    let (ccfg, scfg) = configs(spec, creds)?;
    let name = spec.sni.clone().unwrap_or_else(|| "localhost".to_string());
    let name = ServerName::try_from(name).map_err(|e| format!("server name: {e}"))?;
    let mut client = Connection::Client(
        rustls::ClientConnection::new(Arc::new(ccfg), name)
            .map_err(|e| format!("rustls client: {e}"))?,
    );
    let mut server = Connection::Server(
        rustls::ServerConnection::new(Arc::new(scfg)).map_err(|e| format!("rustls server: {e}"))?,
    );
    let mut log = Vec::new();
    exchange(&mut client, &mut server, &mut log)?;
    if client.is_handshaking() || server.is_handshaking() {
        return Err("rustls: the handshake did not complete".into());
    }
    client
        .writer()
        .write_all(APP_REQUEST)
        .map_err(|e| format!("rustls write: {e}"))?;
    exchange(&mut client, &mut server, &mut log)?;
    if read_all(&mut server) != APP_REQUEST {
        return Err("rustls: the request did not arrive".into());
    }
    server
        .writer()
        .write_all(APP_RESPONSE)
        .map_err(|e| format!("rustls write: {e}"))?;
    exchange(&mut client, &mut server, &mut log)?;
    if read_all(&mut client) != APP_RESPONSE {
        return Err("rustls: the response did not arrive".into());
    }
    Ok(log)
}
