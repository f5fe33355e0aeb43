//! The ingester: `ja3-jl` records, certificate files and captures in, batched store
//! commits out. Every feed ends in the same place: a capture's sessions become the
//! sensor's `ja3-jl` lines ([`d4_tls::session::Record::line`]) and are parsed like any
//! other line ([`crate::record::parse_record`]); certificate files give certificates and
//! keys ([`crate::certfile`]).
//!
//! A batch is committed (one durable store transaction) when it holds
//! [`IngestOptions::batch_items`] certificates, keys and sessions, when [`Ingester::flush`]
//! is called, or, while a reader waits for more input, once it is older than
//! [`IngestOptions::max_batch_age`]. A bad record, line or file is counted by reason and
//! logged (the first ones at `warn`, then at `debug`), never fatal; only a store error
//! stops the ingester.
//!
//! With [`Ingester::with_key_checks`], every key new to the ingester goes through the
//! per-key weak-key checks of `d4_keys` after its batch is committed, and the findings are
//! recorded in the store ([`crate::store::PsslStore::record_weak`]).

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use d4_pibs::{CaptureError, LinkType};
use d4_tls::sensor::{Sensor, SensorConfig};
use d4_tls::session::Record;

use crate::certfile;
use crate::model::{BatchBuilder, Certificate, PublicKey};
use crate::record::{parse_record_cached, CertCache};
use crate::store::{PsslError, PsslStore};

mod weak;

/// The longest line read by default: the collector's `max_blob_line` for `ja3-jl`.
pub const MAX_LINE: usize = 16 << 20;
/// The largest record file a queue entry may name.
pub const MAX_RECORD_FILE: u64 = 64 << 20;
/// Problems logged at `warn` before the ingester goes quiet (`debug`).
const WARN_BAD: u64 = 100;

/// Why ingesting stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] PsslError),
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Most certificates, keys and sessions per commit.
    pub batch_items: usize,
    /// A batch older than this is committed when the reader runs dry (a slow feed such as
    /// `d4 tls -i eth0 | d4 pssl ingest -` does not wait for a full batch).
    pub max_batch_age: Duration,
    /// Longer lines are skipped (and counted) without being buffered.
    pub max_line: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            batch_items: 10_000,
            max_batch_age: Duration::from_secs(5),
            max_line: MAX_LINE,
        }
    }
}

/// Running totals of one ingester (the JSON summary of `d4 pssl ingest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestStats {
    /// `ja3-jl` records read (from lines, queue entries and captures).
    pub records_ok: u64,
    /// Lines that were not records.
    pub records_bad: u64,
    /// `records_bad` and other rejects by reason (`json`, `field`, `empty`, `too_long`,
    /// `file_too_large`, `not_utf8_path`, `capture`).
    pub bad_by_reason: BTreeMap<&'static str, u64>,
    /// Certificates inside records that could not be read (left out of their chain).
    pub record_certificates_bad: u64,
    /// Certificates read from certificate files.
    pub certificates_read: u64,
    /// Certificate files (or PEM blocks, archive members) that held no readable certificate.
    pub certificate_files_bad: u64,
    pub new_certificates: u64,
    pub new_keys: u64,
    pub new_sessions: u64,
    /// Sessions the store held already (the same record ingested again).
    pub known_sessions: u64,
    pub commits: u64,
    /// Keys the weak-key checks ran on.
    pub keys_checked: u64,
    /// Of those, keys with at least one finding.
    pub weak_keys_found: u64,
    /// Files read: record files named by queue entries, certificate files, captures.
    pub files_read: u64,
    /// Record files named by queue entries that could not be read.
    pub files_missing: u64,
    /// Packets read from captures.
    pub packets: u64,
    /// Captures that ended with an error (what came before was ingested).
    pub captures_bad: u64,
}

/// Certificates an ingester keeps read (a few KiB each: some MiB in all).
const CERT_CACHE: usize = 4096;

pub struct Ingester {
    store: Arc<dyn PsslStore>,
    opts: IngestOptions,
    batch: BatchBuilder,
    /// When the reader first ran dry with this batch non-empty (its age counts from there:
    /// the clock is not read per line).
    batch_started: Option<Instant>,
    stats: IngestStats,
    /// Problems logged so far (for the warn → debug switch).
    logged: u64,
    /// Certificates of recent records, read once (a server's certificate is in each of its
    /// sessions).
    certs: CertCache,
    /// The per-key weak-key checks (none: keys are not checked).
    checker: Option<weak::KeyChecker>,
}

impl Ingester {
    pub fn new(store: Arc<dyn PsslStore>, opts: IngestOptions) -> Ingester {
        Ingester {
            store,
            opts,
            batch: BatchBuilder::new(),
            batch_started: None,
            stats: IngestStats::default(),
            logged: 0,
            certs: CertCache::new(CERT_CACHE),
            checker: None,
        }
    }

    /// Runs the per-key weak-key checks on every key new to this ingester (after its
    /// batch is committed) and records what they find.
    pub fn with_key_checks(mut self, checks: Arc<d4_keys::check::Checks>) -> Ingester {
        self.checker = Some(weak::KeyChecker::new(checks));
        self
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// The store this ingester commits to.
    pub fn store(&self) -> &Arc<dyn PsslStore> {
        &self.store
    }

    /// Logs a problem (the first [`WARN_BAD`] at warn, then at debug). `what` is escaped.
    fn log_problem(&mut self, msg: &'static str, reason: &str, what: &str) {
        self.logged += 1;
        let reason = d4_proto::logsafe::escape(reason);
        let what = d4_proto::logsafe::escape(what);
        if self.logged <= WARN_BAD {
            tracing::warn!(reason = %reason, input = %what, "{msg}");
            if self.logged == WARN_BAD {
                tracing::warn!("further rejected input is logged at debug level only");
            }
        } else {
            tracing::debug!(reason = %reason, input = %what, "{msg}");
        }
    }

    fn bad(&mut self, kind: &'static str, reason: &str, line: &[u8]) {
        self.stats.records_bad += 1;
        *self.stats.bad_by_reason.entry(kind).or_default() += 1;
        let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
        self.log_problem("ja3-jl record rejected", reason, &shown);
    }

    fn reject(&mut self, kind: &'static str) {
        *self.stats.bad_by_reason.entry(kind).or_default() += 1;
    }

    fn maybe_flush(&mut self) -> Result<(), PsslError> {
        if self.batch.len() >= self.opts.batch_items.max(1) {
            self.flush()?;
        }
        Ok(())
    }

    /// Feeds one `ja3-jl` line (blank lines are skipped); commits when the batch is full.
    pub fn line(&mut self, line: &[u8]) -> Result<(), PsslError> {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return Ok(());
        }
        match parse_record_cached(trimmed, &mut self.certs) {
            Ok(p) => {
                self.stats.records_ok += 1;
                self.stats.record_certificates_bad += p.bad_certificates as u64;
                self.batch.extend(p.batch);
            }
            Err(e) => self.bad(e.kind(), &e.to_string(), trimmed),
        }
        self.maybe_flush()
    }

    /// Feeds a chunk of zero or more whole lines (a record file, a queue entry).
    pub fn chunk(&mut self, bytes: &[u8]) -> Result<(), PsslError> {
        for line in bytes.split(|b| *b == b'\n') {
            self.line(line)?;
        }
        Ok(())
    }

    /// Reads lines to the end of `r`, committing as batches fill, and a batch older than
    /// `max_batch_age` whenever the reader's buffer runs dry or `r` says
    /// [`std::io::ErrorKind::WouldBlock`] (a paced source: nothing for now, read again). Lines longer than
    /// `max_line` are skipped (counted `too_long`) without being buffered.
    pub fn read<R: BufRead>(&mut self, mut r: R) -> Result<(), IngestError> {
        let mut line = Vec::with_capacity(4096);
        loop {
            line.clear();
            let (mut too_long, mut eof, mut drained) = (false, false, false);
            loop {
                let buf = match r.fill_buf() {
                    Ok(b) => b,
                    // A paced source with nothing for now: commit an old batch, wait on.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        self.flush_if_old()?;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                if buf.is_empty() {
                    eof = true;
                    break;
                }
                let (take, done) = match memchr::memchr(b'\n', buf) {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                if !too_long && line.len() + take <= self.opts.max_line.saturating_add(1) {
                    line.extend_from_slice(&buf[..take]);
                } else if !too_long {
                    too_long = true;
                    line.truncate(200);
                }
                drained = take == buf.len();
                r.consume(take);
                if done {
                    break;
                }
            }
            if too_long {
                let reason = format!("line longer than {} bytes", self.opts.max_line);
                self.bad("too_long", &reason, &line);
            } else if !line.is_empty() {
                self.line(&line)?;
            }
            if drained && !eof {
                self.flush_if_old()?;
            }
            if eof {
                return Ok(());
            }
        }
    }

    /// One analyzer queue entry: a record file's path (read, bounded at
    /// [`MAX_RECORD_FILE`]; a file that cannot be read is counted `files_missing` and
    /// skipped, as the reference analyzer does), or record lines themselves when it starts
    /// with `{`.
    pub fn queue_entry(&mut self, data: &[u8]) -> Result<(), PsslError> {
        let trimmed = data.trim_ascii();
        if trimmed.is_empty() {
            return Ok(());
        }
        if trimmed.starts_with(b"{") {
            return self.chunk(trimmed);
        }
        let Ok(path) = std::str::from_utf8(trimmed) else {
            self.stats.files_missing += 1;
            self.reject("not_utf8_path");
            let shown = String::from_utf8_lossy(&trimmed[..trimmed.len().min(200)]).into_owned();
            self.log_problem("queue entry is not a path", "not UTF-8", &shown);
            return Ok(());
        };
        match read_bounded(Path::new(path), MAX_RECORD_FILE) {
            Ok(Some(bytes)) => {
                self.stats.files_read += 1;
                self.chunk(&bytes)
            }
            Ok(None) => {
                self.stats.files_missing += 1;
                self.reject("file_too_large");
                let reason = format!("larger than {MAX_RECORD_FILE} bytes");
                self.log_problem("record file skipped", &reason, path);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Gone (rotated or cleaned up): the reference analyzer skips it too.
                self.stats.files_missing += 1;
                self.log_problem("record file skipped", &e.to_string(), path);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                // Not a regular file (a FIFO, a folder, a device): never read.
                self.stats.files_missing += 1;
                self.reject("not_a_file");
                self.log_problem("record file skipped", &e.to_string(), path);
                Ok(())
            }
            // Anything else may pass (permissions, I/O, descriptors): the batch fails and
            // is not acknowledged, so the entry comes back.
            Err(e) => Err(PsslError::Io {
                path: path.to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// One certificate and its key (from a certificate file).
    pub fn certificate(&mut self, cert: Certificate, key: PublicKey) -> Result<(), PsslError> {
        self.stats.certificates_read += 1;
        self.batch.add_certificate(cert);
        self.batch.add_key(key);
        self.maybe_flush()
    }

    /// The certificates of one file's bytes (PEM or DER); `name` is for the log.
    pub fn certificate_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<(), PsslError> {
        self.stats.files_read += 1;
        for r in certfile::parse_bytes(bytes) {
            match r {
                Ok((c, k)) => self.certificate(c, k)?,
                Err(e) => {
                    self.stats.certificate_files_bad += 1;
                    self.log_problem("not a certificate", &e.to_string(), name);
                }
            }
        }
        Ok(())
    }

    /// Certificates from a file, a `.tar.gz`/`.tgz` archive or a folder (`recursive`: its
    /// subfolders too). Only a path that cannot be read at all is an error.
    pub fn certificate_path(&mut self, path: &Path, recursive: bool) -> Result<(), IngestError> {
        let mut failed: Option<PsslError> = None;
        let stats = certfile::scan_path(path, recursive, &mut |c, k| {
            if failed.is_none() {
                if let Err(e) = self.certificate(c, k) {
                    failed = Some(e);
                }
            }
        })?;
        // `certificate` counted each certificate already.
        self.stats.files_read += stats.files;
        self.stats.certificate_files_bad += stats.bad;
        for (name, msg) in &stats.errors {
            self.log_problem("not a certificate", msg, name);
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// A pcap or pcapng capture (plain or gzip) through the TLS sensor: every session it
    /// finds is ingested as its `ja3-jl` line. A malformed capture is counted
    /// (`captures_bad`) and logged; what came before was ingested. `stop` is asked between
    /// packets (a signal ends the read; the open sessions are still ingested).
    pub fn capture<R: Read + Send>(
        &mut self,
        name: &str,
        input: R,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), IngestError> {
        let mut sensor = Sensor::new(SensorConfig::default());
        let mut sessions = Vec::new();
        let mut failed: Option<PsslError> = None;
        let result = d4_pibs::for_each_record(input, |rec| {
            if stop() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "stopped"));
            }
            self.stats.packets += 1;
            let ts = rec
                .ts_sec
                .saturating_mul(1_000_000_000)
                .saturating_add(u64::from(rec.ts_nsec));
            sensor.packet(
                ts,
                LinkType::from_pcap(rec.linktype),
                rec.data,
                &mut sessions,
            );
            self.sessions(&mut sessions)
                .map_err(|e| io::Error::other(failed.insert(e).to_string()))
        });
        if let Some(e) = failed {
            return Err(e.into());
        }
        sensor.finish(&mut sessions);
        self.sessions(&mut sessions)?;
        self.stats.files_read += 1;
        match result {
            Ok(sum) => {
                if sum.truncated_tail {
                    tracing::warn!(file = %d4_proto::logsafe::escape(name), "capture ends inside a record (cut short); the records before were ingested");
                }
                Ok(())
            }
            Err(CaptureError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(CaptureError::Io(e)) => Err(e.into()),
            Err(e) => {
                self.stats.captures_bad += 1;
                self.reject("capture");
                self.log_problem("malformed capture", &e.to_string(), name);
                Ok(())
            }
        }
    }

    fn sessions(&mut self, sessions: &mut Vec<d4_tls::session::Session>) -> Result<(), PsslError> {
        for s in sessions.drain(..) {
            self.line(Record::new(&s).line().as_bytes())?;
        }
        Ok(())
    }

    /// Commits the batch if it is older than `max_batch_age` (called when the reader is
    /// about to wait for input, not per line).
    pub fn flush_if_old(&mut self) -> Result<(), PsslError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let started = *self.batch_started.get_or_insert_with(Instant::now);
        if started.elapsed() >= self.opts.max_batch_age {
            self.flush()?;
        }
        Ok(())
    }

    /// Commits what is batched (one durable transaction).
    pub fn flush(&mut self) -> Result<(), PsslError> {
        self.batch_started = None;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = self.batch.take();
        let c = self.store.commit(&batch)?;
        self.stats.new_certificates += c.new_certificates;
        self.stats.new_keys += c.new_keys;
        self.stats.new_sessions += c.new_sessions;
        self.stats.known_sessions += c.known_sessions;
        self.stats.commits += 1;
        if let Some(checker) = &mut self.checker {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let checked = checker.batch(&batch, now);
            self.stats.keys_checked += checked.keys;
            self.stats.weak_keys_found += checked.weak;
            self.store.record_weak(&checked.findings)?;
        }
        Ok(())
    }
}

/// A file's bytes, `None` when it is larger than `max`.
fn read_bounded(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    // Opened without following into a FIFO's wait: the type is checked on the path first
    // (a FIFO would block the consumer), then on the open file.
    if !std::fs::metadata(path)?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let f = std::fs::File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

#[cfg(test)]
mod tests;
