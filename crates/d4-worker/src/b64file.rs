//! Base64 content saved by digest without a decoded copy in memory: decoded 64 KiB at a
//! time into a temporary file and the hasher, then renamed after the digest.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::Digest;

use crate::WorkerError;

/// Only base64 characters, `=` only at the end: a cheap check before any file is made.
pub(crate) fn plausible_base64(b: &[u8]) -> bool {
    let body = b.trim_ascii_end();
    let pad = body.iter().rev().take_while(|&&c| c == b'=').count();
    !body.is_empty()
        && pad <= 2
        && body[..body.len() - pad]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

/// Decodes base64 `b64` as a stream into a temporary file of `dir` and the SHA-256, then
/// names it `<digest><suffix>` (kept when that exists already). The path and whether it
/// was written; None when `b64` is not valid base64 (nothing is left behind).
pub(crate) fn save_b64_by_digest<H: Digest>(
    dir: &Path,
    suffix: &str,
    b64: &[u8],
    gzip: bool,
) -> Result<Option<(PathBuf, bool)>, WorkerError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    fs::create_dir_all(dir).map_err(|e| WorkerError::io(dir, e))?;
    let tmp = dir.join(format!(
        ".incoming-{}-{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let engine = &base64::engine::general_purpose::STANDARD;
    let r = (|| -> io::Result<String> {
        let mut f = File::create(&tmp)?;
        let mut dec = base64::read::DecoderReader::new(b64, engine);
        let digest = if gzip {
            let mut g = GzEncoder::new(&mut f, Compression::default());
            let d = copy_hashed::<H>(&mut dec, &mut g)?;
            g.finish()?;
            d
        } else {
            copy_hashed::<H>(&mut dec, &mut f)?
        };
        f.sync_all()?;
        Ok(digest)
    })();
    let digest = match r {
        Ok(d) => d,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return if e.kind() == io::ErrorKind::InvalidData {
                Ok(None)
            } else {
                Err(WorkerError::io(&tmp, e))
            };
        }
    };
    let path = dir.join(format!("{digest}{suffix}"));
    if path.exists() {
        let _ = fs::remove_file(&tmp);
        return Ok(Some((path, false)));
    }
    if let Err(e) = fs::rename(&tmp, &path) {
        let _ = fs::remove_file(&tmp);
        return Err(WorkerError::io(&path, e));
    }
    Ok(Some((path, true)))
}

/// Copies `r` to `w` in 64 KiB pieces; the digest (hex) of what was copied.
fn copy_hashed<H: Digest>(r: &mut impl io::Read, w: &mut impl Write) -> io::Result<String> {
    let mut hasher = H::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        w.write_all(chunk)?;
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Sha256;

    #[test]
    fn base64_is_checked_cheaply_then_decoded_as_a_stream() {
        assert!(plausible_base64(b"aGVsbG8="));
        assert!(!plausible_base64(b"aGVs bG8="));
        assert!(!plausible_base64(b"aG=VsbG8"));
        assert!(!plausible_base64(b""));
        let tmp = tempfile::tempdir().unwrap();
        let (p, new) = save_b64_by_digest::<Sha256>(tmp.path(), ".txt", b"aGVsbG8=", false)
            .unwrap()
            .unwrap();
        assert!(new);
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        assert!(p.ends_with("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824.txt"));
        let (_, again) = save_b64_by_digest::<Sha256>(tmp.path(), ".txt", b"aGVsbG8=", false)
            .unwrap()
            .unwrap();
        assert!(!again);
        // bad length: nothing left behind
        assert!(
            save_b64_by_digest::<Sha256>(tmp.path(), "", b"aGVsbG", false)
                .unwrap()
                .is_none()
        );
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
