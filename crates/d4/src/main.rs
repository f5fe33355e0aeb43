//! `d4`: the one binary of d4-rs. A thin command-line layer over the library crates:
//! each subcommand lives in its own module under `cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod logging;

/// d4-rs: collect, authenticate, store and analyse D4 sensor streams.
///
/// D4 sensors (honeypots, blackholes, resolvers, taps) stream pcap, passive DNS, logs and
/// JSON to a collector over the D4 encapsulation protocol (62-byte header, HMAC-SHA256).
#[derive(Debug, Parser)]
#[command(name = "d4", version, about, long_about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    log: logging::LogArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode a D4 stream (file or stdin) and print every frame: the tool to debug a sensor.
    Inspect(cmd::inspect::InspectArgs),
    /// Run the collector: TLS listener, sessions, journal, workers, analyzer queues.
    Server(Box<cmd::server::ServerArgs>),
    /// Benchmarks (`d4 bench server`: collector throughput over TLS vs HMAC, memory).
    Bench(cmd::bench::BenchArgs),
    #[command(flatten)]
    Admin(cmd::admin::AdminCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.log);
    let result = match cli.command {
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Server(args) => cmd::server::run(*args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Admin(args) => cmd::admin::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("d4: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
