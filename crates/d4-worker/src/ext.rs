//! Extended types (type 254): what happens to the data after the meta header.

use std::borrow::Cow;
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

use crate::layout::{candidate_name, day_dir, safe_component, utc};
use crate::lines::{trim_cr, LineEnd, LineSplitter};
use crate::sink::OwnedTarget;
use crate::worker::{Ctx, LineState};
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
                    ctx.sid,
                    types::EXTENDED,
                    Some(ext.clone()),
                    ".txt",
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

/// The parts of a `ja3-jl` line that are kept: the `Raw` strings of `Certificates[]`
/// (other fields are skipped without being built).
#[derive(serde::Deserialize)]
struct Ja3Line<'a> {
    #[serde(rename = "Certificates", default, borrow)]
    certificates: RawCerts<'a>,
}

/// `Certificates[].Raw` strings; anything else in (or instead of) the array is skipped.
/// Borrowed from the line when the string has no escapes (base64 has none).
#[derive(Default)]
struct RawCerts<'a>(Vec<Cow<'a, str>>);

/// A JSON string borrowed from the input when it can be.
struct RawStr<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for RawStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawStr<'de>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<RawStr<'de>, E> {
                Ok(RawStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawStr<'de>, E> {
                Ok(RawStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<RawStr<'de>, E> {
                Ok(RawStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawCerts<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawCerts<'a>, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct Cert<'a>(Option<Cow<'a, str>>);
        impl<'de> serde::Deserialize<'de> for Cert<'de> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cert<'de>, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Cert<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a certificate")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Cert<'de>, A::Error> {
                        let mut raw = None;
                        while let Some(k) = m.next_key::<RawStr<'de>>()? {
                            if k.0 == "Raw" && raw.is_none() {
                                raw = m
                                    .next_value::<Option<RawStr<'de>>>()
                                    .ok()
                                    .flatten()
                                    .map(|r| r.0);
                            } else {
                                m.next_value::<IgnoredAny>()?;
                            }
                        }
                        Ok(Cert(raw))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Cert<'de>, A::Error> {
                        while s.next_element::<IgnoredAny>()?.is_some() {}
                        Ok(Cert(None))
                    }
                    fn visit_str<E>(self, _: &str) -> Result<Cert<'de>, E> {
                        Ok(Cert(None))
                    }
                    fn visit_bool<E>(self, _: bool) -> Result<Cert<'de>, E> {
                        Ok(Cert(None))
                    }
                    fn visit_i64<E>(self, _: i64) -> Result<Cert<'de>, E> {
                        Ok(Cert(None))
                    }
                    fn visit_u64<E>(self, _: u64) -> Result<Cert<'de>, E> {
                        Ok(Cert(None))
                    }
                    fn visit_f64<E>(self, _: f64) -> Result<Cert<'de>, E> {
                        Ok(Cert(None))
                    }
                    fn visit_unit<E>(self) -> Result<Cert<'de>, E> {
                        Ok(Cert(None))
                    }
                }
                d.deserialize_any(V)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawCerts<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of certificates")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<RawCerts<'de>, A::Error> {
                let mut v = Vec::new();
                while let Some(Cert(c)) = s.next_element::<Cert<'de>>()? {
                    v.extend(c);
                }
                Ok(RawCerts(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<RawCerts<'de>, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(RawCerts::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<RawCerts<'de>, E> {
                Ok(RawCerts::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<RawCerts<'de>, E> {
                Ok(RawCerts::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<RawCerts<'de>, E> {
                Ok(RawCerts::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<RawCerts<'de>, E> {
                Ok(RawCerts::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<RawCerts<'de>, E> {
                Ok(RawCerts::default())
            }
            fn visit_unit<E>(self) -> Result<RawCerts<'de>, E> {
                Ok(RawCerts::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// Only base64 characters, `=` only at the end: a cheap check before any file is made.
fn plausible_base64(b: &[u8]) -> bool {
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
fn save_b64_by_digest<H: Digest>(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn certs(line: &str) -> Option<Vec<String>> {
        match line.trim_ascii_start().as_bytes().first() {
            Some(b'{') => serde_json::from_str::<Ja3Line>(line).ok().map(|l| {
                l.certificates
                    .0
                    .into_iter()
                    .map(|c| {
                        // borrowed from the line unless it has escapes
                        assert_eq!(matches!(c, Cow::Borrowed(_)), !line.contains("\\/"));
                        c.into_owned()
                    })
                    .collect()
            }),
            _ => None,
        }
    }

    #[test]
    fn ja3_lines_keep_only_raw_certificates() {
        assert_eq!(
            certs(
                r#"{"a": [1, {"b": 2}], "Certificates": [{"Raw": "QUJD", "x": [1]}, {"Raw": 5}, 7, [], {"y": 1}, {"Raw": "REVG"}]}"#
            ),
            Some(vec!["QUJD".to_string(), "REVG".to_string()])
        );
        assert_eq!(
            certs(r#"{"Certificates": [{"Raw": "QU\/D"}]}"#),
            Some(vec!["QU/D".to_string()])
        );
        assert_eq!(certs(r#"{"Certificates": "none"}"#), Some(vec![]));
        assert_eq!(certs(r#"{"Certificates": null, "z": {}}"#), Some(vec![]));
        assert_eq!(certs(r#"{}"#), Some(vec![]));
        assert_eq!(certs(r#"[{"Raw": "QUJD"}]"#), None, "not an object");
        assert_eq!(
            certs(r#"{"Certificates": [{"Raw": "QUJD"}"#),
            None,
            "truncated"
        );
    }

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
