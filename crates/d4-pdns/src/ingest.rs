//! The ingester: lines in, batched commits out. Bad lines are counted per reason and
//! logged (the first ones at `warn`, later ones at `debug`), never fatal.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::parse::parse_line;
use crate::store::{Batch, RecordError, RecordStore};

/// Longest line accepted; longer lines are rejected (and skipped) without being buffered.
pub const MAX_LINE: usize = 1 << 20;
/// Bad lines logged at `warn` before the ingester goes quiet (`debug`).
const WARN_BAD_LINES: u64 = 100;

#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Most accepted lines per write transaction.
    pub batch_lines: usize,
    /// Most distinct (rrname, rrtype, rdata) per write transaction: repeated observations
    /// are merged in memory, so what a batch costs (memory, B-tree work) grows with this,
    /// not with its lines. A batch is committed when either limit is reached.
    pub batch_records: usize,
    /// A batch older than this is committed when the next line arrives (a slow feed such
    /// as `tail -F | d4 pdns ingest -` does not wait for a full batch).
    pub max_batch_age: Duration,
    /// Drop rcode lines (`NXDOMAIN`...) instead of storing them apart.
    pub skip_rcode: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            batch_lines: 1_000_000,
            batch_records: 100_000,
            max_batch_age: Duration::from_secs(5),
            skip_rcode: false,
        }
    }
}

/// Running totals of one ingester.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestStats {
    pub lines_ok: u64,
    pub lines_bad: u64,
    pub rcode_lines: u64,
    pub rcode_skipped: u64,
    pub bad_by_reason: BTreeMap<&'static str, u64>,
    pub new_records: u64,
    pub updated_records: u64,
    pub commits: u64,
}

pub struct Ingester {
    store: Arc<dyn RecordStore>,
    opts: IngestOptions,
    batch: Batch,
    /// When the reader's buffer first ran dry with this batch non-empty (the batch's age
    /// counts from there: the clock is not read per line).
    batch_started: Option<Instant>,
    stats: IngestStats,
}

impl Ingester {
    pub fn new(store: Arc<dyn RecordStore>, opts: IngestOptions) -> Ingester {
        Ingester {
            store,
            opts,
            batch: Batch::new(),
            batch_started: None,
            stats: IngestStats::default(),
        }
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Feeds one line; commits when the batch is full.
    pub fn line(&mut self, line: &[u8], sensor: Option<&str>) -> Result<(), RecordError> {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return Ok(());
        }
        match parse_line(trimmed) {
            Ok(obs) => {
                if obs.rcode {
                    self.stats.rcode_lines += 1;
                    if self.opts.skip_rcode {
                        self.stats.rcode_skipped += 1;
                        return Ok(());
                    }
                }
                self.stats.lines_ok += 1;
                self.batch.add(&obs, sensor);
            }
            Err(e) => self.bad(e.kind(), &e.to_string(), trimmed),
        }
        if self.batch.lines() as usize >= self.opts.batch_lines
            || self.batch.distinct() >= self.opts.batch_records
        {
            self.flush()?;
        }
        Ok(())
    }

    fn bad(&mut self, kind: &'static str, reason: &str, line: &[u8]) {
        self.stats.lines_bad += 1;
        *self.stats.bad_by_reason.entry(kind).or_default() += 1;
        self.batch.add_bad(kind);
        // The line is the sensor's text: escaped so it cannot forge log lines.
        let shown = d4_proto::logsafe::escape_bytes(&line[..line.len().min(200)]);
        let reason = d4_proto::logsafe::escape(reason);
        if self.stats.lines_bad <= WARN_BAD_LINES {
            tracing::warn!(reason = %reason, line = %shown, "passivedns line rejected");
            if self.stats.lines_bad == WARN_BAD_LINES {
                tracing::warn!("further rejected lines are logged at debug level only");
            }
        } else {
            tracing::debug!(reason = %reason, line = %shown, "passivedns line rejected");
        }
    }

    /// Feeds a chunk holding zero or more whole lines (a queue entry, a D4 payload).
    pub fn chunk(&mut self, bytes: &[u8], sensor: Option<&str>) -> Result<(), RecordError> {
        for line in bytes.split(|b| *b == b'\n') {
            self.line(line, sensor)?;
        }
        Ok(())
    }

    /// Commits the batch if it is older than `max_batch_age`. The clock is read only here,
    /// when the reader has drained its buffer (about to wait for input), not per line.
    fn flush_if_old(&mut self) -> Result<(), RecordError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let started = *self.batch_started.get_or_insert_with(Instant::now);
        if started.elapsed() >= self.opts.max_batch_age {
            self.flush()?;
        }
        Ok(())
    }

    /// Reads lines to the end of `r`, committing as batches fill, and a batch older than
    /// `max_batch_age` whenever the reader's buffer runs dry (a slow feed). I/O errors end
    /// the read.
    pub fn read<R: BufRead>(&mut self, mut r: R, sensor: Option<&str>) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(512);
        loop {
            line.clear();
            let mut too_long = false;
            let mut eof = false;
            let mut drained = false;
            loop {
                let buf = r.fill_buf()?;
                if buf.is_empty() {
                    eof = true;
                    break;
                }
                let (take, done) = match memchr::memchr(b'\n', buf) {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                if line.len() + take <= MAX_LINE {
                    line.extend_from_slice(&buf[..take]);
                } else {
                    too_long = true;
                }
                drained = take == buf.len();
                r.consume(take);
                if done {
                    break;
                }
            }
            if too_long {
                self.bad("too_long", "line longer than 1 MiB", &line);
            } else if !line.is_empty() {
                self.line(&line, sensor).map_err(std::io::Error::other)?;
            }
            if drained && !eof {
                self.flush_if_old().map_err(std::io::Error::other)?;
            }
            if eof {
                return Ok(());
            }
        }
    }

    /// Commits what is batched.
    pub fn flush(&mut self) -> Result<(), RecordError> {
        if self.batch.is_empty() {
            self.batch_started = None;
            return Ok(());
        }
        let c = self.store.commit(&mut self.batch)?;
        self.batch_started = None;
        self.stats.new_records += c.new_records;
        self.stats.updated_records += c.updated_records;
        self.stats.commits += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PdnsStore;

    #[test]
    fn batches_end_on_records_lines_or_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(PdnsStore::open(&dir.path().join("p.redb")).unwrap());
        let line = |i: u32| {
            format!(
                "1600000000.0||c||s||IN||h{}.example.||A||192.0.2.1||60||1\n",
                i % 3
            )
        };
        let run = |opts: IngestOptions| {
            let mut ing = Ingester::new(store.clone(), opts);
            let text: String = (0..12).map(line).collect();
            // A buffer of one line: it runs dry after every line, as a slow feed does.
            let r = std::io::BufReader::with_capacity(line(0).len(), text.as_bytes());
            ing.read(r, None).unwrap();
            ing.stats().commits
        };
        let big = IngestOptions::default();
        assert_eq!(run(big.clone()), 0, "nothing full, nothing old");
        // 3 distinct records: repeated lines do not fill a batch bounded by records...
        let by_records = IngestOptions {
            batch_records: 3,
            ..big.clone()
        };
        assert_eq!(run(by_records), 4);
        // ...lines do; and an old batch is committed at the next line.
        assert_eq!(
            run(IngestOptions {
                batch_lines: 6,
                ..big.clone()
            }),
            2
        );
        let by_age = IngestOptions {
            max_batch_age: Duration::ZERO,
            ..big
        };
        assert_eq!(run(by_age), 12, "one commit per line");
    }
}
