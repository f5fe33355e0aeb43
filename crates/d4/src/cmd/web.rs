//! The web UI / REST API inside `d4 server` (`--web-listen`, default 127.0.0.1:7000):
//! HTTPS with the server's certificate, or plain HTTP with `--web-plain`.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use d4_server::ServerConfig;
use d4_store::Store;

/// Web UI and REST API settings of `d4 server`.
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Web UI / REST API address ("" disables it). HTTPS with the server's certificate
    /// unless --web-plain. On first start an `admin` account is created: its password is
    /// printed once and written to <data>/web-admin-password.txt.
    #[arg(
        long,
        env = "D4_WEB_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:7000"
    )]
    pub web_listen: String,
    /// Serve the web UI over plain HTTP (behind a TLS-terminating proxy, or for tests).
    #[arg(long, env = "D4_WEB_PLAIN")]
    pub web_plain: bool,
    /// Monitoring: alert on sensors silent longer than this many seconds.
    #[arg(long, env = "D4_MONITORING_THRESHOLD", default_value_t = 3600)]
    pub monitoring_threshold: u64,
    /// Serve /metrics without a token (default: a user or admin API token is required).
    #[arg(long, env = "D4_METRICS_PUBLIC")]
    pub metrics_public: bool,
}

/// Start the web UI; returns its task (abort it at shutdown), or None when disabled.
pub async fn start(
    args: &WebArgs,
    cfg: &ServerConfig,
    store: Arc<dyn Store>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if args.web_listen.is_empty() {
        return Ok(None);
    }
    let tls = if args.web_plain {
        None
    } else {
        let (cert, key) = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => {
                let (c, k, _) = d4_server::tls::ensure_generated(&cfg.data_dir)
                    .context("web UI: TLS certificate")?;
                (c, k)
            }
        };
        Some(d4_server::tls::server_config(&cert, &key).context("web UI: TLS configuration")?)
    };
    let mut wcfg = d4_web::WebConfig::new(cfg.data_dir.clone());
    wcfg.secure_cookies = tls.is_some();
    wcfg.monitoring_threshold_secs = args.monitoring_threshold;
    wcfg.metrics_public = args.metrics_public;
    let state = d4_web::WebState::new(store, wcfg);
    d4_web::ensure_admin(&state)
        .await
        .context("web UI: creating the first admin account")?;
    let listener = tokio::net::TcpListener::bind(&args.web_listen)
        .await
        .with_context(|| format!("web UI: binding {}", args.web_listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, "web UI listening");
    eprintln!("d4-web-ready {scheme}://{addr}");
    let router = d4_web::router(state);
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = d4_web::serve(listener, router, tls, std::future::pending()).await {
            tracing::error!(error = %e, "web UI stopped");
        }
    })))
}
