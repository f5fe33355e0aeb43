//! The running collector: [`run`] wires the parts together. It prepares and recovers
//! (`startup`), binds the listeners (`listener`) whose accepted connections are served
//! by their own task (`connection`), keeps the store gate fresh from the store's event
//! feed (kicks, blocklist changes), renews the session leases, flushes the stats, and
//! stops in order: no new connections, sessions drained, pipelines joined, gzip given a
//! short grace.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use d4_store::{Leases, Policy, Sensors, Store, StoreEvent};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::ServerConfig;
use crate::gate::StoreGate;
use crate::listener::{accept_loop, REFUSAL_PERIOD_SECS};
use crate::metrics::ServerMetrics;
use crate::now;
use crate::pipeline::{HandlerFactory, PipelineConfig};
use crate::preauth::{Limiter, PreAuth, PreAuthLimits};
use crate::session::SessionConfig;
use crate::stats::Stats;

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

/// Per-connection control, set by the events task and watched by the connection: the
/// sensor it serves (once known), whether it was kicked, and a wake-up for "kicked" or
/// "the store changed, re-check".
#[derive(Default)]
pub(crate) struct Control {
    pub(crate) uuid: Mutex<Option<Uuid>>,
    pub(crate) kicked: AtomicBool,
    pub(crate) notify: Notify,
}

/// What the tasks of a running server share.
pub(crate) struct Server {
    pub(crate) cfg: ServerConfig,
    pub(crate) scfg: Arc<SessionConfig>,
    /// The in-memory snapshot of the store every frame is checked against.
    pub(crate) gate: Arc<StoreGate>,
    /// The store's roles the tasks call, each a handle on the one store [`run`] is given:
    /// sensors (the gate's snapshot, errors, stats), policy (the gate's snapshot,
    /// automatic blocks; its handle also carries the store's event feed) and leases (the
    /// slot of each live D4 session). The workers push through their own [`Queues`]
    /// handle (`StoreQueueSink`).
    ///
    /// [`Queues`]: d4_store::Queues
    pub(crate) sensors: Arc<dyn Sensors>,
    pub(crate) policy: Arc<dyn Policy>,
    pub(crate) leases: Arc<dyn Leases>,
    pub(crate) stats: Arc<Stats>,
    /// Opens the per-type worker of a session (its pipeline's handler).
    pub(crate) handlers: Arc<dyn HandlerFactory>,
    pub(crate) pcfg: PipelineConfig,
    /// The live connections, by session id.
    pub(crate) conns: Mutex<HashMap<Uuid, Arc<Control>>>,
    /// The pipeline threads of ended sessions, joined at shutdown.
    pub(crate) threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Connection tasks running; `idle` is woken when the last one ends.
    pub(crate) active: AtomicUsize,
    pub(crate) idle: Notify,
    pub(crate) metrics: Arc<ServerMetrics>,
    /// Connections that have not shown a valid frame yet, and the bytes they hold.
    pub(crate) preauth: Arc<PreAuth>,
    /// One store write (last error) and one warning per (sensor or none, IP, reason) and
    /// minute for refusals before authentication: a flood rewrites neither.
    pub(crate) refusals: Limiter<(Option<Uuid>, IpAddr, &'static str)>,
}

/// What the server reports once bound (tests and logs use the real addresses).
#[derive(Debug, Clone)]
pub struct Bound {
    pub tls: Option<SocketAddr>,
    pub plain: Vec<SocketAddr>,
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
    run_with_tap(cfg, store, metrics, None, shutdown, on_bound).await
}

/// [`run_with_metrics`], telling `tap` about every session's journal (the forwarding
/// engine reads accepted frames from there). Without a tap the server behaves exactly as
/// [`run`].
pub async fn run_with_tap(
    cfg: ServerConfig,
    store: Arc<dyn Store>,
    metrics: Arc<ServerMetrics>,
    tap: Option<Arc<dyn crate::JournalTap>>,
    shutdown: impl std::future::Future<Output = ()>,
    on_bound: impl FnOnce(&Bound),
) -> Result<(), ServerError> {
    crate::startup::prepare(&cfg)?;
    // One store, handed to each part as the role it calls.
    let sensors: Arc<dyn Sensors> = store.clone();
    let policy: Arc<dyn Policy> = store.clone();
    let leases: Arc<dyn Leases> = store.clone();
    let (workers, handlers) = crate::startup::recover(&cfg, &*leases, &*sensors, store).await?;
    let jdir = cfg.journal_dir();

    let gate = Arc::new(StoreGate::new());
    gate.refresh(&*sensors, &*policy).await?;

    let server = Arc::new(Server {
        scfg: Arc::new(SessionConfig {
            mode: cfg.mode,
            default_key: Arc::from(cfg.default_key.as_bytes()),
            max_payload: cfg.max_payload,
            max_meta_len: d4_proto::DEFAULT_MAX_META_LEN,
            max_ext_sessions_per_sensor: cfg.max_ext_sessions_per_sensor,
        }),
        gate: gate.clone(),
        stats: Arc::new(Stats::with_metrics(cfg.stats_flush_frames, metrics.clone())),
        handlers,
        pcfg: PipelineConfig {
            journal_dir: jdir,
            segment_bytes: cfg.journal_segment_bytes,
            fsync: cfg.journal_fsync,
            direct: cfg.journal_direct,
            on_error: Some(error_hook(sensors.clone(), metrics.clone())),
            tap,
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
        sensors,
        policy,
        leases,
        active: AtomicUsize::new(0),
        idle: Notify::new(),
        metrics,
        cfg,
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let background = vec![
        tokio::spawn(events_task(server.clone(), stop_rx.clone())),
        tokio::spawn(stats_task(server.clone(), stop_rx.clone())),
    ];

    let (bound, listeners) = crate::listener::bind(&server.cfg)?;
    on_bound(&bound);

    let permits = Arc::new(Semaphore::new(server.cfg.max_connections.max(1)));
    let mut accepts = Vec::new();
    for (l, tls) in listeners {
        accepts.push(tokio::spawn(accept_loop(
            server.clone(),
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
    while server.active.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(100), server.idle.notified()).await;
    }
    // Join the pipelines: everything journaled is handed to the workers, files closed.
    let threads: Vec<_> = server
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
    server.stats.flush(&*server.sensors).await;
    if let Err(e) = server
        .leases
        .clear_leases(server.cfg.server_id.clone())
        .await
    {
        server.metrics.store_failure("clear-sessions");
        tracing::warn!(error = %e, "could not clear this server's sessions in the store; their leases lapse by themselves");
    }
    tracing::info!("d4 server stopped");
    Ok(())
}

async fn events_task(server: Arc<Server>, mut stop: watch::Receiver<bool>) {
    let mut events = server.policy.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut renew = tokio::time::interval(Duration::from_secs(
        (server.cfg.session_lease_secs / 3).max(1),
    ));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            ev = events.recv() => {
                match ev {
                    Ok(StoreEvent::Kick { uuid }) => {
                        if let Err(e) = server.gate.refresh(&*server.sensors, &*server.policy).await {
                            server.metrics.store_failure("refresh");
                            tracing::warn!(error = %e, "store refresh failed");
                        }
                        kick(&server, uuid);
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if let Err(e) = server.gate.refresh(&*server.sensors, &*server.policy).await {
                            server.metrics.store_failure("refresh");
                            tracing::warn!(error = %e, "store refresh failed");
                        }
                        recheck_all(&server);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        events = server.policy.subscribe();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            _ = tick.tick() => {
                if let Err(e) = server.gate.refresh(&*server.sensors, &*server.policy).await {
                    server.metrics.store_failure("refresh");
                    tracing::warn!(error = %e, "store refresh failed");
                }
                recheck_all(&server);
            }
            _ = renew.tick() => {
                if let Err(e) = server.leases.renew_leases(server.cfg.server_id.clone(), server.cfg.session_lease_secs, now()).await {
                    server.metrics.store_failure("renew-sessions");
                    tracing::warn!(error = %e, "could not renew the session leases in the store");
                }
            }
        }
    }
}

fn kick(server: &Server, uuid: Uuid) {
    if let Ok(c) = server.conns.lock() {
        for ctl in c.values() {
            if ctl.uuid.lock().ok().and_then(|u| *u) == Some(uuid) {
                ctl.kicked.store(true, Ordering::Release);
                ctl.notify.notify_one();
            }
        }
    }
}

fn recheck_all(server: &Server) {
    if let Ok(c) = server.conns.lock() {
        for ctl in c.values() {
            ctl.notify.notify_one();
        }
    }
}

async fn stats_task(server: Arc<Server>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(server.cfg.stats_flush_ms.max(10));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => {}
            _ = server.stats.notify.notified() => {}
        }
        server.stats.flush(&*server.sensors).await;
    }
}

fn error_hook(store: Arc<dyn Sensors>, metrics: Arc<ServerMetrics>) -> crate::pipeline::ErrorHook {
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

/// How long a stop waits for pending gzip work before leaving it to the next start.
const GZIP_GRACE: Duration = Duration::from_secs(2);
