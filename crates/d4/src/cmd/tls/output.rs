//! Where `d4 tls` records go: stdout (JSON lines), one file per record (`-j`), every new
//! certificate once as DER (`-w`), and/or a D4 collector as `ja3-jl` (`--d4`). Each record
//! is one line; over D4 a line longer than a frame is cut into frames and the collector
//! joins them (it splits `ja3-jl` on newlines).

use std::collections::HashSet;
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
    /// Live capture with `--d4`: records not queued because the spool was full.
    pub records_dropped_spool_full: u64,
    /// Files (`-w`, `-j`) that could not be written (logged once each).
    pub write_errors: u64,
}

pub struct Outputs {
    sink: Sink,
    certs_dir: Option<PathBuf>,
    json_dir: Option<PathBuf>,
    /// SHA-1s of the certificates already written (or found present) in `certs_dir`.
    certs_seen: HashSet<String>,
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
                let sent = send_line(em, &data, *live);
                match sent {
                    Ok(true) => {}
                    Ok(false) => {
                        self.stats.records_dropped_spool_full += 1;
                        if self.stats.records_dropped_spool_full == 1 {
                            tracing::warn!("the collector is away and the spool is full: live records are dropped (counted) until it drains");
                        }
                    }
                    Err(d4_client::Closed) => self.closed = true,
                }
            }
        }
        Ok(())
    }

    fn file_error(&mut self, path: &Path, e: io::Error) {
        self.stats.write_errors += 1;
        if self.stats.write_errors <= 10 {
            tracing::error!(file = %path.display(), error = %e, "cannot write");
        }
    }

    /// Flushes. `Ok(false)` when records were lost (dropped on a full spool, files not
    /// written): the exit status says so.
    pub fn close(self) -> anyhow::Result<bool> {
        match self.sink {
            Sink::Stdout(mut out) => out.flush().context("stdout")?,
            Sink::D4 { em, .. } => drop(em), // ends the client's input: it drains and closes
        }
        Ok(self.stats.records_dropped_spool_full == 0 && self.stats.write_errors == 0)
    }
}

/// Sends one record line as frames of at most the snaplen. Live: the line goes only if all
/// its frames fit in the client's queue now (`Ok(false)`: dropped), so the capture never
/// waits and the collector never receives half a record; a file waits for room.
fn send_line(
    em: &mut d4_client::Emitter,
    data: &[u8],
    live: bool,
) -> Result<bool, d4_client::Closed> {
    let n = em.snaplen().max(1);
    if live && em.free_slots() < data.len().div_ceil(n) {
        return Ok(false);
    }
    for p in data.chunks(n) {
        em.emit(p)?;
    }
    Ok(true)
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
