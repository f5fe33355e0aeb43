//! `d4 pssl serve`: the passive SSL lookup server.

use std::process::ExitCode;

use clap::Args;

use super::{PsslArgs, PsslCommand};

#[derive(Debug, Args)]
pub struct ServeArgs {}

pub fn run(args: &PsslArgs) -> anyhow::Result<ExitCode> {
    let PsslCommand::Serve(_a) = &args.command else {
        anyhow::bail!("internal: not a serve command");
    };
    anyhow::bail!("d4 pssl serve is not built yet")
}
