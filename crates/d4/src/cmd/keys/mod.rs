//! `d4 keys`: weak public keys. `check` runs badkeys-style per-key checks on keys and
//! certificates; `batch-gcd` finds RSA moduli sharing primes across a whole corpus. The
//! logic lives in the `d4-keys` crate; this module only wires files and output.

use std::process::ExitCode;

use clap::{Args, Subcommand};

pub mod batch_gcd;
pub mod check;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Check keys and certificates for known weaknesses (badkeys' checks).
    Check(check::CheckArgs),
    /// Batch GCD over RSA moduli: find moduli that share a prime.
    BatchGcd(batch_gcd::BatchGcdArgs),
}

pub fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        KeysCommand::Check(a) => check::run(a),
        KeysCommand::BatchGcd(a) => batch_gcd::run(a),
    }
}
