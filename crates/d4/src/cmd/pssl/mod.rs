//! `d4 pssl`: the passive SSL analyzer. `ingest` loads certificates, public keys and TLS
//! sessions (the TLS sensor's `ja3-jl` records from an analyzer queue, files or stdin;
//! DER/PEM certificate files, folders and `.tar.gz` archives; pcap files through
//! `d4-tls`) into the store; `serve` answers the CIRCL Passive SSL API v2 (PyPSSL),
//! lookup-d4-passivessl's `/ja3` and `/ja3s`, and d4-rs's pivots. The logic lives in the
//! `d4-pssl` crate; this module only wires files, sockets and signals.
//!
//! The store is the embedded redb file `<data-dir>/pssl.redb` (one process owns it at a
//! time), or a PostgreSQL database with the reference analyzer's tables (`--postgres`),
//! which any number of ingesters and servers share.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use d4_pssl::{EmbeddedStore, PostgresStore, PsslStore};

pub mod ingest;
pub mod keychecks;
pub mod serve;
pub mod weak;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    d4 pssl ingest records.jsonl                      # d4 tls -j / reference sensor records\n  \
    d4 tls -r capture.pcap | d4 pssl ingest -\n  \
    d4 pssl ingest --certs -r /srv/certs certs.tar.gz # DER/PEM certificates\n  \
    d4 pssl ingest --pcap capture.pcap.gz\n  \
    d4 pssl ingest --queue 3a1c…                      # the server's ja3-jl analyzer queue\n  \
    d4 pssl weak --interval 3600                      # batch GCD of the stored RSA keys\n  \
    d4 pssl serve --listen 127.0.0.1:8500 --token-file /etc/d4/pssl.tokens\n  \
    curl -s http://127.0.0.1:8500/v2pssl/query/192.0.2.0/24\n\n\
The embedded database is one redb file (default <data-dir>/pssl.redb) that one process owns\n\
at a time: stop `serve` before a bulk `ingest`, or run `serve --queue`. With --postgres\n\
(the reference analyzer-d4-passivessl's tables) any number of processes share it.")]
pub struct PsslArgs {
    /// Data directory (the embedded database lives there unless --db is given).
    #[arg(long, global = true, env = "D4_DATA_DIR", default_value = "./d4-data")]
    pub data_dir: PathBuf,

    /// The embedded passive SSL database file (default: <data-dir>/pssl.redb).
    #[arg(long, global = true, env = "D4_PSSL_DB", conflicts_with = "postgres")]
    pub db: Option<PathBuf>,

    /// Use a PostgreSQL database instead of the embedded file
    /// (`postgres://user:password@host:5432/db`): the reference analyzer-d4-passivessl's
    /// tables, created when missing, so an existing database is read and written by both.
    #[arg(long, global = true, env = "D4_PSSL_POSTGRES", value_name = "URL")]
    pub postgres: Option<String>,

    /// With --queue: the collector's store is in Redis (`d4 server --redis URL`); consume
    /// its analyzer queue there (`analyzer:ja3-jl:<queue>`) instead of `<data-dir>/d4.redb`.
    #[arg(long, global = true, env = "D4_REDIS", value_name = "URL")]
    pub store_redis: Option<String>,

    /// With --queue: the collector's separate Redis URL for the analyzer queues
    /// (`d4 server --redis-queue`) [default: --store-redis].
    #[arg(long, global = true, env = "D4_REDIS_QUEUE", value_name = "URL")]
    pub redis_queue: Option<String>,

    /// With --queue: the collector's separate Redis URL for the metadata
    /// (`d4 server --redis-metadata`) [default: --store-redis].
    #[arg(long, global = true, env = "D4_REDIS_METADATA", value_name = "URL")]
    pub redis_metadata: Option<String>,

    /// With --queue: the collector's configuration file, whose store settings apply
    /// (redis, redis_queue, redis_metadata) [default: <data-dir>/d4.toml when it exists].
    #[arg(long, global = true, env = "D4_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: PsslCommand,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
pub enum PsslCommand {
    /// Load certificates, keys and TLS sessions into the store.
    ///
    /// Inputs: `ja3-jl` JSON lines (files, `.gz`, `-` for stdin: what `d4 tls` and the
    /// reference sensor write), DER/PEM certificate files, folders and `.tar.gz` archives
    /// (--certs), pcap/pcapng files (--pcap, through the TLS sensor), or the collector's
    /// `ja3-jl` analyzer queue (--queue: entries are paths of JSON record files).
    /// Idempotent: the same input twice stores nothing twice. Bad records are counted and
    /// logged, never fatal. A JSON summary is printed on stdout when done.
    Ingest(ingest::IngestArgs),
    /// Serve the CIRCL Passive SSL API v2 (PyPSSL), `/ja3/<md5>`, `/ja3s/<md5>` and pivots.
    ///
    /// GET /v2pssl/query/<ip|cidr>, /v2pssl/cquery/<sha1>, /v2pssl/cfetch/<sha1>,
    /// /ja3/<md5>, /ja3s/<md5>, /ja4/<ja4>, /info, /openapi.json and more: see
    /// docs/pssl.md.
    Serve(serve::ServeArgs),
    /// Batch GCD over every RSA modulus of the store; findings recorded in the store.
    ///
    /// Full the first time, then incremental (the new keys against the covered ones, from
    /// the state file <data-dir>/pssl-weak.state); --interval repeats it. Shared primes are
    /// recorded as `sharedprimes` (p and q in hex), one modulus under several SPKI encodings
    /// as `duplicate`, both with how `batch_gcd`. A JSON summary per run on stdout.
    Weak(weak::WeakArgs),
}

impl PsslArgs {
    /// The embedded database's path (the data dir is created, 0700, when used).
    pub fn db_path(&self) -> anyhow::Result<PathBuf> {
        match &self.db {
            Some(p) => Ok(p.clone()),
            None => {
                d4_store::private::create_private_dir(&self.data_dir).with_context(|| {
                    format!("cannot create data dir {}", self.data_dir.display())
                })?;
                Ok(self.data_dir.join("pssl.redb"))
            }
        }
    }

    /// Opens the passive SSL store: PostgreSQL with --postgres, else the embedded file.
    /// Both are synchronous: call them from `spawn_blocking` inside a runtime.
    pub fn open_store(&self) -> anyhow::Result<Arc<dyn PsslStore>> {
        match &self.postgres {
            Some(url) => open_store(Some(url), Path::new("")),
            None => open_store(None, &self.db_path()?),
        }
    }

    /// The collector's store settings (only for --queue): the same as `d4 server`'s.
    pub fn queue_store_config(&self) -> anyhow::Result<d4_store::StoreConfig> {
        super::store_args::StoreArgs {
            config: self.config.clone(),
            data_dir: Some(self.data_dir.clone()),
            redis: self.store_redis.clone(),
            redis_queue: self.redis_queue.clone(),
            redis_metadata: self.redis_metadata.clone(),
        }
        .store_config()
    }
}

/// Opens a passive SSL store: the PostgreSQL database `postgres` when given, else the
/// embedded file `db` (created when missing). Synchronous: call it from `spawn_blocking`
/// inside a runtime. (`d4 pssl` and `d4 misp feed` open their stores with it.)
pub fn open_store(postgres: Option<&str>, db: &Path) -> anyhow::Result<Arc<dyn PsslStore>> {
    Ok(match postgres {
        Some(url) => Arc::new(PostgresStore::open(url).with_context(|| {
            format!(
                "cannot use the PostgreSQL database {}",
                redact_url_password(url)
            )
        })?),
        None => Arc::new(
            EmbeddedStore::open(db).with_context(|| format!("cannot open {}", db.display()))?,
        ),
    })
}

/// A connection string for messages: the password of a URL (`postgres://user:***@host/db`,
/// `?password=***`) or of a `key=value` string (`password=***`) hidden.
pub fn redact_url_password(url: &str) -> String {
    let mut out = match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((auth, host)) => match auth.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => url.to_string(),
            },
            None => url.to_string(),
        },
        None => url.to_string(),
    };
    // `password=...` as a query parameter or a key=value pair (quoted or not)
    let mut from = 0;
    while let Some(i) = out[from..].find("password=") {
        let start = from + i + "password=".len();
        let rest = &out[start..];
        let end = if let Some(q) = rest.strip_prefix('\'') {
            q.find('\'').map_or(rest.len(), |e| e + 2)
        } else {
            rest.find(|c: char| c == '&' || c.is_whitespace())
                .unwrap_or(rest.len())
        };
        out.replace_range(start..start + end, "***");
        from = start + 3;
    }
    out
}

pub fn run(args: PsslArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        PsslCommand::Ingest(_) => ingest::run(&args),
        PsslCommand::Serve(_) => serve::run(&args),
        PsslCommand::Weak(_) => weak::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url_password;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact_url_password("postgres://d4:s3cret@db:5432/pssl"),
            "postgres://d4:***@db:5432/pssl"
        );
        assert_eq!(
            redact_url_password("postgres://d4@db/pssl"),
            "postgres://d4@db/pssl"
        );
        assert_eq!(redact_url_password("host=db user=d4"), "host=db user=d4");
        assert_eq!(
            redact_url_password("host=db user=d4 password=s3cret dbname=pssl"),
            "host=db user=d4 password=*** dbname=pssl"
        );
        assert_eq!(
            redact_url_password("host=db password='a b' user=d4"),
            "host=db password=*** user=d4"
        );
        assert_eq!(
            redact_url_password("postgres://db/pssl?user=d4&password=s3cret&sslmode=require"),
            "postgres://db/pssl?user=d4&password=***&sslmode=require"
        );
    }
}
