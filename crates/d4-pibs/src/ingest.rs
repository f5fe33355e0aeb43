//! Captures into the backscatter store, each file exactly once: the [`Ingester`] runs the
//! detector over a file, aggregates the backscatter per (victim, bucket) in a [`Batch`] and
//! commits it every `batch_buckets` buckets or `batch_records` records, each time with the
//! file's identity ([`file_id`]) and how many records are in, in the same transaction. A
//! file already done is skipped; one interrupted (crash, `kill -9`) is read again from its
//! start with the detector running over the records already counted (so its state is the
//! same) and aggregation resuming at the first record not yet committed: no bucket is lost
//! or counted twice.
//!
//! Detection state carries over from one file to the next within one ingester, as with
//! `d4 pibs -r a -r b`.
//!
//! The calling thread reads and detects; aggregation and commits run on two scoped threads
//! per file (module `pipeline`), so a commit point is a record boundary handed down with the
//! packets and the file's last commit is the one that marks it done.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::aggregate::{Batch, FileProgress, Obs};

mod pipeline;
use crate::capture::{for_each_record, CaptureError};
use crate::detect::DetectConfig;
use crate::store::{PibsStore, PibsStoreError};
use crate::Analyzer;
use pipeline::Chunk;

/// Bytes hashed from each end of a file for its identity.
const ID_SAMPLE: u64 = 64 * 1024;

/// How an ingester works.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    pub detect: DetectConfig,
    /// Commit when the batch holds this many (victim, bucket) entries.
    pub batch_buckets: usize,
    /// Commit every this many records (packets) of a file (counted from where reading
    /// started, whatever other commits came between).
    pub batch_records: u64,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            detect: DetectConfig::default(),
            batch_buckets: 200_000,
            batch_records: 10_000_000,
        }
    }
}

/// Counters of an ingester's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    /// Files read (to the end or to a malformed record).
    pub files: u64,
    /// Files skipped: already in the store.
    pub files_skipped: u64,
    /// Files picked up where an interrupted run left them.
    pub files_resumed: u64,
    /// Files that end in a malformed record (what came before is in).
    pub files_malformed: u64,
    pub records: u64,
    pub backscatter: u64,
    pub new_buckets: u64,
    pub updated_buckets: u64,
    pub commits: u64,
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Read; `resumed_at` records were in already (0: a new file).
    Ingested {
        records: u64,
        backscatter: u64,
        resumed_at: u64,
        malformed: Option<String>,
    },
    /// Already in the store.
    AlreadyDone,
}

/// An ingest error: the file could not be read (not a format error: those are
/// [`FileOutcome::Ingested::malformed`]), or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Store(#[from] PibsStoreError),
}

/// A file's identity: SHA-256 of its length and its first and last 64 KiB (a capture
/// holds timestamps, so two different captures do not share them). Moving or renaming
/// the file keeps it.
pub fn file_id<R: Read + Seek>(f: &mut R) -> io::Result<[u8; 32]> {
    let len = f.seek(SeekFrom::End(0))?;
    let mut h = Sha256::new();
    h.update(b"d4-pibs file v1\0");
    h.update(len.to_le_bytes());
    let mut buf = vec![0u8; ID_SAMPLE as usize];
    f.seek(SeekFrom::Start(0))?;
    let n = read_full(f, &mut buf)?;
    h.update(&buf[..n]);
    if len > ID_SAMPLE {
        f.seek(SeekFrom::Start(
            len.saturating_sub(ID_SAMPLE).max(ID_SAMPLE),
        ))?;
        let n = read_full(f, &mut buf)?;
        h.update(&buf[..n]);
    }
    f.seek(SeekFrom::Start(0))?;
    Ok(h.finalize().into())
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The sensor of a file in the d4 server's layout
/// (`<data-dir>/<sensor uuid>/<type>/<YYYY>/<MM>/<DD>/...`): the UUID-shaped path component
/// followed by a type number.
pub fn sensor_from_path(path: &Path) -> Option<String> {
    let parts: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.windows(2).rev().find_map(|w| {
        let is_type =
            !w[1].is_empty() && w[1].len() <= 3 && w[1].bytes().all(|b| b.is_ascii_digit());
        (is_uuid(&w[0]) && is_type).then(|| w[0].clone())
    })
}

fn is_uuid(s: &str) -> bool {
    let hex = |b: u8| b.is_ascii_hexdigit();
    match s.len() {
        32 => s.bytes().all(hex),
        36 => s.bytes().enumerate().all(|(i, b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                hex(b)
            }
        }),
        _ => false,
    }
}

/// Reads captures into a store.
pub struct Ingester<S: PibsStore + ?Sized> {
    store: Arc<S>,
    opts: IngestOptions,
    analyzer: Analyzer,
    stats: IngestStats,
}

impl<S: PibsStore + ?Sized> Ingester<S> {
    pub fn new(store: Arc<S>, opts: IngestOptions) -> Ingester<S> {
        Ingester {
            store,
            analyzer: Analyzer::new(opts.detect),
            opts: IngestOptions {
                batch_buckets: opts.batch_buckets.max(1),
                batch_records: opts.batch_records.clamp(1, u64::from(u32::MAX)),
                ..opts
            },
            stats: IngestStats::default(),
        }
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// The detector's counters and state size.
    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Ingests the capture at `path` (pcap or pcapng, plain or gzip) as seen by `sensor`.
    pub fn ingest_path(&mut self, path: &Path, sensor: &str) -> Result<FileOutcome, IngestError> {
        let io_err = |source| IngestError::Io {
            path: path.to_owned(),
            source,
        };
        let mut f = File::open(path).map_err(io_err)?;
        let id = file_id(&mut f).map_err(io_err)?;
        self.ingest_reader(id, &path.display().to_string(), sensor, f)
    }

    /// Ingests a capture whose identity is `id` (`label` names it in the store and errors).
    pub fn ingest_reader<R: Read + Send>(
        &mut self,
        id: [u8; 32],
        label: &str,
        sensor: &str,
        input: R,
    ) -> Result<FileOutcome, IngestError> {
        let state = self.store.file(&id)?;
        if state.as_ref().is_some_and(|s| s.done) {
            self.stats.files_skipped += 1;
            return Ok(FileOutcome::AlreadyDone);
        }
        let skip = state.map(|s| s.records).unwrap_or(0);
        if skip > 0 {
            self.stats.files_resumed += 1;
        }
        let progress = |records: u64, done: bool| FileProgress {
            id,
            path: label.to_owned(),
            sensor: sensor.to_owned(),
            records,
            done,
        };
        let Ingester {
            store,
            opts,
            analyzer,
            stats,
        } = self;
        let store: &S = store;
        let opts = *opts;
        let mut n = 0u64;
        let mut backscatter = 0u64;
        let mut stopped = false;
        let (result, worker) = std::thread::scope(|scope| {
            let (to_commit, batches) = mpsc::sync_channel::<Batch>(0);
            let (recycle_batch, committed) = mpsc::channel::<Batch>();
            let committer =
                scope.spawn(|| pipeline::commit_batches(store, stats, batches, recycle_batch));
            let (to_worker, from_reader) = mpsc::sync_channel::<Chunk>(pipeline::CHANNEL_CHUNKS);
            let (recycle, recycled) = mpsc::channel::<Chunk>();
            let aggregator = scope.spawn(|| {
                pipeline::aggregate(
                    sensor,
                    &opts,
                    &progress,
                    from_reader,
                    recycle,
                    to_commit,
                    committed,
                )
            });
            let mut chunk = Chunk::default();
            let mut since_cut = 0u64;
            let send = |chunk: &mut Chunk| {
                let empty = recycled.try_recv().unwrap_or_default();
                let full = std::mem::replace(chunk, empty);
                to_worker.send(full).is_ok()
            };
            let result = for_each_record(input, |rec| {
                n += 1;
                let b = analyzer.process(rec);
                if n <= skip {
                    return Ok(());
                }
                if let Some(b) = b {
                    chunk.obs.push(Obs::new(rec.ts_sec, &b));
                    chunk.recs.push(n);
                    backscatter += 1;
                }
                since_cut += 1;
                if since_cut >= opts.batch_records {
                    since_cut = 0;
                    chunk.cuts.push((chunk.obs.len(), n));
                }
                if (chunk.obs.len() >= pipeline::CHUNK_OBS
                    || chunk.cuts.len() >= pipeline::CHUNK_OBS)
                    && !send(&mut chunk)
                {
                    // the other threads stopped on a store error: it is returned below
                    stopped = true;
                    return Err(io::Error::other("store commit failed"));
                }
                Ok(())
            });
            if !stopped {
                // What was read is committed: the file is done unless reading failed
                // (then a later run resumes after it).
                let done = !matches!(result, Err(CaptureError::Io(_)));
                chunk.end = Some((n, done));
                send(&mut chunk);
            }
            drop(to_worker);
            let panicked = || PibsStoreError::Db("ingest thread panicked".into());
            let aggregated = aggregator.join();
            let worker = committer.join().unwrap_or_else(|_| Err(panicked()));
            let worker = match aggregated {
                Ok(_) => worker,
                Err(_) => worker.and(Err(panicked())),
            };
            (result, worker)
        });
        worker?;
        let read = n.saturating_sub(skip);
        stats.records += read;
        let malformed = match result {
            Ok(_) => None,
            Err(CaptureError::Io(e)) => {
                return Err(IngestError::Io {
                    path: PathBuf::from(label),
                    source: e,
                });
            }
            Err(e) => Some(e.to_string()),
        };
        stats.files += 1;
        if malformed.is_some() {
            stats.files_malformed += 1;
        }
        Ok(FileOutcome::Ingested {
            records: read,
            backscatter,
            resumed_at: skip,
            malformed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_from_the_server_layout() {
        let p = Path::new("/d/15dde53e-50b5-4bbb-a761-17210179b4da/1/2026/12/07/x.pcap.gz");
        assert_eq!(
            sensor_from_path(p).as_deref(),
            Some("15dde53e-50b5-4bbb-a761-17210179b4da")
        );
        let p = Path::new("d4-data/15dde53e50b54bbba76117210179b4da/1/2026/x.pcap");
        assert_eq!(
            sensor_from_path(p).as_deref(),
            Some("15dde53e50b54bbba76117210179b4da")
        );
        assert_eq!(sensor_from_path(Path::new("/tmp/capture.pcap")), None);
        assert_eq!(sensor_from_path(Path::new("/tmp/not-a-uuid/1/x")), None);
    }

    #[test]
    fn identity_depends_on_content_not_name() {
        let a = file_id(&mut io::Cursor::new(vec![1u8; 200_000])).ok();
        let mut v = vec![1u8; 200_000];
        let b = file_id(&mut io::Cursor::new(v.clone())).ok();
        v[199_999] = 2;
        let c = file_id(&mut io::Cursor::new(v)).ok();
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
