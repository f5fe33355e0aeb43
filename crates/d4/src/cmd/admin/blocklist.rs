//! `d4 blocklist ip|uuid add|remove|list`: the IP (prefix) and UUID blocklists.

use std::sync::Arc;

use clap::{Args, Subcommand};
use d4_store::{validate, Block, BlockTarget, Store, StoreError};

use super::output::{fmt_time, print_json, table};
use super::{bad, check, parse_net, parse_uuid, CommonArgs, R};

#[derive(Debug, Args)]
pub struct BlocklistArgs {
    #[command(flatten)]
    pub(super) store: CommonArgs,
    #[command(subcommand)]
    pub(super) cmd: BlocklistCmd,
}

#[derive(Debug, Subcommand)]
pub(super) enum BlocklistCmd {
    /// IP addresses and prefixes (v4 and v6, e.g. 192.0.2.7, 198.51.100.0/24, 2001:db8::/32).
    Ip {
        #[command(subcommand)]
        cmd: ListCmd,
    },
    /// Sensor UUIDs (--ips: every IP that presents the UUID).
    Uuid {
        #[command(subcommand)]
        cmd: ListCmd,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum ListCmd {
    /// Add entries.
    Add {
        #[arg(required = true)]
        items: Vec<String>,
        /// Remove the block after this many seconds.
        #[arg(long, value_name = "SECS")]
        expires: Option<u64>,
        #[arg(long, default_value = "admin")]
        reason: String,
        /// (uuid only) block every IP that presents the UUID instead of the UUID.
        #[arg(long)]
        ips: bool,
    },
    /// Remove entries.
    Remove {
        #[arg(required = true)]
        items: Vec<String>,
        /// (uuid only) remove the IPs-of-UUID block.
        #[arg(long)]
        ips: bool,
    },
    /// List entries in force.
    List,
}

fn block_rows(blocks: &[Block]) -> Vec<Vec<String>> {
    blocks
        .iter()
        .map(|b| {
            let target = match &b.target {
                BlockTarget::Ip(n) => n.to_string(),
                BlockTarget::Uuid(u) => u.simple().to_string(),
                BlockTarget::IpsOfUuid(u) => format!("{} (its IPs)", u.simple()),
            };
            vec![
                target,
                b.reason.clone(),
                fmt_time(Some(b.created)),
                fmt_time(b.expires),
            ]
        })
        .collect()
}

pub(super) async fn blocklist(store: Arc<dyn Store>, cmd: BlocklistCmd, json: bool) -> R<()> {
    let now = d4_store::now();
    let (is_ip, cmd) = match cmd {
        BlocklistCmd::Ip { cmd } => (true, cmd),
        BlocklistCmd::Uuid { cmd } => (false, cmd),
    };
    let target = |item: &str, ips: bool| -> R<BlockTarget> {
        if is_ip {
            if ips {
                return bad("--ips applies to `d4 blocklist uuid` only");
            }
            Ok(BlockTarget::Ip(parse_net(item)?))
        } else {
            let u = parse_uuid(item)?;
            Ok(if ips {
                BlockTarget::IpsOfUuid(u)
            } else {
                BlockTarget::Uuid(u)
            })
        }
    };
    match cmd {
        ListCmd::Add {
            items,
            expires,
            reason,
            ips,
        } => {
            let blocks = items
                .iter()
                .map(|i| {
                    let block = Block {
                        target: target(i, ips)?,
                        reason: reason.clone(),
                        created: now,
                        expires: expires.map(|e| now + e),
                    };
                    check(validate::block(&block)).map(|()| block)
                })
                .collect::<R<Vec<_>>>()?;
            for block in blocks {
                let t = block.target.clone();
                store.add_block(block).await?;
                outln!("blocked {t}");
            }
        }
        ListCmd::Remove { items, ips } => {
            let targets = items
                .iter()
                .map(|i| target(i, ips))
                .collect::<R<Vec<_>>>()?;
            let mut missing = Vec::new();
            for t in targets {
                if store.remove_block(t.clone()).await? {
                    outln!("unblocked {t}");
                } else {
                    missing.push(t.to_string());
                }
            }
            if !missing.is_empty() {
                return Err(StoreError::NotFound(format!(
                    "not in the blocklist: {}",
                    missing.join(", ")
                ))
                .into());
            }
        }
        ListCmd::List => {
            let mut blocks = store.list_blocks(now).await?;
            blocks.retain(|b| matches!(b.target, BlockTarget::Ip(_)) == is_ip);
            if json {
                print_json(&blocks)?;
            } else {
                table(
                    &["TARGET", "REASON", "CREATED", "EXPIRES"],
                    block_rows(&blocks),
                );
            }
        }
    }
    Ok(())
}
