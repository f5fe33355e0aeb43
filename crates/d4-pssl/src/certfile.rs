//! Certificates from files: DER or PEM (any number of `CERTIFICATE` blocks per file),
//! folders (optionally recursive) and `.tar.gz`/`.tgz` archives of such files.
//!
//! [`parse_bytes`] is the sans-IO core (one file's bytes → certificates and keys);
//! [`scan_path`] walks the file system and hands every certificate to a callback, so the
//! caller batches its commits. A file that is not a certificate is counted (and its first
//! errors kept), never fatal.

use std::fs;
use std::io::Read;
use std::path::Path;

use base64::Engine;

use crate::model::{certificate_from_der, Certificate, PublicKey};

/// Files larger than this are not certificates (and are skipped as errors).
pub const MAX_FILE: u64 = 16 << 20;

/// How many error messages [`CertFileStats::errors`] keeps.
pub const MAX_ERRORS_KEPT: usize = 32;

/// Why one file's bytes gave no certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertFileError {
    #[error("bad PEM: {0}")]
    Pem(String),
    #[error("not a certificate: {0}")]
    Cert(#[from] d4_tls::cert::CertError),
    #[error("no certificate in a PEM file")]
    NoCertificate,
    #[error("file larger than {MAX_FILE} bytes")]
    TooLarge,
}

/// What [`scan_path`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertFileStats {
    /// Files (archive members included) read.
    pub files: u64,
    /// Certificates handed to the callback.
    pub certificates: u64,
    /// Files (or PEM blocks) that could not be read as certificates.
    pub bad: u64,
    /// The first [`MAX_ERRORS_KEPT`] errors: (file, message).
    pub errors: Vec<(String, String)>,
}

impl CertFileStats {
    fn error(&mut self, name: &str, msg: String) {
        self.bad += 1;
        if self.errors.len() < MAX_ERRORS_KEPT {
            self.errors.push((name.to_string(), msg));
        }
    }
}

const BEGIN: &str = "-----BEGIN ";
const DASHES: &str = "-----";

/// The certificates of one file's bytes: PEM when it holds a `-----BEGIN ` line (only
/// `CERTIFICATE` and `X509 CERTIFICATE` blocks are read; every bad block is an error in
/// the list), else one DER certificate.
pub fn parse_bytes(bytes: &[u8]) -> Vec<Result<(Certificate, PublicKey), CertFileError>> {
    let text = std::str::from_utf8(bytes).ok();
    match text.filter(|t| t.contains(BEGIN)) {
        Some(t) => {
            let mut out: Vec<_> = pem_blocks(t)
                .into_iter()
                .map(|b| b.and_then(|der| Ok(certificate_from_der(&der)?)))
                .collect();
            if out.is_empty() {
                out.push(Err(CertFileError::NoCertificate));
            }
            out
        }
        None => vec![certificate_from_der(bytes).map_err(CertFileError::from)],
    }
}

/// The DER of every certificate block of a PEM text.
fn pem_blocks(text: &str) -> Vec<Result<Vec<u8>, CertFileError>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(BEGIN) {
        let after = &rest[at + BEGIN.len()..];
        let Some(label_end) = after.find(DASHES) else {
            out.push(Err(CertFileError::Pem("unterminated BEGIN line".into())));
            break;
        };
        let label = &after[..label_end];
        let body_start = &after[label_end + DASHES.len()..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_start.find(&end_marker) else {
            out.push(Err(CertFileError::Pem(format!("no END line for {label}"))));
            break;
        };
        rest = &body_start[end + end_marker.len()..];
        if label != "CERTIFICATE" && label != "X509 CERTIFICATE" {
            continue;
        }
        let b64: String = body_start[..end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        out.push(
            base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| CertFileError::Pem(e.to_string())),
        );
    }
    out
}

fn is_archive(path: &Path) -> bool {
    let n = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    n.ends_with(".tar.gz") || n.ends_with(".tgz")
}

fn handle_bytes(
    name: &str,
    bytes: &[u8],
    stats: &mut CertFileStats,
    visit: &mut dyn FnMut(Certificate, PublicKey),
) {
    stats.files += 1;
    for r in parse_bytes(bytes) {
        match r {
            Ok((c, k)) => {
                stats.certificates += 1;
                visit(c, k);
            }
            Err(e) => stats.error(name, e.to_string()),
        }
    }
}

/// Reads the members of a `.tar.gz` archive (regular files only).
fn scan_archive(
    path: &Path,
    stats: &mut CertFileStats,
    visit: &mut dyn FnMut(Certificate, PublicKey),
) {
    let name = path.display().to_string();
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return stats.error(&name, e.to_string()),
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => return stats.error(&name, e.to_string()),
    };
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => return stats.error(&name, e.to_string()),
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = format!(
            "{name}:{}",
            entry
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        if entry.size() > MAX_FILE {
            stats.files += 1;
            stats.error(&member, CertFileError::TooLarge.to_string());
            continue;
        }
        let mut bytes = Vec::new();
        if let Err(e) = entry.read_to_end(&mut bytes) {
            // A broken archive stops here: what follows cannot be found.
            return stats.error(&member, e.to_string());
        }
        handle_bytes(&member, &bytes, stats, visit);
    }
}

/// Reads certificates from a file, an archive or a folder (its subfolders too when
/// `recursive`), in name order, handing each to `visit`. Unreadable files are counted in
/// the stats; only a `path` that cannot be read at all is an error.
pub fn scan_path(
    path: &Path,
    recursive: bool,
    visit: &mut dyn FnMut(Certificate, PublicKey),
) -> std::io::Result<CertFileStats> {
    let mut stats = CertFileStats::default();
    let meta = fs::metadata(path)?;
    if meta.is_dir() {
        scan_dir(path, recursive, &mut stats, visit)?;
    } else {
        scan_file(path, &mut stats, visit);
    }
    Ok(stats)
}

fn scan_file(
    path: &Path,
    stats: &mut CertFileStats,
    visit: &mut dyn FnMut(Certificate, PublicKey),
) {
    let name = path.display().to_string();
    if is_archive(path) {
        return scan_archive(path, stats, visit);
    }
    match fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE => {
            stats.files += 1;
            return stats.error(&name, CertFileError::TooLarge.to_string());
        }
        Ok(_) => {}
        Err(e) => return stats.error(&name, e.to_string()),
    }
    match fs::read(path) {
        Ok(bytes) => handle_bytes(&name, &bytes, stats, visit),
        Err(e) => stats.error(&name, e.to_string()),
    }
}

fn scan_dir(
    dir: &Path,
    recursive: bool,
    stats: &mut CertFileStats,
    visit: &mut dyn FnMut(Certificate, PublicKey),
) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        // Symlinks are followed for files, not for folders (no loops).
        let is_dir = fs::symlink_metadata(&p)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if is_dir {
            if recursive {
                if let Err(e) = scan_dir(&p, true, stats, visit) {
                    stats.error(&p.display().to_string(), e.to_string());
                }
            }
        } else if fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false) {
            scan_file(&p, stats, visit);
        }
    }
    Ok(())
}
