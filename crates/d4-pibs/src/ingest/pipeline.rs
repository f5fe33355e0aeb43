//! The ingest's three threads after the reading one: the reader hands the backscatter in
//! [`Chunk`]s (bounded channel) to [`aggregate`], which fills a [`Batch`] and hands each
//! full batch to [`commit_batches`] (a rendezvous: at most one batch being committed while
//! the next one fills), which commits them in order. A batch carries the file's progress
//! (the record up to which everything is in it), so the file is marked done only by the
//! commit of its last batch, after every earlier one succeeded.

use std::sync::mpsc;

use crate::aggregate::{Batch, FileProgress, Obs};
use crate::store::{PibsStore, PibsStoreError};

use super::{IngestOptions, IngestStats};

/// Backscatter packets per chunk handed from the reading thread to the aggregating one.
pub(super) const CHUNK_OBS: usize = 4096;
/// Chunks in flight between them (bounds the memory ahead of the aggregation).
pub(super) const CHANNEL_CHUNKS: usize = 16;
/// A stretch of a file's backscatter, in record order, from the reading thread.
#[derive(Debug, Default)]
pub(super) struct Chunk {
    pub obs: Vec<Obs>,
    /// The record number (1-based, in the file) of each packet of `obs`.
    pub recs: Vec<u64>,
    /// Commit points: after the first `.0` packets of `obs`, at record `.1`.
    pub cuts: Vec<(usize, u64)>,
    /// The file's end: records read, and whether the file is done.
    pub end: Option<(u64, bool)>,
}

impl Chunk {
    fn clear(&mut self) {
        self.obs.clear();
        self.recs.clear();
        self.cuts.clear();
        self.end = None;
    }
}

/// The aggregating thread: adds the chunks' packets to a batch and hands it to the
/// committing thread at the reader's cut points (every `batch_records` records), when it
/// holds `batch_buckets` entries, and at the file's end. Returns false when the committing
/// thread stopped (a store error: it tells which).
pub(super) fn aggregate(
    sensor: &str,
    opts: &IngestOptions,
    progress: &(dyn Fn(u64, bool) -> FileProgress + Sync),
    chunks: mpsc::Receiver<Chunk>,
    recycle: mpsc::Sender<Chunk>,
    to_commit: mpsc::SyncSender<Batch>,
    committed: mpsc::Receiver<Batch>,
) -> bool {
    let fresh = |committed: &mpsc::Receiver<Batch>| {
        let mut b = committed.try_recv().unwrap_or_else(|_| Batch::new(""));
        b.clear();
        b.sensor = sensor.to_owned();
        b
    };
    let mut batch = fresh(&committed);
    let hand_over = |batch: &mut Batch, records: u64, done: bool| {
        let mut full = std::mem::replace(batch, fresh(&committed));
        full.file = Some(progress(records, done));
        to_commit.send(full).is_ok()
    };
    for mut chunk in chunks {
        let mut cuts = chunk.cuts.iter().peekable();
        for (i, (o, &rec)) in chunk.obs.iter().zip(&chunk.recs).enumerate() {
            while let Some(&(_, at)) = cuts.next_if(|(before, _)| *before <= i) {
                if !hand_over(&mut batch, at, false) {
                    return false;
                }
            }
            batch.add_obs(o);
            if batch.len() >= opts.batch_buckets && !hand_over(&mut batch, rec, false) {
                return false;
            }
        }
        for &(_, at) in cuts {
            if !hand_over(&mut batch, at, false) {
                return false;
            }
        }
        if let Some((records, done)) = chunk.end {
            if !hand_over(&mut batch, records, done) {
                return false;
            }
        }
        chunk.clear();
        // the reader may be gone (it stopped): the chunk is then dropped
        let _ = recycle.send(chunk);
    }
    true
}

/// The committing thread: commits the batches in order, then hands them back emptied.
pub(super) fn commit_batches<S: PibsStore + ?Sized>(
    store: &S,
    stats: &mut IngestStats,
    batches: mpsc::Receiver<Batch>,
    recycle: mpsc::Sender<Batch>,
) -> Result<(), PibsStoreError> {
    for mut batch in batches {
        let c = store.commit(&batch)?;
        stats.commits += 1;
        stats.new_buckets += c.new_buckets;
        stats.updated_buckets += c.updated_buckets;
        stats.backscatter += batch.packets();
        if let Some(f) = &batch.file {
            tracing::debug!(file = %f.path, records = f.records, done = f.done, buckets = batch.len(), "batch committed");
        }
        batch.clear();
        let _ = recycle.send(batch);
    }
    Ok(())
}
