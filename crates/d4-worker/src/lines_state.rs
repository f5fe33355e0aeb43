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
        let cut_before = self.split.cut_count();
        let (split, mut emit) = self.emitter(ctx.now);
        split.push(payload, |line, end| emit.line(line, end));
        let Emit { batch, err, .. } = emit;
        ctx.stats.lines_cut += self.split.cut_count() - cut_before;
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

    /// The splitter and what its lines go through.
    fn emitter(&mut self, now: SystemTime) -> (&mut LineSplitter, Emit<'_>) {
        let LineState {
            split,
            file,
            marker,
            rotation_pending,
            ..
        } = self;
        let emit = Emit {
            file,
            marker: *marker,
            rotation_pending,
            now,
            batch: Vec::new(),
            err: None,
        };
        (split, emit)
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
        let (split, mut emit) = self.emitter(ctx.now);
        split.finish(|line, end| emit.line(line, end));
        let Emit { batch, err, .. } = emit;
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

/// Writes the splitter's lines to the file and collects them for the queues; after an
/// error the following lines are dropped.
struct Emit<'a> {
    file: &'a mut RotatingFile,
    marker: Option<u8>,
    rotation_pending: &'a mut bool,
    now: SystemTime,
    batch: Vec<String>,
    err: Option<WorkerError>,
}

impl Emit<'_> {
    fn line(&mut self, line: &[u8], end: LineEnd) {
        if self.err.is_some() {
            return;
        }
        match emit_line(
            self.file,
            &self.marker,
            self.rotation_pending,
            line,
            end,
            self.now,
        ) {
            Ok(()) => push_line(&mut self.batch, line),
            Err(e) => self.err = Some(e),
        }
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
