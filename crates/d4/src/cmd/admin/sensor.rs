//! `d4 sensor`: register, approve, list, show, names and tags, keys, descriptions, limits,
//! blocks, kicks.

use std::sync::Arc;

use clap::{Args, Subcommand};
use d4_store::{
    validate, Block, BlockTarget, Sensor, SensorRegistration, SensorUpdate, Store, StoreError,
};

use super::output::{fmt_time, print_json, table};
use super::{bad, check, parse_uuid, type_name, CommonArgs, R};

#[derive(Debug, Args)]
pub struct SensorArgs {
    #[command(flatten)]
    pub(super) store: CommonArgs,
    #[command(subcommand)]
    pub(super) cmd: SensorCmd,
}

#[derive(Debug, Subcommand)]
pub(super) enum SensorCmd {
    /// Register a sensor (pending until approved, unless --approve).
    Register {
        uuid: String,
        /// The sensor's HMAC key (default: the server's default key).
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        mail: Option<String>,
        #[arg(long)]
        third_party: bool,
        #[arg(long)]
        description: Option<String>,
        /// Approve at once.
        #[arg(long)]
        approve: bool,
    },
    /// Approve a pending sensor.
    Approve { uuid: String },
    /// Delete a sensor's record (rejects a pending registration).
    Delete { uuid: String },
    /// List sensors.
    List {
        /// Only pending registrations.
        #[arg(long)]
        pending: bool,
        /// Only sensors carrying this tag (repeat: any of them).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Only members of this sensor group (repeat: any of them).
        #[arg(long = "group", value_name = "NAME")]
        groups: Vec<String>,
    },
    /// Set the sensor's name and tags.
    #[command(after_help = "Examples:\n  \
        d4 sensor set 3b2a3f5c53c44fd89c8e0d8c6bba4c6f --name 'tap paris 1' --tag share --tag tlp:green\n  \
        d4 sensor set 3b2a3f5c53c44fd89c8e0d8c6bba4c6f --untag share\n  \
        d4 sensor set 3b2a3f5c53c44fd89c8e0d8c6bba4c6f --name ''")]
    Set {
        uuid: String,
        /// The sensor's name, shown beside its UUID (`''` removes it).
        #[arg(long)]
        name: Option<String>,
        /// Add a tag (repeat): A-Z a-z 0-9 _ . : = -, e.g. share, tlp:green.
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Remove a tag (repeat).
        #[arg(long = "untag", value_name = "TAG")]
        untags: Vec<String>,
    },
    /// Show everything known about one sensor.
    Show { uuid: String },
    /// Set the sensor's HMAC key (or go back to the server's default key).
    SetKey {
        uuid: String,
        /// The new key (prefer --stdin: command lines are visible to other users).
        #[arg(required_unless_present_any = ["default", "stdin"], conflicts_with_all = ["default", "stdin"])]
        key: Option<String>,
        /// Use the server's default key.
        #[arg(long, conflicts_with = "stdin")]
        default: bool,
        /// Read the key from stdin (one trailing newline removed).
        #[arg(long)]
        stdin: bool,
    },
    /// Set the sensor's description.
    Describe { uuid: String, description: String },
    /// Set the sensor's stream limit (pending entries), or `default`.
    SetLimit {
        uuid: String,
        #[arg(value_name = "N|default")]
        limit: String,
    },
    /// Block a sensor's UUID (and, with --ips, every IP that presents it).
    Block {
        uuid: String,
        #[arg(long)]
        ips: bool,
        /// Block for this many seconds only.
        #[arg(long, value_name = "SECS")]
        expires: Option<u64>,
        #[arg(long, default_value = "admin")]
        reason: String,
    },
    /// Remove the UUID block and the IPs-of-UUID block of a sensor.
    Unblock { uuid: String },
    /// Close the sensor's connections now and block it for 30 s.
    Kick { uuid: String },
}

fn sensor_row(s: &Sensor) -> Vec<String> {
    let types: Vec<String> = s
        .types
        .iter()
        .map(|t| match &t.ext {
            Some(e) => format!("{}:{e}", t.d4_type),
            None => t.d4_type.to_string(),
        })
        .collect();
    vec![
        s.uuid.simple().to_string(),
        dash(&s.name),
        s.status.as_str().to_string(),
        if s.hmac_key.is_some() {
            "own"
        } else {
            "default"
        }
        .to_string(),
        fmt_time(s.last_seen),
        if types.is_empty() {
            "-".into()
        } else {
            types.join(",")
        },
        dash(&s.tags.join(",")),
        s.last_error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| "-".into()),
        s.description.clone(),
    ]
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

/// A sensor as JSON for the CLI: the key itself is never printed.
fn sensor_json(s: &Sensor) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("hmac_key");
        o.insert(
            "key".into(),
            (if s.hmac_key.is_some() {
                "own"
            } else {
                "default"
            })
            .into(),
        );
    }
    v
}

pub(super) async fn sensor(store: Arc<dyn Store>, cmd: SensorCmd, json: bool) -> R<()> {
    let now = d4_store::now();
    match cmd {
        SensorCmd::Register {
            uuid,
            key,
            mail,
            third_party,
            description,
            approve,
        } => {
            let reg = SensorRegistration {
                uuid: parse_uuid(&uuid)?,
                hmac_key: key,
                mail,
                third_party,
                description,
                approve,
            };
            check(validate::registration(&reg))?;
            let s = store.register_sensor(reg).await?;
            outln!(
                "sensor {} registered ({})",
                s.uuid.simple(),
                s.status.as_str()
            );
        }
        SensorCmd::Approve { uuid } => {
            let s = store.approve_sensor(parse_uuid(&uuid)?).await?;
            outln!("sensor {} approved", s.uuid.simple());
        }
        SensorCmd::Delete { uuid } => {
            let uuid = parse_uuid(&uuid)?;
            if !store.delete_sensor(uuid).await? {
                return Err(StoreError::NotFound(format!("sensor {}", uuid.simple())).into());
            }
            outln!("sensor {} deleted", uuid.simple());
        }
        SensorCmd::List {
            pending,
            tags,
            groups,
        } => {
            let mut list = store.list_sensors().await?;
            if pending {
                list.retain(|s| s.status == d4_store::SensorStatus::Pending);
            }
            if !tags.is_empty() {
                list.retain(|s| tags.iter().any(|t| s.has_tag(t)));
            }
            if !groups.is_empty() {
                let mut members = Vec::new();
                for g in &groups {
                    check(validate::group_name(g))?;
                    match store.get_group(g.clone()).await? {
                        Some(group) => members.extend(group.sensors),
                        None => return Err(StoreError::NotFound(format!("group {g}")).into()),
                    }
                }
                list.retain(|s| members.contains(&s.uuid));
            }
            if json {
                print_json(&list.iter().map(sensor_json).collect::<Vec<_>>())?;
            } else {
                table(
                    &[
                        "UUID",
                        "NAME",
                        "STATUS",
                        "KEY",
                        "LAST SEEN",
                        "TYPES",
                        "TAGS",
                        "LAST ERROR",
                        "DESCRIPTION",
                    ],
                    list.iter().map(sensor_row).collect(),
                );
            }
        }
        SensorCmd::Show { uuid } => {
            let uuid = parse_uuid(&uuid)?;
            let Some(s) = store.get_sensor(uuid).await? else {
                return Err(StoreError::NotFound(format!("sensor {}", uuid.simple())).into());
            };
            let groups = store.groups_of(uuid).await?;
            if json {
                let mut v = sensor_json(&s);
                if let Some(o) = v.as_object_mut() {
                    o.insert("groups".into(), groups.into());
                }
                print_json(&v)?;
            } else {
                outln!("uuid:         {}", s.uuid.simple());
                outln!("name:         {}", dash(&s.name));
                outln!("tags:         {}", dash(&s.tags.join(" ")));
                outln!("groups:       {}", dash(&groups.join(" ")));
                outln!("status:       {}", s.status.as_str());
                outln!(
                    "key:          {}",
                    if s.hmac_key.is_some() {
                        "own key"
                    } else {
                        "server default key"
                    }
                );
                outln!("description:  {}", s.description);
                outln!("mail:         {}", s.mail.as_deref().unwrap_or("-"));
                outln!("third party:  {}", s.third_party);
                if let Some(p) = &s.partner {
                    outln!(
                        "partner meta: org {}, tags {}, type {}, from {} at {}",
                        p.org.as_deref().unwrap_or("-"),
                        dash(&p.tags.join(" ")),
                        p.ext_type.as_deref().unwrap_or("-"),
                        p.ip.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
                        fmt_time(Some(p.time))
                    );
                }
                outln!("registered:   {}", fmt_time(s.registered_at));
                outln!("first seen:   {}", fmt_time(s.first_seen));
                outln!("last seen:    {}", fmt_time(s.last_seen));
                outln!(
                    "stream limit: {}",
                    s.stream_limit
                        .map_or_else(|| "default".to_string(), |l| l.to_string())
                );
                match &s.last_error {
                    Some(e) => outln!("last error:   {} ({})", e.message, fmt_time(Some(e.time))),
                    None => outln!("last error:   -"),
                }
                outln!("types:");
                for t in &s.types {
                    let name = match &t.ext {
                        Some(e) => format!("{} {} ({e})", t.d4_type, type_name(t.d4_type)),
                        None => format!("{} {}", t.d4_type, type_name(t.d4_type)),
                    };
                    outln!(
                        "  {name:<28} first {}  last {}",
                        fmt_time(Some(t.first_seen)),
                        fmt_time(Some(t.last_seen))
                    );
                }
                outln!("last IPs:");
                for ip in &s.last_ips {
                    outln!("  {:<40} {}", ip.ip, fmt_time(Some(ip.time)));
                }
            }
        }
        SensorCmd::SetKey {
            uuid,
            key,
            default,
            stdin,
        } => {
            let uuid = parse_uuid(&uuid)?;
            let key = if default {
                None
            } else if stdin {
                let mut k = String::new();
                if let Err(e) = std::io::stdin().read_line(&mut k) {
                    return bad(format!("read the key from stdin: {e}"));
                }
                Some(k.trim_end_matches(['\n', '\r']).to_string())
            } else {
                key
            };
            let change = SensorUpdate {
                hmac_key: Some(key.clone()),
                ..Default::default()
            };
            update(&store, uuid, change).await?;
            outln!(
                "sensor {}: {}",
                uuid.simple(),
                if key.is_some() {
                    "own key set"
                } else {
                    "uses the server's default key"
                }
            );
        }
        SensorCmd::Set {
            uuid,
            name,
            tags,
            untags,
        } => {
            let uuid = parse_uuid(&uuid)?;
            if name.is_none() && tags.is_empty() && untags.is_empty() {
                return bad("nothing to set: give --name, --tag or --untag");
            }
            for t in tags.iter().chain(&untags) {
                check(validate::tag(t))?;
            }
            let new_tags = if tags.is_empty() && untags.is_empty() {
                None
            } else {
                let mut current = store
                    .get_sensor(uuid)
                    .await?
                    .map(|s| s.tags)
                    .unwrap_or_default();
                current.retain(|t| !untags.contains(t));
                current.extend(tags);
                d4_store::normalize_tags(&mut current);
                Some(current)
            };
            let change = SensorUpdate {
                name,
                tags: new_tags,
                ..Default::default()
            };
            check(validate::sensor_update(&change))?;
            let s = store.update_sensor(uuid, change).await?;
            outln!(
                "sensor {}: name {}, tags {}",
                uuid.simple(),
                if s.name.is_empty() { "-" } else { &s.name },
                dash(&s.tags.join(","))
            );
        }
        SensorCmd::Describe { uuid, description } => {
            let uuid = parse_uuid(&uuid)?;
            let change = SensorUpdate {
                description: Some(description),
                ..Default::default()
            };
            update(&store, uuid, change).await?;
            outln!("sensor {}: description set", uuid.simple());
        }
        SensorCmd::SetLimit { uuid, limit } => {
            let uuid = parse_uuid(&uuid)?;
            let limit = if limit == "default" {
                None
            } else {
                match limit.parse::<u64>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        return bad(format!(
                            "invalid limit {limit:?}: a positive number or `default`"
                        ))
                    }
                }
            };
            let change = SensorUpdate {
                stream_limit: Some(limit),
                ..Default::default()
            };
            update(&store, uuid, change).await?;
            outln!(
                "sensor {}: stream limit {}",
                uuid.simple(),
                limit.map_or("default".into(), |l| l.to_string())
            );
        }
        SensorCmd::Block {
            uuid,
            ips,
            expires,
            reason,
        } => {
            let uuid = parse_uuid(&uuid)?;
            let target = if ips {
                BlockTarget::IpsOfUuid(uuid)
            } else {
                BlockTarget::Uuid(uuid)
            };
            let block = Block {
                target: target.clone(),
                reason,
                created: now,
                expires: expires.map(|e| now + e),
            };
            check(validate::block(&block))?;
            store.add_block(block).await?;
            outln!("blocked {target}");
        }
        SensorCmd::Unblock { uuid } => {
            let uuid = parse_uuid(&uuid)?;
            let a = store.remove_block(BlockTarget::Uuid(uuid)).await?;
            let b = store.remove_block(BlockTarget::IpsOfUuid(uuid)).await?;
            if !a && !b {
                return Err(
                    StoreError::NotFound(format!("no block for sensor {}", uuid.simple())).into(),
                );
            }
            outln!("sensor {} unblocked", uuid.simple());
        }
        SensorCmd::Kick { uuid } => {
            let uuid = parse_uuid(&uuid)?;
            store.request_kick(uuid, now).await?;
            outln!(
                "sensor {} kicked (blocked for {} s)",
                uuid.simple(),
                d4_store::KICK_BLOCK_SECS
            );
        }
    }
    Ok(())
}

/// A settings change, checked as the web UI checks it ([`validate::sensor_update`]).
async fn update(store: &Arc<dyn Store>, uuid: uuid::Uuid, u: SensorUpdate) -> R<()> {
    check(validate::sensor_update(&u))?;
    store.update_sensor(uuid, u).await?;
    Ok(())
}
