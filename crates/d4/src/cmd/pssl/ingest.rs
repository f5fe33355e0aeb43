//! `d4 pssl ingest`: files, stdin, certificates, pcap and the `ja3-jl` analyzer queue into
//! the passive SSL store.

use std::process::ExitCode;

use clap::Args;

use super::{PsslArgs, PsslCommand};

#[derive(Debug, Args)]
pub struct IngestArgs {}

pub fn run(args: &PsslArgs) -> anyhow::Result<ExitCode> {
    let PsslCommand::Ingest(_a) = &args.command else {
        anyhow::bail!("internal: not an ingest command");
    };
    anyhow::bail!("d4 pssl ingest is not built yet")
}
