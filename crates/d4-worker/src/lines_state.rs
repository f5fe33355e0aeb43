//! The state of a line stream (types 3, 4, 6, 8 and the line-based extended types): lines
//! cut by the [`LineSplitter`], written to a rotated file and queued in batches. A
//! dnscap stream (4) rotates only before a line starting with `[`.

use std::sync::Arc;
use std::time::SystemTime;

use crate::files::{RotatingFile, Shared};
use crate::lines::{trim_cr, LineEnd, LineSplitter};
use crate::sink::OwnedTarget;
use crate::worker::Ctx;
use crate::WorkerError;

/// Line-based streams: lines to the queues, the bytes to rotated files.
pub(crate) struct LineState {
    split: LineSplitter,
    file: RotatingFile,
    target: OwnedTarget,
    /// Rotate only before a line starting with this byte (dnscap: `[`).
    marker: Option<u8>,
    rotation_pending: bool,
}

impl LineState {
    /// Lines of `target` written to `file`.
    pub fn new(
        shared: &Arc<Shared>,
        file: RotatingFile,
        target: OwnedTarget,
        marker: Option<u8>,
    ) -> LineState {
        LineState {
            split: LineSplitter::new(shared.cfg.max_line),
            file,
            target,
            marker,
            rotation_pending: false,
        }
    }

    fn rotate_if_due(&mut self, now: SystemTime) -> Result<(), WorkerError> {
        if self.file.due(now) {
            if self.marker.is_some() {
                self.rotation_pending = true;
            } else {
                self.file.finish()?;
            }
        }
        Ok(())
    }

    pub fn handle(&mut self, ctx: &mut Ctx<'_>, payload: &[u8]) -> Result<(), WorkerError> {
        self.rotate_if_due(ctx.now)?;
        let now = ctx.now;
        let mut batch = Vec::new();
        let mut err = None;
        let LineState {
            split,
            file,
            marker,
            rotation_pending,
            ..
        } = self;
        let cut_before = split.cut_count();
        split.push(payload, |line, end| {
            if err.is_none() {
                if let Err(e) = emit_line(file, marker, rotation_pending, line, end, now) {
                    err = Some(e);
                    return;
                }
                push_line(&mut batch, line);
            }
        });
        ctx.stats.lines_cut += split.cut_count() - cut_before;
        // Lines written before an error are queued all the same.
        let pushed = ctx.push(&self.target, batch);
        match err {
            Some(e) => Err(e),
            None => pushed,
        }
    }

    pub fn tick(&mut self, now: SystemTime) -> Result<(), WorkerError> {
        self.rotate_if_due(now)
    }

    pub fn flush(&mut self) -> Result<(), WorkerError> {
        self.file.flush()
    }

    pub fn open_file(&self) -> Option<(&std::path::Path, u64)> {
        self.file.open_file()
    }

    /// Bytes of the partial last line (held in memory only).
    pub fn carry(&self) -> u64 {
        self.split.pending() as u64
    }

    /// Closes the files without handling the partial line (after an error).
    pub fn finish_files(&mut self) -> Result<(), WorkerError> {
        self.file.finish()
    }

    pub fn close(&mut self, ctx: &mut Ctx<'_>) -> Result<(), WorkerError> {
        let now = ctx.now;
        let mut batch = Vec::new();
        let mut err = None;
        let LineState {
            split,
            file,
            marker,
            rotation_pending,
            ..
        } = self;
        split.finish(|line, end| {
            if let Err(e) = emit_line(file, marker, rotation_pending, line, end, now) {
                err = Some(e);
                return;
            }
            push_line(&mut batch, line);
        });
        let pushed = ctx.push(&self.target, batch);
        let finished = self.file.finish();
        if let Some(e) = err {
            return Err(e);
        }
        pushed.and(finished)
    }
}

fn push_line(batch: &mut Vec<String>, line: &[u8]) {
    let l = trim_cr(line);
    if !l.is_empty() {
        batch.push(String::from_utf8_lossy(l).into_owned());
    }
}

fn emit_line(
    file: &mut RotatingFile,
    marker: &Option<u8>,
    rotation_pending: &mut bool,
    line: &[u8],
    end: LineEnd,
    now: SystemTime,
) -> Result<(), WorkerError> {
    if *rotation_pending && marker.is_some() && line.first() == marker.as_ref() {
        file.finish()?;
        *rotation_pending = false;
    }
    file.write(line, now)?;
    if end != LineEnd::Eof {
        file.write(b"\n", now)?;
    }
    Ok(())
}
