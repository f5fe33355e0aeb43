//! The web UI / REST API inside `d4 server` (`--web-listen`, default 127.0.0.1:7000):
//! HTTPS with the server's certificate, or plain HTTP with `--web-plain`.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use d4_server::ServerConfig;
use d4_store::Store;

/// Web UI and REST API settings of `d4 server` (each also a key of d4.toml: `web_listen`,
/// `web_plain`, `monitoring_threshold`, `metrics_public`; flags > env > file > defaults).
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Web UI / REST API address ("" disables it). HTTPS with the server's certificate
    /// unless --web-plain. On first start an `admin` account is created: its password is
    /// printed once and written to <data>/web-admin-password.txt [default: 127.0.0.1:7000].
    #[arg(long, env = "D4_WEB_LISTEN", value_name = "ADDR")]
    pub web_listen: Option<String>,
    /// Serve the web UI over plain HTTP (behind a TLS-terminating proxy, or for tests);
    /// `--web-plain=false` turns it off again [default: false].
    #[arg(
        long,
        env = "D4_WEB_PLAIN",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub web_plain: Option<bool>,
    /// Monitoring: alert on sensors silent longer than this many seconds, unless a
    /// sensor has a threshold of its own [default: 3600].
    #[arg(long, env = "D4_MONITORING_THRESHOLD", value_name = "SECS")]
    pub monitoring_threshold: Option<u64>,
    /// Serve /metrics without a token (default: a user or admin API token is required).
    #[arg(
        long,
        env = "D4_METRICS_PUBLIC",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub metrics_public: Option<bool>,
}

impl WebArgs {
    /// Applies the flags and environment variables given over `cfg` (file or defaults).
    pub fn apply(&self, cfg: &mut ServerConfig) {
        if let Some(v) = &self.web_listen {
            cfg.web_listen = v.clone();
        }
        if let Some(v) = self.web_plain {
            cfg.web_plain = v;
        }
        if let Some(v) = self.monitoring_threshold {
            cfg.monitoring_threshold = v;
        }
        if let Some(v) = self.metrics_public {
            cfg.metrics_public = v;
        }
    }
}

/// Start the web UI (settings from `cfg`, flags already applied); `metrics` adds the
/// server's counters to `/metrics`. Returns its task (abort it at shutdown), or None
/// when disabled.
pub async fn start(
    cfg: &ServerConfig,
    store: Arc<dyn Store>,
    metrics: Option<Arc<d4_server::ServerMetrics>>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if cfg.web_listen.is_empty() {
        return Ok(None);
    }
    let tls = if cfg.web_plain {
        None
    } else {
        let (cert, key) = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => {
                let (c, k, _) = d4_server::tls::ensure_generated(&cfg.data_dir, &cfg.tls_san)
                    .context("web UI: TLS certificate")?;
                (c, k)
            }
        };
        Some(d4_server::tls::server_config(&cert, &key).context("web UI: TLS configuration")?)
    };
    let mut wcfg = d4_web::WebConfig::new(cfg.data_dir.clone());
    wcfg.secure_cookies = tls.is_some();
    wcfg.monitoring_threshold_secs = cfg.monitoring_threshold;
    wcfg.metrics_public = cfg.metrics_public;
    let state = d4_web::WebState::new(store, wcfg);
    if let Some(m) = metrics {
        state.add_metrics_source(Arc::new(ServerCounters(m)));
    }
    d4_web::ensure_admin(&state)
        .await
        .context("web UI: creating the first admin account")?;
    let listener = tokio::net::TcpListener::bind(&cfg.web_listen)
        .await
        .with_context(|| format!("web UI: binding {}", cfg.web_listen))?;
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

/// The collector's counters as a `/metrics` source (the adapter lives here: d4-server and
/// d4-web do not depend on each other).
struct ServerCounters(Arc<d4_server::ServerMetrics>);

impl d4_web::MetricsSource for ServerCounters {
    fn render(&self, out: &mut String) {
        self.0.render(out);
    }
}
