//! Files that hold secrets (sensor HMAC keys and password hashes in `d4.redb`, the first
//! admin password, TLS keys): the data dir is created `0700` and such files `0600`,
//! whatever the process umask; existing ones that are group/world accessible are warned
//! about (never silently changed: the admin may share them on purpose).

use std::io;
use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

/// Creates `dir` (and missing parents) with mode `0700` (the umask can only remove bits).
/// An existing dir is left as it is.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(0o700);
    b.create(dir)
}

/// Creates `path` empty with mode `0600` unless it exists (a program that then opens it,
/// e.g. redb, keeps that mode).
pub fn precreate_private_file(path: &Path) -> io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    o.mode(0o600);
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The permission bits of `path` when group or others have any access to it.
pub fn loose_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Logs a warning for each of `paths` that exists and is group/world accessible; the
/// paths warned about.
pub fn warn_loose(paths: &[&Path]) -> Vec<String> {
    let mut out = Vec::new();
    for p in paths {
        if let Some(mode) = loose_mode(p) {
            let want = if p.is_dir() { "0700" } else { "0600" };
            tracing::warn!(
                path = %p.display(),
                mode = format!("{mode:04o}"),
                "holds secrets but is accessible to other local users: chmod {want} it"
            );
            out.push(p.display().to_string());
        }
    }
    out
}

/// The data dir and the secret-bearing files d4-rs keeps in it.
pub fn secret_paths(data_dir: &Path) -> Vec<std::path::PathBuf> {
    vec![
        data_dir.to_path_buf(),
        data_dir.join(crate::DB_FILE),
        data_dir.join(crate::SOCKET_FILE),
        data_dir.join("web-admin-password.txt"),
        data_dir.join("tls").join("server.key"),
    ]
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn modes_whatever_the_umask_and_loose_ones_found() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("a/b");
        create_private_dir(&d).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), 0o700);
        let f = d.join("x");
        precreate_private_file(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
        std::fs::write(&f, b"kept").unwrap();
        precreate_private_file(&f).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"kept");
        assert_eq!(loose_mode(&f), None);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(loose_mode(&f), Some(0o644));
        assert_eq!(warn_loose(&[&f, &d]), vec![f.display().to_string()]);
    }
}
