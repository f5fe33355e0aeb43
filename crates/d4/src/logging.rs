//! Log set-up shared by every subcommand: human-readable by default, JSON on request,
//! always on stderr so that stdout stays free for data.

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// More log output (-v debug, -vv trace). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "D4_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// The rustls module whose per-connection SNI warning is silenced by default.
const QUIET_SNI: &str = "rustls::msgs::handshake=error";

pub fn init(args: &LogArgs) {
    let level = match args.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let from_env = std::env::var("RUST_LOG").ok();
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // rustls warns about every client that sends an IP address as SNI (socat and others
    // do; it is normal for sensors dialling an address): not worth a line per connection,
    // unless RUST_LOG asks for rustls's own logs.
    if !from_env.is_some_and(|v| v.contains("rustls")) {
        if let Ok(d) = QUIET_SNI.parse() {
            filter = filter.add_directive(d);
        }
    }
    // Colours only for a person at a terminal: never in files, pipes or journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // try_init: a second initialisation (tests) is not an error worth dying for.
    let _ = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
