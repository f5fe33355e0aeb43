//! `d4 types accept|refuse|list`: the D4 types and extended types the collector accepts.

use std::sync::Arc;

use clap::{Args, Subcommand};
use d4_store::{validate, Store};

use super::output::{print_json, table};
use super::{bad, check, parse_type, type_name, CommonArgs, R};

#[derive(Debug, Args)]
pub struct TypesArgs {
    #[command(flatten)]
    pub(super) store: CommonArgs,
    #[command(subcommand)]
    pub(super) cmd: TypesCmd,
}

#[derive(Debug, Subcommand)]
pub(super) enum TypesCmd {
    /// Accept types (by number or name) and/or extended types (--ext).
    Accept {
        types: Vec<String>,
        #[arg(long = "ext", value_name = "NAME")]
        ext: Vec<String>,
    },
    /// Refuse types (by number or name) and/or extended types (--ext).
    Refuse {
        types: Vec<String>,
        #[arg(long = "ext", value_name = "NAME")]
        ext: Vec<String>,
    },
    /// List accepted types and extended types.
    List,
}

pub(super) async fn types(store: Arc<dyn Store>, cmd: TypesCmd, json: bool) -> R<()> {
    match cmd {
        TypesCmd::Accept { types, ext } | TypesCmd::Refuse { types, ext }
            if types.is_empty() && ext.is_empty() =>
        {
            bad("name at least one type or --ext NAME")
        }
        TypesCmd::Accept { types, ext } => set_types(store, types, ext, true).await,
        TypesCmd::Refuse { types, ext } => set_types(store, types, ext, false).await,
        TypesCmd::List => {
            let t = store.accepted_types().await?;
            let e = store.accepted_ext_types().await?;
            if json {
                print_json(&serde_json::json!({ "types": t, "ext_types": e }))?;
            } else {
                let accepted: std::collections::HashSet<u8> = t.iter().copied().collect();
                let mut rows: Vec<Vec<String>> = d4_proto::types::TABLE
                    .iter()
                    .filter(|i| i.id != 0)
                    .map(|i| {
                        vec![
                            i.id.to_string(),
                            i.name.to_string(),
                            if accepted.contains(&i.id) {
                                "accepted"
                            } else {
                                "refused"
                            }
                            .to_string(),
                        ]
                    })
                    .collect();
                for id in &t {
                    if d4_proto::types::info(*id).is_none() {
                        rows.push(vec![id.to_string(), "?".into(), "accepted".into()]);
                    }
                }
                table(&["TYPE", "NAME", "STATE"], rows);
                outln!();
                table(
                    &["EXTENDED TYPE (254)"],
                    e.into_iter().map(|x| vec![x]).collect(),
                );
            }
            Ok(())
        }
    }
}

async fn set_types(store: Arc<dyn Store>, types: Vec<String>, ext: Vec<String>, on: bool) -> R<()> {
    let ids = types.iter().map(|t| parse_type(t)).collect::<R<Vec<_>>>()?;
    for e in &ext {
        check(validate::ext_name(e))?;
    }
    let verb = if on { "accepted" } else { "refused" };
    for id in ids {
        store.set_type_accepted(id, on).await?;
        outln!("type {id} ({}) {verb}", type_name(id));
    }
    for e in ext {
        store.set_ext_type_accepted(e.clone(), on).await?;
        outln!("extended type {e} {verb}");
    }
    Ok(())
}
