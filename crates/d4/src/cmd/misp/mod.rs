//! `d4 misp feed --out DIR`: a static MISP feed of the analyzers' findings (one event per
//! UTC day and analyzer). The MISP model, object builders and the feed's change detection
//! live in `d4-misp`; this module reads the configuration and the stores
//! ([`sources`]) and the feed folder ([`dir`]), and writes what `d4_misp::plan` decides.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Subcommand};

mod config;
mod dir;
mod sources;

pub use config::FeedConfig;

#[derive(Debug, Args)]
pub struct MispArgs {
    #[command(subcommand)]
    pub command: MispCommand,
}

#[derive(Debug, Subcommand)]
pub enum MispCommand {
    /// Write (or update) a static MISP feed: manifest.json, <event uuid>.json, hashes.csv.
    ///
    /// One event per UTC day and analyzer (passive DNS, passive SSL, weak keys), holding
    /// MISP objects built from the findings of the days in --since..--until. Re-running
    /// rewrites only the events whose content changed (their timestamp moves), so MISP
    /// fetches only what is new. Events of other days stay in the feed. Point a MISP feed
    /// (format "MISP Feed") at the folder served over HTTP. See docs/misp.md.
    #[command(after_help = "Examples:\n  \
        d4 misp feed --out /srv/misp-feed --config /etc/d4/misp.toml\n  \
        d4 misp feed --out feed --org-name CIRCL --org-uuid 55f6ea5e-2c60-40e5-964f-47a8950d210f \\\n      \
        --tag tlp:green --since 2024-01-01 --until 2024-01-31 --pdns-watch watch.txt")]
    Feed(Box<FeedArgs>),
}

#[derive(Debug, Args)]
pub struct FeedArgs {
    /// The feed folder (created when missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// The feed's configuration (TOML: organisation, tags, distribution, analyzers and
    /// their bounds; see docs/misp.md). Flags override its keys.
    #[arg(long, env = "D4_MISP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// First day (UTC, YYYY-MM-DD) whose findings are written [default: yesterday].
    #[arg(long, value_name = "DATE")]
    pub since: Option<NaiveDate>,

    /// Last day (UTC, YYYY-MM-DD, included) [default: today].
    #[arg(long, value_name = "DATE")]
    pub until: Option<NaiveDate>,

    /// Name of the organisation creating the events (config `org.name`).
    #[arg(long, value_name = "NAME")]
    pub org_name: Option<String>,

    /// UUID of the organisation (config `org.uuid`); also the namespace of every event's
    /// and object's UUID, so keep it stable.
    #[arg(long, value_name = "UUID")]
    pub org_uuid: Option<uuid::Uuid>,

    /// An event tag, e.g. `tlp:green` (repeatable; replaces config `event.tags`).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,

    /// Event distribution: 0 your organisation, 1 this community, 2 connected
    /// communities, 3 all communities (config `event.distribution`).
    #[arg(long, value_name = "0-3", value_parser = clap::value_parser!(u8).range(0..=3))]
    pub distribution: Option<u8>,

    /// Threat level: 1 high, 2 medium, 3 low, 4 undefined (config `event.threat_level`).
    #[arg(long, value_name = "1-4", value_parser = clap::value_parser!(u8).range(1..=4))]
    pub threat_level: Option<u8>,

    /// Analysis: 0 initial, 1 ongoing, 2 completed (config `event.analysis`).
    #[arg(long, value_name = "0-2", value_parser = clap::value_parser!(u8).range(0..=2))]
    pub analysis: Option<u8>,

    /// Only these analyzers (repeatable or comma separated: passive-dns, passive-ssl,
    /// weak-keys, backscatter) [default: those enabled in the config, else the first three].
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub only: Vec<String>,

    /// Passive DNS watch list: a file of name patterns, one a line (`example.com`: the name
    /// and every name under it; `*.example.com`: only names under it; other `*`/`?` globs
    /// match the whole name; `#` comments). Repeatable. Without one, every record new that
    /// day is written (bounded by max_objects).
    #[arg(long, value_name = "FILE")]
    pub pdns_watch: Vec<PathBuf>,

    /// Weak keys: include the recovered prime factors (`p`, `q`) in the crypto-material
    /// objects (config `weak_keys.include_factors`).
    #[arg(long)]
    pub include_factors: bool,

    /// Most objects per event, for every analyzer (config `<analyzer>.max_objects`).
    #[arg(long, value_name = "N")]
    pub max_objects: Option<usize>,

    /// Data directory of the analyzers' embedded stores (pdns.redb, pssl.redb, pibs.redb).
    #[arg(long, env = "D4_DATA_DIR", default_value = "./d4-data")]
    pub data_dir: PathBuf,

    /// The embedded passive DNS database (as `d4 pdns --db`) [default: <data-dir>/pdns.redb].
    #[arg(long, env = "D4_PDNS_DB", value_name = "FILE")]
    pub pdns_db: Option<PathBuf>,

    /// The passive DNS Redis/kvrocks database (as `d4 pdns --redis`).
    #[arg(long, env = "D4_PDNS_REDIS", value_name = "URL")]
    pub pdns_redis: Option<String>,

    /// The embedded passive SSL database (as `d4 pssl --db`) [default: <data-dir>/pssl.redb].
    #[arg(
        long,
        env = "D4_PSSL_DB",
        value_name = "FILE",
        conflicts_with = "pssl_postgres"
    )]
    pub pssl_db: Option<PathBuf>,

    /// The passive SSL PostgreSQL database (as `d4 pssl --postgres`).
    #[arg(long, env = "D4_PSSL_POSTGRES", value_name = "URL")]
    pub pssl_postgres: Option<String>,

    /// The embedded backscatter database (as `d4 pibs ingest --db`) [default:
    /// <data-dir>/pibs.redb]; read for `ddos` objects when `[backscatter] enabled`.
    #[arg(long, env = "D4_PIBS_DB", value_name = "FILE")]
    pub pibs_db: Option<PathBuf>,

    /// Print the effective configuration (TOML) and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// What a run did (printed as JSON).
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    pub since: String,
    pub until: String,
    /// Events produced by this run (written or unchanged).
    pub events: usize,
    pub written: usize,
    pub unchanged: usize,
    /// Events in the manifest (earlier days included).
    pub manifest_events: usize,
    /// Findings left out by the max_objects bounds.
    pub dropped: usize,
    /// Per analyzer: events produced.
    pub per_analyzer: std::collections::BTreeMap<String, usize>,
}

pub fn run(args: MispArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        MispCommand::Feed(a) => feed(&a),
    }
}

fn feed(args: &FeedArgs) -> anyhow::Result<ExitCode> {
    let cfg = FeedConfig::load(args)?;
    if args.print_config {
        print!(
            "{}",
            toml::to_string_pretty(&cfg).context("printing the configuration")?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let now = chrono::Utc::now();
    let today = now.date_naive();
    let until = args.until.unwrap_or(today);
    let since = args
        .since
        .unwrap_or_else(|| today.pred_opt().unwrap_or(today));
    if since > until {
        anyhow::bail!("--since {since} is after --until {until}");
    }
    let settings = cfg.settings()?;
    let found = sources::collect(args, &cfg, &settings, since, until)?;
    let mut summary = Summary {
        since: since.to_string(),
        until: until.to_string(),
        events: found.events.len(),
        dropped: found.dropped,
        per_analyzer: found.per_analyzer,
        ..Summary::default()
    };
    let existing = dir::read_existing(&args.out, &found.events)?;
    let plan = d4_misp::plan(&existing, found.events, now.timestamp());
    dir::write(&args.out, &plan)?;
    summary.written = plan.write.len();
    summary.unchanged = plan.unchanged.len();
    summary.manifest_events = plan.manifest.len();
    println!("{}", serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}
