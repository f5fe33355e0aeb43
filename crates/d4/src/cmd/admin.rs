//! The admin CLI until (and beside) the web UI: `d4 sensor`, `d4 blocklist`, `d4 queue`,
//! `d4 types`. Each acts on the store of `--data-dir`: the embedded database when no
//! server holds it, else the running server's socket `<data>/d4.sock`.
//!
//! Exit status: 0 on success; 2 on bad input (arguments, unknown sensor or queue, already
//! registered...); 1 when the store cannot be reached or fails.

use std::io::Write;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use d4_store::{
    Block, BlockTarget, QueueConfig, QueueEntry, QueueKind, Sensor, SensorRegistration,
    SensorUpdate, Store, StoreConfig, StoreError,
};
use ipnet::IpNet;
use uuid::Uuid;

/// Where the store is (the same settings as `d4 server`), and the output format.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub location: super::store_args::StoreArgs,

    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The admin subcommands (flattened into `d4`'s command list).
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage sensors: register, approve, list, keys, descriptions, blocks, kicks.
    #[command(after_help = "Examples:\n  \
        d4 sensor register 3b2a3f5c-53c4-4fd8-9c8e-0d8c6bba4c6f --key 'secret' --approve\n  \
        d4 sensor list --pending\n  \
        d4 sensor approve 3b2a3f5c53c44fd89c8e0d8c6bba4c6f\n  \
        d4 sensor kick 3b2a3f5c53c44fd89c8e0d8c6bba4c6f")]
    Sensor(SensorArgs),
    /// Manage the IP (prefix) and UUID blocklists.
    #[command(after_help = "Examples:\n  \
        d4 blocklist ip add 198.51.100.0/24 2001:db8::/32\n  \
        d4 blocklist ip add 203.0.113.7 --expires 3600\n  \
        d4 blocklist uuid add 3b2a3f5c53c44fd89c8e0d8c6bba4c6f --ips\n  \
        d4 blocklist ip list --json")]
    Blocklist(BlocklistArgs),
    /// Manage analyzer queues, and read one (`d4 queue pop`: the stdout analyzer).
    #[command(after_help = "Examples:\n  \
        d4 queue create --type 8 --description 'passive DNS' --max-size 100000\n  \
        d4 queue create --ext ja3-jl --sensor 3b2a3f5c53c44fd89c8e0d8c6bba4c6f\n  \
        d4 queue list\n  \
        d4 queue pop 6f1e... --follow | my-analyzer")]
    Queue(QueueArgs),
    /// Accept or refuse D4 types and extended types.
    #[command(after_help = "Examples:\n  \
        d4 types list\n  \
        d4 types refuse pcapng 7\n  \
        d4 types accept --ext ja3-jl --ext maltrail")]
    Types(TypesArgs),
    /// Hold the store and serve it on `<data>/d4.sock` without a collector (for analyzers,
    /// scripts and tests; `d4 server` does the same itself).
    #[command(name = "store-serve")]
    StoreServe(StoreServeArgs),
}

#[derive(Debug, Args)]
pub struct StoreServeArgs {
    #[command(flatten)]
    store: CommonArgs,
}

#[derive(Debug, Args)]
pub struct SensorArgs {
    #[command(flatten)]
    store: CommonArgs,
    #[command(subcommand)]
    cmd: SensorCmd,
}

#[derive(Debug, Subcommand)]
enum SensorCmd {
    /// Register a sensor (pending until approved, unless --approve).
    Register {
        uuid: String,
        /// The sensor's HMAC key (default: the server's default key).
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        mail: Option<String>,
        #[arg(long)]
        third_party: bool,
        #[arg(long)]
        description: Option<String>,
        /// Approve at once.
        #[arg(long)]
        approve: bool,
    },
    /// Approve a pending sensor.
    Approve { uuid: String },
    /// Delete a sensor's record (rejects a pending registration).
    Delete { uuid: String },
    /// List sensors.
    List {
        /// Only pending registrations.
        #[arg(long)]
        pending: bool,
    },
    /// Show everything known about one sensor.
    Show { uuid: String },
    /// Set the sensor's HMAC key (or go back to the server's default key).
    SetKey {
        uuid: String,
        /// The new key (prefer --stdin: command lines are visible to other users).
        #[arg(required_unless_present_any = ["default", "stdin"], conflicts_with_all = ["default", "stdin"])]
        key: Option<String>,
        /// Use the server's default key.
        #[arg(long, conflicts_with = "stdin")]
        default: bool,
        /// Read the key from stdin (one trailing newline removed).
        #[arg(long)]
        stdin: bool,
    },
    /// Set the sensor's description.
    Describe { uuid: String, description: String },
    /// Set the sensor's stream limit (pending entries), or `default`.
    SetLimit {
        uuid: String,
        #[arg(value_name = "N|default")]
        limit: String,
    },
    /// Block a sensor's UUID (and, with --ips, every IP that presents it).
    Block {
        uuid: String,
        #[arg(long)]
        ips: bool,
        /// Block for this many seconds only.
        #[arg(long, value_name = "SECS")]
        expires: Option<u64>,
        #[arg(long, default_value = "admin")]
        reason: String,
    },
    /// Remove the UUID block and the IPs-of-UUID block of a sensor.
    Unblock { uuid: String },
    /// Close the sensor's connections now and block it for 30 s.
    Kick { uuid: String },
}

#[derive(Debug, Args)]
pub struct BlocklistArgs {
    #[command(flatten)]
    store: CommonArgs,
    #[command(subcommand)]
    cmd: BlocklistCmd,
}

#[derive(Debug, Subcommand)]
enum BlocklistCmd {
    /// IP addresses and prefixes (v4 and v6, e.g. 192.0.2.7, 198.51.100.0/24, 2001:db8::/32).
    Ip {
        #[command(subcommand)]
        cmd: ListCmd,
    },
    /// Sensor UUIDs (--ips: every IP that presents the UUID).
    Uuid {
        #[command(subcommand)]
        cmd: ListCmd,
    },
}

#[derive(Debug, Subcommand)]
enum ListCmd {
    /// Add entries.
    Add {
        #[arg(required = true)]
        items: Vec<String>,
        /// Remove the block after this many seconds.
        #[arg(long, value_name = "SECS")]
        expires: Option<u64>,
        #[arg(long, default_value = "admin")]
        reason: String,
        /// (uuid only) block every IP that presents the UUID instead of the UUID.
        #[arg(long)]
        ips: bool,
    },
    /// Remove entries.
    Remove {
        #[arg(required = true)]
        items: Vec<String>,
        /// (uuid only) remove the IPs-of-UUID block.
        #[arg(long)]
        ips: bool,
    },
    /// List entries in force.
    List,
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(flatten)]
    store: CommonArgs,
    #[command(subcommand)]
    cmd: QueueCmd,
}

#[derive(Debug, Subcommand)]
enum QueueCmd {
    /// Create a queue for a D4 type or an extended type; prints its UUID.
    Create {
        /// D4 type, by number or name (8, passivedns).
        #[arg(
            long = "type",
            value_name = "TYPE",
            required_unless_present = "ext",
            conflicts_with = "ext"
        )]
        d4_type: Option<String>,
        /// Extended type (type 254), e.g. ja3-jl.
        #[arg(long, value_name = "NAME")]
        ext: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Max entries; over it the oldest entries are dropped (and counted).
        #[arg(long, default_value_t = d4_store::DEFAULT_QUEUE_MAX_SIZE)]
        max_size: u64,
        /// Only data from these sensors (repeat for a group). Default: every sensor.
        #[arg(long = "sensor", value_name = "UUID")]
        sensors: Vec<String>,
        /// Use this queue UUID (default: a new random one).
        #[arg(long)]
        uuid: Option<String>,
    },
    /// List queues with their length and trimmed counter.
    List,
    /// Show one queue and a sample of its latest entries.
    Show {
        queue: String,
        #[arg(long, default_value_t = 10)]
        sample: usize,
    },
    /// Change a queue's description, max size or sensor group.
    Update {
        queue: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        max_size: Option<u64>,
        /// Replace the group (repeat); see --all-sensors.
        #[arg(long = "sensor", value_name = "UUID")]
        sensors: Vec<String>,
        /// Remove the group: every sensor feeds the queue.
        #[arg(long, conflicts_with = "sensors")]
        all_sensors: bool,
    },
    /// Delete a queue and its entries.
    Delete { queue: String },
    /// Remove every entry of a queue.
    Empty { queue: String },
    /// Push lines to queues (arguments, or stdin lines when none): for tests and scripts.
    Push {
        /// Queue UUID (repeat --to for more queues).
        queue: String,
        #[arg(long = "to", value_name = "QUEUE")]
        more: Vec<String>,
        /// Entries; without any, one entry per line of stdin.
        lines: Vec<String>,
        /// Tag the entries with this sensor uuid.
        #[arg(long)]
        sensor: Option<String>,
    },
    /// Print entries one per line, oldest first, removing them (an analyzer on stdout).
    Pop {
        queue: String,
        /// Keep waiting for new entries until interrupted (SIGINT/SIGTERM).
        #[arg(long, short)]
        follow: bool,
        /// Stop after this many entries.
        #[arg(long, short = 'n')]
        max: Option<usize>,
        /// Prefix each entry with its sensor uuid and a tab.
        #[arg(long)]
        with_sensor: bool,
    },
}

#[derive(Debug, Args)]
pub struct TypesArgs {
    #[command(flatten)]
    store: CommonArgs,
    #[command(subcommand)]
    cmd: TypesCmd,
}

#[derive(Debug, Subcommand)]
enum TypesCmd {
    /// Accept types (by number or name) and/or extended types (--ext).
    Accept {
        types: Vec<String>,
        #[arg(long = "ext", value_name = "NAME")]
        ext: Vec<String>,
    },
    /// Refuse types (by number or name) and/or extended types (--ext).
    Refuse {
        types: Vec<String>,
        #[arg(long = "ext", value_name = "NAME")]
        ext: Vec<String>,
    },
    /// List accepted types and extended types.
    List,
}

/// A bad-input error (exit status 2) or a failure (exit status 1).
enum Fail {
    Input(String),
    Store(StoreError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        Fail::Store(e)
    }
}

type R<T> = Result<T, Fail>;

fn bad<T>(msg: impl Into<String>) -> R<T> {
    Err(Fail::Input(msg.into()))
}

fn parse_uuid(s: &str) -> R<Uuid> {
    Uuid::parse_str(s.trim()).or_else(|_| {
        bad(format!(
            "invalid uuid {s:?}: expected 32 hex digits (dashes allowed)"
        ))
    })
}

fn parse_net(s: &str) -> R<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(IpNet::from(ip)),
        Err(_) => bad(format!(
            "invalid IP address or prefix {s:?} (e.g. 192.0.2.7, 198.51.100.0/24, 2001:db8::/32)"
        )),
    }
}

fn parse_type(s: &str) -> R<u8> {
    match d4_proto::types::parse(s) {
        Some(0) => bad("type 0 is reserved"),
        Some(t) => Ok(t),
        None => {
            let names: Vec<String> = d4_proto::types::TABLE
                .iter()
                .map(|t| format!("{} ({})", t.id, t.name))
                .collect();
            bad(format!(
                "unknown D4 type {s:?}; known types: {}",
                names.join(", ")
            ))
        }
    }
}

fn type_name(t: u8) -> &'static str {
    d4_proto::types::name(t).unwrap_or("?")
}

fn fmt_time(t: Option<u64>) -> String {
    match t {
        Some(t) => chrono::DateTime::from_timestamp(t as i64, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| t.to_string()),
        None => "-".into(),
    }
}

/// Print rows as a left-aligned table.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        outln!("{}", s.trim_end());
    };
    line(header.iter().map(|s| s.to_string()).collect());
    if rows.is_empty() {
        outln!("(none)");
    }
    for r in rows {
        line(r);
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> R<()> {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            outln!("{s}");
            Ok(())
        }
        Err(e) => Err(Fail::Store(StoreError::Backend(e.to_string()))),
    }
}

/// Run an admin command.
pub fn run(cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let store_args = match &cmd {
        AdminCommand::Sensor(a) => a.store.clone(),
        AdminCommand::Blocklist(a) => a.store.clone(),
        AdminCommand::Queue(a) => a.store.clone(),
        AdminCommand::Types(a) => a.store.clone(),
        AdminCommand::StoreServe(a) => a.store.clone(),
    };
    // Only long-running commands catch SIGINT/SIGTERM (to stop cleanly); the others
    // keep the default action.
    let long_running = matches!(
        &cmd,
        AdminCommand::StoreServe(_)
            | AdminCommand::Queue(QueueArgs {
                cmd: QueueCmd::Pop { follow: true, .. },
                ..
            })
    );
    let result = rt.block_on(async move {
        let stop = if long_running { Stop::new() } else { Stop { int: None, term: None } };
        // Validate everything we can before touching the store.
        let config = match store_args.location.store_config() {
            Ok(c) => c,
            Err(e) => return Err(Fail::Input(format!("{e:#}"))),
        };
        if matches!(cmd, AdminCommand::StoreServe(_)) {
            return store_serve(config, stop).await;
        }
        let store = d4_store::open(&config).await?;
        tracing::debug!(backend = store.backend(), data_dir = %config.data_dir.display(), "store opened");
        let json = store_args.json;
        match cmd {
            AdminCommand::Sensor(a) => sensor(store, a.cmd, json).await,
            AdminCommand::Blocklist(a) => blocklist(store, a.cmd, json).await,
            AdminCommand::Queue(a) => queue(store, a.cmd, json, stop).await,
            AdminCommand::Types(a) => types(store, a.cmd, json).await,
            AdminCommand::StoreServe(_) => Ok(()),
        }
    });
    // Every store call has completed (and the store is dropped) once block_on returns.
    rt.shutdown_background();
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Input(msg)) => {
            eprintln!("d4: error: {msg}");
            ExitCode::from(2)
        }
        Err(Fail::Store(e)) => {
            eprintln!("d4: error: {e}");
            match e {
                StoreError::NotFound(_) | StoreError::AlreadyExists(_) | StoreError::Invalid(_) => {
                    ExitCode::from(2)
                }
                _ => ExitCode::from(1),
            }
        }
    })
}

fn sensor_row(s: &Sensor) -> Vec<String> {
    let types: Vec<String> = s
        .types
        .iter()
        .map(|t| match &t.ext {
            Some(e) => format!("{}:{e}", t.d4_type),
            None => t.d4_type.to_string(),
        })
        .collect();
    vec![
        s.uuid.simple().to_string(),
        s.status.as_str().to_string(),
        if s.hmac_key.is_some() {
            "own"
        } else {
            "default"
        }
        .to_string(),
        fmt_time(s.last_seen),
        if types.is_empty() {
            "-".into()
        } else {
            types.join(",")
        },
        s.last_error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| "-".into()),
        s.description.clone(),
    ]
}

/// A sensor as JSON for the CLI: the key itself is never printed.
fn sensor_json(s: &Sensor) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("hmac_key");
        o.insert(
            "key".into(),
            (if s.hmac_key.is_some() {
                "own"
            } else {
                "default"
            })
            .into(),
        );
    }
    v
}

async fn sensor(store: Arc<dyn Store>, cmd: SensorCmd, json: bool) -> R<()> {
    let now = d4_store::now();
    match cmd {
        SensorCmd::Register {
            uuid,
            key,
            mail,
            third_party,
            description,
            approve,
        } => {
            let uuid = parse_uuid(&uuid)?;
            if key.as_deref() == Some("") {
                return bad("--key must not be empty");
            }
            let s = store
                .register_sensor(SensorRegistration {
                    uuid,
                    hmac_key: key,
                    mail,
                    third_party,
                    description,
                    approve,
                })
                .await?;
            outln!(
                "sensor {} registered ({})",
                s.uuid.simple(),
                s.status.as_str()
            );
        }
        SensorCmd::Approve { uuid } => {
            let s = store.approve_sensor(parse_uuid(&uuid)?).await?;
            outln!("sensor {} approved", s.uuid.simple());
        }
        SensorCmd::Delete { uuid } => {
            let uuid = parse_uuid(&uuid)?;
            if !store.delete_sensor(uuid).await? {
                return Err(StoreError::NotFound(format!("sensor {}", uuid.simple())).into());
            }
            outln!("sensor {} deleted", uuid.simple());
        }
        SensorCmd::List { pending } => {
            let mut list = store.list_sensors().await?;
            if pending {
                list.retain(|s| s.status == d4_store::SensorStatus::Pending);
            }
            if json {
                print_json(&list.iter().map(sensor_json).collect::<Vec<_>>())?;
            } else {
                table(
                    &[
                        "UUID",
                        "STATUS",
                        "KEY",
                        "LAST SEEN",
                        "TYPES",
                        "LAST ERROR",
                        "DESCRIPTION",
                    ],
                    list.iter().map(sensor_row).collect(),
                );
            }
        }
        SensorCmd::Show { uuid } => {
            let uuid = parse_uuid(&uuid)?;
            let Some(s) = store.get_sensor(uuid).await? else {
                return Err(StoreError::NotFound(format!("sensor {}", uuid.simple())).into());
            };
            if json {
                print_json(&sensor_json(&s))?;
            } else {
                outln!("uuid:         {}", s.uuid.simple());
                outln!("status:       {}", s.status.as_str());
                outln!(
                    "key:          {}",
                    if s.hmac_key.is_some() {
                        "own key"
                    } else {
                        "server default key"
                    }
                );
                outln!("description:  {}", s.description);
                outln!("mail:         {}", s.mail.as_deref().unwrap_or("-"));
                outln!("third party:  {}", s.third_party);
                outln!("registered:   {}", fmt_time(s.registered_at));
                outln!("first seen:   {}", fmt_time(s.first_seen));
                outln!("last seen:    {}", fmt_time(s.last_seen));
                outln!(
                    "stream limit: {}",
                    s.stream_limit
                        .map_or_else(|| "default".to_string(), |l| l.to_string())
                );
                match &s.last_error {
                    Some(e) => outln!("last error:   {} ({})", e.message, fmt_time(Some(e.time))),
                    None => outln!("last error:   -"),
                }
                outln!("types:");
                for t in &s.types {
                    let name = match &t.ext {
                        Some(e) => format!("{} {} ({e})", t.d4_type, type_name(t.d4_type)),
                        None => format!("{} {}", t.d4_type, type_name(t.d4_type)),
                    };
                    outln!(
                        "  {name:<28} first {}  last {}",
                        fmt_time(Some(t.first_seen)),
                        fmt_time(Some(t.last_seen))
                    );
                }
                outln!("last IPs:");
                for ip in &s.last_ips {
                    outln!("  {:<40} {}", ip.ip, fmt_time(Some(ip.time)));
                }
            }
        }
        SensorCmd::SetKey {
            uuid,
            key,
            default,
            stdin,
        } => {
            let uuid = parse_uuid(&uuid)?;
            let key = if default {
                None
            } else if stdin {
                let mut k = String::new();
                if let Err(e) = std::io::stdin().read_line(&mut k) {
                    return bad(format!("read the key from stdin: {e}"));
                }
                Some(k.trim_end_matches(['\n', '\r']).to_string())
            } else {
                key
            };
            if key.as_deref() == Some("") {
                return bad("the key must not be empty (use --default for the server's key)");
            }
            store
                .update_sensor(
                    uuid,
                    SensorUpdate {
                        hmac_key: Some(key.clone()),
                        ..Default::default()
                    },
                )
                .await?;
            outln!(
                "sensor {}: {}",
                uuid.simple(),
                if key.is_some() {
                    "own key set"
                } else {
                    "uses the server's default key"
                }
            );
        }
        SensorCmd::Describe { uuid, description } => {
            let uuid = parse_uuid(&uuid)?;
            store
                .update_sensor(
                    uuid,
                    SensorUpdate {
                        description: Some(description),
                        ..Default::default()
                    },
                )
                .await?;
            outln!("sensor {}: description set", uuid.simple());
        }
        SensorCmd::SetLimit { uuid, limit } => {
            let uuid = parse_uuid(&uuid)?;
            let limit = if limit == "default" {
                None
            } else {
                match limit.parse::<u64>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        return bad(format!(
                            "invalid limit {limit:?}: a positive number or `default`"
                        ))
                    }
                }
            };
            store
                .update_sensor(
                    uuid,
                    SensorUpdate {
                        stream_limit: Some(limit),
                        ..Default::default()
                    },
                )
                .await?;
            outln!(
                "sensor {}: stream limit {}",
                uuid.simple(),
                limit.map_or("default".into(), |l| l.to_string())
            );
        }
        SensorCmd::Block {
            uuid,
            ips,
            expires,
            reason,
        } => {
            let uuid = parse_uuid(&uuid)?;
            let target = if ips {
                BlockTarget::IpsOfUuid(uuid)
            } else {
                BlockTarget::Uuid(uuid)
            };
            store
                .add_block(Block {
                    target: target.clone(),
                    reason,
                    created: now,
                    expires: expires.map(|e| now + e),
                })
                .await?;
            outln!("blocked {target}");
        }
        SensorCmd::Unblock { uuid } => {
            let uuid = parse_uuid(&uuid)?;
            let a = store.remove_block(BlockTarget::Uuid(uuid)).await?;
            let b = store.remove_block(BlockTarget::IpsOfUuid(uuid)).await?;
            if !a && !b {
                return Err(
                    StoreError::NotFound(format!("no block for sensor {}", uuid.simple())).into(),
                );
            }
            outln!("sensor {} unblocked", uuid.simple());
        }
        SensorCmd::Kick { uuid } => {
            let uuid = parse_uuid(&uuid)?;
            store.request_kick(uuid, now).await?;
            outln!(
                "sensor {} kicked (blocked for {} s)",
                uuid.simple(),
                d4_store::KICK_BLOCK_SECS
            );
        }
    }
    Ok(())
}

fn block_rows(blocks: &[Block]) -> Vec<Vec<String>> {
    blocks
        .iter()
        .map(|b| {
            let target = match &b.target {
                BlockTarget::Ip(n) => n.to_string(),
                BlockTarget::Uuid(u) => u.simple().to_string(),
                BlockTarget::IpsOfUuid(u) => format!("{} (its IPs)", u.simple()),
            };
            vec![
                target,
                b.reason.clone(),
                fmt_time(Some(b.created)),
                fmt_time(b.expires),
            ]
        })
        .collect()
}

async fn blocklist(store: Arc<dyn Store>, cmd: BlocklistCmd, json: bool) -> R<()> {
    let now = d4_store::now();
    let (is_ip, cmd) = match cmd {
        BlocklistCmd::Ip { cmd } => (true, cmd),
        BlocklistCmd::Uuid { cmd } => (false, cmd),
    };
    let target = |item: &str, ips: bool| -> R<BlockTarget> {
        if is_ip {
            if ips {
                return bad("--ips applies to `d4 blocklist uuid` only");
            }
            Ok(BlockTarget::Ip(parse_net(item)?))
        } else {
            let u = parse_uuid(item)?;
            Ok(if ips {
                BlockTarget::IpsOfUuid(u)
            } else {
                BlockTarget::Uuid(u)
            })
        }
    };
    match cmd {
        ListCmd::Add {
            items,
            expires,
            reason,
            ips,
        } => {
            let targets = items
                .iter()
                .map(|i| target(i, ips))
                .collect::<R<Vec<_>>>()?;
            for t in targets {
                store
                    .add_block(Block {
                        target: t.clone(),
                        reason: reason.clone(),
                        created: now,
                        expires: expires.map(|e| now + e),
                    })
                    .await?;
                outln!("blocked {t}");
            }
        }
        ListCmd::Remove { items, ips } => {
            let targets = items
                .iter()
                .map(|i| target(i, ips))
                .collect::<R<Vec<_>>>()?;
            let mut missing = Vec::new();
            for t in targets {
                if store.remove_block(t.clone()).await? {
                    outln!("unblocked {t}");
                } else {
                    missing.push(t.to_string());
                }
            }
            if !missing.is_empty() {
                return Err(StoreError::NotFound(format!(
                    "not in the blocklist: {}",
                    missing.join(", ")
                ))
                .into());
            }
        }
        ListCmd::List => {
            let mut blocks = store.list_blocks(now).await?;
            blocks.retain(|b| matches!(b.target, BlockTarget::Ip(_)) == is_ip);
            if json {
                print_json(&blocks)?;
            } else {
                table(
                    &["TARGET", "REASON", "CREATED", "EXPIRES"],
                    block_rows(&blocks),
                );
            }
        }
    }
    Ok(())
}

fn queue_rows(queues: &[d4_store::Queue]) -> Vec<Vec<String>> {
    queues
        .iter()
        .map(|q| {
            let kind = match &q.config.kind {
                QueueKind::Type(t) => format!("{t} ({})", type_name(*t)),
                QueueKind::Ext(e) => format!("254:{e}"),
            };
            let group = match &q.config.sensors {
                None => "all".to_string(),
                Some(g) => format!("{} sensor(s)", g.len()),
            };
            vec![
                q.config.uuid.hyphenated().to_string(),
                kind,
                q.len.to_string(),
                q.config.max_size.to_string(),
                q.trimmed.to_string(),
                group,
                q.config.description.clone(),
            ]
        })
        .collect()
}

fn write_entry(out: &mut impl Write, e: &QueueEntry, with_sensor: bool) -> std::io::Result<()> {
    if with_sensor {
        match e.sensor {
            Some(u) => write!(out, "{}\t", u.simple())?,
            None => out.write_all(b"-\t")?,
        }
    }
    out.write_all(&e.data)?;
    out.write_all(b"\n")
}

async fn queue(store: Arc<dyn Store>, cmd: QueueCmd, json: bool, stop: Stop) -> R<()> {
    let now = d4_store::now();
    match cmd {
        QueueCmd::Create {
            d4_type,
            ext,
            description,
            max_size,
            sensors,
            uuid,
        } => {
            let kind = match (d4_type, ext) {
                (Some(t), None) => {
                    let t = parse_type(&t)?;
                    if t == d4_proto::types::EXTENDED {
                        return bad("type 254 queues take an extended type: use --ext NAME");
                    }
                    QueueKind::Type(t)
                }
                (None, Some(e)) => QueueKind::Ext(e),
                _ => return bad("give exactly one of --type or --ext"),
            };
            let sensors = if sensors.is_empty() {
                None
            } else {
                Some(
                    sensors
                        .iter()
                        .map(|s| parse_uuid(s))
                        .collect::<R<Vec<_>>>()?,
                )
            };
            let uuid = match uuid {
                Some(u) => parse_uuid(&u)?,
                None => Uuid::new_v4(),
            };
            let q = store
                .create_queue(
                    QueueConfig {
                        uuid,
                        kind,
                        description,
                        max_size,
                        sensors,
                    },
                    now,
                )
                .await?;
            if json {
                print_json(&q)?;
            } else {
                outln!("{}", q.config.uuid.hyphenated());
            }
        }
        QueueCmd::List => {
            let queues = store.list_queues().await?;
            if json {
                print_json(&queues)?;
            } else {
                table(
                    &[
                        "UUID",
                        "TYPE",
                        "LEN",
                        "MAX",
                        "TRIMMED",
                        "SENSORS",
                        "DESCRIPTION",
                    ],
                    queue_rows(&queues),
                );
            }
        }
        QueueCmd::Show { queue, sample } => {
            let uuid = parse_uuid(&queue)?;
            let Some(q) = store.get_queue(uuid).await? else {
                return Err(StoreError::NotFound(format!("queue {}", uuid.hyphenated())).into());
            };
            let entries = store.queue_sample(uuid, sample).await?;
            if json {
                print_json(&serde_json::json!({ "queue": q, "sample": entries }))?;
            } else {
                table(
                    &[
                        "UUID",
                        "TYPE",
                        "LEN",
                        "MAX",
                        "TRIMMED",
                        "SENSORS",
                        "DESCRIPTION",
                    ],
                    queue_rows(std::slice::from_ref(&q)),
                );
                if let Some(g) = &q.config.sensors {
                    outln!(
                        "sensor group: {}",
                        g.iter()
                            .map(|u| u.simple().to_string())
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                }
                outln!("latest entries (newest first):");
                for e in entries {
                    outln!("  {}", e.text());
                }
            }
        }
        QueueCmd::Update {
            queue,
            description,
            max_size,
            sensors,
            all_sensors,
        } => {
            let uuid = parse_uuid(&queue)?;
            let Some(q) = store.get_queue(uuid).await? else {
                return Err(StoreError::NotFound(format!("queue {}", uuid.hyphenated())).into());
            };
            let mut c = q.config;
            if let Some(d) = description {
                c.description = d;
            }
            if let Some(m) = max_size {
                c.max_size = m;
            }
            if all_sensors {
                c.sensors = None;
            } else if !sensors.is_empty() {
                c.sensors = Some(
                    sensors
                        .iter()
                        .map(|s| parse_uuid(s))
                        .collect::<R<Vec<_>>>()?,
                );
            }
            let q = store.update_queue(c, now).await?;
            outln!(
                "queue {} updated (len {}, trimmed {})",
                q.config.uuid.hyphenated(),
                q.len,
                q.trimmed
            );
        }
        QueueCmd::Delete { queue } => {
            let uuid = parse_uuid(&queue)?;
            if !store.delete_queue(uuid).await? {
                return Err(StoreError::NotFound(format!("queue {}", uuid.hyphenated())).into());
            }
            outln!("queue {} deleted", uuid.hyphenated());
        }
        QueueCmd::Empty { queue } => {
            let uuid = parse_uuid(&queue)?;
            let n = store.empty_queue(uuid).await?;
            outln!("queue {}: {n} entries removed", uuid.hyphenated());
        }
        QueueCmd::Push {
            queue,
            more,
            lines,
            sensor,
        } => {
            let mut queues = vec![parse_uuid(&queue)?];
            for q in &more {
                queues.push(parse_uuid(q)?);
            }
            let sensor = sensor.as_deref().map(parse_uuid).transpose()?;
            let lines = if lines.is_empty() {
                use std::io::BufRead;
                let mut v = Vec::new();
                for l in std::io::stdin().lock().split(b'\n') {
                    match l {
                        Ok(mut l) => {
                            if l.last() == Some(&b'\r') {
                                l.pop();
                            }
                            v.push(l);
                        }
                        Err(e) => return bad(format!("read stdin: {e}")),
                    }
                }
                v
            } else {
                lines.into_iter().map(String::into_bytes).collect()
            };
            for q in &queues {
                if store.get_queue(*q).await?.is_none() {
                    return Err(StoreError::NotFound(format!("queue {}", q.hyphenated())).into());
                }
            }
            let entries = lines
                .into_iter()
                .map(|data| QueueEntry { sensor, data })
                .collect();
            let out = store.push_entries(queues, entries, now).await?;
            outln!("{} entries pushed, {} trimmed", out.pushed, out.trimmed);
        }
        QueueCmd::Pop {
            queue,
            follow,
            max,
            with_sensor,
        } => {
            let uuid = parse_uuid(&queue)?;
            pop(store, uuid, follow, max, with_sensor, stop).await?;
        }
    }
    Ok(())
}

/// Batch size of one pop.
const POP_BATCH: usize = 512;

async fn pop(
    store: Arc<dyn Store>,
    queue: Uuid,
    follow: bool,
    max: Option<usize>,
    with_sensor: bool,
    mut stop: Stop,
) -> R<()> {
    let mut left = max.unwrap_or(usize::MAX);
    let stdout = std::io::stdout();
    while left > 0 {
        let n = left.min(POP_BATCH);
        let entries = if follow {
            // Never cancel a pop in flight (its entries would be lost): wait in short
            // rounds and look at the signal between them.
            let r = store
                .pop_entries_blocking(queue, n, Duration::from_millis(500))
                .await?;
            if r.is_empty() && stop.received() {
                break;
            }
            r
        } else {
            store.pop_entries(queue, n).await?
        };
        if entries.is_empty() {
            if follow && !stop.received() {
                continue;
            }
            break;
        }
        left -= entries.len();
        let mut out = stdout.lock();
        for e in &entries {
            if let Err(e) = write_entry(&mut out, e, with_sensor) {
                // A closed pipe (`| head`) ends the command quietly.
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(Fail::Store(StoreError::Backend(format!(
                    "write stdout: {e}"
                ))));
            }
        }
        if let Err(e) = out.flush() {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(Fail::Store(StoreError::Backend(format!(
                "write stdout: {e}"
            ))));
        }
        if follow && stop.received() {
            break;
        }
    }
    Ok(())
}

/// SIGINT/SIGTERM, registered when created (so a signal that arrives before the first
/// wait still counts, and never kills the process mid-write).
struct Stop {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Stop {
    fn new() -> Stop {
        use tokio::signal::unix::{signal, SignalKind};
        Stop {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Whether a signal arrived (without waiting).
    fn received(&mut self) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        [&mut self.int, &mut self.term]
            .into_iter()
            .flatten()
            .any(|s| s.poll_recv(&mut cx).is_ready())
    }

    async fn wait(&mut self) {
        async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = one(&mut self.int) => {}
            () = one(&mut self.term) => {}
        }
    }
}

async fn types(store: Arc<dyn Store>, cmd: TypesCmd, json: bool) -> R<()> {
    match cmd {
        TypesCmd::Accept { types, ext } | TypesCmd::Refuse { types, ext }
            if types.is_empty() && ext.is_empty() =>
        {
            bad("name at least one type or --ext NAME")
        }
        TypesCmd::Accept { types, ext } => set_types(store, types, ext, true).await,
        TypesCmd::Refuse { types, ext } => set_types(store, types, ext, false).await,
        TypesCmd::List => {
            let t = store.accepted_types().await?;
            let e = store.accepted_ext_types().await?;
            if json {
                print_json(&serde_json::json!({ "types": t, "ext_types": e }))?;
            } else {
                let accepted: std::collections::HashSet<u8> = t.iter().copied().collect();
                let mut rows: Vec<Vec<String>> = d4_proto::types::TABLE
                    .iter()
                    .filter(|i| i.id != 0)
                    .map(|i| {
                        vec![
                            i.id.to_string(),
                            i.name.to_string(),
                            if accepted.contains(&i.id) {
                                "accepted"
                            } else {
                                "refused"
                            }
                            .to_string(),
                        ]
                    })
                    .collect();
                for id in &t {
                    if d4_proto::types::info(*id).is_none() {
                        rows.push(vec![id.to_string(), "?".into(), "accepted".into()]);
                    }
                }
                table(&["TYPE", "NAME", "STATE"], rows);
                outln!();
                table(
                    &["EXTENDED TYPE (254)"],
                    e.into_iter().map(|x| vec![x]).collect(),
                );
            }
            Ok(())
        }
    }
}

async fn set_types(store: Arc<dyn Store>, types: Vec<String>, ext: Vec<String>, on: bool) -> R<()> {
    let ids = types.iter().map(|t| parse_type(t)).collect::<R<Vec<_>>>()?;
    let verb = if on { "accepted" } else { "refused" };
    for id in ids {
        store.set_type_accepted(id, on).await?;
        outln!("type {id} ({}) {verb}", type_name(id));
    }
    for e in ext {
        store.set_ext_type_accepted(e.clone(), on).await?;
        outln!("extended type {e} {verb}");
    }
    Ok(())
}

async fn store_serve(mut config: StoreConfig, mut stop: Stop) -> R<()> {
    config.embedded_only = true;
    config.core_kicks = true;
    let store = d4_store::open(&config).await?;
    let server = d4_store::serve_socket(store.clone(), &config.socket_path()).await?;
    tracing::info!(socket = %server.path().display(), "serving the store; Ctrl-C to stop");
    eprintln!("d4: serving the store on {}", server.path().display());
    let mut events = store.subscribe();
    loop {
        tokio::select! {
            () = stop.wait() => break,
            ev = events.recv() => match ev {
                Ok(ev) => tracing::info!(?ev, "store event"),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    server.shutdown();
    Ok(())
}
