//! `d4 keys batch-gcd`.

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct BatchGcdArgs {}

pub fn run(_args: BatchGcdArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("d4 keys batch-gcd is not built yet")
}
