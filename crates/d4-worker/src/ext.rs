//! Extended types (type 254): what happens to the data after the meta header.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use d4_proto::{types, MetaHeader};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::b64file::{plausible_base64, save_b64_by_digest};
use crate::files::RotatingFile;
use crate::ja3::Ja3Line;
use crate::layout::{candidate_name, day_dir, safe_component, utc};
use crate::lines::{trim_cr, LineEnd, LineSplitter};
use crate::lines_state::LineState;
use crate::sink::OwnedTarget;
use crate::worker::Ctx;
use crate::WorkerError;

/// Extended types with a handler of their own; any other accepted extended type gets the
/// `default` handler (lines to `analyzer:<ext>:<queue>` and rotated text files).
pub const SPECIAL_EXT_TYPES: &[&str] = &["ja3-jl", "filewatcher", "filewatcherjson", "maltrail"];

/// Whether `ext` has a handler of its own (else: the `default` handler).
pub fn has_special_handler(ext: &str) -> bool {
    SPECIAL_EXT_TYPES.contains(&ext)
}

/// The handler an extended type gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtKind {
    /// Lines to the queues of the extended type, rotated `.txt` files.
    Default,
    /// Like `Default` (d4-core queues maltrail lines; d4-rs also keeps the files).
    Maltrail,
    /// JSON lines from sensor-d4-tls-fingerprinting: certificates (base64 DER in
    /// `Certificates[].Raw`) saved by SHA-1, each JSON saved, its path queued.
    Ja3Jl,
    /// One base64-encoded file per line, saved by SHA-256, path queued.
    FileWatcher,
    /// Each line saved as a JSON file named by its SHA-256, path queued.
    FileWatcherJson,
}

impl ExtKind {
    pub fn of(ext: &str) -> ExtKind {
        match ext {
            "ja3-jl" => ExtKind::Ja3Jl,
            "filewatcher" => ExtKind::FileWatcher,
            "filewatcherjson" => ExtKind::FileWatcherJson,
            "maltrail" => ExtKind::Maltrail,
            _ => ExtKind::Default,
        }
    }
}

/// `filewatcher` options from the meta header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWatcherOptions {
    /// Gzip each saved file (`<sha256>[.<ext>].gz`). Default false.
    pub compress: bool,
    /// Extension of saved files (validated `[A-Za-z0-9._-]`, else ignored). Default none.
    pub extension: Option<String>,
    /// Save under the sensor's dir (`<data>/<uuid>/254/Y/M/D/filewatcher/files`, default)
    /// or in one shared dir (`<data>/datas/filewatcher/files`).
    pub segregate: bool,
}

fn truthy(v: Option<&Value>, default: bool) -> bool {
    match v {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().map(|f| f != 0.0).unwrap_or(default),
        Some(Value::String(s)) => {
            matches!(s.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        }
        Some(_) => default,
    }
}

impl FileWatcherOptions {
    pub fn from_meta(meta: &MetaHeader) -> FileWatcherOptions {
        let extension = meta
            .get_str("extension")
            .map(|e| e.trim_start_matches('.'))
            .filter(|e| !e.is_empty())
            .and_then(|e| {
                if safe_component(e) {
                    Some(e.to_owned())
                } else {
                    tracing::warn!(extension = e, "filewatcher: unsafe extension ignored");
                    None
                }
            });
        FileWatcherOptions {
            compress: truthy(meta.get("compress"), false),
            extension,
            segregate: truthy(meta.get("segregate"), true),
        }
    }
}

pub(crate) enum ExtHandler {
    Lines {
        ext: String,
        state: Box<LineState>,
    },
    Blob {
        ext: String,
        kind: ExtKind,
        split: LineSplitter,
        /// Dropping the rest of an overlong line.
        skipping: bool,
        opts: FileWatcherOptions,
        target: OwnedTarget,
    },
}

impl ExtHandler {
    /// The rotating file of a line handler (`default`, `maltrail`).
    pub fn open_file(&self) -> Option<(&std::path::Path, u64)> {
        match self {
            ExtHandler::Lines { state, .. } => state.open_file(),
            ExtHandler::Blob { .. } => None,
        }
    }

    /// Bytes of the partial last line of a line handler.
    pub fn carry(&self) -> u64 {
        match self {
            ExtHandler::Lines { state, .. } => state.carry(),
            ExtHandler::Blob { .. } => 0,
        }
    }

    pub fn new(ctx: &Ctx<'_>, meta: &MetaHeader) -> ExtHandler {
        let ext = meta.ext_type().to_owned();
        let target = OwnedTarget {
            d4_type: types::EXTENDED,
            ext_type: Some(ext.clone()),
            sensor: ctx.sensor,
        };
        let kind = ExtKind::of(&ext);
        match kind {
            ExtKind::Default | ExtKind::Maltrail => ExtHandler::Lines {
                state: Box::new(LineState::new(
                    ctx.shared,
                    RotatingFile::new(
                        ctx.shared.clone(),
                        ctx.sid,
                        types::EXTENDED,
                        Some(ext.clone()),
                        ".txt",
                        None,
                        ctx.out.clone(),
                    ),
                    target,
                    None,
                )),
                ext,
            },
            _ => {
                // One file (or one TLS session with its certificate chain) per line.
                let max = ctx.shared.cfg.max_blob_line;
                ExtHandler::Blob {
                    ext,
                    kind,
                    split: LineSplitter::new(max),
                    skipping: false,
                    opts: FileWatcherOptions::from_meta(meta),
                    target,
                }
            }
        }
    }

    pub fn ext_type(&self) -> &str {
        match self {
            ExtHandler::Lines { ext, .. } | ExtHandler::Blob { ext, .. } => ext,
        }
    }

    pub fn handle(&mut self, ctx: &mut Ctx<'_>, payload: &[u8]) -> Result<(), WorkerError> {
        match self {
            ExtHandler::Lines { state, .. } => state.handle(ctx, payload),
            ExtHandler::Blob {
                ext,
                kind,
                split,
                skipping,
                opts,
                target,
            } => {
                // Lines are handled where they lie (in the payload or the splitter's
                // buffer): no copy of a line, whatever its size.
                let mut out = BlobOut::default();
                split.push(payload, |line, end| {
                    blob_line(ctx, ext, *kind, opts, skipping, &mut out, line, end)
                });
                out.finish(ctx, target)
            }
        }
    }

    pub fn tick(&mut self, now: SystemTime) -> Result<(), WorkerError> {
        match self {
            ExtHandler::Lines { state, .. } => state.tick(now),
            ExtHandler::Blob { .. } => Ok(()),
        }
    }

    pub fn flush(&mut self) -> Result<(), WorkerError> {
        match self {
            ExtHandler::Lines { state, .. } => state.flush(),
            ExtHandler::Blob { .. } => Ok(()),
        }
    }

    pub fn close(&mut self, ctx: &mut Ctx<'_>, failed: bool) -> Result<(), WorkerError> {
        match self {
            ExtHandler::Lines { state, .. } => {
                if failed {
                    state.finish_files()
                } else {
                    state.close(ctx)
                }
            }
            ExtHandler::Blob {
                ext,
                kind,
                split,
                skipping,
                opts,
                target,
            } => {
                // A last line without its newline is handled like a complete one, from
                // the splitter's buffer (no copy).
                let mut out = BlobOut::default();
                if failed || *skipping {
                    split.finish(|_, _| {});
                    return Ok(());
                }
                split.finish(|line, end| {
                    blob_line(ctx, ext, *kind, opts, skipping, &mut out, line, end)
                });
                out.finish(ctx, target)
            }
        }
    }
}

/// What the lines of one blob-type chunk gave.
#[derive(Default)]
struct BlobOut {
    paths: Vec<String>,
    dropped: u64,
    error: Option<WorkerError>,
}

impl BlobOut {
    fn finish(self, ctx: &mut Ctx<'_>, target: &OwnedTarget) -> Result<(), WorkerError> {
        ctx.stats.lines_cut += self.dropped;
        ctx.stats.invalid_lines += self.dropped;
        ctx.push(target, self.paths)?;
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// One line (or cut piece) of a blob-type stream: saved unless it belongs to an overlong
/// line being dropped, or an earlier line of the chunk failed.
#[allow(clippy::too_many_arguments)]
fn blob_line(
    ctx: &mut Ctx<'_>,
    ext: &str,
    kind: ExtKind,
    opts: &FileWatcherOptions,
    skipping: &mut bool,
    out: &mut BlobOut,
    line: &[u8],
    end: LineEnd,
) {
    match end {
        LineEnd::Cut => {
            if !*skipping {
                out.dropped += 1;
            }
            *skipping = true;
        }
        LineEnd::Newline | LineEnd::Eof => {
            if *skipping {
                *skipping = false;
            } else if out.error.is_none() {
                match save_blob(ctx, ext, kind, opts, trim_cr(line)) {
                    Ok(Some(p)) => out.paths.push(p.to_string_lossy().into_owned()),
                    Ok(None) => {}
                    Err(e) => out.error = Some(e),
                }
            }
        }
    }
}

/// Saves one line of a blob-type extended stream; the path to queue, if any.
fn save_blob(
    ctx: &mut Ctx<'_>,
    ext: &str,
    kind: ExtKind,
    opts: &FileWatcherOptions,
    line: &[u8],
) -> Result<Option<PathBuf>, WorkerError> {
    if line.is_empty() {
        return Ok(None);
    }
    let data = &ctx.shared.cfg.data_dir;
    let sensor_dir = || day_dir(data, ctx.sid, types::EXTENDED, utc(ctx.now)).join(ext);
    let shared_dir = || data.join("datas").join(ext);
    match kind {
        ExtKind::Ja3Jl => {
            // Only the certificates are kept from the parse (a `Value` tree of a 16 MiB
            // line could take many times its size).
            let parsed = match line.trim_ascii_start().first() {
                Some(b'{') => serde_json::from_slice::<Ja3Line>(line).ok(),
                _ => None,
            };
            let Some(parsed) = parsed else {
                ctx.stats.invalid_lines += 1;
                tracing::debug!(sensor = ctx.sid, "ja3-jl: line is not a JSON object");
                return Ok(None);
            };
            let base = shared_dir();
            for raw in parsed.certificates.0 {
                // decoded as a stream into the file and its SHA-1 (no decoded copy)
                let saved = if plausible_base64(raw.as_bytes()) {
                    save_b64_by_digest::<Sha1>(&base.join("certs"), ".crt", raw.as_bytes(), false)?
                } else {
                    None
                };
                match saved {
                    Some((_, true)) => ctx.stats.files_saved += 1,
                    Some((_, false)) => {}
                    None => ctx.stats.invalid_lines += 1,
                }
            }
            let name = format!("{}.json", hex::encode(Sha256::digest(line)));
            let dir = base.join("jsons");
            if save_by_digest(&dir, &name, line, false)? {
                ctx.stats.files_saved += 1;
            }
            Ok(Some(dir.join(name)))
        }
        ExtKind::FileWatcher => {
            let b64 = line.trim_ascii();
            if !plausible_base64(b64) {
                ctx.stats.invalid_lines += 1;
                tracing::debug!(sensor = ctx.sid, "filewatcher: line is not base64");
                return Ok(None);
            }
            let dir = if opts.segregate {
                sensor_dir()
            } else {
                shared_dir()
            }
            .join("files");
            let suffix = match (&opts.extension, opts.compress) {
                (Some(e), true) => format!(".{e}.gz"),
                (Some(e), false) => format!(".{e}"),
                (None, true) => ".gz".to_owned(),
                (None, false) => String::new(),
            };
            // Decoded as a stream into the file and the digest: no decoded copy in memory.
            match save_b64_by_digest::<Sha256>(&dir, &suffix, b64, opts.compress)? {
                Some((path, written)) => {
                    if written {
                        ctx.stats.files_saved += 1;
                    }
                    Ok(Some(path))
                }
                None => {
                    ctx.stats.invalid_lines += 1;
                    tracing::debug!(sensor = ctx.sid, "filewatcher: line is not base64");
                    Ok(None)
                }
            }
        }
        ExtKind::FileWatcherJson => {
            let dir = sensor_dir().join("files");
            let name = format!("{}.json", hex::encode(Sha256::digest(line)));
            if save_by_digest(&dir, &name, line, false)? {
                ctx.stats.files_saved += 1;
            }
            Ok(Some(dir.join(name)))
        }
        ExtKind::Default | ExtKind::Maltrail => Ok(None),
    }
}

/// Saves content-addressed `bytes` as `dir/name` (atomically: `.tmp`, fsync, rename) unless
/// it exists already; true when written.
fn save_by_digest(dir: &Path, name: &str, bytes: &[u8], gzip: bool) -> Result<bool, WorkerError> {
    let path = dir.join(name);
    if path.exists() {
        return Ok(false);
    }
    fs::create_dir_all(dir).map_err(|e| WorkerError::io(dir, e))?;
    let tmp = dir.join(format!("{name}.tmp"));
    let r = (|| -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        if gzip {
            let mut enc = GzEncoder::new(&mut f, Compression::default());
            enc.write_all(bytes)?;
            enc.finish()?;
        } else {
            f.write_all(bytes)?;
        }
        f.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if let Err(e) = r {
        let _ = fs::remove_file(&tmp);
        return Err(WorkerError::io(&path, e));
    }
    Ok(true)
}

/// Writes `bytes` to a new file `dir/<stem>[-n]<suffix>`; its path.
pub(crate) fn save_new(
    dir: &Path,
    stem: &str,
    suffix: &str,
    bytes: &[u8],
) -> Result<PathBuf, WorkerError> {
    fs::create_dir_all(dir).map_err(|e| WorkerError::io(dir, e))?;
    for n in 0..10_000 {
        let path = dir.join(candidate_name(stem, suffix, n));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(bytes).map_err(|e| WorkerError::io(&path, e))?;
                f.sync_all().map_err(|e| WorkerError::io(&path, e))?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(WorkerError::io(&path, e)),
        }
    }
    Err(WorkerError::io(
        dir,
        io::Error::new(io::ErrorKind::AlreadyExists, "no free file name"),
    ))
}
