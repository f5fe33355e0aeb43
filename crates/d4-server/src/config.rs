//! The collector's settings: only what the server itself reads (listeners, limits, journal,
//! workers, leases). The `d4.toml` file, with the store's and the web UI's settings beside
//! these, belongs to the binary (`crates/d4/src/config.rs`), which builds this struct.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::session::Mode;

/// What to do when a sensor's pending entries pass its stream limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnLimit {
    /// Stop reading the socket until the worker catches up (TCP pushes back on the sensor).
    Backpressure,
    /// Drop the connection (the reference behaviour).
    Drop,
}

impl std::fmt::Display for OnLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OnLimit::Backpressure => "backpressure",
            OnLimit::Drop => "drop",
        })
    }
}

/// Every setting the collector reads. The binary builds it from `d4.toml`, `D4_*`
/// variables and flags (`crates/d4/src/config.rs` owns that file's schema, which also
/// holds the store's and the web UI's settings).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
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
    /// default ([`REFERENCE_DEFAULT_KEY`]); warned about at every start.
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
    /// File rotation period of the workers (seconds).
    pub rotation_secs: u64,
    /// Rotate at day change as well.
    pub rotate_daily: bool,
    /// Rotate a file once it holds this many bytes (0: no size rotation).
    pub rotation_bytes: u64,
    /// Gzip rotated files.
    pub gzip: bool,
    /// Lease of a session's (uuid, type) slot in the store, renewed every third of it: a
    /// crashed server's slots free themselves after this many seconds.
    pub session_lease_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: PathBuf::from("./d4-data"),
            listen: "[::]:4443".into(),
            plain_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_san: Vec::new(),
            mode: Mode::Registration,
            default_key: REFERENCE_DEFAULT_KEY.into(),
            allow_reference_key: false,
            max_payload: d4_proto::DEFAULT_MAX_PAYLOAD,
            header_timeout_secs: 30,
            idle_timeout_secs: 900,
            stream_limit: 10_000,
            max_pending_bytes: 64 << 20,
            on_limit: OnLimit::Backpressure,
            max_connections: 50_000,
            preauth_budget_bytes: 32 << 20,
            preauth_ip_bytes: 4 << 20,
            preauth_ip_connections: 64,
            preauth_connections: 1024,
            max_ext_sessions_per_sensor: crate::session::DEFAULT_MAX_EXT_SESSIONS_PER_SENSOR,
            journal_fsync: true,
            journal_direct: true,
            journal_segment_bytes: crate::journal::DEFAULT_SEGMENT_BYTES,
            stats_flush_ms: 1000,
            stats_flush_frames: 10_000,
            server_id: "d4-server".into(),
            rotation_secs: 300,
            rotate_daily: true,
            rotation_bytes: 0,
            gzip: true,
            session_lease_secs: 90,
        }
    }
}

/// The reference clients' and server's default HMAC key: public, so worthless as a secret.
pub const REFERENCE_DEFAULT_KEY: &str = "private key to change";

impl ServerConfig {
    /// Refuses a configuration that must not start: shared-secret mode with the
    /// reference's public default key, unless `allow_reference_key`.
    pub fn check(&self) -> Result<(), crate::ServerError> {
        if self.mode == Mode::SharedSecret
            && self.default_key == REFERENCE_DEFAULT_KEY
            && !self.allow_reference_key
        {
            return Err(crate::ServerError::ReferenceKey);
        }
        Ok(())
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.data_dir.join("journal")
    }
}
