//! One sensor connection, in the style of mini-redis: a [`Connection`] owns the stream, the
//! read buffer, the sans-IO [`Session`] and what the session holds (its share of the
//! pre-authentication bounds, its store lease, its pipeline). Its `run` reads what the
//! socket has ready, feeds the session and sends the accepted frames to the pipeline as
//! one batch, waiting while the sensor's backlog is over its limit, until the stream ends,
//! the server stops or the session is refused.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use d4_proto::Frame;
use d4_store::{LeaseClaim, PartnerMeta};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::OnLimit;
use crate::listener::on_refusal;
use crate::now;
use crate::pipeline::Pipeline;
use crate::preauth::Ticket;
use crate::server::{Control, Server};
use crate::session::{Gate, MetaInfo, Reason, Refusal, Session};

/// Largest read (one batch) for an authenticated sensor.
const READ_CHUNK: usize = 256 * 1024;
/// Smallest read size for an authenticated sensor.
const MIN_CHUNK: usize = 16 * 1024;
/// At a stop, an authenticated sensor's connection is closed for writing and read on
/// until the sensor closes it, it sends nothing for [`DRAIN_IDLE`], or [`DRAIN_MAX`]
/// passed: what it had written before it saw the close is journaled, not lost in the
/// socket (a forwarding server stops writing when the partner closes).
const DRAIN_IDLE: Duration = Duration::from_millis(500);
const DRAIN_MAX: Duration = Duration::from_secs(5);

/// A sensor connection from its first byte to its end.
pub(crate) struct Connection<S> {
    server: Arc<Server>,
    stream: S,
    buf: BytesMut,
    session: Session,
    /// Kick and "the store changed, re-check", set by the server's events task.
    ctl: Arc<Control>,
    /// Its share of the pre-authentication bounds, given back at authentication.
    ticket: Ticket,
    /// The session's journal and worker, started at its first accepted frames.
    pipe: Option<Pipeline>,
    /// The (uuid, type) key the store lease was claimed under: released under the same.
    lease: Option<(Uuid, u8)>,
    /// The frames accepted from the last read (one batch for the pipeline).
    frames: Vec<Frame>,
    /// Read size of an authenticated sensor: grows up to [`READ_CHUNK`] while reads fill
    /// it and shrinks again for a quiet sensor, so that thousands of idle sensors do not
    /// each hold a big buffer.
    chunk: usize,
    /// When the connection was accepted (the header timeout runs from there).
    start: Instant,
    last_read: Instant,
    stop: watch::Receiver<bool>,
    /// The server stops: reading on until this deadline (see [`DRAIN_MAX`]).
    draining: Option<Instant>,
}

/// What one read gave.
enum Read {
    /// Bytes were read into the buffer.
    Data,
    /// Nothing read (the store changed and the session was re-checked): read again.
    Again,
    /// End of stream, read error or server stop.
    End,
}

/// A deadline that never comes in practice (a day away).
fn far() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// The refusal of `session` for `reason`.
fn refused(session: &Session, reason: Reason) -> Refusal {
    Refusal {
        reason,
        uuid: session.uuid(),
        authenticated: session.authenticated(),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Connection<S> {
    /// Serves the connection of `peer` until it ends, then gives back everything it
    /// holds (gate slot, store lease, pipeline).
    pub(crate) async fn serve(
        server: &Arc<Server>,
        stream: S,
        peer: IpAddr,
        ticket: Ticket,
        start: Instant,
        stop: watch::Receiver<bool>,
    ) {
        let id = Uuid::new_v4();
        let mut session = Session::new(server.scfg.clone(), id, peer);
        if let Err(r) = session.on_connect(&*server.gate) {
            on_refusal(server, &r, peer, id);
            return;
        }
        let ctl = Arc::new(Control::default());
        if let Ok(mut c) = server.conns.lock() {
            c.insert(id, ctl.clone());
        }
        let mut conn = Connection {
            server: server.clone(),
            stream,
            buf: BytesMut::new(),
            session,
            ctl,
            ticket,
            pipe: None,
            lease: None,
            frames: Vec::new(),
            chunk: MIN_CHUNK,
            start,
            last_read: Instant::now(),
            stop,
            draining: None,
        };
        let outcome = conn.run().await;
        if let Err(r) = &outcome {
            on_refusal(server, r, peer, id);
        }
        // the store lease goes before the socket closes: a sensor that reconnects as soon
        // as it sees the close is not refused as its own duplicate
        conn.release_lease(id).await;
        conn.end(peer, id);
    }

    /// Reads, feeds the session and sends accepted frames until the stream ends (`Ok`)
    /// or the session is refused.
    async fn run(&mut self) -> Result<(), Refusal> {
        loop {
            if !self.wait_for_backlog().await? {
                return Ok(());
            }
            match self.read().await? {
                Read::Data => self.feed().await?,
                Read::Again => {}
                Read::End => return Ok(()),
            }
        }
    }

    /// Backpressure: waits while the sensor's pending entries are over its limit.
    /// Returns false when the server stops.
    async fn wait_for_backlog(&mut self) -> Result<bool, Refusal> {
        let Some(p) = self.pipe.as_ref() else {
            return Ok(true);
        };
        let backlog = p.backlog().clone();
        let cfg = &self.server.cfg;
        loop {
            if let Some(e) = backlog.take_error() {
                return Err(refused(&self.session, Reason::Worker(e)));
            }
            let limit = self
                .session
                .uuid()
                .and_then(|u| self.server.gate.stream_limit(&u))
                .unwrap_or(cfg.stream_limit)
                .max(1);
            if backlog.frames() < limit && backlog.bytes() < cfg.max_pending_bytes.max(1) {
                return Ok(true);
            }
            if cfg.on_limit == OnLimit::Drop {
                return Err(refused(&self.session, Reason::StreamLimit(limit)));
            }
            let drain_end = self.draining.unwrap_or_else(far);
            tokio::select! {
                _ = backlog.changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = self.ctl.notify.notified() => {
                    if self.ctl.kicked.load(Ordering::Acquire) {
                        return Err(refused(&self.session, Reason::Kicked));
                    }
                    recheck(&self.server, &mut self.session)?;
                }
                _ = self.stop.changed(), if self.draining.is_none() => return Ok(false),
                _ = tokio::time::sleep_until(drain_end) => return Ok(false),
            }
            self.last_read = Instant::now();
        }
    }

    /// Reads what the stream has ready into the buffer, before the header or idle
    /// deadline. A kick or a store change interrupts the wait.
    async fn read(&mut self) -> Result<Read, Refusal> {
        let cfg = &self.server.cfg;
        let header_timeout = Duration::from_secs(cfg.header_timeout_secs);
        let idle = Duration::from_secs(cfg.idle_timeout_secs);
        let deadline = if !self.session.authenticated() {
            self.start + header_timeout
        } else if cfg.idle_timeout_secs > 0 {
            self.last_read + idle
        } else {
            far()
        };
        let drain_end = self
            .draining
            .map_or_else(far, |end| end.min(self.last_read + DRAIN_IDLE));
        // An authenticated sensor is read in chunks of everything the socket (or the
        // TLS layer) has ready, decoded and journaled as one batch.
        let want = if self.session.authenticated() {
            self.chunk
        } else {
            2048
        };
        if self.buf.capacity() - self.buf.len() < want / 2 {
            self.buf.reserve(want);
        }
        let mut drain = false;
        let n = tokio::select! {
            r = read_ready(&mut self.stream, &mut self.buf, want) => match r {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(peer = %self.session.peer(), error = %e, "read error");
                    return Ok(Read::End);
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                let reason = if self.session.authenticated() {
                    Reason::IdleTimeout(cfg.idle_timeout_secs)
                } else {
                    Reason::HeaderTimeout(cfg.header_timeout_secs)
                };
                // A header that never authenticated leaves no trace on the sensor,
                // unless the store knows the uuid it claims.
                let gate: &dyn Gate = &*self.server.gate;
                let hint = self.session.uuid().or_else(|| self.session.pending_known_uuid(gate));
                return Err(Refusal { reason, uuid: hint, authenticated: self.session.authenticated() });
            }
            _ = self.ctl.notify.notified() => {
                if self.ctl.kicked.load(Ordering::Acquire) {
                    return Err(refused(&self.session, Reason::Kicked));
                }
                recheck(&self.server, &mut self.session)?;
                return Ok(Read::Again);
            }
            _ = self.stop.changed(), if self.draining.is_none() => {
                if !self.session.authenticated() {
                    return Ok(Read::End);
                }
                drain = true;
                0
            }
            _ = tokio::time::sleep_until(drain_end) => return Ok(Read::End),
        };
        if drain {
            // the sensor sees the close; what it wrote before is still read
            let _ = tokio::time::timeout(DRAIN_IDLE, self.stream.shutdown()).await;
            self.draining = Some(Instant::now() + DRAIN_MAX);
            self.last_read = Instant::now();
            return Ok(Read::Again);
        }
        if n == 0 {
            return Ok(Read::End);
        }
        if n >= want / 2 {
            self.chunk = (self.chunk * 2).min(READ_CHUNK);
        } else if n < want / 8 {
            self.chunk = (self.chunk / 2).max(MIN_CHUNK);
        }
        self.last_read = Instant::now();
        Ok(Read::Data)
    }

    /// Feeds what was read to the session; the frames it accepted go to the pipeline
    /// (claiming the store lease and starting the pipeline at the first ones).
    async fn feed(&mut self) -> Result<(), Refusal> {
        let mut input = self.buf.split().freeze();
        let res = self
            .session
            .feed(&mut input, &*self.server.gate, &mut self.frames);
        // Before authentication the decoder may hold a declared payload whose HMAC cannot
        // be checked yet: bounded per IP and in total.
        if self.session.authenticated() {
            self.ticket.release();
        } else if !self.ticket.hold(self.session.held()) {
            return Err(refused(&self.session, Reason::PreAuthMemory));
        }
        if !self.frames.is_empty() {
            let t = now();
            if let Some(u) = self.session.uuid() {
                if self.lease.is_none() {
                    self.claim_lease(u, t).await?;
                }
            }
            if self.pipe.is_none() {
                self.start_pipeline()?;
            }
            self.send_frames(t)?;
            self.record_meta_info(t);
        }
        res?;
        self.session.precheck_pending(&*self.server.gate)?;
        Ok(())
    }

    /// Once per session, when its meta header carried `tags` or `misp:org`: kept on the
    /// sensor's record if it is a third party (a partner server's stream), off the read
    /// path (a spawned store call, as the last errors).
    fn record_meta_info(&mut self, t: u64) {
        let (Some(info), Some(u)) = (self.session.take_meta_info(), self.session.uuid()) else {
            return;
        };
        let sensors = self.server.sensors.clone();
        let metrics = self.server.metrics.clone();
        let ip = self.session.peer();
        tokio::spawn(async move {
            match sensors.get_sensor(u).await {
                Ok(Some(s)) if s.third_party => {}
                Ok(_) => return,
                Err(e) => {
                    metrics.store_failure("record-partner-meta");
                    tracing::warn!(sensor = %u.simple(), error = %e, "could not read the sensor to keep its partner meta");
                    return;
                }
            }
            let meta = partner_meta(info, t, ip);
            if let Err(e) = sensors.record_partner_meta(u, meta).await {
                metrics.store_failure("record-partner-meta");
                tracing::warn!(sensor = %u.simple(), error = %e, "could not record the partner meta");
            }
        });
    }

    /// The session's first accepted frames: claims its store lease.
    async fn claim_lease(&mut self, u: Uuid, t: u64) -> Result<(), Refusal> {
        if let Ok(mut g) = self.ctl.uuid.lock() {
            *g = Some(u);
        }
        let server = self.server.clone();
        let cfg = &server.cfg;
        let session = &self.session;
        let claim = LeaseClaim {
            uuid: u,
            d4_type: lease_type(session.d4_type().unwrap_or(0)),
            session_id: session.id(),
            server_id: cfg.server_id.clone(),
            ip: session.peer(),
            lease_secs: cfg.session_lease_secs,
        };
        // The store's claim holds across every server sharing the store
        // (Redis): awaited before any frame of the session is journaled.
        let d4_type = claim.d4_type;
        match server.leases.try_claim_lease(claim, now()).await {
            Ok(true) => self.lease = Some((u, d4_type)),
            Ok(false) => return Err(refused(&self.session, Reason::Duplicate(d4_type))),
            Err(e) => {
                // Still released at the end: a claim that reached the
                // store before the error must not outlive the session.
                self.lease = Some((u, d4_type));
                server.metrics.store_failure("claim-session");
                tracing::warn!(error = %e, "store session claim failed");
            }
        }
        // One IP-history entry per connection, under the type of its first
        // frame (2 for a 2 → 254 session: no extended type yet).
        let session = &self.session;
        let first = self.frames.first().map_or(d4_type, |f| f.header.d4_type);
        server.stats.connected(t, u, session.peer(), first);
        tracing::info!(peer = %session.peer(), session = %session.id(), sensor = %u.simple(), d4_type = session.d4_type().unwrap_or(0), "session authenticated");
        Ok(())
    }

    /// Starts the session's pipeline (its journal is created now).
    fn start_pipeline(&mut self) -> Result<(), Refusal> {
        let server = &self.server;
        match Pipeline::start(&server.pcfg, self.session.id(), server.handlers.clone()) {
            Ok(p) => {
                server
                    .metrics
                    .track_pipeline(self.session.id(), p.backlog().clone());
                self.pipe = Some(p);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot create the session journal");
                Err(refused(
                    &self.session,
                    Reason::Worker(format!("journal: {e}")),
                ))
            }
        }
    }

    /// Counts the accepted frames in the stats and sends them to the pipeline.
    fn send_frames(&mut self, t: u64) -> Result<(), Refusal> {
        let Some(p) = self.pipe.as_ref() else {
            return Ok(());
        };
        let (stats, session) = (&self.server.stats, &self.session);
        // Stats once per run of frames of the same (uuid, type).
        let mut run: Option<(Uuid, u8, u64, u64)> = None;
        for f in &self.frames {
            let h = &f.header;
            match &mut run {
                Some((u, ty, n, b)) if *u == h.uuid && *ty == h.d4_type => {
                    *n += 1;
                    *b += u64::from(h.size);
                }
                _ => {
                    if let Some((u, ty, n, b)) = run.take() {
                        let ext = ext_of(session, ty);
                        stats.add(t, u, session.peer(), ty, ext, n, b);
                    }
                    run = Some((h.uuid, h.d4_type, 1, u64::from(h.size)));
                }
            }
        }
        if let Some((u, ty, n, b)) = run {
            let ext = ext_of(session, ty);
            stats.add(t, u, session.peer(), ty, ext, n, b);
        }
        if !p.send_batch(std::mem::take(&mut self.frames)) {
            return Err(refused(
                &self.session,
                Reason::Worker("pipeline stopped".into()),
            ));
        }
        Ok(())
    }

    /// Gives back what the connection holds: its control entry, its gate slot, its store
    /// lease (under the very key it was claimed with) and its pipeline (whose thread the
    /// server joins at shutdown).
    /// Releases the session's store lease (bounded: a store that does not answer leaves
    /// the lease to lapse by itself).
    async fn release_lease(&mut self, id: Uuid) {
        let Some((u, t)) = self.lease.take() else {
            return;
        };
        let server = &self.server;
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            server.leases.release_lease(u, t, id),
        )
        .await;
        let err = match r {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the store did not answer within 2 s".to_string(),
        };
        server.metrics.store_failure("release-session");
        tracing::warn!(session = %id, sensor = %u.simple(), error = %err, "could not release the session in the store; its lease lapses by itself");
    }

    fn end(self, peer: IpAddr, id: Uuid) {
        let server = &self.server;
        if let Ok(mut c) = server.conns.lock() {
            c.remove(&id);
        }
        if let Some((u, t)) = self.session.claimed() {
            server.gate.release(&u, t, &id);
        }
        if let Some(u) = self.session.uuid() {
            tracing::info!(%peer, session = %id, sensor = %u.simple(), frames = self.session.accepted_frames(), "session ended");
        }
        if let Some(p) = self.pipe {
            if let Some(h) = p.close() {
                if let Ok(mut t) = server.threads.lock() {
                    t.retain(|h| !h.is_finished());
                    t.push(h);
                }
            }
        }
    }
}

/// What the store keeps of a partner's meta header: bounded to what
/// [`d4_store::validate::partner_meta`] accepts (at most [`MAX_TAGS`] tags, texts of at
/// most [`MAX_PARTNER_TEXT_CHARS`] characters without control characters; longer ones are
/// cut, others left out), so that a partner's odd header never fails the record.
///
/// [`MAX_TAGS`]: d4_store::validate::MAX_TAGS
/// [`MAX_PARTNER_TEXT_CHARS`]: d4_store::validate::MAX_PARTNER_TEXT_CHARS
fn partner_meta(info: MetaInfo, time: u64, ip: IpAddr) -> PartnerMeta {
    use d4_store::validate::{MAX_PARTNER_TEXT_CHARS, MAX_TAGS};
    let clean = |s: String| -> Option<String> {
        let s: String = s
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_PARTNER_TEXT_CHARS)
            .collect();
        (!s.is_empty()).then_some(s)
    };
    PartnerMeta {
        org: info.org.and_then(clean),
        tags: info
            .tags
            .into_iter()
            .filter_map(clean)
            .take(MAX_TAGS)
            .collect(),
        ext_type: Some(info.ext_type),
        time,
        ip: Some(ip),
    }
}

/// The type a session's store lease is claimed and released under: a 2 → 254 session
/// is one stream of type 254 whether its first read held only the meta header or more.
fn lease_type(d4_type: u8) -> u8 {
    if d4_type == d4_proto::types::META_HEADER {
        d4_proto::types::EXTENDED
    } else {
        d4_type
    }
}

/// The extended type recorded with frames of `d4_type`: only type-254 frames carry one,
/// so a sensor's recorded types do not depend on where TCP reads happened to end.
fn ext_of(session: &Session, d4_type: u8) -> Option<&str> {
    (d4_type == d4_proto::types::EXTENDED)
        .then(|| session.ext_type())
        .flatten()
}

/// Re-checks a live session after a store change; a kick's block reads as a kick.
fn recheck(server: &Server, session: &mut Session) -> Result<(), Refusal> {
    session.recheck(&*server.gate).map_err(|mut r| {
        if r.reason == Reason::UuidBlocked && r.uuid.is_some_and(|u| server.gate.kicked(&u)) {
            r.reason = Reason::Kicked;
        }
        r
    })
}

/// Waits until `stream` has data, then reads whatever it has ready without waiting again,
/// until `buf` holds `want` bytes. Returns the bytes read (0: end of stream). A read
/// error after some data is returned by the next call.
async fn read_ready<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    want: usize,
) -> std::io::Result<usize> {
    let start = buf.len();
    std::future::poll_fn(|cx| loop {
        let got = buf.len() - start;
        if got >= want {
            return std::task::Poll::Ready(Ok(got));
        }
        if buf.capacity() == buf.len() {
            buf.reserve(want - got);
        }
        let read = std::pin::pin!(stream.read_buf(&mut *buf));
        match std::future::Future::poll(read, cx) {
            std::task::Poll::Ready(Ok(0)) => return std::task::Poll::Ready(Ok(got)),
            std::task::Poll::Ready(Ok(_)) => {}
            std::task::Poll::Ready(Err(e)) if got == 0 => return std::task::Poll::Ready(Err(e)),
            std::task::Poll::Ready(Err(_)) => return std::task::Poll::Ready(Ok(got)),
            std::task::Poll::Pending if got > 0 => return std::task::Poll::Ready(Ok(got)),
            std::task::Poll::Pending => return std::task::Poll::Pending,
        }
    })
    .await
}
