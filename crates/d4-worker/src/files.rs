//! The I/O edge: rotating files, gzip of finished files (in a background thread).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

use chrono::{DateTime, Datelike, Utc};
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::config::WorkerConfig;
use crate::delivery::Outbox;
use crate::layout::{candidate_name, file_stem, utc};
use crate::sink::{OwnedTarget, PushId, QueueSink};
use crate::WorkerError;
use uuid::Uuid;

/// What every worker of a server shares.
pub(crate) struct Shared {
    pub cfg: WorkerConfig,
    pub sink: Arc<dyn QueueSink>,
    pub compressor: Compressor,
}

enum Job {
    File {
        src: PathBuf,
        target: Option<OwnedTarget>,
    },
    Barrier(mpsc::SyncSender<()>),
}

/// Finishes rotated files: gzip (`.gz.tmp`, fsync, rename, then delete the original),
/// then pushes the final path to the queues when the file type asks for it.
pub(crate) struct Compressor {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    gzip: bool,
    sink: Arc<dyn QueueSink>,
    /// Set by [`Compressor::stop_now`]: pending files are left as they are (the next
    /// start's recovery gzips and queues them) and a gzip under way is abandoned.
    stop: Arc<AtomicBool>,
}

impl Compressor {
    pub fn new(gzip: bool, background: bool, sink: Arc<dyn QueueSink>) -> io::Result<Compressor> {
        let mut c = Compressor {
            tx: Mutex::new(None),
            thread: Mutex::new(None),
            gzip,
            sink,
            stop: Arc::new(AtomicBool::new(false)),
        };
        if background {
            let (tx, rx) = mpsc::channel::<Job>();
            let sink = c.sink.clone();
            let stop = c.stop.clone();
            let handle = std::thread::Builder::new()
                .name("d4-gzip".into())
                .spawn(move || {
                    for job in rx {
                        match job {
                            Job::File { src, .. } if stop.load(Ordering::Acquire) => {
                                tracing::info!(path = %src.display(), "stopping: file left to be gzipped and queued at the next start");
                            }
                            Job::File { src, target } => {
                                finish_file(gzip, &*sink, &src, target, &stop, true)
                            }
                            Job::Barrier(done) => {
                                let _ = done.send(());
                            }
                        }
                    }
                })?;
            c.tx = Mutex::new(Some(tx));
            c.thread = Mutex::new(Some(handle));
        }
        Ok(c)
    }

    /// Hands a closed file over (compressed now when not in background mode).
    pub fn submit(&self, src: PathBuf, target: Option<OwnedTarget>) {
        let job = Job::File { src, target };
        let job = match self.tx.lock() {
            Ok(g) => match g.as_ref() {
                Some(tx) => match tx.send(job) {
                    Ok(()) => return,
                    Err(mpsc::SendError(job)) => job,
                },
                None => job,
            },
            Err(_) => job,
        };
        if let Job::File { src, target } = job {
            finish_file(self.gzip, &*self.sink, &src, target, &self.stop, false);
        }
    }

    /// Waits until every file handed over so far is finished.
    pub fn flush(&self) {
        self.flush_within(std::time::Duration::MAX);
    }

    /// Waits up to `within` until every file handed over so far is finished; false when
    /// that took longer (the work goes on).
    pub fn flush_within(&self, within: std::time::Duration) -> bool {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let sent = match self.tx.lock() {
            Ok(g) => g
                .as_ref()
                .map(|tx| tx.send(Job::Barrier(done_tx)).is_ok())
                .unwrap_or(false),
            Err(_) => false,
        };
        !sent || done_rx.recv_timeout(within).is_ok()
    }

    /// Stops compressing: the gzip under way is abandoned (its `.tmp` removed, the file
    /// kept) and the files still waiting are left as they are. Nothing is lost: the next
    /// start's recovery gzips and queues every file left unfinished. Makes a stop quick
    /// whatever the file sizes.
    pub fn stop_now(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Finishes pending work (unless [`Compressor::stop_now`] was called) and stops the
    /// thread.
    pub fn shutdown(&self) {
        if let Ok(mut g) = self.tx.lock() {
            g.take();
        }
        let handle = self.thread.lock().ok().and_then(|mut g| g.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The key of the one push of a finished file's path: a name-based UUID of the path, so
/// that the push after a crash (by the start-up recovery) repeats the key and the store
/// keeps the path once.
pub fn file_key(path: &Path) -> PushId {
    use std::os::unix::ffi::OsStrExt;
    PushId {
        producer: Uuid::new_v5(&FILE_KEYS, path.as_os_str().as_bytes()),
        seq: 1,
    }
}

/// Namespace of [`file_key`].
const FILE_KEYS: Uuid = Uuid::from_u128(0x6d4c_1f0e_a3b2_4c5d_9e8f_7a6b_5c4d_3e2f);

/// Queues a finished file's path exactly once: pushed under [`file_key`] before the
/// original is deleted (a crash in between leaves both, and the recovery's push repeats
/// the key), then the key is forgotten. With `retry` (the gzip thread) a store that
/// refuses is retried with backoff until it takes the path or the worker stops; without,
/// the file is left for the next start's recovery. Returns whether the path is queued.
pub(crate) fn queue_path(
    sink: &dyn QueueSink,
    path: &Path,
    target: &OwnedTarget,
    retry: Option<&AtomicBool>,
) -> bool {
    let key = file_key(path);
    let entry = path.to_string_lossy().into_owned();
    let mut wait = std::time::Duration::from_millis(100);
    let mut failures = 0u32;
    loop {
        match sink.push_batch(Some(key), vec![(target.clone(), vec![entry.clone()])]) {
            Ok(_) => {
                if failures > 0 {
                    tracing::info!(path = %path.display(), "finished file queued after the queue backend came back");
                }
                return true;
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::error!(path = %path.display(), error = %e, "could not queue a finished file; retrying (the next start queues it if this process stops first)");
                }
                match retry {
                    Some(stop) if !stop.load(Ordering::Acquire) => {
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(std::time::Duration::from_secs(10));
                    }
                    _ => return false,
                }
            }
        }
    }
}

fn finish_file(
    gzip: bool,
    sink: &dyn QueueSink,
    src: &Path,
    target: Option<OwnedTarget>,
    stop: &AtomicBool,
    retry: bool,
) {
    let done = if gzip {
        match compress(src, stop) {
            Ok(gz) => Some(gz),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                // Not queued either: the next start finishes it like any file left open.
                tracing::info!(path = %src.display(), "stopping: gzip abandoned, the file is gzipped and queued at the next start");
                return;
            }
            Err(e) => {
                tracing::error!(path = %src.display(), error = %e, "gzip of a rotated file failed; the file is kept as is");
                None
            }
        }
    } else {
        None
    };
    let path = done.as_deref().unwrap_or(src);
    if let Some(t) = &target {
        if !queue_path(sink, path, t, retry.then_some(stop)) {
            return;
        }
    }
    if let Some(gz) = &done {
        if let Err(e) = remove_original(src) {
            tracing::error!(path = %src.display(), error = %e, "could not remove a gzipped file's original");
            return;
        }
        // The original is gone: the recovery cannot push this path again.
        if target.is_some() {
            if let Err(e) = sink.forget(file_key(gz).producer) {
                tracing::debug!(path = %gz.display(), error = %e, "could not forget a file's queue key");
            }
        }
    }
}

/// Deletes the original of a complete `.gz` (and syncs the directory).
pub(crate) fn remove_original(src: &Path) -> io::Result<()> {
    fs::remove_file(src)?;
    sync_dir(src.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Gzips `src` to `<src>.gz` (or `<src>.<n>.gz` when taken) through a `.tmp` file that is
/// synced and renamed; `src` is deleted only once the `.gz` is complete.
pub fn gzip_file(src: &Path) -> io::Result<PathBuf> {
    gzip_file_until(src, &AtomicBool::new(false))
}

/// [`gzip_file`], abandoned (error [`io::ErrorKind::Interrupted`], `.tmp` removed, `src`
/// untouched) as soon as `stop` is set.
pub fn gzip_file_until(src: &Path, stop: &AtomicBool) -> io::Result<PathBuf> {
    let gz = compress(src, stop)?;
    remove_original(src)?;
    Ok(gz)
}

/// Writes the complete `.gz` of `src` (synced, renamed into place); `src` is kept.
fn compress(src: &Path, stop: &AtomicBool) -> io::Result<PathBuf> {
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = src.parent().unwrap_or(Path::new("."));
    let mut dst = dir.join(format!("{name}.gz"));
    let mut n = 1;
    while dst.exists() {
        dst = dir.join(format!("{name}.{n}.gz"));
        n += 1;
        if n > 10_000 {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "no free .gz name",
            ));
        }
    }
    let tmp = dir.join(format!(
        "{}.tmp",
        dst.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let result = (|| {
        let mut input = File::open(src)?;
        let out = File::create(&tmp)?;
        let mut enc = GzEncoder::new(BufWriter::new(out), Compression::default());
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            if stop.load(Ordering::Acquire) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "stopping"));
            }
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            enc.write_all(&buf[..n])?;
        }
        let out = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
        out.sync_all()?;
        fs::rename(&tmp, &dst)?;
        sync_dir(dir);
        Ok(dst.clone())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

struct OpenFile {
    path: PathBuf,
    w: BufWriter<File>,
    opened: DateTime<Utc>,
    len: u64,
}

/// A file that rotates: `<base>/<YYYY>/<MM>/<DD>[/<sub>]/<sensor>-YYYY-MM-DD-HHMMSS<suffix>`,
/// opened lazily at the first write, finished (gzip + queue) by [`RotatingFile::finish`].
pub(crate) struct RotatingFile {
    shared: Arc<Shared>,
    base: PathBuf,
    sub: Option<String>,
    sensor: String,
    suffix: String,
    /// Queue the finished file's path to these queues.
    target: Option<OwnedTarget>,
    cur: Option<OpenFile>,
    /// Where finished files go, and who is told before a file is created.
    out: Outbox,
}

impl RotatingFile {
    pub fn new(
        shared: Arc<Shared>,
        sensor: &str,
        d4_type: u8,
        sub: Option<String>,
        suffix: &str,
        target: Option<OwnedTarget>,
        out: Outbox,
    ) -> RotatingFile {
        let base = shared.cfg.data_dir.join(sensor).join(d4_type.to_string());
        RotatingFile {
            shared,
            base,
            sub,
            sensor: sensor.to_owned(),
            suffix: suffix.to_owned(),
            target,
            cur: None,
            out,
        }
    }

    pub fn is_open(&self) -> bool {
        self.cur.is_some()
    }

    /// The open file and the bytes written to it (buffered ones included).
    pub fn open_file(&self) -> Option<(&Path, u64)> {
        self.cur.as_ref().map(|c| (c.path.as_path(), c.len))
    }

    /// Bytes written to the open file.
    pub fn len(&self) -> u64 {
        self.cur.as_ref().map(|c| c.len).unwrap_or(0)
    }

    /// Whether the open file must rotate at `now`.
    pub fn due(&self, now: SystemTime) -> bool {
        self.cur
            .as_ref()
            .map(|c| self.shared.cfg.rotation.due_at(c.opened, utc(now), c.len))
            .unwrap_or(false)
    }

    /// Opens a new file if none is open; true when it did.
    pub fn ensure_open(&mut self, now: SystemTime) -> Result<bool, WorkerError> {
        if self.cur.is_some() {
            return Ok(false);
        }
        let t = utc(now);
        let mut dir = self
            .base
            .join(format!("{:04}", t.year()))
            .join(format!("{:02}", t.month()))
            .join(format!("{:02}", t.day()));
        if let Some(sub) = &self.sub {
            dir = dir.join(sub);
        }
        fs::create_dir_all(&dir).map_err(|e| WorkerError::io(&dir, e))?;
        let stem = file_stem(&self.sensor, t);
        for n in 0..10_000 {
            let name = candidate_name(&stem, &self.suffix, n);
            let path = dir.join(&name);
            if path.exists() || dir.join(format!("{name}.gz")).exists() {
                continue;
            }
            self.out.creating(&path)?;
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => {
                    tracing::debug!(path = %path.display(), "opened");
                    self.cur = Some(OpenFile {
                        path,
                        w: BufWriter::with_capacity(64 * 1024, f),
                        opened: t,
                        len: 0,
                    });
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(WorkerError::io(&path, e)),
            }
        }
        Err(WorkerError::io(
            &dir,
            io::Error::new(io::ErrorKind::AlreadyExists, "no free file name"),
        ))
    }

    /// Appends to the open file (opening one first if needed).
    pub fn write(&mut self, data: &[u8], now: SystemTime) -> Result<(), WorkerError> {
        self.ensure_open(now)?;
        if let Some(c) = self.cur.as_mut() {
            c.w.write_all(data)
                .map_err(|e| WorkerError::io(&c.path, e))?;
            c.len += data.len() as u64;
        }
        Ok(())
    }

    /// Cuts the open file back to `len` bytes (drops an incomplete pcap record at close).
    pub fn truncate(&mut self, len: u64) -> Result<(), WorkerError> {
        if let Some(c) = self.cur.as_mut() {
            if len < c.len {
                c.w.flush().map_err(|e| WorkerError::io(&c.path, e))?;
                c.w.get_ref()
                    .set_len(len)
                    .map_err(|e| WorkerError::io(&c.path, e))?;
                c.w.get_mut()
                    .seek(SeekFrom::Start(len))
                    .map_err(|e| WorkerError::io(&c.path, e))?;
                c.len = len;
            }
        }
        Ok(())
    }

    /// Flushes the buffered bytes to the OS.
    pub fn flush(&mut self) -> Result<(), WorkerError> {
        if let Some(c) = self.cur.as_mut() {
            c.w.flush().map_err(|e| WorkerError::io(&c.path, e))?;
        }
        Ok(())
    }

    /// Closes the open file (synced) and hands it to the compressor, which gzips it and
    /// queues its final path. An empty file is removed instead.
    pub fn finish(&mut self) -> Result<(), WorkerError> {
        let Some(mut c) = self.cur.take() else {
            return Ok(());
        };
        c.w.flush().map_err(|e| WorkerError::io(&c.path, e))?;
        let f =
            c.w.into_inner()
                .map_err(|e| WorkerError::io(&c.path, e.into_error()))?;
        if c.len == 0 {
            drop(f);
            let _ = fs::remove_file(&c.path);
            return Ok(());
        }
        f.sync_all().map_err(|e| WorkerError::io(&c.path, e))?;
        drop(f);
        self.out.finished(&self.shared, c.path, self.target.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(p: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(File::open(p).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn gzip_replaces_the_original_only_when_complete() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("a.txt");
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        fs::write(&src, &data).unwrap();
        // a .gz of that name already exists (e.g. from an earlier run): not overwritten
        fs::write(tmp.path().join("a.txt.gz"), b"older").unwrap();
        let gz = gzip_file(&src).unwrap();
        assert_eq!(gz, tmp.path().join("a.txt.1.gz"));
        assert_eq!(gunzip(&gz), data);
        assert!(!src.exists());
        assert_eq!(fs::read(tmp.path().join("a.txt.gz")).unwrap(), b"older");
        let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 2, "no .tmp left behind");
        // a missing source is an error and creates nothing
        assert!(gzip_file(&tmp.path().join("missing")).is_err());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_stopped_gzip_leaves_the_original_and_no_tmp() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("b.txt");
        fs::write(&src, vec![7u8; 600_000]).unwrap();
        let e = gzip_file_until(&src, &AtomicBool::new(true)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
        assert_eq!(fs::read(&src).unwrap().len(), 600_000);
        let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "only the original is left");
    }
}
