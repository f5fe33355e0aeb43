//! The TLS client settings of `tls://`: the server's certificate is verified against the
//! CA certificates of `--ca` (PEM) — there is no silent fallback to the system roots, a
//! sink is usually a private log host — or not at all with `--insecure` (a warning is
//! logged). `--cert`/`--key` add a client certificate (PEM) for servers that ask for one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// How to check the server and who we are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--ca FILE`: the certificates (PEM) the server's chain must lead to.
    pub ca: Option<PathBuf>,
    /// `--cert FILE`: our certificate chain (PEM), with `key`.
    pub cert: Option<PathBuf>,
    /// `--key FILE`: the private key of `cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// `--insecure`: accept any server certificate.
    pub insecure: bool,
}

/// Settings that cannot make a TLS client; each names the flag and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("tls:// needs --ca FILE (the PEM certificate of the CA that signed the receiver's certificate), or --insecure to skip the check")]
    NoTrust,
    #[error("--ca and --insecure contradict each other: give one")]
    CaAndInsecure,
    #[error("--cert and --key go together: give both or neither")]
    HalfIdentity,
    #[error("{flag} {}: {source}", path.display())]
    Read {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{flag} {}: {reason}", path.display())]
    Pem {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        flag,
        path: path.into(),
        source,
    })
}

fn certs(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let raw = read(flag, path)?;
    let pem_err = |reason: String| TlsConfigError::Pem {
        flag,
        path: path.into(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&raw)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err(
            "no PEM certificate (BEGIN CERTIFICATE) found".into(),
        ));
    }
    Ok(certs)
}

/// The rustls client configuration for `opts` (reads the files).
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match (&opts.ca, opts.insecure) {
        (Some(_), true) => return Err(TlsConfigError::CaAndInsecure),
        (None, false) => return Err(TlsConfigError::NoTrust),
        (None, true) => {
            tracing::warn!("--insecure: the receiver's TLS certificate is NOT verified");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(d4_client::dest::NoChainVerifier::any(
                    provider,
                )))
        }
        (Some(ca), false) => {
            let mut roots = RootCertStore::empty();
            for c in certs("--ca", ca)? {
                roots.add(c).map_err(|e| TlsConfigError::Pem {
                    flag: "--ca",
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
            }
            builder.with_root_certificates(roots)
        }
    };
    let config = match (&opts.cert, &opts.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = certs("--cert", cert)?;
            let raw = read("--key", key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&raw).map_err(|e| TlsConfigError::Pem {
                flag: "--key",
                path: key.clone(),
                reason: format!("no usable PEM private key: {e}"),
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| TlsConfigError::Pem {
                    flag: "--cert/--key",
                    path: cert.clone(),
                    reason: e.to_string(),
                })?
        }
        _ => return Err(TlsConfigError::HalfIdentity),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn safe_default_needs_a_ca() {
        assert!(matches!(
            client_config(&TlsOptions::default()),
            Err(TlsConfigError::NoTrust)
        ));
        let both = TlsOptions {
            ca: Some("/x".into()),
            insecure: true,
            ..TlsOptions::default()
        };
        assert!(matches!(
            client_config(&both),
            Err(TlsConfigError::CaAndInsecure)
        ));
        let half = TlsOptions {
            cert: Some("/x".into()),
            insecure: true,
            ..TlsOptions::default()
        };
        assert!(matches!(
            client_config(&half),
            Err(TlsConfigError::HalfIdentity)
        ));
    }

    #[test]
    fn files_are_named_in_errors() {
        let dir = std::env::temp_dir().join(format!("d4-export-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = client_config(&TlsOptions {
            ca: Some(missing.clone()),
            ..TlsOptions::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("--ca "), "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = client_config(&TlsOptions {
            ca: Some(junk),
            ..TlsOptions::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let good = dir.join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        let key = dir.join("key.pem");
        std::fs::write(&key, ca.signing_key.serialize_pem()).unwrap();
        client_config(&TlsOptions {
            ca: Some(good.clone()),
            cert: Some(good),
            key: Some(key),
            insecure: false,
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
