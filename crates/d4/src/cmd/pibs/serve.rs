//! `d4 pibs serve`: the backscatter lookup server (`/attacks`, `/victim/<ip>`,
//! `/daily/<date>`, `/asn/<asn>`, `/prefix/<net>`, `/info`, `/openapi.json`; the routes
//! live in `d4_pibs::server`). This module reads the flags, credential files and
//! prefix-to-AS files, opens the backscatter store and the optional passive DNS store,
//! binds the socket and drains on SIGINT/SIGTERM. The passive DNS pivot's adapter
//! ([`PdnsNames`]: `d4-pdns`'s record store as `d4_pibs::server::Names`) lives here, so
//! that neither analyzer crate depends on the other.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use d4_pdns::{Filter, Lookup, PdnsStore, RecordError, RecordStore, RedisRecordStore};
use d4_pibs::pfx2as::Pfx2As;
use d4_pibs::server::{Credentials, Names, NamesError, Pivots, ServeConfig};
use d4_pibs::store::PibsStore;

use crate::cmd::store_args::StoreArgs;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    d4 pibs serve --pfx2as routeviews-rv2-20261207.pfx2as.gz --pfx2as routeviews-rv6.pfx2as.gz\n  \
    d4 pibs serve --pdns-db ./d4-data/pdns.redb --token-file /etc/d4/pibs.tokens\n  \
    curl -s 'http://127.0.0.1:8600/attacks?since=2026-12-07&min_pps=1'\n  \
    curl -s http://127.0.0.1:8600/victim/192.0.2.10\n  \
    curl -s http://127.0.0.1:8600/daily/2026-12-07\n\n\
The backscatter database (<data-dir>/pibs.redb) has one owner at a time: for live data give \
`serve` the server's type-1 queue (--queue) instead of running `d4 pibs ingest --queue` beside \
it; stop `serve` during a bulk `d4 pibs ingest` of files. So has an embedded passive DNS database: give --pdns-db only when no \
`d4 pdns serve` holds it (or use --pdns-redis). See docs/pibs.md.")]
pub struct ServeArgs {
    /// Data directory (the backscatter database lives there unless --db is given).
    #[arg(long, env = "D4_DATA_DIR", default_value = "./d4-data")]
    pub data_dir: PathBuf,

    /// The backscatter database file (default: <data-dir>/pibs.redb), as `d4 pibs ingest`
    /// writes it.
    #[arg(long, value_name = "FILE", env = "D4_PIBS_DB")]
    pub db: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8600", env = "D4_PIBS_LISTEN")]
    pub listen: SocketAddr,

    /// Also ingest the server's type-1 queue (pcap file paths) into the store while
    /// serving, as `d4 pibs ingest --queue` does (one process owns the database file, so
    /// this is how live ingest and lookups run together). The d4 store holding the queue is
    /// the global --data-dir / --redis one.
    #[arg(long, value_name = "QUEUE-UUID", env = "D4_PIBS_QUEUE")]
    pub queue: Option<uuid::Uuid>,

    /// With --queue: the consumer name (a restarted server takes back its unacknowledged
    /// entries).
    #[arg(long, default_value = "d4-pibs-serve", env = "D4_PIBS_CONSUMER",
          value_parser = crate::cmd::consume::check_name)]
    pub consumer: String,

    /// With --queue: file paths taken per batch.
    #[arg(long, default_value_t = 10, env = "D4_PIBS_POP_MAX")]
    pub pop_max: usize,

    /// With --queue: days of buckets and attacks kept (0: keep everything).
    #[arg(long, default_value_t = 90, env = "D4_PIBS_RETENTION_DAYS")]
    pub retention_days: u64,

    /// Prefix-to-AS file (CAIDA pfx2as: `prefix<TAB>length<TAB>asn`, plain or gzip; IPv4
    /// and IPv6 alike). Repeatable (an IPv4 and an IPv6 file); later files win for a prefix
    /// present in several. Gives every victim its prefix and origin AS, and `asn=`.
    #[arg(
        long,
        value_name = "FILE",
        env = "D4_PIBS_PFX2AS",
        value_delimiter = ','
    )]
    pub pfx2as: Vec<PathBuf>,

    /// The embedded passive DNS database (`d4 pdns`'s `<data-dir>/pdns.redb`): `/victim`
    /// lists the names whose A/AAAA records point at the victim. Opened for this process
    /// alone (stop `d4 pdns serve` first, or use --pdns-redis).
    #[arg(
        long,
        value_name = "FILE",
        env = "D4_PIBS_PDNS_DB",
        conflicts_with = "pdns_redis"
    )]
    pub pdns_db: Option<PathBuf>,

    /// The passive DNS database in Redis (`d4 pdns --redis URL`), for the same pivot.
    #[arg(long, value_name = "URL", env = "D4_PIBS_PDNS_REDIS")]
    pub pdns_redis: Option<String>,

    /// Most names `/victim` lists (more: the pivot reports an error instead of names).
    #[arg(
        long,
        default_value_t = 1_000,
        value_name = "N",
        env = "D4_PIBS_MAX_NAMES"
    )]
    pub max_names: usize,

    /// Accept this token in `Authorization: <token>` or `Authorization: Bearer <token>`.
    /// Repeatable (the variable holds one token, taken whole; several go in --token-file).
    #[arg(long, env = "D4_PIBS_TOKEN")]
    pub token: Vec<String>,

    /// Read accepted tokens from a file, one per line (`#` comments).
    #[arg(long, value_name = "FILE", env = "D4_PIBS_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Accept HTTP Basic auth with this `user:password`. Repeatable.
    #[arg(long, value_name = "USER:PASSWORD", env = "D4_PIBS_BASIC")]
    pub basic: Vec<String>,

    /// Read accepted `user:password` lines from a file (`#` comments).
    #[arg(long, value_name = "FILE", env = "D4_PIBS_BASIC_FILE")]
    pub basic_file: Option<PathBuf>,

    /// Requests per minute per client IP; over it the answer is 429 with Retry-After.
    #[arg(long, value_name = "N", env = "D4_PIBS_RATE_LIMIT")]
    pub rate_limit: Option<u32>,

    /// Store lookups running at once; more wait up to 2 s, then get 429.
    #[arg(long, default_value_t = 4, env = "D4_PIBS_MAX_CONCURRENT")]
    pub max_concurrent: usize,

    /// With credentials: wrong or missing ones per minute and client IP before 429.
    #[arg(long, default_value_t = 10, env = "D4_PIBS_MAX_AUTH_FAILURES")]
    pub max_auth_failures: u32,

    /// Accepted `Host` name (repeatable; DNS rebinding onto a loopback server). `*` accepts
    /// any; IP literals always pass [default: localhost and this machine's host name].
    #[arg(
        long,
        value_name = "NAME",
        env = "D4_PIBS_ALLOWED_HOST",
        value_delimiter = ','
    )]
    pub allowed_host: Vec<String>,

    /// Connections open at once; more are closed at once.
    #[arg(long, default_value_t = 256, env = "D4_PIBS_MAX_CONNECTIONS")]
    pub max_connections: usize,

    /// Connections open at once from one client IP.
    #[arg(long, default_value_t = 32, env = "D4_PIBS_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: usize,

    /// Seconds a client has to send a request head.
    #[arg(
        long,
        default_value_t = 10,
        value_name = "SECS",
        env = "D4_PIBS_HEADER_TIMEOUT"
    )]
    pub header_timeout: u64,

    /// Seconds without a byte before a connection is closed.
    #[arg(
        long,
        default_value_t = 60,
        value_name = "SECS",
        env = "D4_PIBS_IDLE_TIMEOUT"
    )]
    pub idle_timeout: u64,
}

/// The passive DNS pivot over `d4-pdns`'s record store: the owner names of the A (IPv4)
/// or AAAA (IPv6) records whose address is `ip` (a reverse rdata lookup, which both the
/// embedded and the Redis backends answer).
pub struct PdnsNames(pub Arc<dyn RecordStore>);

/// A/AAAA
const ADDRESS_TYPES: [u16; 2] = [1, 28];

impl Names for PdnsNames {
    fn names(&self, ip: IpAddr, max: usize) -> Result<Vec<String>, NamesError> {
        let filter = Filter {
            rrtypes: ADDRESS_TYPES.to_vec(),
            ..Filter::default()
        };
        let found = self
            .0
            .lookup(
                &Lookup::Rdata(vec![ip.to_canonical().to_string()]),
                &filter,
                max.max(1),
            )
            .map_err(|e| match e {
                RecordError::TooManyMatches(n) => {
                    NamesError(format!("more than {n} names point at {ip}").into())
                }
                e => NamesError(Box::new(e)),
            })?;
        let names: BTreeSet<String> = found
            .into_iter()
            .filter(|r| ADDRESS_TYPES.contains(&r.rrtype))
            .map(|r| r.rrname)
            .collect();
        Ok(names.into_iter().collect())
    }
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

/// The prefix-to-AS table of `--pfx2as`, with its bad lines logged.
fn load_pfx2as(files: &[PathBuf]) -> anyhow::Result<Option<Arc<Pfx2As>>> {
    if files.is_empty() {
        return Ok(None);
    }
    let t = Pfx2As::load_all(files).context("--pfx2as")?;
    let s = t.stats();
    if t.is_empty() {
        anyhow::bail!(
            "--pfx2as: no route in {} ({} bad lines): expected CAIDA pfx2as lines `prefix<TAB>length<TAB>asn`",
            files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "),
            s.bad_lines
        );
    }
    for (line, text) in &s.examples {
        tracing::warn!(line, text = %text, "--pfx2as: skipped a bad line");
    }
    tracing::info!(
        routes = s.routes,
        bad_lines = s.bad_lines,
        duplicates = s.duplicates,
        multi_origin = s.multi_origin,
        "prefix-to-AS table loaded"
    );
    Ok(Some(Arc::new(t)))
}

/// The passive DNS pivot of `--pdns-db` / `--pdns-redis`.
fn open_names(a: &ServeArgs) -> anyhow::Result<Option<Arc<dyn Names>>> {
    let store: Arc<dyn RecordStore> = match (&a.pdns_db, &a.pdns_redis) {
        (Some(p), _) => {
            Arc::new(PdnsStore::open(p).with_context(|| format!("--pdns-db {}", p.display()))?)
        }
        (None, Some(url)) => Arc::new(
            RedisRecordStore::open(url, Default::default())
                .with_context(|| format!("--pdns-redis {url}"))?,
        ),
        (None, None) => return Ok(None),
    };
    Ok(Some(Arc::new(PdnsNames(store))))
}

/// `d4 pibs serve`: opens the store of `--db` / `--data-dir`, then [`run`].
pub fn main(store_args: &StoreArgs, a: &ServeArgs) -> anyhow::Result<ExitCode> {
    let path = a.db.clone().unwrap_or_else(|| a.data_dir.join("pibs.redb"));
    if !path.exists() && a.queue.is_none() {
        anyhow::bail!(
            "no backscatter database at {}: fill it with `d4 pibs ingest` (same --data-dir), give --db, or ingest here with --queue",
            path.display()
        );
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    let store = Arc::new(
        d4_pibs::store::open_embedded(&path)
            .with_context(|| format!("cannot open the backscatter database {}", path.display()))?,
    );
    let Some(queue) = a.queue else {
        return run(a, store, None);
    };
    // the queue reader shares the store (one process owns the database file); its end
    // (a failure, or the signal) ends the server too
    let mut d4 = store_args.clone();
    if d4.data_dir.is_none() {
        d4.data_dir = Some(a.data_dir.clone());
    }
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let reader = {
        let (store, consumer, pop_max, days) = (
            store.clone(),
            a.consumer.clone(),
            a.pop_max,
            a.retention_days,
        );
        std::thread::Builder::new()
            .name("pibs-queue".into())
            .spawn(move || {
                let r = super::ingest::serve_queue(&d4, store, queue, &consumer, pop_max, days);
                let _ = done_tx.send(());
                r
            })
            .context("cannot start the queue reader")?
    };
    let served = run(a, store, Some(done_rx));
    let read = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the queue reader panicked"))?;
    read.context("the queue reader failed (the server stopped with it)")?;
    served
}

/// Runs the server over `store` until SIGINT/SIGTERM, or until `stop` fires (the queue
/// reader ended).
pub fn run(
    a: &ServeArgs,
    store: Arc<dyn PibsStore>,
    stop: Option<tokio::sync::oneshot::Receiver<()>>,
) -> anyhow::Result<ExitCode> {
    let credentials = credentials(a)?;
    let pivots = Pivots {
        pfx2as: load_pfx2as(&a.pfx2as)?,
        names: open_names(a)?,
    };
    let cfg = ServeConfig {
        credentials,
        rate_limit_per_min: a.rate_limit,
        max_concurrent: a.max_concurrent.max(1),
        max_auth_failures: a.max_auth_failures.max(1),
        allowed_hosts: crate::config::allowed_hosts(&a.allowed_host),
        max_names: a.max_names.max(1),
        ..ServeConfig::default()
    };
    let limits = d4_pibs::server::Limits {
        max_connections: a.max_connections.max(1),
        max_connections_per_ip: a.max_connections_per_ip.max(1),
        exempt: Vec::new(),
        header_timeout: Duration::from_secs(a.header_timeout.max(1)),
        idle_timeout: Duration::from_secs(a.idle_timeout.max(1)),
    };
    let listen = a.listen;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} (--listen)"))?;
        let local = listener.local_addr()?;
        tracing::info!(
            listen = %local,
            auth = !cfg.credentials.is_empty(),
            pfx2as = pivots.pfx2as.is_some(),
            passive_dns = pivots.names.is_some(),
            "pibs lookup server ready"
        );
        let shutdown = async {
            match stop {
                Some(stop) => tokio::select! {
                    () = crate::cmd::client::shutdown_signal() => {}
                    _ = stop => tracing::warn!("the queue reader stopped: stopping the server"),
                },
                None => crate::cmd::client::shutdown_signal().await,
            }
            tracing::info!("shutting down");
        };
        d4_pibs::server::serve(listener, store, pivots, cfg, limits, shutdown)
            .await
            .context("the server failed")
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use d4_pdns::parse_line;
    use d4_pdns::store::Batch;

    /// The pivot over a real embedded passive DNS store: the planted A/AAAA names of an
    /// address, not its other records nor other addresses' names.
    #[test]
    fn pdns_pivot_returns_the_planted_names() {
        let dir = tempfile::tempdir().unwrap_or_else(|_| unreachable!());
        let store =
            PdnsStore::open(&dir.path().join("pdns.redb")).unwrap_or_else(|e| panic!("{e}"));
        // passivedns lines: ts||client||server||class||name||type||rdata||ttl||count
        let lines = [
            "1700000000.000001||10.0.0.1||10.0.0.53||IN||www.victim.example.||A||192.0.2.10||300||1",
            "1700000000.000002||10.0.0.1||10.0.0.53||IN||mail.victim.example.||A||192.0.2.10||300||1",
            "1700000000.000003||10.0.0.1||10.0.0.53||IN||other.example.||A||192.0.2.11||300||1",
            "1700000000.000004||10.0.0.1||10.0.0.53||IN||v6.victim.example.||AAAA||2001:db8::10||300||1",
            "1700000000.000005||10.0.0.1||10.0.0.53||IN||victim.example.||TXT||192.0.2.10||300||1",
        ];
        let mut batch = Batch::new();
        for l in lines {
            let o = parse_line(l.as_bytes()).unwrap_or_else(|e| panic!("{l}: {e:?}"));
            batch.add(&o, Some("sensor"));
        }
        store.commit(&mut batch).unwrap_or_else(|e| panic!("{e}"));
        let names = PdnsNames(Arc::new(store));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|_| unreachable!());
        assert_eq!(
            names
                .names(ip("192.0.2.10"), 100)
                .unwrap_or_else(|e| panic!("{e}")),
            vec![
                "mail.victim.example".to_string(),
                "www.victim.example".to_string()
            ]
        );
        assert_eq!(
            names
                .names(ip("2001:db8::10"), 100)
                .unwrap_or_else(|e| panic!("{e}")),
            vec!["v6.victim.example".to_string()]
        );
        assert!(names
            .names(ip("198.51.100.1"), 100)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty());
        let e = names
            .names(ip("192.0.2.10"), 1)
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("more than 1")));
    }

    #[test]
    fn pfx2as_files_are_checked() {
        let dir = tempfile::tempdir().unwrap_or_else(|_| unreachable!());
        let f = dir.path().join("bad.pfx2as");
        std::fs::write(&f, "not a route\n").unwrap_or_else(|_| unreachable!());
        let e = load_pfx2as(std::slice::from_ref(&f))
            .err()
            .map(|e| format!("{e:#}"));
        assert!(e.is_some_and(|e| e.contains("no route") && e.contains("bad.pfx2as")));
        assert!(load_pfx2as(&[]).is_ok_and(|t| t.is_none()));
        let e = load_pfx2as(&[dir.path().join("missing")])
            .err()
            .map(|e| format!("{e:#}"));
        assert!(e.is_some_and(|e| e.contains("missing")));
    }
}
