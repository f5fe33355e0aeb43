//! `d4 keys check`.

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct CheckArgs {}

pub fn run(_args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("d4 keys check is not built yet")
}
