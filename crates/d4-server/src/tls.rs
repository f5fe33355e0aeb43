//! TLS material: a PEM certificate and key given by the operator, or a self-signed
//! certificate generated on first start and kept in `<data>/tls/` (reused afterwards).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig as RustlsConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Errors setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a PEM {what}: {detail}")]
    Pem {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("generating a certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Where the generated certificate lives.
pub fn generated_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("server.crt"), dir.join("server.key"))
}

/// Generates a self-signed certificate into `<data>/tls/` unless it already exists.
/// Returns the (cert, key) paths and whether they were created now.
pub fn ensure_generated(data_dir: &Path) -> Result<(PathBuf, PathBuf, bool), TlsError> {
    let (cert, key) = generated_paths(data_dir);
    if cert.is_file() && key.is_file() {
        return Ok((cert, key, false));
    }
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir).map_err(|source| TlsError::Io {
        path: dir.clone(),
        source,
    })?;
    let host = hostname();
    let names = vec![host, "localhost".to_string()];
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&key, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert, certified.cert.pem()).map_err(|source| TlsError::Io {
        path: cert.clone(),
        source,
    })?;
    Ok((cert, key, true))
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "d4-server".into())
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(data).map_err(io)
}

/// A rustls server configuration from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<RustlsConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Pem {
            path: cert.to_path_buf(),
            what: "certificate",
            detail: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert.to_path_buf(),
            what: "certificate",
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert.to_path_buf(),
            what: "certificate",
            detail: "no CERTIFICATE block".into(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
        path: key.to_path_buf(),
        what: "private key",
        detail: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = RustlsConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k, created) = ensure_generated(dir.path()).unwrap();
        assert!(created);
        let first = std::fs::read(&c).unwrap();
        let (_, _, created) = ensure_generated(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(std::fs::read(&c).unwrap(), first);
        server_config(&c, &k).unwrap();
        assert!(server_config(&k, &c).is_err());
    }
}
