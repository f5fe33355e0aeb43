//! Workers: one per (sensor, type) stream.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use d4_proto::{types, Frame, MetaHeader, MetaHeaderBuilder};
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::delivery::{FileLog, Outbox};
use crate::ext::ExtHandler;
use crate::files::{Compressor, RotatingFile, Shared};
use crate::layout::utc;
use crate::lines::{trim_cr, LineEnd, LineSplitter};
use crate::pcap::PcapTracker;
use crate::pcapng::PcapngTracker;
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

struct PcapState {
    tracker: PcapTracker,
    file: RotatingFile,
    /// Length of the open file at the last record boundary.
    boundary: u64,
}

impl PcapState {
    fn handle(&mut self, ctx: &mut Ctx<'_>, mut data: &[u8]) -> Result<(), WorkerError> {
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

    fn open_with_header(&mut self, now: SystemTime) -> Result<(), WorkerError> {
        if !self.file.is_open() {
            if let Some(h) = self.tracker.global_header() {
                let h = *h;
                self.file.write(&h, now)?;
                self.boundary = self.file.len();
            }
        }
        Ok(())
    }

    fn tick(&mut self, now: SystemTime) -> Result<(), WorkerError> {
        if self.tracker.at_boundary() && self.file.due(now) {
            self.file.finish()?;
        }
        Ok(())
    }

    fn close(&mut self, stats: &mut WorkerStats) -> Result<(), WorkerError> {
        if self.file.is_open() && !self.tracker.at_boundary() {
            stats.pcap_truncated += self.file.len().saturating_sub(self.boundary);
            self.file.truncate(self.boundary)?;
        }
        self.file.finish()
    }
}

/// Bound on a pcapng section preamble (SHB + IDBs) kept to start rotated files.
const MAX_PCAPNG_PREAMBLE: usize = 64 * 1024;

struct PcapngState {
    tracker: PcapngTracker,
    file: RotatingFile,
    /// A rotation happened: the next file starts with the section preamble.
    need_preamble: bool,
    boundary: u64,
}

impl PcapngState {
    fn handle(&mut self, now: SystemTime, mut data: &[u8]) -> Result<(), WorkerError> {
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

    fn tick(&mut self, now: SystemTime) -> Result<(), WorkerError> {
        // Not right after an SHB or IDB: a file cut inside the section preamble would
        // hold interfaces without packets (or a section without its interfaces).
        if self.tracker.at_boundary() && !self.tracker.keeping() && self.file.due(now) {
            self.file.finish()?;
            self.need_preamble = true;
            self.boundary = 0;
        }
        Ok(())
    }

    fn close(&mut self, stats: &mut WorkerStats) -> Result<(), WorkerError> {
        if self.file.is_open() && !self.tracker.at_boundary() {
            stats.pcap_truncated += self.file.len().saturating_sub(self.boundary);
            self.file.truncate(self.boundary)?;
        }
        self.file.finish()
    }
}

enum MetaState {
    Header(MetaHeaderBuilder),
    Data(Box<ExtHandler>),
    Done,
}

enum Kind {
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
    kind: Kind,
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
            types::PCAP => Kind::Pcap(PcapState {
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
                Kind::Lines(LineState::new(&shared, file, target, marker))
            }
            types::PCAPNG => Kind::Pcapng(PcapngState {
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
            types::YAF => Kind::Raw(RotatingFile::new(
                shared.clone(),
                &sid,
                d4_type,
                None,
                ".yaf",
                Some(target),
                out.clone(),
            )),
            types::META_HEADER | types::EXTENDED => Kind::Meta(MetaState::Header(
                MetaHeaderBuilder::with_max(shared.cfg.max_meta),
            )),
            other => return Err(WorkerError::UnsupportedType(other)),
        };
        Ok(Worker {
            shared,
            sensor,
            sid,
            d4_type,
            kind,
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
        match &self.kind {
            Kind::Meta(MetaState::Data(h)) => Some(h.ext_type()),
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
        match &mut self.kind {
            Kind::Lines(l) => l.handle(&mut ctx, payload),
            Kind::Pcap(p) => p.handle(&mut ctx, payload),
            Kind::Pcapng(p) => p.handle(now, payload),
            Kind::Raw(f) => {
                if f.due(now) {
                    f.finish()?;
                }
                if payload.is_empty() {
                    return Ok(());
                }
                f.write(payload, now)
            }
            Kind::Meta(m) => handle_meta(m, &mut ctx, d4_type, payload),
        }
    }

    /// Time-based rotation while no data arrives (call every few seconds).
    pub fn tick(&mut self, now: SystemTime) -> Result<(), WorkerError> {
        match &mut self.kind {
            Kind::Lines(l) => l.tick(now),
            Kind::Pcap(p) => p.tick(now),
            Kind::Pcapng(p) => p.tick(now),
            Kind::Raw(f) => {
                if f.due(now) {
                    f.finish()?;
                }
                Ok(())
            }
            Kind::Meta(MetaState::Data(h)) => h.tick(now),
            Kind::Meta(_) => Ok(()),
        }
    }

    /// The rotating file the stream is being written to and its length so far (what
    /// was written once [`Worker::flush`] returns), if one is open. The server records
    /// it with each journal acknowledgement: after a crash, bytes past it belong to
    /// frames that will be replayed and are cut off.
    pub fn open_file(&self) -> Option<(&std::path::Path, u64)> {
        match &self.kind {
            Kind::Lines(l) => l.open_file(),
            Kind::Pcap(p) => p.file.open_file(),
            Kind::Pcapng(p) => p.file.open_file(),
            Kind::Raw(f) => f.open_file(),
            Kind::Meta(MetaState::Data(h)) => h.open_file(),
            Kind::Meta(_) => None,
        }
    }

    /// How many of the last payload bytes handled are held in memory only (the partial
    /// last line of a line stream), not yet in a file or a queue. A replay after a crash
    /// must feed them again, so the server acknowledges its journal only up to them.
    /// Other stream kinds keep no such bytes (0).
    pub fn carry(&self) -> u64 {
        match &self.kind {
            Kind::Lines(l) => l.carry(),
            Kind::Meta(MetaState::Data(h)) => h.carry(),
            _ => 0,
        }
    }

    /// Pushes buffered file bytes to the OS (not synced).
    pub fn flush(&mut self) -> Result<(), WorkerError> {
        match &mut self.kind {
            Kind::Lines(l) => l.flush(),
            Kind::Pcap(p) => p.file.flush(),
            Kind::Pcapng(p) => p.file.flush(),
            Kind::Raw(f) => f.flush(),
            Kind::Meta(MetaState::Data(h)) => h.flush(),
            Kind::Meta(_) => Ok(()),
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
        match &mut self.kind {
            Kind::Lines(l) => {
                if failed {
                    l.finish_files()
                } else {
                    l.close(&mut ctx)
                }
            }
            Kind::Pcap(p) => p.close(ctx.stats),
            Kind::Pcapng(p) => p.close(ctx.stats),
            Kind::Raw(f) => f.finish(),
            Kind::Meta(m) => {
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

fn handle_meta(
    m: &mut MetaState,
    ctx: &mut Ctx<'_>,
    d4_type: u8,
    payload: &[u8],
) -> Result<(), WorkerError> {
    match m {
        MetaState::Header(b) if d4_type == types::META_HEADER => Ok(b.push(payload)?),
        MetaState::Header(b) => {
            if b.is_empty() {
                return Err(WorkerError::NoMetaHeader);
            }
            let meta = b.finish()?;
            if !ctx.shared.cfg.ext_accepted(meta.ext_type()) {
                return Err(WorkerError::ExtTypeNotAccepted(meta.ext_type().to_owned()));
            }
            save_meta(ctx, &meta, b.raw())?;
            let mut h = Box::new(ExtHandler::new(ctx, &meta));
            h.handle(ctx, payload)?;
            *m = MetaState::Data(h);
            Ok(())
        }
        MetaState::Data(h) if d4_type == types::EXTENDED => h.handle(ctx, payload),
        MetaState::Data(_) | MetaState::Done => Err(WorkerError::WrongType {
            expected: types::EXTENDED,
            got: d4_type,
        }),
    }
}

/// Saves the raw meta header as `<data>/<uuid>/254/Y/M/D/<ext>/<uuid>-Y-M-D-HHMMSS.json`.
fn save_meta(ctx: &mut Ctx<'_>, meta: &MetaHeader, raw: &[u8]) -> Result<PathBuf, WorkerError> {
    let ext = meta.ext_type();
    let t = utc(ctx.now);
    let dir =
        crate::layout::day_dir(&ctx.shared.cfg.data_dir, ctx.sid, types::EXTENDED, t).join(ext);
    let stem = crate::layout::file_stem(ctx.sid, t);
    let p = crate::ext::save_new(&dir, &stem, ".json", raw)?;
    ctx.stats.files_saved += 1;
    Ok(p)
}
