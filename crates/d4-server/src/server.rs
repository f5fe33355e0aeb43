//! The running collector: listeners, one tokio task per connection wrapping a
//! [`Session`], the store gate and its event feed (kicks, blocklist changes), stats
//! flushing, journal replay at start and an orderly shutdown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use d4_store::{Block, BlockTarget, LeaseClaim, Store, StoreEvent};
use d4_worker::{RotationPolicy, WorkerConfig, WorkerSet};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::{OnLimit, ServerConfig};
use crate::gate::StoreGate;
use crate::metrics::{Listener, ServerMetrics};
use crate::pipeline::{Pipeline, PipelineConfig, SinkFactory};
use crate::preauth::{Limiter, PreAuth, PreAuthLimits, Ticket};
use crate::session::{Gate, Mode, Reason, Refusal, Session, SessionConfig};
use crate::stats::Stats;
use crate::workers::{StoreQueueSink, WorkerFactory};

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("store: {0}")]
    Store(#[from] d4_store::StoreError),
    #[error("workers: {0}")]
    Worker(#[from] d4_worker::WorkerError),
    #[error("journal replay: {0}")]
    Replay(std::io::Error),
    #[error("nothing to listen on: set `listen` or `plain_listen`")]
    NoListener,
    #[error(
        "refusing to start in shared-secret mode with the reference's public default key \
         (\"{key}\"): anyone could send data as any sensor. Set your own key \
         with --default-key (D4_DEFAULT_KEY, default_key in d4.toml), or accept the risk with \
         --allow-reference-key",
        key = crate::config::REFERENCE_DEFAULT_KEY
    )]
    ReferenceKey,
}

/// Per-connection control: kick and "the store changed, re-check".
#[derive(Default)]
struct Control {
    uuid: Mutex<Option<Uuid>>,
    kicked: AtomicBool,
    notify: Notify,
}

struct Shared {
    cfg: ServerConfig,
    scfg: Arc<SessionConfig>,
    gate: Arc<StoreGate>,
    store: Arc<dyn Store>,
    stats: Arc<Stats>,
    sinks: Arc<dyn SinkFactory>,
    pcfg: PipelineConfig,
    conns: Mutex<HashMap<Uuid, Arc<Control>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    active: AtomicUsize,
    idle: Notify,
    metrics: Arc<ServerMetrics>,
    /// Connections that have not shown a valid frame yet, and the bytes they hold.
    preauth: Arc<PreAuth>,
    /// One store write (last error) and one warning per (sensor or none, IP, reason) and
    /// minute for refusals before authentication: a flood rewrites neither.
    refusals: Limiter<(Option<Uuid>, IpAddr, &'static str)>,
}

/// What the server reports once bound (tests and logs use the real addresses).
#[derive(Debug, Clone)]
pub struct Bound {
    pub tls: Option<SocketAddr>,
    pub plain: Vec<SocketAddr>,
}

fn now() -> u64 {
    d4_store::now()
}

/// Runs the server until `shutdown` resolves, then drains and returns.
/// `on_bound` is called once every listener is bound.
pub async fn run(
    cfg: ServerConfig,
    store: Arc<dyn Store>,
    shutdown: impl std::future::Future<Output = ()>,
    on_bound: impl FnOnce(&Bound),
) -> Result<(), ServerError> {
    run_with_metrics(
        cfg,
        store,
        Arc::new(ServerMetrics::new()),
        shutdown,
        on_bound,
    )
    .await
}

/// [`run`], counting connections, frames, refusals and pending work in `metrics`.
pub async fn run_with_metrics(
    cfg: ServerConfig,
    store: Arc<dyn Store>,
    metrics: Arc<ServerMetrics>,
    shutdown: impl std::future::Future<Output = ()>,
    on_bound: impl FnOnce(&Bound),
) -> Result<(), ServerError> {
    let dd = |source| ServerError::DataDir {
        path: cfg.data_dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&cfg.data_dir).map_err(dd)?;
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "could not raise the open files limit");
    }
    cfg.check()?;
    if cfg.default_key == crate::config::REFERENCE_DEFAULT_KEY {
        match cfg.mode {
            Mode::SharedSecret => tracing::warn!(
                "shared-secret mode with the reference's public default HMAC key \
                 (--allow-reference-key): anyone can send data as any sensor; set --default-key"
            ),
            Mode::Registration => tracing::warn!(
                "the default HMAC key (for approved sensors registered without a key) is the \
                 reference's public default: set --default-key"
            ),
        }
    }

    // Active-session state of a previous run never blocks sensors.
    let cleared = store.clear_leases(cfg.server_id.clone()).await?;
    if cleared > 0 {
        tracing::info!(cleared, "cleared active sessions left by a previous run");
    }

    let rt = tokio::runtime::Handle::current();
    let queue_sink = Arc::new(StoreQueueSink::new(store.clone(), rt));
    let mut wcfg = WorkerConfig::new(cfg.data_dir.clone());
    wcfg.rotation = RotationPolicy {
        period: (cfg.rotation_secs > 0).then(|| Duration::from_secs(cfg.rotation_secs)),
        at_day_change: cfg.rotate_daily,
        max_bytes: (cfg.rotation_bytes > 0).then_some(cfg.rotation_bytes),
    };
    wcfg.gzip = cfg.gzip;
    let workers = Arc::new(WorkerSet::new(wcfg, queue_sink.clone())?);
    let sinks: Arc<dyn SinkFactory> = Arc::new(WorkerFactory {
        set: workers.clone(),
        queues: Some(queue_sink),
    });

    // Cut the bytes a crashed run wrote for frames it did not acknowledge, finish the
    // files it left open, then replay what it journaled but did not acknowledge.
    {
        let jdir = cfg.journal_dir();
        match tokio::task::spawn_blocking(move || crate::journal::cut_uncommitted(&jdir)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cutting unacknowledged file bytes failed"),
            Err(e) => tracing::warn!(error = %e, "cutting unacknowledged file bytes failed"),
        }
    }
    {
        let w = workers.clone();
        match tokio::task::spawn_blocking(move || w.recover()).await {
            Ok(Ok(report)) => tracing::debug!(?report, "worker files recovered"),
            Ok(Err(e)) => tracing::warn!(error = %e, "recovering worker files failed"),
            Err(e) => tracing::warn!(error = %e, "recovering worker files failed"),
        }
    }
    // Replay what a previous run journaled but did not hand to the workers, each frame's
    // HMAC checked again with the key a live session would use.
    let jdir = cfg.journal_dir();
    {
        let sinks = sinks.clone();
        let jdir = jdir.clone();
        let own_keys = store.list_sensors().await?.into_iter().filter_map(|s| {
            let key = s.hmac_key.filter(|k| !k.is_empty())?;
            Some((s.uuid, key.into_bytes()))
        });
        let mut keys = crate::pipeline::ReplayKeys::new(cfg.default_key.as_bytes(), own_keys);
        let n = tokio::task::spawn_blocking(move || {
            crate::pipeline::replay_leftovers(&jdir, &*sinks, &mut keys)
        })
        .await
        .map_err(|e| ServerError::Replay(std::io::Error::other(e.to_string())))?
        .map_err(ServerError::Replay)?;
        if n > 0 {
            tracing::info!(frames = n, "replayed journaled frames of the previous run");
        }
        let kept = cfg.journal_dir().join(crate::journal::UNVERIFIED_DIR);
        let files = std::fs::read_dir(&kept).map_or(0, |rd| rd.count());
        if files > 0 {
            tracing::warn!(
                dir = %kept.display(),
                files,
                "journals whose replay stopped at a frame failing its HMAC are kept here, \
                 not replayed: look at them, then delete them (docs/server.md, Known limits)"
            );
        }
    }

    let gate = Arc::new(StoreGate::new());
    gate.refresh(&*store).await?;

    let shared = Arc::new(Shared {
        scfg: Arc::new(SessionConfig {
            mode: cfg.mode,
            default_key: Arc::from(cfg.default_key.as_bytes()),
            max_payload: cfg.max_payload,
            max_meta_len: d4_proto::DEFAULT_MAX_META_LEN,
            max_ext_sessions_per_sensor: cfg.max_ext_sessions_per_sensor,
        }),
        gate: gate.clone(),
        store: store.clone(),
        stats: Arc::new(Stats::with_metrics(cfg.stats_flush_frames, metrics.clone())),
        sinks,
        pcfg: PipelineConfig {
            journal_dir: jdir,
            segment_bytes: cfg.journal_segment_bytes,
            fsync: cfg.journal_fsync,
            direct: cfg.journal_direct,
            on_error: Some(error_hook(store.clone(), metrics.clone())),
        },
        conns: Mutex::new(HashMap::new()),
        preauth: PreAuth::new(PreAuthLimits {
            total_bytes: cfg.preauth_budget_bytes,
            ip_bytes: cfg.preauth_ip_bytes,
            ip_connections: cfg.preauth_ip_connections,
            connections: cfg.preauth_connections,
        }),
        refusals: Limiter::new(REFUSAL_PERIOD_SECS, 100_000),
        threads: Mutex::new(Vec::new()),
        active: AtomicUsize::new(0),
        idle: Notify::new(),
        metrics,
        cfg,
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let background = vec![
        tokio::spawn(events_task(shared.clone(), stop_rx.clone())),
        tokio::spawn(stats_task(shared.clone(), stop_rx.clone())),
    ];

    // Listeners.
    let mut bound = Bound {
        tls: None,
        plain: Vec::new(),
    };
    let mut listeners = Vec::new();
    if !shared.cfg.listen.is_empty() {
        let (cert, key) = match (&shared.cfg.tls_cert, &shared.cfg.tls_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => {
                let (c, k, created) =
                    crate::tls::ensure_generated(&shared.cfg.data_dir, &shared.cfg.tls_san)?;
                if created {
                    tracing::info!(cert = %c.display(), "generated a self-signed TLS certificate");
                }
                (c, k)
            }
        };
        let tls = crate::tls::server_config(&cert, &key)?;
        let l = crate::net::bind(&shared.cfg.listen).map_err(|source| ServerError::Bind {
            addr: shared.cfg.listen.clone(),
            source,
        })?;
        bound.tls = l.local_addr().ok();
        listeners.push((l, Some(tokio_rustls::TlsAcceptor::from(tls))));
    }
    for spec in &shared.cfg.plain_listen {
        let l = crate::net::bind(spec).map_err(|source| ServerError::Bind {
            addr: spec.clone(),
            source,
        })?;
        if let Ok(a) = l.local_addr() {
            bound.plain.push(a);
        }
        listeners.push((l, None));
    }
    if listeners.is_empty() {
        return Err(ServerError::NoListener);
    }
    tracing::info!(tls = ?bound.tls, plain = ?bound.plain, mode = %shared.cfg.mode, data = %shared.cfg.data_dir.display(), "d4 server listening");
    on_bound(&bound);

    let permits = Arc::new(Semaphore::new(shared.cfg.max_connections.max(1)));
    let mut accepts = Vec::new();
    for (l, tls) in listeners {
        accepts.push(tokio::spawn(accept_loop(
            shared.clone(),
            l,
            tls,
            permits.clone(),
            stop_rx.clone(),
        )));
    }

    shutdown.await;
    tracing::info!("shutting down: no new connections, draining sessions");
    let _ = stop_tx.send(true);
    for a in accepts {
        let _ = a.await;
    }
    // Wait for the connection tasks (they stop reading at once), bounded.
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.active.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(100), shared.idle.notified()).await;
    }
    // Join the pipelines: everything journaled is handed to the workers, files closed.
    let threads: Vec<_> = shared
        .threads
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    // Gzip gets a short grace; what is not done by then (a big file) is left for the next
    // start's recovery to gzip and queue: a stop never waits for the compression.
    let w = workers.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
        if !w.flush_within(GZIP_GRACE) {
            tracing::info!("stopping before gzip finished: the files left are gzipped and queued at the next start");
            w.stop_compression();
        }
        w.shutdown();
    })
    .await;
    for b in background {
        let _ = b.await;
    }
    shared.stats.flush(&*shared.store).await;
    if let Err(e) = shared
        .store
        .clear_leases(shared.cfg.server_id.clone())
        .await
    {
        shared.metrics.store_failure("clear-sessions");
        tracing::warn!(error = %e, "could not clear this server's sessions in the store; their leases lapse by themselves");
    }
    tracing::info!("d4 server stopped");
    Ok(())
}

async fn events_task(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut events = shared.store.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut renew = tokio::time::interval(Duration::from_secs(
        (shared.cfg.session_lease_secs / 3).max(1),
    ));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            ev = events.recv() => {
                match ev {
                    Ok(StoreEvent::Kick { uuid }) => {
                        if let Err(e) = shared.gate.refresh(&*shared.store).await {
                            shared.metrics.store_failure("refresh");
                            tracing::warn!(error = %e, "store refresh failed");
                        }
                        kick(&shared, uuid);
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if let Err(e) = shared.gate.refresh(&*shared.store).await {
                            shared.metrics.store_failure("refresh");
                            tracing::warn!(error = %e, "store refresh failed");
                        }
                        recheck_all(&shared);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        events = shared.store.subscribe();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            _ = tick.tick() => {
                if let Err(e) = shared.gate.refresh(&*shared.store).await {
                    shared.metrics.store_failure("refresh");
                    tracing::warn!(error = %e, "store refresh failed");
                }
                recheck_all(&shared);
            }
            _ = renew.tick() => {
                if let Err(e) = shared.store.renew_leases(shared.cfg.server_id.clone(), shared.cfg.session_lease_secs, now()).await {
                    shared.metrics.store_failure("renew-sessions");
                    tracing::warn!(error = %e, "could not renew the session leases in the store");
                }
            }
        }
    }
}

fn kick(shared: &Shared, uuid: Uuid) {
    if let Ok(c) = shared.conns.lock() {
        for ctl in c.values() {
            if ctl.uuid.lock().ok().and_then(|u| *u) == Some(uuid) {
                ctl.kicked.store(true, Ordering::Release);
                ctl.notify.notify_one();
            }
        }
    }
}

fn recheck_all(shared: &Shared) {
    if let Ok(c) = shared.conns.lock() {
        for ctl in c.values() {
            ctl.notify.notify_one();
        }
    }
}

async fn stats_task(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(shared.cfg.stats_flush_ms.max(10));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => {}
            _ = shared.stats.notify.notified() => {}
        }
        shared.stats.flush(&*shared.store).await;
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => return,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (tcp, addr) = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let peer = crate::net::canonical_ip(addr);
        let Some(ticket) = shared.preauth.admit(peer) else {
            let r = Refusal {
                reason: Reason::TooManyConnections,
                uuid: None,
                authenticated: false,
            };
            on_refusal(&shared, &r, peer, Uuid::nil());
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        shared.active.fetch_add(1, Ordering::AcqRel);
        let kind = if tls.is_some() {
            Listener::Tls
        } else {
            Listener::Plain
        };
        shared.metrics.connection_opened(kind);
        tokio::spawn(async move {
            let start = Instant::now();
            match tls {
                Some(acc) => {
                    let deadline = start + Duration::from_secs(shared.cfg.header_timeout_secs);
                    match tokio::time::timeout_at(deadline, acc.accept(tcp)).await {
                        Ok(Ok(s)) => connection(&shared, s, peer, ticket, start, stop).await,
                        Ok(Err(e)) => {
                            shared.metrics.tls_handshake_failed(false);
                            tracing::debug!(%peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => {
                            shared.metrics.tls_handshake_failed(true);
                            tracing::debug!(%peer, "TLS handshake timed out")
                        }
                    }
                }
                None => connection(&shared, tcp, peer, ticket, start, stop).await,
            }
            shared.metrics.connection_closed(kind);
            drop(permit);
            if shared.active.fetch_sub(1, Ordering::AcqRel) == 1 {
                shared.idle.notify_waiters();
            }
        });
    }
}

fn error_hook(store: Arc<dyn Store>, metrics: Arc<ServerMetrics>) -> crate::pipeline::ErrorHook {
    let rt = tokio::runtime::Handle::current();
    Arc::new(move |uuid, msg| {
        let store = store.clone();
        let metrics = metrics.clone();
        rt.spawn(async move {
            if let Err(e) = store.record_sensor_error(uuid, now(), msg).await {
                metrics.store_failure("record-error");
                tracing::warn!(sensor = %uuid.simple(), error = %e, "could not record the sensor's error");
            }
        });
    })
}

fn on_refusal(shared: &Shared, r: &Refusal, peer: IpAddr, session: Uuid) {
    shared.metrics.refused(&r.reason);
    // Before authentication anyone can cause a refusal: one warning and one last-error
    // write per (sensor, IP, reason) and minute; the metrics count every one.
    let noted = r.authenticated
        || shared
            .refusals
            .allow(&(r.uuid, peer, r.reason.code()), now());
    let who = r.uuid.map(|u| u.simple().to_string()).unwrap_or_default();
    match r.reason {
        Reason::IpBlocked(_) => {
            tracing::debug!(%peer, %session, sensor = %who, "refused: {r}")
        }
        _ if !noted => tracing::debug!(%peer, %session, sensor = %who, "refused: {r}"),
        _ => tracing::warn!(%peer, %session, sensor = %who, "refused: {r}"),
    }
    // worker errors are recorded by the pipeline itself
    if let (Some(uuid), false, true) = (r.uuid, matches!(r.reason, Reason::Worker(_)), noted) {
        let store = shared.store.clone();
        let msg = format!("{} [{}] from {peer}", r.reason, r.reason.code());
        let metrics = shared.metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = store.record_sensor_error(uuid, now(), msg).await {
                metrics.store_failure("record-error");
                tracing::warn!(error = %e, "could not record the sensor's error");
            }
        });
    }
    if let (Reason::IpBlockedByUuid(ip), Some(uuid)) = (&r.reason, r.uuid) {
        let store = shared.store.clone();
        let block = Block {
            target: BlockTarget::Ip(ipnet::IpNet::from(*ip)),
            reason: format!("presented uuid {}", uuid.simple()),
            created: now(),
            expires: None,
        };
        let metrics = shared.metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = store.add_block(block).await {
                metrics.store_failure("auto-block");
                tracing::warn!(sensor = %uuid.simple(), error = %e, "could not store the automatic IP block");
            }
        });
    }
}

async fn connection<S: AsyncRead + Unpin + Send>(
    shared: &Arc<Shared>,
    mut stream: S,
    peer: IpAddr,
    ticket: Ticket,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) {
    let id = Uuid::new_v4();
    let mut session = Session::new(shared.scfg.clone(), id, peer);
    if let Err(r) = session.on_connect(&*shared.gate) {
        on_refusal(shared, &r, peer, id);
        return;
    }
    let ctl = Arc::new(Control::default());
    if let Ok(mut c) = shared.conns.lock() {
        c.insert(id, ctl.clone());
    }
    let mut held = Held {
        ticket,
        pipe: None,
        lease: None,
    };
    let outcome = serve(
        shared,
        &mut stream,
        &mut session,
        &ctl,
        &mut held,
        start,
        &mut stop,
    )
    .await;
    if let Err(r) = &outcome {
        on_refusal(shared, r, peer, id);
    }
    if let Ok(mut c) = shared.conns.lock() {
        c.remove(&id);
    }
    if let Some((u, t)) = session.claimed() {
        shared.gate.release(&u, t, &id);
    }
    // The store lease is released under the very key it was claimed with.
    if let Some((u, t)) = held.lease {
        let store = shared.store.clone();
        let metrics = shared.metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = store.release_lease(u, t, id).await {
                metrics.store_failure("release-session");
                tracing::warn!(session = %id, sensor = %u.simple(), error = %e, "could not release the session in the store; its lease lapses by itself");
            }
        });
    }
    if let Some(u) = session.uuid() {
        tracing::info!(%peer, session = %id, sensor = %u.simple(), frames = session.accepted_frames(), "session ended");
    }
    if let Some(p) = held.pipe {
        if let Some(h) = p.close() {
            if let Ok(mut t) = shared.threads.lock() {
                t.retain(|h| !h.is_finished());
                t.push(h);
            }
        }
    }
}

/// What a connection holds that must be given back when it ends.
struct Held {
    /// Its share of the pre-authentication bounds, given back at authentication.
    ticket: Ticket,
    /// The session's journal and worker, started at its first accepted frames.
    pipe: Option<Pipeline>,
    /// The (uuid, type) key the store lease was claimed under: released under the same.
    lease: Option<(Uuid, u8)>,
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
fn recheck(shared: &Shared, session: &mut Session) -> Result<(), Refusal> {
    session.recheck(&*shared.gate).map_err(|mut r| {
        if r.reason == Reason::UuidBlocked && r.uuid.is_some_and(|u| shared.gate.kicked(&u)) {
            r.reason = Reason::Kicked;
        }
        r
    })
}

/// Period of the refusal limiter (seconds): one warning / last-error write per key.
const REFUSAL_PERIOD_SECS: u64 = 60;

/// How long a stop waits for pending gzip work before leaving it to the next start.
const GZIP_GRACE: Duration = Duration::from_secs(2);

/// Largest read (one batch) for an authenticated sensor.
const READ_CHUNK: usize = 256 * 1024;
/// Smallest read size for an authenticated sensor.
const MIN_CHUNK: usize = 16 * 1024;

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

async fn serve<S: AsyncRead + Unpin + Send>(
    shared: &Arc<Shared>,
    stream: &mut S,
    session: &mut Session,
    ctl: &Arc<Control>,
    held: &mut Held,
    start: Instant,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Refusal> {
    let Held {
        ticket,
        pipe,
        lease,
    } = held;
    let cfg = &shared.cfg;
    let gate: &dyn Gate = &*shared.gate;
    let header_timeout = Duration::from_secs(cfg.header_timeout_secs);
    let idle = Duration::from_secs(cfg.idle_timeout_secs);
    let mut last_read = Instant::now();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut chunk = MIN_CHUNK;
    let fail = |session: &Session, reason: Reason| Refusal {
        reason,
        uuid: session.uuid(),
        authenticated: session.authenticated(),
    };
    loop {
        // Backpressure: wait while the sensor's pending entries are over its limit.
        if let Some(p) = pipe.as_ref() {
            let pending = p.pending().clone();
            loop {
                if let Some(e) = pending.take_error() {
                    return Err(fail(session, Reason::Worker(e)));
                }
                let limit = session
                    .uuid()
                    .and_then(|u| shared.gate.stream_limit(&u))
                    .unwrap_or(cfg.stream_limit)
                    .max(1);
                if pending.frames() < limit && pending.bytes() < cfg.max_pending_bytes.max(1) {
                    break;
                }
                if cfg.on_limit == OnLimit::Drop {
                    return Err(fail(session, Reason::StreamLimit(limit)));
                }
                tokio::select! {
                    _ = pending.changed.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = ctl.notify.notified() => {
                        if ctl.kicked.load(Ordering::Acquire) {
                            return Err(fail(session, Reason::Kicked));
                        }
                        recheck(shared, session)?;
                    }
                    _ = stop.changed() => return Ok(()),
                }
                last_read = Instant::now();
            }
        }
        let deadline = if !session.authenticated() {
            start + header_timeout
        } else if cfg.idle_timeout_secs > 0 {
            last_read + idle
        } else {
            Instant::now() + Duration::from_secs(86_400)
        };
        // An authenticated sensor is read in chunks of everything the socket (or the
        // TLS layer) has ready, decoded and journaled as one batch. The chunk grows up to
        // READ_CHUNK while reads fill it and shrinks again for a quiet sensor, so that
        // thousands of idle sensors do not each hold a big buffer.
        let want = if session.authenticated() { chunk } else { 2048 };
        if buf.capacity() - buf.len() < want / 2 {
            buf.reserve(want);
        }
        let n = tokio::select! {
            r = read_ready(stream, &mut buf, want) => match r {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(peer = %session.peer(), error = %e, "read error");
                    return Ok(());
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                let reason = if session.authenticated() {
                    Reason::IdleTimeout(cfg.idle_timeout_secs)
                } else {
                    Reason::HeaderTimeout(cfg.header_timeout_secs)
                };
                // A header that never authenticated leaves no trace on the sensor,
                // unless the store knows the uuid it claims.
                let hint = session.uuid().or_else(|| session.pending_known_uuid(gate));
                return Err(Refusal { reason, uuid: hint, authenticated: session.authenticated() });
            }
            _ = ctl.notify.notified() => {
                if ctl.kicked.load(Ordering::Acquire) {
                    return Err(fail(session, Reason::Kicked));
                }
                recheck(shared, session)?;
                continue;
            }
            _ = stop.changed() => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        if n >= want / 2 {
            chunk = (chunk * 2).min(READ_CHUNK);
        } else if n < want / 8 {
            chunk = (chunk / 2).max(MIN_CHUNK);
        }
        last_read = Instant::now();
        let mut input = buf.split().freeze();
        let res = session.feed(&mut input, gate, &mut frames);
        // Before authentication the decoder may hold a declared payload whose HMAC cannot
        // be checked yet: bounded per IP and in total.
        if session.authenticated() {
            ticket.release();
        } else if !ticket.hold(session.held()) {
            return Err(fail(session, Reason::PreAuthMemory));
        }
        if !frames.is_empty() {
            let t = now();
            let uuid = session.uuid();
            if let Some(u) = uuid {
                if lease.is_none() {
                    if let Ok(mut g) = ctl.uuid.lock() {
                        *g = Some(u);
                    }
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
                    match shared.store.try_claim_lease(claim, now()).await {
                        Ok(true) => *lease = Some((u, d4_type)),
                        Ok(false) => return Err(fail(session, Reason::Duplicate(d4_type))),
                        Err(e) => {
                            // Still released at the end: a claim that reached the
                            // store before the error must not outlive the session.
                            *lease = Some((u, d4_type));
                            shared.metrics.store_failure("claim-session");
                            tracing::warn!(error = %e, "store session claim failed");
                        }
                    }
                    // One IP-history entry per connection, under the type of its first
                    // frame (2 for a 2 → 254 session: no extended type yet).
                    let first = frames.first().map_or(d4_type, |f| f.header.d4_type);
                    shared.stats.connected(t, u, session.peer(), first);
                    tracing::info!(peer = %session.peer(), session = %session.id(), sensor = %u.simple(), d4_type = session.d4_type().unwrap_or(0), "session authenticated");
                }
            }
            if pipe.is_none() {
                match Pipeline::start(&shared.pcfg, session.id(), shared.sinks.clone()) {
                    Ok(p) => {
                        shared
                            .metrics
                            .track_pipeline(session.id(), p.pending().clone());
                        *pipe = Some(p);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot create the session journal");
                        return Err(fail(session, Reason::Worker(format!("journal: {e}"))));
                    }
                }
            }
            if let Some(p) = pipe.as_ref() {
                // Stats once per run of frames of the same (uuid, type).
                let mut run: Option<(Uuid, u8, u64, u64)> = None;
                for f in &frames {
                    let h = &f.header;
                    match &mut run {
                        Some((u, ty, n, b)) if *u == h.uuid && *ty == h.d4_type => {
                            *n += 1;
                            *b += u64::from(h.size);
                        }
                        _ => {
                            if let Some((u, ty, n, b)) = run.take() {
                                let ext = ext_of(session, ty);
                                shared.stats.add(t, u, session.peer(), ty, ext, n, b);
                            }
                            run = Some((h.uuid, h.d4_type, 1, u64::from(h.size)));
                        }
                    }
                }
                if let Some((u, ty, n, b)) = run {
                    let ext = ext_of(session, ty);
                    shared.stats.add(t, u, session.peer(), ty, ext, n, b);
                }
                if !p.send_batch(std::mem::take(&mut frames)) {
                    return Err(fail(session, Reason::Worker("pipeline stopped".into())));
                }
            }
        }
        res?;
        session.precheck_pending(gate)?;
    }
}
