//! The admin CLI until (and beside) the web UI: `d4 sensor`, `d4 group`, `d4 blocklist`,
//! `d4 queue`, `d4 types`, `d4 forward`. Each acts on the store of `--data-dir`: the embedded database when no
//! server holds it, else the running server's socket `<data>/d4.sock`.
//!
//! Exit status: 0 on success; 2 on bad input (arguments, unknown sensor or queue, already
//! registered...); 1 when the store cannot be reached or fails.
//!
//! Inputs are checked with the store's own checks ([`d4_store::validate`], which the web UI
//! and REST API call too) before the store is touched: the CLI and the web accept and refuse
//! the same inputs, with the same message.

mod blocklist;
/// `d4 forward` (crates/d4/src/cmd/forward.rs), mounted here to share the admin helpers.
#[path = "../forward.rs"]
mod forward;
mod group;
mod output;
mod queue;
mod sensor;
mod types;

use std::net::IpAddr;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use d4_store::{validate, StoreConfig, StoreError};

use super::consume::Stop;
use ipnet::IpNet;
use uuid::Uuid;

pub use blocklist::BlocklistArgs;
pub use forward::ForwardArgs;
pub use group::GroupArgs;
pub use queue::QueueArgs;
use queue::QueueCmd;
pub use sensor::SensorArgs;
pub use types::TypesArgs;

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
        d4 sensor set 3b2a3f5c53c44fd89c8e0d8c6bba4c6f --name 'tap 1' --tag share\n  \
        d4 sensor list --tag share\n  \
        d4 sensor kick 3b2a3f5c53c44fd89c8e0d8c6bba4c6f")]
    Sensor(SensorArgs),
    /// Manage sensor groups: named sets of sensors for queues and forwarding rules.
    #[command(after_help = "Examples:\n  \
        d4 group add partners-eu --description 'shared with CERT-EU' --sensor 3b2a3f5c53c44fd89c8e0d8c6bba4c6f\n  \
        d4 group add-sensor partners-eu 6f1e0c2a9b8d4e7f8a1b2c3d4e5f6a7b\n  \
        d4 group list\n  \
        d4 queue create --type 8 --group partners-eu")]
    Group(GroupArgs),
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
    /// Share accepted frames with partner D4 servers: forwarding rules.
    #[command(after_help = "Examples:\n  \
        d4 forward add to-b --to d4.partner.example:4443 --pin-from b-server.crt \\\n      \
        --uuid 6a1f0b2e-8d8c-4e43-9f0e-3f5a2c1d9b7e --type 8 --tag share \\\n      \
        --pdns-client-ip pseudonymise --meta-tag tlp:green\n  \
        d4 forward list\n  \
        d4 forward show to-b\n  \
        d4 forward disable to-b")]
    Forward(ForwardArgs),
    /// Hold the store and serve it on `<data>/d4.sock` without a collector (for analyzers,
    /// scripts and tests; `d4 server` does the same itself).
    #[command(name = "store-serve")]
    StoreServe(StoreServeArgs),
}

#[derive(Debug, Args)]
pub struct StoreServeArgs {
    #[command(flatten)]
    pub(super) store: CommonArgs,
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

/// A check of [`d4_store::validate`]: a refusal is bad input (exit status 2), with the
/// store's message (the one the web UI answers).
fn check<T>(r: d4_store::Result<T>) -> R<T> {
    r.map_err(|e| match e {
        StoreError::Invalid(msg) => Fail::Input(msg),
        other => Fail::Store(other),
    })
}

fn parse_uuid(s: &str) -> R<Uuid> {
    check(validate::parse_uuid(s))
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
        Some(t) => check(validate::d4_type(t)).map(|()| t),
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

/// Run an admin command.
pub fn run(cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let store_args = match &cmd {
        AdminCommand::Sensor(a) => a.store.clone(),
        AdminCommand::Group(a) => a.store.clone(),
        AdminCommand::Blocklist(a) => a.store.clone(),
        AdminCommand::Queue(a) => a.store.clone(),
        AdminCommand::Types(a) => a.store.clone(),
        AdminCommand::Forward(a) => a.store.clone(),
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
        let stop = if long_running { Stop::new() } else { Stop::none() };
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
            AdminCommand::Sensor(a) => sensor::sensor(store, a.cmd, json).await,
            AdminCommand::Group(a) => group::group(store, a.cmd, json).await,
            AdminCommand::Blocklist(a) => blocklist::blocklist(store, a.cmd, json).await,
            AdminCommand::Queue(a) => queue::queue(store, a.cmd, json, stop).await,
            AdminCommand::Types(a) => types::types(store, a.cmd, json).await,
            AdminCommand::Forward(a) => forward::forward(store, a.cmd, json).await,
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
