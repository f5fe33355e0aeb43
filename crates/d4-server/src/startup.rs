//! What happens before the server listens: the data dir and the configuration checked,
//! the store's leases of a previous run cleared, the workers set up, and the previous
//! run's leftovers dealt with in order: bytes written for frames that were not
//! acknowledged cut (`journal::cut_uncommitted`), the files it left open finished
//! (`WorkerSet::recover`), then what it journaled but did not acknowledge replayed
//! (`pipeline::replay_leftovers`).

use std::sync::Arc;
use std::time::Duration;

use d4_store::{Leases, Queues, Sensors};
use d4_worker::{RotationPolicy, WorkerConfig, WorkerSet};

use crate::config::ServerConfig;
use crate::pipeline::HandlerFactory;
use crate::server::ServerError;
use crate::session::Mode;
use crate::workers::{StoreQueueSink, WorkerHandlers};

/// Creates the data dir, raises the open files limit and checks the configuration.
pub(crate) fn prepare(cfg: &ServerConfig) -> Result<(), ServerError> {
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
    Ok(())
}

/// Sets up the workers and recovers what the previous run left: returns the workers and
/// the handler factory the pipelines open their handlers from. It clears this server's
/// `leases`, reads the sensors' keys from `sensors` (for the replay) and gives the workers
/// `queues` to push into.
pub(crate) async fn recover(
    cfg: &ServerConfig,
    leases: &dyn Leases,
    sensors: &dyn Sensors,
    queues: Arc<dyn Queues>,
) -> Result<(Arc<WorkerSet>, Arc<dyn HandlerFactory>), ServerError> {
    // Active-session state of a previous run never blocks sensors.
    let cleared = leases.clear_leases(cfg.server_id.clone()).await?;
    if cleared > 0 {
        tracing::info!(cleared, "cleared active sessions left by a previous run");
    }

    let rt = tokio::runtime::Handle::current();
    let queue_sink = Arc::new(StoreQueueSink::new(queues, rt));
    let mut wcfg = WorkerConfig::new(cfg.data_dir.clone());
    wcfg.rotation = RotationPolicy {
        period: (cfg.rotation_secs > 0).then(|| Duration::from_secs(cfg.rotation_secs)),
        at_day_change: cfg.rotate_daily,
        max_bytes: (cfg.rotation_bytes > 0).then_some(cfg.rotation_bytes),
    };
    wcfg.gzip = cfg.gzip;
    let workers = Arc::new(WorkerSet::new(wcfg, queue_sink.clone())?);
    let handlers: Arc<dyn HandlerFactory> = Arc::new(WorkerHandlers {
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
    {
        let handlers = handlers.clone();
        let jdir = cfg.journal_dir();
        let own_keys = sensors.list_sensors().await?.into_iter().filter_map(|s| {
            let key = s.hmac_key.filter(|k| !k.is_empty())?;
            Some((s.uuid, key.into_bytes()))
        });
        let mut keys = crate::pipeline::ReplayKeys::new(cfg.default_key.as_bytes(), own_keys);
        let n = tokio::task::spawn_blocking(move || {
            crate::pipeline::replay_leftovers(&jdir, &*handlers, &mut keys)
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

    Ok((workers, handlers))
}
