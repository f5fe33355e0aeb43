//! Where the collector's store is, for every command that opens it (`d4 sensor|blocklist|
//! queue|types|store-serve`, `d4 pdns ingest|serve --queue`, `d4 pibs --queue`): the same
//! settings as `d4 server`, read the same way — flags, then `D4_*` variables, then the
//! `d4.toml` the server reads (`--config`, else `<data-dir>/d4.toml` when it exists), then
//! the defaults. So an admin command run beside `d4 server --redis …/0 --redis-queue …/2`
//! sees the queues where the server writes them, with no flag at all when both read the
//! same `d4.toml`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use d4_store::StoreConfig;

use crate::config::D4Config;

/// The store settings shared with `d4 server`.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// Configuration file of the server, whose store settings (data_dir, redis,
    /// redis_queue, redis_metadata) apply [default: <data-dir>/d4.toml when it exists].
    #[arg(long, global = true, env = "D4_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Data directory of the server (holds d4.redb and the server's socket d4.sock)
    /// [default: ./d4-data].
    #[arg(long, global = true, env = "D4_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Use the Redis store (redis://HOST:PORT/DB) that `d4 server --redis` uses.
    #[arg(long, global = true, env = "D4_REDIS", value_name = "URL")]
    pub redis: Option<String>,

    /// The server's separate Redis URL for the analyzer queues (`d4 server --redis-queue`;
    /// d4-core's analyzers read db 2) [default: --redis].
    #[arg(long, global = true, env = "D4_REDIS_QUEUE", value_name = "URL")]
    pub redis_queue: Option<String>,

    /// The server's separate Redis URL for the metadata (`d4 server --redis-metadata`)
    /// [default: --redis].
    #[arg(long, global = true, env = "D4_REDIS_METADATA", value_name = "URL")]
    pub redis_metadata: Option<String>,
}

impl StoreArgs {
    /// The effective store settings: flags and `D4_*` over the configuration file.
    pub fn store_config(&self) -> anyhow::Result<StoreConfig> {
        let mut file = D4Config::load(self.config.as_deref(), self.data_dir.as_deref())
            .context("reading the server's configuration for the store settings")?;
        if let Some(d) = &self.data_dir {
            file.data_dir = d.clone();
        }
        file.redis = self.redis.clone().or(file.redis);
        file.redis_queue = self.redis_queue.clone().or(file.redis_queue);
        file.redis_metadata = self.redis_metadata.clone().or(file.redis_metadata);
        file.store_config()
    }
}
