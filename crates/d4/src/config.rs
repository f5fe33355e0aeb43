//! `d4.toml`: the one configuration file, owned by the binary. Its keys are flat (the
//! names of the flags with `_` for `-`), and every key can also come from a `D4_*`
//! variable or a flag: flags > `D4_*` > the file > the defaults. `d4 server` reads all of
//! it (`--print-config` prints the effective file); the commands that open the server's
//! store (`d4 sensor|blocklist|queue|types|store-serve`, `d4 pdns … --queue`,
//! `d4 pibs --queue`) read the store keys from the same file.
//!
//! From it the binary builds what each library reads, and nothing more:
//! [`D4Config::server_config`] (the collector, `d4_server::ServerConfig`),
//! [`D4Config::store_config`] (`d4_store::StoreConfig`) and [`D4Config::web_config`]
//! (`d4_web::WebConfig` and its connection limits).

use std::path::{Path, PathBuf};

use anyhow::Context;
use d4_server::{Mode, OnLimit, ServerConfig};
use serde::{Deserialize, Serialize};

/// Every key of `d4.toml` (field names are the keys; missing keys keep their default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct D4Config {
    /// Data dir: database, TLS material, journal, sensors' files.
    pub data_dir: PathBuf,
    /// TLS listener address ("" disables it). `[::]` is dual stack (falls back to 0.0.0.0).
    pub listen: String,
    /// Extra plain-TCP listeners (tests, TLS terminated elsewhere).
    pub plain_listen: Vec<String>,
    /// PEM certificate chain; generated in `<data>/tls/` on first start when unset.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Extra names (DNS names or IP addresses) for the generated certificate, beside
    /// `localhost`, `127.0.0.1`, `::1`, the host name and the machine's addresses.
    pub tls_san: Vec<String>,
    /// `registration` (approved sensors only) or `shared-secret`.
    pub mode: Mode,
    /// HMAC key of sensors that have no key of their own.
    pub default_key: String,
    /// Start in `shared-secret` mode even though `default_key` is the reference's public
    /// default ([`d4_server::REFERENCE_DEFAULT_KEY`]); warned about at every start.
    pub allow_reference_key: bool,
    /// Largest accepted payload (bytes); bigger declared sizes end the connection.
    pub max_payload: u32,
    /// Close a connection that sent no valid frame within this many seconds.
    pub header_timeout_secs: u64,
    /// Close a connection that sent nothing for this many seconds (0: never).
    pub idle_timeout_secs: u64,
    /// Stream limit (pending entries) of sensors without their own.
    pub stream_limit: u64,
    /// Pending bytes per session over which reading stops as well.
    pub max_pending_bytes: u64,
    /// `backpressure` or `drop` when a sensor passes its stream limit.
    pub on_limit: OnLimit,
    /// Connections served at once; more wait in the kernel backlog.
    pub max_connections: usize,
    /// Bytes all connections that have not shown a valid frame yet may hold together
    /// (a declared payload arrives before its HMAC can be checked).
    pub preauth_budget_bytes: usize,
    /// Bytes the not-yet-authenticated connections of one source IP may hold.
    pub preauth_ip_bytes: usize,
    /// Not-yet-authenticated connections (TLS handshakes included) of one source IP.
    pub preauth_ip_connections: usize,
    /// Not-yet-authenticated connections in total; more are closed at once.
    pub preauth_connections: usize,
    /// Concurrent 2 → 254 (extended-type) connections of one sensor on this server; more
    /// are refused (`ext-sessions-limit`). 0: no limit.
    pub max_ext_sessions_per_sensor: usize,
    /// Sync the journal to disk before the worker handles a batch.
    pub journal_fsync: bool,
    /// Write the journal with `O_DIRECT` (no page cache; buffered where unsupported).
    pub journal_direct: bool,
    /// Journal segment size (bytes) after which a fully handled journal starts a new file.
    pub journal_segment_bytes: u64,
    /// Flush aggregated stats to the store at least this often (milliseconds) ...
    pub stats_flush_ms: u64,
    /// ... or once this many frames were aggregated.
    pub stats_flush_frames: u64,
    /// Name of this server in the store's session table.
    pub server_id: String,
    /// This organisation's UUID, sent as `misp:org` in the meta headers of forwarded
    /// extended-type streams (unset: omitted).
    pub org_uuid: Option<uuid::Uuid>,
    /// File rotation period of the workers (seconds).
    pub rotation_secs: u64,
    /// Rotate at day change as well.
    pub rotate_daily: bool,
    /// Rotate a file once it holds this many bytes (0: no size rotation).
    pub rotation_bytes: u64,
    /// Gzip rotated files.
    pub gzip: bool,
    /// Redis store URL (`redis://HOST:PORT/DB`): d4-core's key layout, shared by several
    /// servers. Unset: the embedded store in the data dir.
    pub redis: Option<String>,
    /// Separate Redis URL for the analyzer queues (default: `redis`).
    pub redis_queue: Option<String>,
    /// Separate Redis URL for the metadata (default: `redis`).
    pub redis_metadata: Option<String>,
    /// Lease of a session's (uuid, type) slot in the store, renewed every third of it: a
    /// crashed server's slots free themselves after this many seconds.
    pub session_lease_secs: u64,
    /// Web UI / REST API address (`""` disables it). Served by `d4 server` itself.
    pub web_listen: String,
    /// Serve the web UI over plain HTTP instead of HTTPS (behind a TLS-terminating proxy).
    pub web_plain: bool,
    /// Monitoring: a sensor silent longer than this many seconds is listed, unless it has
    /// a threshold of its own.
    pub monitoring_threshold: u64,
    /// Serve `/metrics` without a token.
    pub metrics_public: bool,
    /// Accepted `Host` names of the web UI (DNS rebinding); empty: localhost and this
    /// machine's host name; `*`: any. IP literals always pass. (docs/security.md)
    pub web_host: Vec<String>,
    /// Reverse proxies (IP or CIDR) whose `X-Forwarded-For` gives the web client's IP.
    pub web_trusted_proxy: Vec<String>,
    /// Web connections open at once; more are closed at once.
    pub web_max_connections: usize,
    /// Web connections open at once from one client IP (trusted proxies excepted).
    pub web_max_connections_per_ip: usize,
    /// Seconds a web client has to send a request head (and finish the TLS handshake).
    pub web_header_timeout: u64,
    /// Seconds a web client has to send a request body.
    pub web_body_timeout: u64,
    /// Seconds without a byte on a web connection before it is closed.
    pub web_idle_timeout: u64,
    /// Password checks (argon2, ~19 MiB each) running at once; excess logins get 429.
    pub web_max_login_checks: usize,
    /// The passive SSL API (`d4 pssl serve`) the web UI's "Passive SSL" page asks
    /// (`http://HOST:PORT`; plain HTTP only). Unset: the page says how to set it.
    pub pssl_url: Option<String>,
    /// File holding the token sent to `pssl_url` as `Authorization: <token>` (its first
    /// non-empty line that is not a `#` comment).
    pub pssl_token_file: Option<PathBuf>,
    /// Queue alert: a queue holding at least this fraction of its max size (0 turns the
    /// fill alert off).
    pub queue_alert_fill: f64,
    /// Queue alert: a queue whose oldest entry waits longer than this many seconds (0
    /// turns the age alert off).
    pub queue_alert_age: u64,
    /// Queue alert: a "trimmed" episode (entries dropped from a full queue) ends after
    /// this many seconds without a drop.
    pub queue_alert_trimmed_quiet: u64,
    /// A MISP feed directory (written by `d4 misp feed`) served read-only by the web UI at
    /// `/misp/`. Needs `misp_feed_token_file`.
    pub misp_feed_dir: Option<PathBuf>,
    /// File holding the feed's own token (first non-empty line that is not a `#`
    /// comment), which MISP sends as `Authorization: <token>`.
    pub misp_feed_token_file: Option<PathBuf>,
    /// Seconds between two evaluations of the queue alerts (the API, `/metrics` and the
    /// Monitoring page evaluate on their call as well).
    pub queue_alert_interval: u64,
    /// The backscatter API (`d4 pibs serve`) the web UI's "Backscatter" page asks
    /// (`http://HOST:PORT`; plain HTTP only). Unset: the page says how to set it.
    pub pibs_url: Option<String>,
    /// File holding the token sent to `pibs_url` as `Authorization: <token>` (its first
    /// non-empty line that is not a `#` comment).
    pub pibs_token_file: Option<PathBuf>,
}

impl Default for D4Config {
    fn default() -> Self {
        // The collector's own defaults live with the collector.
        let s = ServerConfig::default();
        D4Config {
            data_dir: s.data_dir,
            listen: s.listen,
            plain_listen: s.plain_listen,
            tls_cert: s.tls_cert,
            tls_key: s.tls_key,
            tls_san: s.tls_san,
            mode: s.mode,
            default_key: s.default_key,
            allow_reference_key: s.allow_reference_key,
            max_payload: s.max_payload,
            header_timeout_secs: s.header_timeout_secs,
            idle_timeout_secs: s.idle_timeout_secs,
            stream_limit: s.stream_limit,
            max_pending_bytes: s.max_pending_bytes,
            on_limit: s.on_limit,
            max_connections: s.max_connections,
            preauth_budget_bytes: s.preauth_budget_bytes,
            preauth_ip_bytes: s.preauth_ip_bytes,
            preauth_ip_connections: s.preauth_ip_connections,
            preauth_connections: s.preauth_connections,
            max_ext_sessions_per_sensor: s.max_ext_sessions_per_sensor,
            journal_fsync: s.journal_fsync,
            journal_direct: s.journal_direct,
            journal_segment_bytes: s.journal_segment_bytes,
            stats_flush_ms: s.stats_flush_ms,
            stats_flush_frames: s.stats_flush_frames,
            server_id: s.server_id,
            org_uuid: None,
            rotation_secs: s.rotation_secs,
            rotate_daily: s.rotate_daily,
            rotation_bytes: s.rotation_bytes,
            gzip: s.gzip,
            redis: None,
            redis_queue: None,
            redis_metadata: None,
            session_lease_secs: s.session_lease_secs,
            web_listen: "127.0.0.1:7000".into(),
            web_plain: false,
            monitoring_threshold: 3600,
            metrics_public: false,
            web_host: Vec::new(),
            web_trusted_proxy: Vec::new(),
            web_max_connections: 512,
            web_max_connections_per_ip: 64,
            web_header_timeout: 10,
            web_body_timeout: 10,
            web_idle_timeout: 60,
            web_max_login_checks: 4,
            pssl_url: None,
            pssl_token_file: None,
            queue_alert_fill: 0.8,
            queue_alert_age: 3600,
            queue_alert_trimmed_quiet: 300,
            queue_alert_interval: 10,
            misp_feed_dir: None,
            misp_feed_token_file: None,
            pibs_url: None,
            pibs_token_file: None,
        }
    }
}

/// Errors reading the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("printing the configuration: {0}")]
    Print(#[from] toml::ser::Error),
}

impl D4Config {
    /// Reads a TOML file over the defaults (missing keys keep their default).
    pub fn from_file(path: &Path) -> Result<D4Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// The configuration file over the defaults: `config` when given, else
    /// `<data_dir>/d4.toml` when it exists (`data_dir` defaulting to the server's
    /// default), else the defaults. What `d4 server` and the store commands start from.
    pub fn load(config: Option<&Path>, data_dir: Option<&Path>) -> Result<D4Config, ConfigError> {
        let default_dir = data_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| D4Config::default().data_dir);
        let file = match config {
            Some(f) => Some(f.to_path_buf()),
            None => Some(default_dir.join("d4.toml")).filter(|p| p.is_file()),
        };
        match &file {
            Some(f) => D4Config::from_file(f),
            None => Ok(D4Config::default()),
        }
    }

    /// The effective configuration as TOML (`--print-config`).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        Ok(toml::to_string(self)?)
    }

    /// What the collector reads.
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            data_dir: self.data_dir.clone(),
            listen: self.listen.clone(),
            plain_listen: self.plain_listen.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_san: self.tls_san.clone(),
            mode: self.mode,
            default_key: self.default_key.clone(),
            allow_reference_key: self.allow_reference_key,
            max_payload: self.max_payload,
            header_timeout_secs: self.header_timeout_secs,
            idle_timeout_secs: self.idle_timeout_secs,
            stream_limit: self.stream_limit,
            max_pending_bytes: self.max_pending_bytes,
            on_limit: self.on_limit,
            max_connections: self.max_connections,
            preauth_budget_bytes: self.preauth_budget_bytes,
            preauth_ip_bytes: self.preauth_ip_bytes,
            preauth_ip_connections: self.preauth_ip_connections,
            preauth_connections: self.preauth_connections,
            max_ext_sessions_per_sensor: self.max_ext_sessions_per_sensor,
            journal_fsync: self.journal_fsync,
            journal_direct: self.journal_direct,
            journal_segment_bytes: self.journal_segment_bytes,
            stats_flush_ms: self.stats_flush_ms,
            stats_flush_frames: self.stats_flush_frames,
            server_id: self.server_id.clone(),
            rotation_secs: self.rotation_secs,
            rotate_daily: self.rotate_daily,
            rotation_bytes: self.rotation_bytes,
            gzip: self.gzip,
            session_lease_secs: self.session_lease_secs,
        }
    }

    /// The queue alert levels; refuses a fill level outside 0..=1.
    pub fn queue_alerts(&self) -> anyhow::Result<d4_server::AlertThresholds> {
        if !(0.0..=1.0).contains(&self.queue_alert_fill) {
            anyhow::bail!(
                "queue_alert_fill (--queue-alert-fill, D4_QUEUE_ALERT_FILL) is {}: give a \
                 fraction of the queue's max size between 0 (off) and 1, e.g. 0.8",
                self.queue_alert_fill
            );
        }
        Ok(d4_server::AlertThresholds {
            fill: self.queue_alert_fill,
            age_secs: self.queue_alert_age,
            trimmed_quiet_secs: self.queue_alert_trimmed_quiet.max(1),
        })
    }

    /// Where the store is. Refuses a separate queue or metadata Redis URL without the
    /// main one (the main URL may come from d4.toml while the others come from flags or
    /// `D4_*`).
    pub fn store_config(&self) -> anyhow::Result<d4_store::StoreConfig> {
        if self.redis.is_none() && (self.redis_queue.is_some() || self.redis_metadata.is_some()) {
            anyhow::bail!(
                "--redis-queue / --redis-metadata (D4_REDIS_QUEUE, D4_REDIS_METADATA, or \
                 redis_queue / redis_metadata in d4.toml) need the main URL too: --redis \
                 (D4_REDIS, or redis in d4.toml)"
            );
        }
        let mut c = d4_store::StoreConfig::new(self.data_dir.clone());
        c.redis_url = self.redis.clone();
        c.redis_queue_url = self.redis_queue.clone();
        c.redis_metadata_url = self.redis_metadata.clone();
        Ok(c)
    }

    /// The web UI's settings and connection limits; `secure_cookies` when it is served
    /// over HTTPS.
    pub fn web_config(
        &self,
        secure_cookies: bool,
    ) -> anyhow::Result<(d4_web::WebConfig, d4_web::ServeLimits)> {
        let mut w = d4_web::WebConfig::new(self.data_dir.clone());
        w.secure_cookies = secure_cookies;
        w.monitoring_threshold_secs = self.monitoring_threshold;
        w.metrics_public = self.metrics_public;
        w.trusted_proxies = trusted_proxies(&self.web_trusted_proxy)?;
        w.allowed_hosts = allowed_hosts(&self.web_host);
        w.body_timeout_secs = self.web_body_timeout.max(1);
        w.max_login_checks = self.web_max_login_checks.max(1);
        if let Some(url) = self.pssl_url.as_deref().filter(|u| !u.trim().is_empty()) {
            d4_web::pssl_client::check_url(url).context("pssl_url")?;
            w.pssl_url = Some(url.trim().to_string());
        }
        if let Some(f) = &self.pssl_token_file {
            w.pssl_token = Some(d4_web::pssl_client::Secret(read_token(f)?));
        }
        match (&self.misp_feed_dir, &self.misp_feed_token_file) {
            (None, _) => {}
            (Some(_), None) => anyhow::bail!(
                "misp_feed_dir (--misp-feed-dir, D4_MISP_FEED_DIR) is set without a token: \
                 give misp_feed_token_file (--misp-feed-token-file, \
                 D4_MISP_FEED_TOKEN_FILE), a file holding the token MISP will send"
            ),
            (Some(dir), Some(f)) => {
                if !dir.is_dir() {
                    anyhow::bail!(
                        "misp_feed_dir: {} is not a directory (create it, or run `d4 misp \
                         feed` to write the feed there first)",
                        dir.display()
                    );
                }
                w.misp_feed_dir = Some(dir.clone());
                w.misp_feed_token = Some(d4_web::pssl_client::Secret(read_token_of(
                    "misp_feed_token_file",
                    f,
                )?));
            }
        }
        if let Some(url) = self.pibs_url.as_deref().filter(|u| !u.trim().is_empty()) {
            d4_web::pssl_client::check_service_url(d4_web::Service::PIBS, url)
                .context("pibs_url")?;
            w.pibs_url = Some(url.trim().to_string());
        }
        if let Some(f) = &self.pibs_token_file {
            w.pibs_token = Some(d4_web::pssl_client::Secret(read_token_of(
                "pibs_token_file",
                f,
            )?));
        }
        let limits = d4_web::ServeLimits {
            max_connections: self.web_max_connections.max(1),
            max_connections_per_ip: self.web_max_connections_per_ip.max(1),
            exempt: w.trusted_proxies.clone(),
            header_timeout: std::time::Duration::from_secs(self.web_header_timeout.max(1)),
            idle_timeout: std::time::Duration::from_secs(self.web_idle_timeout.max(1)),
        };
        Ok((w, limits))
    }
}

/// The token of `pssl_token_file`: its first non-empty line that is not a `#` comment.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    read_token_of("pssl_token_file", path)
}

/// The token in the file of the key `key`: its first non-empty line that is not a `#`
/// comment; errors name the key and the file.
pub fn read_token_of(key: &str, path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{key}: reading {}", path.display()))?;
    let token = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .with_context(|| format!("{key}: {} holds no token", path.display()))?;
    if !token.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        anyhow::bail!(
            "{key}: {} holds characters an HTTP header cannot carry",
            path.display()
        );
    }
    Ok(token.to_string())
}

/// `web_trusted_proxy` entries: an IP (a /32 or /128) or a CIDR.
pub fn trusted_proxies(list: &[String]) -> anyhow::Result<Vec<ipnet::IpNet>> {
    list.iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .with_context(|| format!("web_trusted_proxy: `{s}` is not an IP or CIDR"))
        })
        .collect()
}

/// `web_host` (accepted `Host` names), or the default: localhost and this machine's host
/// name (IP literals always pass, see `d4_web::host_allowed`).
pub fn allowed_hosts(configured: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = configured
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        hosts.push("localhost".into());
        if let Ok(name) = std::fs::read_to_string("/etc/hostname") {
            let name = name.trim().to_ascii_lowercase();
            if !name.is_empty() {
                hosts.push(name);
            }
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_roundtrip_and_partial_file() {
        let c = D4Config::default();
        let text = c.to_toml().unwrap();
        let back: D4Config = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        let part: D4Config = toml::from_str("mode = \"shared-secret\"\n").unwrap();
        assert_eq!(part.mode, Mode::SharedSecret);
        assert_eq!(part.listen, "[::]:4443");
        assert!(toml::from_str::<D4Config>("nope = 1").is_err());
        let web: D4Config =
            toml::from_str("web_listen = \"127.0.0.1:7443\"\nweb_plain = true\nmonitoring_threshold = 60\nmetrics_public = true\n").unwrap();
        assert_eq!(web.web_listen, "127.0.0.1:7443");
        assert!(web.web_plain && web.metrics_public);
        assert_eq!(web.monitoring_threshold, 60);
    }

    #[test]
    fn pssl_settings_reach_the_web_config() {
        let dir = tempfile::tempdir().unwrap();
        let tok = dir.path().join("pssl.token");
        std::fs::write(&tok, "# the web UI's token\n\n  s3cret-token  \nsecond\n").unwrap();
        let text = format!(
            "pssl_url = \"http://127.0.0.1:8500/\"\npssl_token_file = {:?}\n",
            tok.display().to_string()
        );
        let c: D4Config = toml::from_str(&text).unwrap();
        let (w, _) = c.web_config(false).unwrap();
        assert_eq!(w.pssl_url.as_deref(), Some("http://127.0.0.1:8500/"));
        assert_eq!(w.pssl_token.unwrap().0, "s3cret-token");
        // Unset: nothing.
        let (w, _) = D4Config::default().web_config(false).unwrap();
        assert!(w.pssl_url.is_none() && w.pssl_token.is_none());
        // https, a missing or empty token file: refused at start.
        let mut bad = c.clone();
        bad.pssl_url = Some("https://127.0.0.1:8500".into());
        assert!(bad.web_config(false).is_err());
        let mut bad = c.clone();
        bad.pssl_token_file = Some(dir.path().join("missing"));
        assert!(bad.web_config(false).is_err());
        std::fs::write(&tok, "# only a comment\n").unwrap();
        assert!(c.web_config(false).is_err());
    }

    #[test]
    fn pibs_settings_reach_the_web_config() {
        let dir = tempfile::tempdir().unwrap();
        let tok = dir.path().join("pibs.token");
        std::fs::write(&tok, "# the web UI's token\npibs-token\n").unwrap();
        let text = format!(
            "pibs_url = \"http://127.0.0.1:8600\"\npibs_token_file = {:?}\n",
            tok.display().to_string()
        );
        let c: D4Config = toml::from_str(&text).unwrap();
        let (w, _) = c.web_config(false).unwrap();
        assert_eq!(w.pibs_url.as_deref(), Some("http://127.0.0.1:8600"));
        assert_eq!(w.pibs_token.unwrap().0, "pibs-token");
        assert!(w.pssl_url.is_none());
        let mut bad = c.clone();
        bad.pibs_url = Some("ftp://127.0.0.1:8600".into());
        let e = format!("{:#}", bad.web_config(false).unwrap_err());
        assert!(e.contains("pibs_url") && e.contains("backscatter"), "{e}");
        let mut bad = c.clone();
        bad.pibs_token_file = Some(dir.path().join("missing"));
        let e = format!("{:#}", bad.web_config(false).unwrap_err());
        assert!(e.contains("pibs_token_file"), "{e}");
    }

    #[test]
    fn server_config_carries_every_server_key() {
        assert_eq!(D4Config::default().server_config(), ServerConfig::default());
    }
}
