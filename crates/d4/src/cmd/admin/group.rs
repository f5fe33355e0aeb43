//! `d4 group`: named sets of sensors (sensor groups), usable wherever a list of sensors is
//! (analyzer queues: `d4 queue create --group`; forwarding rules: `d4 forward add --group`).

use std::collections::HashMap;
use std::sync::Arc;

use clap::{Args, Subcommand};
use d4_store::{validate, SensorGroup, Store, StoreError};
use uuid::Uuid;

use super::output::{print_json, table};
use super::{bad, check, parse_uuid, CommonArgs, R};

#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(flatten)]
    pub(super) store: CommonArgs,
    #[command(subcommand)]
    pub(super) cmd: GroupCmd,
}

#[derive(Debug, Subcommand)]
pub(super) enum GroupCmd {
    /// Create a group (name: A-Z a-z 0-9 . _ -, at most 64).
    Add {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// A member (repeat). Sensors the store does not know yet are fine.
        #[arg(long = "sensor", value_name = "UUID")]
        sensors: Vec<String>,
    },
    /// List the groups with their member count.
    List,
    /// Show a group and its members (with their names).
    Show { name: String },
    /// Delete a group (queues and rules naming it then select nobody through it).
    Remove { name: String },
    /// Add sensors to a group.
    AddSensor {
        name: String,
        #[arg(required = true, value_name = "UUID")]
        sensors: Vec<String>,
    },
    /// Remove sensors from a group.
    RemoveSensor {
        name: String,
        #[arg(required = true, value_name = "UUID")]
        sensors: Vec<String>,
    },
}

fn uuids(list: &[String]) -> R<Vec<Uuid>> {
    list.iter().map(|s| parse_uuid(s)).collect()
}

async fn get(store: &Arc<dyn Store>, name: &str) -> R<SensorGroup> {
    check(validate::group_name(name))?;
    match store.get_group(name.to_string()).await? {
        Some(g) => Ok(g),
        None => Err(StoreError::NotFound(format!("group {name}")).into()),
    }
}

pub(super) async fn group(store: Arc<dyn Store>, cmd: GroupCmd, json: bool) -> R<()> {
    match cmd {
        GroupCmd::Add {
            name,
            description,
            sensors,
        } => {
            let g = SensorGroup {
                name,
                description,
                sensors: uuids(&sensors)?,
            };
            check(validate::group(&g))?;
            let g = store.create_group(g).await?;
            if json {
                print_json(&g)?;
            } else {
                outln!("group {} created ({} sensor(s))", g.name, g.sensors.len());
            }
        }
        GroupCmd::List => {
            let groups = store.list_groups().await?;
            if json {
                print_json(&groups)?;
            } else {
                let rows = groups
                    .iter()
                    .map(|g| {
                        vec![
                            g.name.clone(),
                            g.sensors.len().to_string(),
                            g.description.clone(),
                        ]
                    })
                    .collect();
                table(&["NAME", "SENSORS", "DESCRIPTION"], rows);
            }
        }
        GroupCmd::Show { name } => {
            let g = get(&store, &name).await?;
            if json {
                print_json(&g)?;
            } else {
                let names: HashMap<Uuid, String> = store
                    .list_sensors()
                    .await?
                    .into_iter()
                    .map(|s| (s.uuid, s.name))
                    .collect();
                outln!("name:         {}", g.name);
                outln!("description:  {}", g.description);
                outln!("sensors:      {}", g.sensors.len());
                for u in &g.sensors {
                    match names.get(u) {
                        Some(n) if !n.is_empty() => outln!("  {}  {n}", u.simple()),
                        Some(_) => outln!("  {}", u.simple()),
                        None => outln!("  {}  (not seen yet)", u.simple()),
                    }
                }
            }
        }
        GroupCmd::Remove { name } => {
            check(validate::group_name(&name))?;
            if !store.delete_group(name.clone()).await? {
                return Err(StoreError::NotFound(format!("group {name}")).into());
            }
            outln!("group {name} removed");
        }
        GroupCmd::AddSensor { name, sensors } => {
            let add = uuids(&sensors)?;
            let mut g = get(&store, &name).await?;
            g.sensors.extend(add);
            let g = store.update_group(g).await?;
            outln!("group {}: {} sensor(s)", g.name, g.sensors.len());
        }
        GroupCmd::RemoveSensor { name, sensors } => {
            let remove = uuids(&sensors)?;
            let mut g = get(&store, &name).await?;
            let before = g.sensors.len();
            g.sensors.retain(|u| !remove.contains(u));
            if g.sensors.len() == before {
                return bad(format!("none of these sensors is in group {name}"));
            }
            let g = store.update_group(g).await?;
            outln!("group {}: {} sensor(s)", g.name, g.sensors.len());
        }
    }
    Ok(())
}
