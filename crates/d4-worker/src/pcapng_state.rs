//! The state of a pcapng stream (type 5): the [`PcapngTracker`] checks the blocks, files
//! rotate only between blocks (never inside the section preamble) and each rotated file
//! starts with the section header and interface blocks.

use std::time::SystemTime;

use crate::files::RotatingFile;
use crate::pcapng::PcapngTracker;
use crate::worker::WorkerStats;
use crate::WorkerError;

/// Bound on a pcapng section preamble (SHB + IDBs) kept to start rotated files.
pub(crate) const MAX_PCAPNG_PREAMBLE: usize = 64 * 1024;

/// A pcapng stream: the block tracker and the rotated file.
pub(crate) struct PcapngState {
    pub(crate) tracker: PcapngTracker,
    pub(crate) file: RotatingFile,
    /// A rotation happened: the next file starts with the section preamble.
    pub(crate) need_preamble: bool,
    pub(crate) boundary: u64,
}

impl PcapngState {
    pub(crate) fn handle(&mut self, now: SystemTime, mut data: &[u8]) -> Result<(), WorkerError> {
        while !data.is_empty() {
            self.tick(now)?;
            let step = self.tracker.advance(data)?;
            let bytes = match &step.head {
                Some(h) => &h[..],
                None if step.body => &data[..step.consumed],
                None => &[][..],
            };
            if !bytes.is_empty() {
                if !self.file.is_open() && self.need_preamble && !step.new_section {
                    // A rotated file starts with the section's SHB and IDBs (without
                    // the head just given out when that block is itself an IDB).
                    let pre = self.tracker.preamble();
                    let upto = if self.tracker.keeping() {
                        pre.len().saturating_sub(bytes.len())
                    } else {
                        pre.len()
                    };
                    let pre = pre[..upto].to_vec();
                    self.file.write(&pre, now)?;
                }
                self.need_preamble = false;
                self.file.write(bytes, now)?;
            }
            if self.tracker.at_boundary() {
                self.boundary = self.file.len();
            }
            data = &data[step.consumed..];
        }
        Ok(())
    }

    pub(crate) fn tick(&mut self, now: SystemTime) -> Result<(), WorkerError> {
        // Not right after an SHB or IDB: a file cut inside the section preamble would
        // hold interfaces without packets (or a section without its interfaces).
        if self.tracker.at_boundary() && !self.tracker.keeping() && self.file.due(now) {
            self.file.finish()?;
            self.need_preamble = true;
            self.boundary = 0;
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
