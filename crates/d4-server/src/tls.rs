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
fn generated_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("server.crt"), dir.join("server.key"))
}

/// Generates a self-signed certificate into `<data>/tls/` unless it already exists.
/// Returns the (cert, key) paths and whether they were created now. The certificate names
/// [`certificate_names`] of `extra`, so sensors can verify it whether they dial
/// `localhost`, `127.0.0.1`, `::1`, the host name or one of the machine's addresses.
pub fn ensure_generated(
    data_dir: &Path,
    extra: &[String],
) -> Result<(PathBuf, PathBuf, bool), TlsError> {
    let (cert, key) = generated_paths(data_dir);
    if cert.is_file() && key.is_file() {
        warn_missing_names(&cert, extra);
        return Ok((cert, key, false));
    }
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir).map_err(|source| TlsError::Io {
        path: dir.clone(),
        source,
    })?;
    let names = certificate_names(extra);
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&key, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert, certified.cert.pem()).map_err(|source| TlsError::Io {
        path: cert.clone(),
        source,
    })?;
    Ok((cert, key, true))
}

/// The names of a generated certificate: `localhost`, `127.0.0.1`, `::1`, the host name,
/// the machine's interface addresses (link-local ones left out: they need a zone), then
/// `extra` (`--tls-san`), without duplicates. An IP address becomes an IP SAN, anything
/// else a DNS name.
fn certificate_names(extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.push(hostname());
    if let Ok(ifs) = if_addrs::get_if_addrs() {
        for i in ifs {
            let ip = i.ip();
            let link_local = match ip {
                std::net::IpAddr::V4(a) => a.is_link_local(),
                std::net::IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
            };
            if !link_local {
                names.push(ip.to_string());
            }
        }
    }
    names.extend(extra.iter().map(|n| n.trim().to_string()));
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| !n.is_empty() && seen.insert(n.to_ascii_lowercase()));
    names
}

/// Warns when a previously generated certificate lacks a name asked for with `--tls-san`
/// (it is kept: sensors may pin it).
fn warn_missing_names(cert: &Path, extra: &[String]) {
    if extra.is_empty() {
        return;
    }
    let Ok(pem) = std::fs::read(cert) else {
        return;
    };
    let Some(Ok(der)) = CertificateDer::pem_slice_iter(&pem).next() else {
        return;
    };
    let missing: Vec<&String> = extra
        .iter()
        .filter(|n| !der_names_contain(der.as_ref(), n))
        .collect();
    if !missing.is_empty() {
        tracing::warn!(
            cert = %cert.display(),
            ?missing,
            "the certificate generated earlier does not name these --tls-san values; \
             delete the tls directory to generate a new one (sensors that pinned the old \
             one need the new server.crt)"
        );
    }
}

/// Whether a DER certificate holds `name` (as its DNS-name or IP-address bytes). A byte
/// search, enough for the warning above: no certificate parser needed for it.
fn der_names_contain(der: &[u8], name: &str) -> bool {
    let needle: Vec<u8> = match name.trim().parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => a.octets().to_vec(),
        Ok(std::net::IpAddr::V6(a)) => a.octets().to_vec(),
        Err(_) => name.trim().as_bytes().to_vec(),
    };
    !needle.is_empty() && der.windows(needle.len()).any(|w| w == needle.as_slice())
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
        let (c, k, created) = ensure_generated(dir.path(), &[]).unwrap();
        assert!(created);
        let first = std::fs::read(&c).unwrap();
        let (_, _, created) = ensure_generated(dir.path(), &["more.example".into()]).unwrap();
        assert!(!created);
        assert_eq!(std::fs::read(&c).unwrap(), first);
        server_config(&c, &k).unwrap();
        assert!(server_config(&k, &c).is_err());
    }

    #[test]
    fn names_hold_loopback_host_and_extra() {
        let n = certificate_names(&[
            "d4.example.org".into(),
            "192.0.2.7".into(),
            "LOCALHOST".into(),
        ]);
        for want in [
            "localhost",
            "127.0.0.1",
            "::1",
            "d4.example.org",
            "192.0.2.7",
        ] {
            assert!(n.iter().any(|x| x == want), "{want} in {n:?}");
        }
        assert_eq!(
            n.iter()
                .filter(|x| x.eq_ignore_ascii_case("localhost"))
                .count(),
            1
        );
        let dir = tempfile::tempdir().unwrap();
        let (c, _, _) =
            ensure_generated(dir.path(), &["san.example".into(), "192.0.2.9".into()]).unwrap();
        let pem = std::fs::read(&c).unwrap();
        let der = CertificateDer::pem_slice_iter(&pem)
            .next()
            .unwrap()
            .unwrap();
        assert!(der_names_contain(der.as_ref(), "san.example"));
        assert!(der_names_contain(der.as_ref(), "192.0.2.9"));
        assert!(der_names_contain(der.as_ref(), "::1"));
        assert!(!der_names_contain(der.as_ref(), "other.example"));
    }
}
