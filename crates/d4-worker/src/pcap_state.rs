//! The state of a pcap stream (type 1): the [`PcapTracker`] checks the records, files
//! rotate only between records and each starts with the stream's global header; an
//! incomplete last record is cut at close.

use std::time::SystemTime;

use crate::files::RotatingFile;
use crate::pcap::PcapTracker;
use crate::worker::{Ctx, WorkerStats};
use crate::WorkerError;

/// A pcap stream: the record tracker and the rotated file.
pub(crate) struct PcapState {
    pub(crate) tracker: PcapTracker,
    pub(crate) file: RotatingFile,
    /// Length of the open file at the last record boundary.
    pub(crate) boundary: u64,
}

impl PcapState {
    pub(crate) fn handle(&mut self, ctx: &mut Ctx<'_>, mut data: &[u8]) -> Result<(), WorkerError> {
        let now = ctx.now;
        while !data.is_empty() {
            if self.tracker.at_boundary() && self.file.due(now) {
                self.file.finish()?;
            }
            let in_global = self.tracker.in_global_header();
            let step = self.tracker.advance(data)?;
            if !in_global {
                self.open_with_header(now)?;
                self.file.write(&data[..step.consumed], now)?;
            } else if step.header_done {
                self.open_with_header(now)?;
            }
            if self.tracker.at_boundary() {
                self.boundary = self.file.len();
            }
            data = &data[step.consumed..];
        }
        Ok(())
    }

    pub(crate) fn open_with_header(&mut self, now: SystemTime) -> Result<(), WorkerError> {
        if !self.file.is_open() {
            if let Some(h) = self.tracker.global_header() {
                let h = *h;
                self.file.write(&h, now)?;
                self.boundary = self.file.len();
            }
        }
        Ok(())
    }

    pub(crate) fn tick(&mut self, now: SystemTime) -> Result<(), WorkerError> {
        if self.tracker.at_boundary() && self.file.due(now) {
            self.file.finish()?;
        }
        Ok(())
    }

    pub(crate) fn close(&mut self, stats: &mut WorkerStats) -> Result<(), WorkerError> {
        if self.file.is_open() && !self.tracker.at_boundary() {
            stats.pcap_truncated += self.file.len().saturating_sub(self.boundary);
            self.file.truncate(self.boundary)?;
        }
        self.file.finish()
    }
}
