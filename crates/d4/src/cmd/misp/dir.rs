//! The feed folder: reading what an earlier run left (`manifest.json`, the earlier
//! versions of this run's events, `hashes.csv`) and writing a plan: each file to a
//! temporary file in the folder, then renamed over the old one; the event files first,
//! then `hashes.csv`, `manifest.json` last (a MISP pulling during a run sees the old
//! manifest or the new one, and every event either names exists).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use d4_misp::{Event, EventFile, Existing, Manifest, Plan};

/// What `dir` holds for these events (nothing when the folder is new).
pub fn read_existing(dir: &Path, events: &[Event]) -> anyhow::Result<Existing> {
    let manifest_path = dir.join("manifest.json");
    let manifest: Manifest = match std::fs::read(&manifest_path) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| {
            format!(
                "{}: not a feed manifest; give --out a folder of its own (or an empty one)",
                manifest_path.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", manifest_path.display())),
    };
    let mut old = HashMap::new();
    for e in events {
        let path = dir.join(format!("{}.json", e.uuid));
        match std::fs::read(&path) {
            Ok(b) => match serde_json::from_slice::<EventFile>(&b) {
                Ok(f) => {
                    old.insert(e.uuid, f.event);
                }
                // Rewritten with a new timestamp, as if new.
                Err(err) => {
                    tracing::warn!(file = %path.display(), "unreadable event file, rewritten: {err}")
                }
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }
    let hashes = match std::fs::read_to_string(dir.join("hashes.csv")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).context("reading hashes.csv"),
    };
    Ok(Existing {
        manifest,
        events: old,
        hashes,
    })
}

/// Writes `bytes` to `dir/name` through a temporary file and a rename.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".d4-misp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", dir.join(name).display()))?;
    // Readable by the web server that serves the feed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.persist(dir.join(name))
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", dir.join(name).display()))?;
    Ok(())
}

/// Writes the plan into `dir` (created when missing).
pub fn write(dir: &Path, plan: &Plan) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the feed folder {} (--out)", dir.display()))?;
    for e in &plan.write {
        let file = EventFile { event: e.clone() };
        let bytes = serde_json::to_vec_pretty(&file)?;
        write_atomic(dir, &format!("{}.json", e.uuid), &bytes)?;
    }
    write_atomic(dir, "hashes.csv", plan.hashes_csv.as_bytes())?;
    write_atomic(
        dir,
        "manifest.json",
        &serde_json::to_vec_pretty(&plan.manifest)?,
    )?;
    Ok(())
}
