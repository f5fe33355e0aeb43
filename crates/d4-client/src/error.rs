//! Error values of the client library.

use std::path::PathBuf;

/// Bad configuration: the binary reports it and exits with status 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration directory {0} does not exist")]
    NoConfigDir(PathBuf),
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("{0} is not valid UTF-8")]
    NotUtf8(PathBuf),
    #[error("invalid uuid {0:?} (accepted: dashed, 32 hex digits, {{...}}, urn:uuid:...)")]
    BadUuid(String),
    #[error("missing HMAC key: give --key, --key-file or a `key` file in the config dir")]
    MissingKey,
    #[error("unknown D4 type {0:?} (a number 1-254 or a name such as pcap, meta-header)")]
    BadType(String),
    #[error("unsupported protocol version {0:?} (only 1)")]
    BadVersion(String),
    #[error("invalid snaplen {0:?} (1 to 1000000 bytes)")]
    BadSnaplen(String),
    #[error("types 2 and 254 need a meta header: give --metaheader FILE or metaheader.json")]
    MissingMetaHeader,
    #[error("invalid meta header: {0}")]
    BadMetaHeader(String),
    #[error("unknown source {0:?} (stdin, folder, d4server, or the path of an existing file)")]
    UnknownSource(String),
    #[error("source file {0} does not exist or is not a file")]
    NoSourceFile(PathBuf),
    #[error("source `folder` needs --folder DIR or a `folder` file in the config dir")]
    MissingFolder,
    #[error("folder {0} does not exist or is not a directory")]
    NoFolder(PathBuf),
    #[error("source `d4server` needs redis_d4 (host:port/db) and redis_queue")]
    MissingRedis,
    #[error("invalid redis_d4 {0:?} (expected host:port/db)")]
    BadRedis(String),
    #[error("--follow only applies to a file source")]
    FollowNeedsFile,
    #[error("invalid destination {0:?} (stdout, host:port, ipv4:port or [ipv6]:port)")]
    BadDestination(String),
    #[error("CA file {0}: {1}")]
    BadCa(PathBuf, String),
    #[error("TLS set-up failed: {0}")]
    Tls(String),
}

/// Errors while running (after the configuration was accepted).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("spool {0}: {1}")]
    Spool(PathBuf, std::io::Error),
    #[error("source: {0}")]
    Source(String),
    #[error("writing to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("framing: {0}")]
    Encode(String),
    /// Everything was written, but the collector did not confirm the end of the stream
    /// (its own close) in time, or reset the connection: the last data may not have arrived.
    #[error("the collector did not confirm the end of the stream: {0}; the last data may not have arrived")]
    Unconfirmed(String),
}
