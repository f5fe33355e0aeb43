//! `d4 pssl serve`: the passive SSL lookup server (the CIRCL Passive SSL API v2 for
//! PyPSSL and MISP, lookup-d4-passivessl's `/ja3` and `/ja3s`, d4-rs's pivots; the routes
//! live in `d4_pssl::server`). This module reads the flags and credential files, opens the
//! store, binds the socket and drains on SIGINT/SIGTERM; with `--queue` it also ingests
//! the collector's `ja3-jl` analyzer queue in the same process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use d4_pssl::server::{Credentials, ServeConfig};
use d4_pssl::{IngestOptions, Ingester};

use super::ingest::queue::consume_queue;

use super::{PsslArgs, PsslCommand};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8500", env = "D4_PSSL_LISTEN")]
    pub listen: SocketAddr,

    /// Accept this token in `Authorization: <token>` (PyPSSL's auth_token) or
    /// `Authorization: Bearer <token>`. Repeatable (the variable holds one token, taken
    /// whole: commas are part of it; several tokens go in --token-file).
    #[arg(long, env = "D4_PSSL_TOKEN")]
    pub token: Vec<String>,

    /// Read accepted tokens from a file, one per line (`#` comments).
    #[arg(long, value_name = "FILE", env = "D4_PSSL_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Accept HTTP Basic auth with this `user:password` (PyPSSL's basic_auth). Repeatable
    /// (the variable holds one pair, taken whole; several go in --basic-file).
    #[arg(long, value_name = "USER:PASSWORD", env = "D4_PSSL_BASIC")]
    pub basic: Vec<String>,

    /// Read accepted `user:password` lines from a file (`#` comments).
    #[arg(long, value_name = "FILE", env = "D4_PSSL_BASIC_FILE")]
    pub basic_file: Option<PathBuf>,

    /// Requests per minute per client IP; over it the answer is 429 with Retry-After.
    #[arg(long, value_name = "N", env = "D4_PSSL_RATE_LIMIT")]
    pub rate_limit: Option<u32>,

    /// Lookups running at once; more wait up to 2 s, then get 429.
    #[arg(long, default_value_t = 4, env = "D4_PSSL_MAX_CONCURRENT")]
    pub max_concurrent: usize,

    /// With credentials: wrong or missing ones per minute and client IP before 429.
    #[arg(long, default_value_t = 10, env = "D4_PSSL_MAX_AUTH_FAILURES")]
    pub max_auth_failures: u32,

    /// Accepted `Host` name (repeatable; DNS rebinding onto a loopback server). `*` accepts
    /// any; IP literals always pass [default: localhost and this machine's host name].
    #[arg(
        long,
        value_name = "NAME",
        env = "D4_PSSL_ALLOWED_HOST",
        value_delimiter = ','
    )]
    pub allowed_host: Vec<String>,

    /// Connections open at once; more are closed at once.
    #[arg(long, default_value_t = 256, env = "D4_PSSL_MAX_CONNECTIONS")]
    pub max_connections: usize,

    /// Connections open at once from one client IP.
    #[arg(long, default_value_t = 32, env = "D4_PSSL_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: usize,

    /// Seconds a client has to send a request head.
    #[arg(
        long,
        default_value_t = 10,
        value_name = "SECS",
        env = "D4_PSSL_HEADER_TIMEOUT"
    )]
    pub header_timeout: u64,

    /// Seconds without a byte before a connection is closed.
    #[arg(
        long,
        default_value_t = 60,
        value_name = "SECS",
        env = "D4_PSSL_IDLE_TIMEOUT"
    )]
    pub idle_timeout: u64,

    /// Widest IPv4 network `/v2pssl/query` answers (prefix length; the CIRCL service's
    /// limit is /23). Wider queries get 422.
    #[arg(long, default_value_t = 23, value_name = "LEN", env = "D4_PSSL_MIN_PREFIX_V4",
          value_parser = clap::value_parser!(u8).range(0..=32))]
    pub min_prefix_v4: u8,

    /// Widest IPv6 network `/v2pssl/query` answers (prefix length). Wider queries get 422.
    #[arg(long, default_value_t = 64, value_name = "LEN", env = "D4_PSSL_MIN_PREFIX_V6",
          value_parser = clap::value_parser!(u8).range(0..=128))]
    pub min_prefix_v6: u8,

    /// Also ingest from the collector's `ja3-jl` analyzer queue in this process (the
    /// embedded database has one owner): entries are taken at least once, as with
    /// `d4 pssl ingest --queue`, and the consumer stops with the server.
    #[arg(long, value_name = "QUEUE_UUID")]
    pub queue: Option<uuid::Uuid>,

    /// With --queue: most entries taken (and committed) at once.
    #[arg(long, default_value_t = 1_000, requires = "queue")]
    pub pop_max: usize,

    /// With --queue: the consumer name (see `d4 pssl ingest --consumer`).
    #[arg(long, default_value = "d4-pssl", requires = "queue",
          value_parser = crate::cmd::consume::check_name)]
    pub consumer: String,

    /// With --queue: the weak-key checks on new keys.
    #[command(flatten)]
    pub key_checks: super::keychecks::KeyCheckArgs,
}

/// Tokens and user/password pairs from the flags and files; refuses empty ones.
fn credentials(a: &ServeArgs) -> anyhow::Result<Credentials> {
    crate::cmd::serve_auth::credentials(
        &a.token,
        a.token_file.as_deref(),
        &a.basic,
        a.basic_file.as_deref(),
    )
}

pub fn run(args: &PsslArgs) -> anyhow::Result<ExitCode> {
    let PsslCommand::Serve(a) = &args.command else {
        anyhow::bail!("internal: not a serve command");
    };
    let credentials = credentials(a)?;
    let store = args.open_store()?;
    let cfg = ServeConfig {
        credentials,
        rate_limit_per_min: a.rate_limit,
        max_concurrent: a.max_concurrent.max(1),
        max_auth_failures: a.max_auth_failures.max(1),
        allowed_hosts: crate::config::allowed_hosts(&a.allowed_host),
        min_prefix_v4: a.min_prefix_v4,
        min_prefix_v6: a.min_prefix_v6,
        backend: if args.postgres.is_some() {
            "postgres"
        } else {
            "embedded"
        }
        .into(),
    };
    let limits = d4_pssl::server::Limits {
        max_connections: a.max_connections.max(1),
        max_connections_per_ip: a.max_connections_per_ip.max(1),
        exempt: Vec::new(),
        header_timeout: Duration::from_secs(a.header_timeout.max(1)),
        idle_timeout: Duration::from_secs(a.idle_timeout.max(1)),
    };
    let listen = a.listen;
    let d4cfg = match a.queue {
        Some(_) => Some(args.queue_store_config()?),
        None => None,
    };
    let key_checks = match a.queue {
        Some(_) => a.key_checks.checks()?,
        None => None,
    };
    // The last reference to the store is dropped here, outside the runtime (the
    // PostgreSQL client must not be dropped on a runtime thread).
    let keep = store.clone();
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let res = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let local = listener.local_addr()?;
        tracing::info!(
            listen = %local,
            backend = %cfg.backend,
            auth = !cfg.credentials.is_empty(),
            "pssl lookup server ready"
        );
        // One signal stops both: the queue consumer after its batch, the server after
        // draining its requests.
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, mut signalled) = tokio::sync::watch::channel(false);
        let tx = Arc::new(tx);
        let (flag, on_signal) = (stop.clone(), tx.clone());
        tokio::spawn(async move {
            crate::cmd::client::shutdown_signal().await;
            tracing::info!("shutting down");
            flag.store(true, Ordering::Relaxed);
            let _ = on_signal.send(true);
        });
        let consumer = match (a.queue, d4cfg) {
            (Some(q), Some(d4cfg)) => {
                let d4: Arc<dyn d4_store::Queues> = d4_store::open(&d4cfg).await?;
                let mut ing = Ingester::new(store.clone(), IngestOptions::default());
                if let Some(c) = key_checks {
                    ing = ing.with_key_checks(c);
                }
                let (name, pop_max, stop) = (a.consumer.clone(), a.pop_max.max(1), stop.clone());
                let on_failure = tx.clone();
                Some(tokio::spawn(async move {
                    let r = consume_queue(ing, d4, q, &name, pop_max, false, stop).await;
                    if let Err(e) = &r {
                        // The whole process stops (exit 1), so that a supervisor restarts
                        // it and nobody keeps reading a store that no longer grows.
                        tracing::error!(error = %format!("{e:#}"), "queue consumer failed: stopping the server");
                        let _ = on_failure.send(true);
                    }
                    r
                }))
            }
            _ => None,
        };
        let shutdown = async move {
            let _ = signalled.wait_for(|s| *s).await;
        };
        d4_pssl::server::serve(listener, store, cfg, limits, shutdown).await?;
        let ingester = match consumer {
            Some(c) => match c.await {
                Ok(Ok(ing)) => Ok(Some(ing)),
                Ok(Err(e)) => Err(e.context("the queue consumer failed")),
                Err(e) => Err(anyhow::anyhow!("the queue consumer task failed: {e}")),
            },
            None => Ok(None),
        };
        ingester
    });
    drop(rt);
    let res = res.map(|ing| {
        if let Some(ing) = ing {
            // Every batch taken was committed before it was acknowledged: nothing is pending.
            tracing::info!(stats = ?ing.stats(), "queue consumer stopped");
        }
    });
    drop(keep);
    res?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(token: &[&str], basic: &[&str]) -> ServeArgs {
        ServeArgs {
            listen: "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
            token: token.iter().map(|s| s.to_string()).collect(),
            token_file: None,
            basic: basic.iter().map(|s| s.to_string()).collect(),
            basic_file: None,
            rate_limit: None,
            max_concurrent: 4,
            max_auth_failures: 10,
            allowed_host: Vec::new(),
            max_connections: 1,
            max_connections_per_ip: 1,
            header_timeout: 1,
            idle_timeout: 1,
            min_prefix_v4: 23,
            min_prefix_v6: 64,
            queue: None,
            pop_max: 1,
            consumer: "d4-pssl".into(),
            key_checks: Default::default(),
        }
    }

    #[test]
    fn credentials_from_flags_and_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|_| unreachable!());
        let f = dir.path().join("basic");
        std::fs::write(&f, "# users\nbob:s3:cret\n\n").unwrap_or_else(|_| unreachable!());
        let mut a = args(&["t1"], &["alice:pw"]);
        a.basic_file = Some(f);
        let c = credentials(&a).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.tokens, vec!["t1".to_string()]);
        assert_eq!(
            c.basic,
            vec![
                ("alice".to_string(), "pw".to_string()),
                ("bob".to_string(), "s3:cret".to_string())
            ]
        );
        assert!(credentials(&args(&[" "], &[])).is_err());
        assert!(credentials(&args(&[], &["nopassword"])).is_err());
        assert!(credentials(&args(&[], &[])).is_ok_and(|c| c.is_empty()));
    }
}
