//! `d4`: the one binary of d4-rs. A thin command-line layer over the library crates:
//! each subcommand lives in its own module under `cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(not(feature = "sensor"))]
compile_error!("build with the `full` (default) or the `sensor` feature");

// The sensor build (client, inspect) prints through its own writers, not these macros.
#[cfg_attr(not(feature = "full"), allow(unused_macros, dead_code))]
#[macro_use]
mod out;
mod cmd;
#[cfg(feature = "full")]
mod config;
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
#[allow(clippy::large_enum_variant)] // parsed once; boxing buys nothing
enum Command {
    /// Decode a D4 stream (file or stdin) and print every frame: the tool to debug a sensor.
    Inspect(cmd::inspect::InspectArgs),
    /// Sensor client: frame a source (stdin, file, folder, Redis list) and send it to a collector.
    Client(cmd::client::ClientArgs),
    /// Run the collector: TLS listener, sessions, journal, workers, analyzer queues.
    #[cfg(feature = "full")]
    Server(Box<cmd::server::ServerArgs>),
    /// Benchmarks (`d4 bench server`: collector throughput over TLS vs HMAC, memory).
    #[cfg(feature = "full")]
    Bench(cmd::bench::BenchArgs),
    /// Backscatter DDoS analyzer: find the replies of spoofed-flood victims in pcap files.
    #[cfg(feature = "full")]
    Pibs(cmd::pibs::PibsArgs),
    #[cfg(feature = "full")]
    #[command(flatten)]
    Admin(cmd::admin::AdminCommand),
    /// Passive DNS: ingest passivedns CSV into the record store, serve COF lookups.
    #[cfg(feature = "full")]
    Pdns(cmd::pdns::PdnsArgs),
    /// Passive SSL: ingest certificates, keys and TLS sessions (ja3-jl records, certificate
    /// files, pcap), serve the CIRCL Passive SSL API (PyPSSL) and pivots over them.
    #[cfg(feature = "full")]
    Pssl(cmd::pssl::PsslArgs),
    /// Weak keys: badkeys-style checks on keys and certificates, batch GCD over RSA moduli.
    #[cfg(feature = "full")]
    Keys(cmd::keys::KeysArgs),
    /// Export an analyzer queue's entries to stdout, TCP, TLS, UDP, a Unix socket or syslog
    /// (RFC 5424), at least once.
    #[cfg(feature = "full")]
    Export(Box<cmd::export::ExportArgs>),
    /// MISP: a static MISP feed of the analyzers' findings (`d4 misp feed --out DIR`).
    #[cfg(feature = "full")]
    Misp(cmd::misp::MispArgs),
    /// TLS fingerprinting sensor: JA3/JA3S/JA4, certificates and TLSH of every TLS session
    /// (TCP, QUIC) in pcap files or live traffic, as JSON lines or `ja3-jl` to a collector.
    #[cfg(feature = "full")]
    Tls(Box<cmd::tls::TlsArgs>),
}

fn main() -> ExitCode {
    out::install_panic_hook();
    let cli = Cli::parse();
    logging::init(&cli.log);
    let result = match cli.command {
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Client(args) => cmd::client::run(args),
        #[cfg(feature = "full")]
        Command::Server(args) => cmd::server::run(*args),
        #[cfg(feature = "full")]
        Command::Bench(args) => cmd::bench::run(args),
        #[cfg(feature = "full")]
        Command::Pibs(args) => cmd::pibs::run(args),
        #[cfg(feature = "full")]
        Command::Admin(args) => cmd::admin::run(args),
        #[cfg(feature = "full")]
        Command::Pdns(args) => cmd::pdns::run(args),
        #[cfg(feature = "full")]
        Command::Pssl(args) => cmd::pssl::run(args),
        #[cfg(feature = "full")]
        Command::Keys(args) => cmd::keys::run(args),
        #[cfg(feature = "full")]
        Command::Export(args) => cmd::export::run(*args),
        #[cfg(feature = "full")]
        Command::Misp(args) => cmd::misp::run(args),
        #[cfg(feature = "full")]
        Command::Tls(args) => cmd::tls::run(*args),
    };
    match result {
        Ok(code) => code,
        Err(e) if out::is_broken_pipe(&e) => out::quiet_exit(),
        Err(e) => {
            eprintln!("d4: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
