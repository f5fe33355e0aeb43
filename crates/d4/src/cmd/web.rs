//! The web UI / REST API inside `d4 server` (`--web-listen`, default 127.0.0.1:7000):
//! HTTPS with the server's certificate, or plain HTTP with `--web-plain`.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use d4_store::Store;

use crate::config::D4Config;

/// Web UI and REST API settings of `d4 server` (each also a key of d4.toml: `web_listen`,
/// `web_plain`, `monitoring_threshold`, `metrics_public`, ..., `pssl_url`,
/// `pssl_token_file`, `pibs_url`, `pibs_token_file`; flags > env > file > defaults).
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
    /// Accepted `Host` name of the web UI (repeatable; DNS rebinding). `*` accepts any;
    /// IP literals always pass [default: localhost and this machine's host name].
    #[arg(long, env = "D4_WEB_HOST", value_name = "NAME", value_delimiter = ',')]
    pub web_host: Vec<String>,
    /// Reverse proxy (IP or CIDR, repeatable) whose `X-Forwarded-For` gives the client IP
    /// for the login lockout [default: none: the TCP peer is the client].
    #[arg(
        long,
        env = "D4_WEB_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub web_trusted_proxy: Vec<String>,
    /// Web connections open at once; more are closed at once [default: 512].
    #[arg(long, env = "D4_WEB_MAX_CONNECTIONS", value_name = "N")]
    pub web_max_connections: Option<usize>,
    /// Web connections open at once from one client IP [default: 64].
    #[arg(long, env = "D4_WEB_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub web_max_connections_per_ip: Option<usize>,
    /// Seconds to send a request head / finish the TLS handshake [default: 10].
    #[arg(long, env = "D4_WEB_HEADER_TIMEOUT", value_name = "SECS")]
    pub web_header_timeout: Option<u64>,
    /// Seconds to send a request body [default: 10].
    #[arg(long, env = "D4_WEB_BODY_TIMEOUT", value_name = "SECS")]
    pub web_body_timeout: Option<u64>,
    /// Seconds without a byte before a web connection is closed [default: 60].
    #[arg(long, env = "D4_WEB_IDLE_TIMEOUT", value_name = "SECS")]
    pub web_idle_timeout: Option<u64>,
    /// Password checks (argon2, ~19 MiB each) at once; excess logins get 429 [default: 4].
    #[arg(long, env = "D4_WEB_MAX_LOGIN_CHECKS", value_name = "N")]
    pub web_max_login_checks: Option<usize>,
    /// The passive SSL API (`d4 pssl serve`) the "Passive SSL" page asks, e.g.
    /// `http://127.0.0.1:8500` (plain HTTP only) [default: none: the page says how to set it].
    #[arg(long, env = "D4_WEB_PSSL_URL", value_name = "URL")]
    pub pssl_url: Option<String>,
    /// File holding the token sent to --pssl-url as `Authorization: <token>` (first
    /// non-empty line that is not a `#` comment) [default: none].
    #[arg(long, env = "D4_WEB_PSSL_TOKEN_FILE", value_name = "FILE")]
    pub pssl_token_file: Option<std::path::PathBuf>,
    /// Serve this MISP feed directory (written by `d4 misp feed`) read-only at /misp/
    /// (manifest.json, hashes.csv, <event uuid>.json; no listing) [default: none].
    #[arg(long, env = "D4_MISP_FEED_DIR", value_name = "DIR")]
    pub misp_feed_dir: Option<std::path::PathBuf>,
    /// File holding the feed's own token (not an account's), which MISP sends as the custom
    /// header `Authorization: <token>` (Bearer and Basic with the token as password are
    /// accepted too); required with --misp-feed-dir.
    #[arg(long, env = "D4_MISP_FEED_TOKEN_FILE", value_name = "FILE")]
    pub misp_feed_token_file: Option<std::path::PathBuf>,
    /// The backscatter API (`d4 pibs serve`) the "Backscatter" page asks, e.g.
    /// `http://127.0.0.1:8600` (plain HTTP only) [default: none: the page says how to set it].
    #[arg(long, env = "D4_WEB_PIBS_URL", value_name = "URL")]
    pub pibs_url: Option<String>,
    /// File holding the token sent to --pibs-url as `Authorization: <token>` (first
    /// non-empty line that is not a `#` comment) [default: none].
    #[arg(long, env = "D4_WEB_PIBS_TOKEN_FILE", value_name = "FILE")]
    pub pibs_token_file: Option<std::path::PathBuf>,
}

impl WebArgs {
    /// Applies the flags and environment variables given over `cfg` (file or defaults).
    pub fn apply(&self, cfg: &mut D4Config) {
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
        if !self.web_host.is_empty() {
            cfg.web_host = self.web_host.clone();
        }
        if !self.web_trusted_proxy.is_empty() {
            cfg.web_trusted_proxy = self.web_trusted_proxy.clone();
        }
        if let Some(v) = &self.pssl_url {
            cfg.pssl_url = Some(v.clone());
        }
        if let Some(v) = &self.pssl_token_file {
            cfg.pssl_token_file = Some(v.clone());
        }
        if let Some(v) = &self.misp_feed_dir {
            cfg.misp_feed_dir = Some(v.clone());
        }
        if let Some(v) = &self.misp_feed_token_file {
            cfg.misp_feed_token_file = Some(v.clone());
        }
        if let Some(v) = &self.pibs_url {
            cfg.pibs_url = Some(v.clone());
        }
        if let Some(v) = &self.pibs_token_file {
            cfg.pibs_token_file = Some(v.clone());
        }
        macro_rules! over {
            ($($f:ident),*) => {$( if let Some(v) = self.$f { cfg.$f = v; } )*};
        }
        over!(
            web_max_connections,
            web_max_connections_per_ip,
            web_header_timeout,
            web_body_timeout,
            web_idle_timeout,
            web_max_login_checks
        );
    }
}

/// Start the web UI (settings from `cfg`, flags already applied); `metrics` adds the
/// server's counters to `/metrics`, `alerts` gives it the queue alerts. Returns its task (abort it at shutdown), or None
/// when disabled.
pub async fn start(
    cfg: &D4Config,
    store: Arc<dyn Store>,
    metrics: Option<Arc<d4_server::ServerMetrics>>,
    alerts: Option<Arc<d4_server::QueueAlertMonitor>>,
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
    let (wcfg, limits) = cfg.web_config(tls.is_some())?;
    let state = d4_web::WebState::new(store, wcfg);
    if let Some(m) = metrics {
        state.add_metrics_source(Arc::new(ServerCounters(m)));
    }
    if let Some(a) = alerts {
        state.set_queue_alert_source(Arc::new(QueueAlerts(a)));
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
        let served =
            d4_web::serve_with_limits(listener, router, tls, limits, std::future::pending());
        if let Err(e) = served.await {
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

/// The server's queue alert monitor as the web's alert source.
struct QueueAlerts(Arc<d4_server::QueueAlertMonitor>);

impl d4_web::QueueAlertSource for QueueAlerts {
    fn alerts(&self, now: u64) -> d4_web::AlertsFuture<'_> {
        Box::pin(self.0.check(now))
    }
}
