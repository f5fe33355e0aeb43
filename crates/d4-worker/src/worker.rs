//! Workers: one per (sensor, type) stream. [`WorkerSet`] holds what the workers of one
//! server share; [`Worker`] dispatches each payload to the state of its stream kind (one
//! module each: `lines_state`, `pcap_state`, `pcapng_state`, `meta_state`, and a plain
//! rotated file for raw streams).

use std::sync::Arc;
use std::time::SystemTime;

use d4_proto::{types, Frame, MetaHeaderBuilder};
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::delivery::{FileLog, Outbox};
use crate::files::{Compressor, RotatingFile, Shared};
use crate::lines_state::LineState;
use crate::meta_state::{handle_meta, save_meta, MetaState};
use crate::pcap::PcapTracker;
use crate::pcap_state::PcapState;
use crate::pcapng::PcapngTracker;
use crate::pcapng_state::{PcapngState, MAX_PCAPNG_PREAMBLE};
use crate::sink::{Outgoing, OwnedTarget, QueueSink};
use crate::WorkerError;

/// The workers of one server: configuration, queue sink and the gzip thread they share.
#[derive(Clone)]
pub struct WorkerSet {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WorkerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerSet")
            .field("cfg", &self.shared.cfg)
            .finish()
    }
}

impl WorkerSet {
    /// Makes the data dir absolute (queued paths are absolute), creates it and starts the
    /// gzip thread.
    pub fn new(mut cfg: WorkerConfig, sink: Arc<dyn QueueSink>) -> Result<WorkerSet, WorkerError> {
        if cfg.data_dir.is_relative() {
            let cwd = std::env::current_dir().map_err(|e| WorkerError::io(&cfg.data_dir, e))?;
            cfg.data_dir = cwd.join(&cfg.data_dir);
        }
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| WorkerError::io(&cfg.data_dir, e))?;
        let compressor = Compressor::new(cfg.gzip, cfg.gzip_in_background, sink.clone())
            .map_err(|e| WorkerError::io(&cfg.data_dir, e))?;
        Ok(WorkerSet {
            shared: Arc::new(Shared {
                cfg,
                sink,
                compressor,
            }),
        })
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.shared.cfg
    }

    /// A worker for the stream of `sensor` and `d4_type`. For a type-2/254 connection ask
    /// for type 2 (or 254) once: the same worker takes the type-2 frames then the type-254
    /// frames.
    /// Where the workers' queue entries go.
    pub fn sink(&self) -> &Arc<dyn QueueSink> {
        &self.shared.sink
    }

    pub fn worker(&self, sensor: Uuid, d4_type: u8) -> Result<Worker, WorkerError> {
        Worker::new(self.shared.clone(), sensor, d4_type)
    }

    /// Finishes the files a previous run left unfinished (after a crash): stray
    /// `.gz.tmp` files are removed, an original whose `.gz` is complete is removed (and
    /// the `.gz` queued for types 1/5/7), an incomplete last pcap record is cut off, and
    /// every other rotated file is gzipped and queued like a normal rotation. Call it at
    /// start-up **before** any worker runs (it would take their open files too).
    pub fn recover(&self) -> Result<crate::RecoveryReport, WorkerError> {
        crate::recover::recover(&self.shared)
    }

    /// Waits until every rotated file handed to the gzip thread so far is compressed and
    /// queued.
    pub fn flush(&self) {
        self.shared.compressor.flush();
    }

    /// [`WorkerSet::flush`] for at most `within`; false when the gzip work was not done
    /// by then.
    pub fn flush_within(&self, within: std::time::Duration) -> bool {
        self.shared.compressor.flush_within(within)
    }

    /// Makes [`WorkerSet::shutdown`] quick: the gzip under way is abandoned and the files
    /// still waiting for gzip are left as they are, for [`WorkerSet::recover`] at the next
    /// start to gzip and queue (nothing is lost or queued twice).
    pub fn stop_compression(&self) {
        self.shared.compressor.stop_now();
    }

    /// Finishes the pending gzip work and stops the gzip thread (files finished after
    /// this are compressed inline). Call after closing every worker.
    pub fn shutdown(&self) {
        self.shared.compressor.shutdown();
    }
}

/// Counters of one worker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    pub frames: u64,
    pub bytes: u64,
    /// Entries handed to the queue sink.
    pub queued: u64,
    /// Lines cut at the line bound.
    pub lines_cut: u64,
    /// Lines refused by an extended type handler (bad JSON, bad base64, overlong).
    pub invalid_lines: u64,
    /// Files saved outside rotation (certificates, filewatcher files, JSON files).
    pub files_saved: u64,
    /// Bytes of an incomplete last pcap record dropped at close.
    pub pcap_truncated: u64,
}

/// What the state of a stream needs to handle one payload: the shared configuration and
/// gzip thread, the worker's outbox (queue entries and finished files), the sensor, the
/// clock of this call and the worker's counters.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    pub out: &'a Outbox,
    pub sensor: Uuid,
    pub sid: &'a str,
    pub now: SystemTime,
    pub stats: &'a mut WorkerStats,
}

impl Ctx<'_> {
    pub fn push(&mut self, target: &OwnedTarget, entries: Vec<String>) -> Result<(), WorkerError> {
        if entries.is_empty() {
            return Ok(());
        }
        let n = entries.len() as u64;
        self.out.push(self.shared, target, entries)?;
        self.stats.queued += n;
        Ok(())
    }
}

/// The state of a worker, by stream kind.
enum StreamState {
    Lines(LineState),
    Pcap(PcapState),
    Pcapng(PcapngState),
    Raw(RotatingFile),
    Meta(MetaState),
}

/// The worker of one (sensor, type) stream. Feed it the accepted frames in order
/// ([`Worker::handle`]), call [`Worker::tick`] now and then (time-based rotation while
/// the sensor is silent) and [`Worker::close`] at the end of the stream.
pub struct Worker {
    shared: Arc<Shared>,
    sensor: Uuid,
    sid: String,
    d4_type: u8,
    state: StreamState,
    failed: Option<String>,
    stats: WorkerStats,
    out: Outbox,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("sensor", &self.sid)
            .field("type", &self.d4_type)
            .field("failed", &self.failed)
            .field("stats", &self.stats)
            .finish()
    }
}

/// File name suffix of each line type.
fn line_suffix(t: u8) -> Option<&'static str> {
    Some(match t {
        types::GENERIC_LOG => ".syslog.txt",
        types::DNSCAP => ".dnscap.txt",
        types::NDJSON => ".ndjson",
        types::PASSIVEDNS => ".passivedns.txt",
        _ => return None,
    })
}

impl Worker {
    fn new(shared: Arc<Shared>, sensor: Uuid, d4_type: u8) -> Result<Worker, WorkerError> {
        let sid = d4_proto::sensor_id(&sensor);
        let out = Outbox::default();
        let target = OwnedTarget {
            d4_type,
            ext_type: None,
            sensor,
        };
        let kind = match d4_type {
            types::PCAP => StreamState::Pcap(PcapState {
                tracker: PcapTracker::new(shared.cfg.max_pcap_record),
                file: RotatingFile::new(
                    shared.clone(),
                    &sid,
                    d4_type,
                    None,
                    ".cap",
                    Some(target),
                    out.clone(),
                ),
                boundary: 0,
            }),
            types::GENERIC_LOG | types::DNSCAP | types::NDJSON | types::PASSIVEDNS => {
                let marker = (d4_type == types::DNSCAP).then_some(b'[');
                let suffix = line_suffix(d4_type).unwrap_or(".txt");
                let file = RotatingFile::new(
                    shared.clone(),
                    &sid,
                    d4_type,
                    None,
                    suffix,
                    None,
                    out.clone(),
                );
                StreamState::Lines(LineState::new(&shared, file, target, marker))
            }
            types::PCAPNG => StreamState::Pcapng(PcapngState {
                tracker: PcapngTracker::new(
                    shared.cfg.max_pcap_record.saturating_add(4096),
                    MAX_PCAPNG_PREAMBLE,
                ),
                file: RotatingFile::new(
                    shared.clone(),
                    &sid,
                    d4_type,
                    None,
                    ".pcapng",
                    Some(target),
                    out.clone(),
                ),
                need_preamble: false,
                boundary: 0,
            }),
            types::YAF => StreamState::Raw(RotatingFile::new(
                shared.clone(),
                &sid,
                d4_type,
                None,
                ".yaf",
                Some(target),
                out.clone(),
            )),
            types::META_HEADER | types::EXTENDED => StreamState::Meta(MetaState::Header(
                MetaHeaderBuilder::with_max(shared.cfg.max_meta),
            )),
            other => return Err(WorkerError::UnsupportedType(other)),
        };
        Ok(Worker {
            shared,
            sensor,
            sid,
            d4_type,
            state: kind,
            failed: None,
            stats: WorkerStats::default(),
            out,
        })
    }

    pub fn sensor(&self) -> Uuid {
        self.sensor
    }

    /// The type this worker was made for (2 for a meta-header/254 stream).
    pub fn d4_type(&self) -> u8 {
        self.d4_type
    }

    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// The extended type, once the meta header is complete (type-2/254 workers).
    pub fn ext_type(&self) -> Option<&str> {
        match &self.state {
            StreamState::Meta(MetaState::Data(h)) => Some(h.ext_type()),
            _ => None,
        }
    }

    /// Holds the output for the caller's durability points (see the `delivery` module):
    /// queue entries wait for [`Worker::take_entries`], finished files for
    /// [`Worker::release_files`], and `log` is told before each rotating file is created.
    pub fn hold_delivery(&mut self, log: Option<Arc<dyn FileLog>>) {
        self.out.hold(log);
    }

    /// The queue entries produced since the last call (held delivery), in order.
    pub fn take_entries(&mut self) -> Vec<Outgoing> {
        self.out.take_entries()
    }

    /// Whether finished files wait for [`Worker::release_files`] (a rotation happened).
    pub fn holds_files(&self) -> bool {
        self.out.holds_files()
    }

    /// Hands the finished files held so far to the gzip thread (which queues their paths).
    pub fn release_files(&mut self) {
        self.out.release_files(&self.shared);
    }

    /// The error that stopped this worker, if any.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Handles one accepted frame (its payload, in stream order).
    pub fn handle(&mut self, frame: &Frame, now: SystemTime) -> Result<(), WorkerError> {
        self.handle_payload(frame.header.d4_type, &frame.payload, now)
    }

    /// [`Worker::handle`] for a frame given as its type and payload.
    pub fn handle_payload(
        &mut self,
        d4_type: u8,
        payload: &[u8],
        now: SystemTime,
    ) -> Result<(), WorkerError> {
        if let Some(f) = &self.failed {
            return Err(WorkerError::Failed(f.clone()));
        }
        self.stats.frames += 1;
        self.stats.bytes += payload.len() as u64;
        let r = self.dispatch(d4_type, payload, now);
        if let Err(e) = &r {
            if !matches!(e, WorkerError::Sink(_)) {
                tracing::warn!(sensor = %self.sid, d4_type, error = %e, "worker stopped");
                self.failed = Some(e.to_string());
            }
        }
        r
    }

    fn dispatch(
        &mut self,
        d4_type: u8,
        payload: &[u8],
        now: SystemTime,
    ) -> Result<(), WorkerError> {
        let expected = self.d4_type;
        let meta_stream = matches!(expected, types::META_HEADER | types::EXTENDED);
        if d4_type != expected
            && !(meta_stream && matches!(d4_type, types::META_HEADER | types::EXTENDED))
        {
            return Err(WorkerError::WrongType {
                expected,
                got: d4_type,
            });
        }
        let mut ctx = Ctx {
            shared: &self.shared,
            out: &self.out,
            sensor: self.sensor,
            sid: &self.sid,
            now,
            stats: &mut self.stats,
        };
        match &mut self.state {
            StreamState::Lines(l) => l.handle(&mut ctx, payload),
            StreamState::Pcap(p) => p.handle(&mut ctx, payload),
            StreamState::Pcapng(p) => p.handle(now, payload),
            StreamState::Raw(f) => {
                if f.due(now) {
                    f.finish()?;
                }
                if payload.is_empty() {
                    return Ok(());
                }
                f.write(payload, now)
            }
            StreamState::Meta(m) => handle_meta(m, &mut ctx, d4_type, payload),
        }
    }

    /// Time-based rotation while no data arrives (call every few seconds).
    pub fn tick(&mut self, now: SystemTime) -> Result<(), WorkerError> {
        match &mut self.state {
            StreamState::Lines(l) => l.tick(now),
            StreamState::Pcap(p) => p.tick(now),
            StreamState::Pcapng(p) => p.tick(now),
            StreamState::Raw(f) => {
                if f.due(now) {
                    f.finish()?;
                }
                Ok(())
            }
            StreamState::Meta(MetaState::Data(h)) => h.tick(now),
            StreamState::Meta(_) => Ok(()),
        }
    }

    /// The rotating file the stream is being written to and its length so far (what
    /// was written once [`Worker::flush`] returns), if one is open. The server records
    /// it with each journal acknowledgement: after a crash, bytes past it belong to
    /// frames that will be replayed and are cut off.
    pub fn open_file(&self) -> Option<(&std::path::Path, u64)> {
        match &self.state {
            StreamState::Lines(l) => l.open_file(),
            StreamState::Pcap(p) => p.file.open_file(),
            StreamState::Pcapng(p) => p.file.open_file(),
            StreamState::Raw(f) => f.open_file(),
            StreamState::Meta(MetaState::Data(h)) => h.open_file(),
            StreamState::Meta(_) => None,
        }
    }

    /// How many of the last payload bytes handled are held in memory only (the partial
    /// last line of a line stream), not yet in a file or a queue. A replay after a crash
    /// must feed them again, so the server acknowledges its journal only up to them.
    /// Other stream kinds keep no such bytes (0).
    pub fn carry(&self) -> u64 {
        match &self.state {
            StreamState::Lines(l) => l.carry(),
            StreamState::Meta(MetaState::Data(h)) => h.carry(),
            _ => 0,
        }
    }

    /// Pushes buffered file bytes to the OS (not synced).
    pub fn flush(&mut self) -> Result<(), WorkerError> {
        match &mut self.state {
            StreamState::Lines(l) => l.flush(),
            StreamState::Pcap(p) => p.file.flush(),
            StreamState::Pcapng(p) => p.file.flush(),
            StreamState::Raw(f) => f.flush(),
            StreamState::Meta(MetaState::Data(h)) => h.flush(),
            StreamState::Meta(_) => Ok(()),
        }
    }

    /// Ends the stream: the partial last line is written once and queued, an incomplete
    /// last pcap record is dropped, files are closed, gzipped and queued. Call once.
    pub fn close(&mut self, now: SystemTime) -> Result<(), WorkerError> {
        let mut ctx = Ctx {
            shared: &self.shared,
            out: &self.out,
            sensor: self.sensor,
            sid: &self.sid,
            now,
            stats: &mut self.stats,
        };
        let failed = self.failed.is_some();
        match &mut self.state {
            StreamState::Lines(l) => {
                if failed {
                    l.finish_files()
                } else {
                    l.close(&mut ctx)
                }
            }
            StreamState::Pcap(p) => p.close(ctx.stats),
            StreamState::Pcapng(p) => p.close(ctx.stats),
            StreamState::Raw(f) => f.finish(),
            StreamState::Meta(m) => {
                let r = match std::mem::replace(m, MetaState::Done) {
                    MetaState::Header(b) if !failed && !b.is_empty() => {
                        // A meta header without data: keep it.
                        // (not when its extended type is refused: never saved)
                        match b.finish() {
                            Ok(meta) if ctx.shared.cfg.ext_accepted(meta.ext_type()) => {
                                save_meta(&mut ctx, &meta, b.raw()).map(|_| ())
                            }
                            Ok(meta) => {
                                Err(WorkerError::ExtTypeNotAccepted(meta.ext_type().to_owned()))
                            }
                            Err(_) => Ok(()),
                        }
                    }
                    MetaState::Data(mut h) => h.close(&mut ctx, failed),
                    _ => Ok(()),
                };
                r
            }
        }
    }
}
