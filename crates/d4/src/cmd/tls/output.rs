//! Where `d4 tls` records go: stdout (JSON lines), one file per record (`-j`), every new
//! certificate once as DER (`-w`), and/or a D4 collector as `ja3-jl` (`--d4`). Each record
//! is one line; over D4 a line longer than a frame is cut into frames and the collector
//! joins them (it splits `ja3-jl` on newlines).

use std::collections::{HashSet, VecDeque};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use d4_tls::session::Record;
use sha2::{Digest, Sha256};

use super::TlsArgs;

/// The record stream's destination.
pub enum Sink {
    Stdout(io::StdoutLock<'static>),
    /// The client's source side. `live`: never block the capture on a full spool (the
    /// record is dropped and counted) — a capture file waits instead.
    D4 {
        em: Box<d4_client::Emitter>,
        live: bool,
    },
}

/// What the outputs did (logged with the sensor's counters).
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct OutputStats {
    pub records: u64,
    pub certificates_written: u64,
    /// Live capture with `--d4`: records dropped because the client's queue and spool and
    /// our pending buffer were full (the collector away, or slower than the capture).
    pub records_dropped: u64,
    /// `--d4`: records found after the client had stopped (a signal): not delivered.
    pub records_not_delivered: u64,
    /// Files (`-w`, `-j`) that could not be written (logged once each).
    pub write_errors: u64,
}

/// Certificates remembered as written by `-w` (beyond it, the file's existence is checked).
const MAX_CERTS_SEEN: usize = 100_000;

pub struct Outputs {
    sink: Sink,
    certs_dir: Option<PathBuf>,
    json_dir: Option<PathBuf>,
    /// SHA-1s of the certificates already written (or found present) in `certs_dir`.
    certs_seen: HashSet<String>,
    /// `--d4`: whole record lines waiting for room in the client's queue (live capture; a
    /// capture file's line passes through at once).
    pending: VecDeque<Vec<u8>>,
    pending_bytes: usize,
    max_pending: usize,
    pub stats: OutputStats,
    /// The collector side went away (shutdown): the capture stops.
    closed: bool,
}

impl Outputs {
    pub fn new(args: &TlsArgs, sink: Sink) -> Outputs {
        Outputs {
            sink,
            certs_dir: args.certs_dir.clone(),
            json_dir: args.json_dir.clone(),
            certs_seen: HashSet::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            max_pending: args.d4.live_buffer,
            stats: OutputStats::default(),
            closed: false,
        }
    }

    /// True when the capture must stop: the D4 client is shutting down.
    pub fn should_stop(&self) -> bool {
        self.closed
            || match &self.sink {
                Sink::D4 { em, .. } => em.is_closed(),
                Sink::Stdout(_) => false,
            }
    }

    /// Writes one record everywhere it goes. An error is fatal only for stdout (a closed
    /// pipe ends the run); file errors are logged and counted.
    pub fn emit(&mut self, rec: &Record) -> anyhow::Result<()> {
        self.stats.records += 1;
        if let Some(dir) = self.certs_dir.clone() {
            for (sha1, der) in rec.certificates() {
                if self.certs_seen.contains(sha1) {
                    continue;
                }
                let path = dir.join(format!("{sha1}.crt"));
                match write_once(&path, der) {
                    Ok(written) => {
                        self.stats.certificates_written += u64::from(written);
                        if self.certs_seen.len() >= MAX_CERTS_SEEN {
                            self.certs_seen.clear();
                        }
                        self.certs_seen.insert(sha1.to_owned());
                    }
                    Err(e) => self.file_error(&path, e),
                }
            }
        }
        let line = rec.line();
        if let Some(dir) = self.json_dir.clone() {
            let name = format!("{}.json", hex::encode(Sha256::digest(line.as_bytes())));
            let path = dir.join(name);
            let mut body = Vec::with_capacity(line.len() + 1);
            body.extend_from_slice(line.as_bytes());
            body.push(b'\n');
            if let Err(e) = write_once(&path, &body) {
                self.file_error(&path, e);
            }
        }
        match &mut self.sink {
            Sink::Stdout(out) => {
                if self.json_dir.is_none() {
                    out.write_all(line.as_bytes())?;
                    out.write_all(b"\n")?;
                }
            }
            Sink::D4 { em, live } => {
                let mut data = Vec::with_capacity(line.len() + 1);
                data.extend_from_slice(line.as_bytes());
                data.push(b'\n');
                // a capture file waits for room; a live capture never does: the line goes
                // through the pending queue (bounded), and is dropped (counted) only when the
                // client has no room for it now and the queue is full
                let live = *live;
                let room = self.pending.is_empty()
                    && em.free_slots() >= data.len().div_ceil(em.snaplen().max(1));
                if live && !room && self.pending_bytes + data.len() > self.max_pending {
                    self.stats.records_dropped += 1;
                    if self.stats.records_dropped == 1 {
                        tracing::warn!("the collector is away or slower than the capture and every buffer is full: live records are dropped (counted)");
                    }
                } else {
                    self.pending_bytes += data.len();
                    self.pending.push_back(data);
                }
                self.drain_pending(!live);
            }
        }
        Ok(())
    }

    /// `--d4`: hands over the pending lines that fit in the client's queue now (`wait`: all
    /// of them, waiting for room — a capture file, and the end of a live capture).
    pub fn drain_pending(&mut self, wait: bool) {
        let Sink::D4 { em, .. } = &mut self.sink else {
            return;
        };
        let n = em.snaplen().max(1);
        while let Some(line) = self.pending.front() {
            if !wait && em.free_slots() < line.len().div_ceil(n) {
                return;
            }
            let Some(line) = self.pending.pop_front() else {
                return;
            };
            self.pending_bytes -= line.len();
            if send_line(em, &line).is_err() {
                self.closed = true;
                self.stats.records_not_delivered += 1 + self.pending.len() as u64;
                self.pending.clear();
                self.pending_bytes = 0;
                return;
            }
        }
    }

    fn file_error(&mut self, path: &Path, e: io::Error) {
        self.stats.write_errors += 1;
        if self.stats.write_errors <= 10 {
            tracing::error!(file = %path.display(), error = %e, "cannot write");
        }
    }

    /// Flushes. `Ok(false)` when records were lost (dropped or not delivered, files not
    /// written): the exit status says so.
    pub fn close(mut self) -> anyhow::Result<bool> {
        self.drain_pending(true);
        match self.sink {
            Sink::Stdout(mut out) => out.flush().context("stdout")?,
            Sink::D4 { em, .. } => drop(em), // ends the client's input: it drains and closes
        }
        if self.stats.records_not_delivered > 0 {
            tracing::warn!(
                records = self.stats.records_not_delivered,
                "records found after the client stopped were not delivered"
            );
        }
        Ok(self.stats.records_dropped == 0
            && self.stats.records_not_delivered == 0
            && self.stats.write_errors == 0)
    }
}

/// Sends one record line as frames of at most the snaplen (waits while the client's queue is
/// full: the caller checked `free_slots` when it cannot wait).
fn send_line(em: &mut d4_client::Emitter, data: &[u8]) -> Result<(), d4_client::Closed> {
    for p in data.chunks(em.snaplen().max(1)) {
        em.emit(p)?;
    }
    Ok(())
}

/// Writes `path` unless it exists (content-addressed names): a temp file then a rename,
/// so a reader never sees half a file. `Ok(false)` when it was already there.
fn write_once(path: &Path, body: &[u8]) -> io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(body)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(true)
}
