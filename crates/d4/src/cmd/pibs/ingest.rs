//! `d4 pibs ingest`: captures (files, or the server's type-1 queue) into the backscatter
//! store, each file once (its identity and progress are committed with its buckets).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Captures to read: pcap or pcapng, plain or gzip.
    #[arg(value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
}

pub fn run(_args: IngestArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("d4 pibs ingest: not implemented yet")
}
