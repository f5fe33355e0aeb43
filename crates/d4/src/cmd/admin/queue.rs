//! `d4 queue`: create, list, show, update, delete, empty analyzer queues; push lines to
//! them (tests, scripts) and pop them to stdout (`d4 queue pop`, the stdout analyzer).

use std::io::Write;
use std::sync::Arc;

use clap::{Args, Subcommand};
use d4_store::{QueueConfig, QueueEntry, QueueKind, Store, StoreError};
use uuid::Uuid;

use super::output::{print_json, table};
use super::{bad, check, parse_type, parse_uuid, type_name, CommonArgs, Fail, Stop, R};

#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(flatten)]
    pub(super) store: CommonArgs,
    #[command(subcommand)]
    pub(super) cmd: QueueCmd,
}

#[derive(Debug, Subcommand)]
pub(super) enum QueueCmd {
    /// Create a queue for a D4 type or an extended type; prints its UUID.
    Create {
        /// D4 type, by number or name (8, passivedns).
        #[arg(
            long = "type",
            value_name = "TYPE",
            required_unless_present = "ext",
            conflicts_with = "ext"
        )]
        d4_type: Option<String>,
        /// Extended type (type 254), e.g. ja3-jl.
        #[arg(long, value_name = "NAME")]
        ext: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Max entries; over it the oldest entries are dropped (and counted).
        #[arg(long, default_value_t = d4_store::DEFAULT_QUEUE_MAX_SIZE)]
        max_size: u64,
        /// Only data from these sensors (repeat for a group). Default: every sensor.
        #[arg(long = "sensor", value_name = "UUID")]
        sensors: Vec<String>,
        /// Only data from the members of this sensor group (repeat; with --sensor: both).
        #[arg(long = "group", value_name = "NAME")]
        groups: Vec<String>,
        /// Use this queue UUID (default: a new random one).
        #[arg(long)]
        uuid: Option<String>,
    },
    /// List queues with their length and trimmed counter.
    List,
    /// Show one queue and a sample of its latest entries.
    Show {
        queue: String,
        #[arg(long, default_value_t = 10)]
        sample: usize,
    },
    /// Change a queue's description, max size or sensor group.
    Update {
        queue: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        max_size: Option<u64>,
        /// Replace the group (repeat); see --all-sensors.
        #[arg(long = "sensor", value_name = "UUID")]
        sensors: Vec<String>,
        /// Replace the sensor groups feeding the queue (repeat).
        #[arg(long = "group", value_name = "NAME")]
        groups: Vec<String>,
        /// Remove the sensor list and the groups: every sensor feeds the queue.
        #[arg(long, conflicts_with_all = ["sensors", "groups"])]
        all_sensors: bool,
    },
    /// Delete a queue and its entries.
    Delete { queue: String },
    /// Remove every entry of a queue.
    Empty { queue: String },
    /// Push lines to queues (arguments, or stdin lines when none): for tests and scripts.
    Push {
        /// Queue UUID (repeat --to for more queues).
        queue: String,
        #[arg(long = "to", value_name = "QUEUE")]
        more: Vec<String>,
        /// Entries; without any, one entry per line of stdin.
        lines: Vec<String>,
        /// Tag the entries with this sensor uuid.
        #[arg(long)]
        sensor: Option<String>,
    },
    /// Print entries one per line, oldest first, removing them (an analyzer on stdout).
    /// At least once: an entry is removed only once it was written to stdout; a run
    /// killed before that leaves it to the next run with the same --consumer.
    Pop {
        queue: String,
        /// Consumer name: a restarted `pop` with the same name gets back at once what a
        /// killed run had taken but not printed.
        #[arg(long, default_value = "d4-queue-pop", value_parser = crate::cmd::consume::check_name)]
        consumer: String,
        /// Keep waiting for new entries until interrupted (SIGINT/SIGTERM).
        #[arg(long, short)]
        follow: bool,
        /// Stop after this many entries.
        #[arg(long, short = 'n')]
        max: Option<usize>,
        /// Prefix each entry with its sensor uuid and a tab.
        #[arg(long)]
        with_sensor: bool,
    },
}

/// The columns of [`queue_rows`] (`d4 queue list` and `d4 queue show`).
const QUEUE_HEADER: [&str; 7] = [
    "UUID",
    "TYPE",
    "LEN",
    "MAX",
    "TRIMMED",
    "SENSORS",
    "DESCRIPTION",
];

fn queue_rows(queues: &[d4_store::Queue]) -> Vec<Vec<String>> {
    queues
        .iter()
        .map(|q| {
            let kind = match &q.config.kind {
                QueueKind::Type(t) => format!("{t} ({})", type_name(*t)),
                QueueKind::Ext(e) => format!("254:{e}"),
            };
            let mut group = match &q.config.sensors {
                None if q.config.groups.is_empty() => "all".to_string(),
                None => String::new(),
                Some(g) => format!("{} sensor(s)", g.len()),
            };
            if !q.config.groups.is_empty() {
                if !group.is_empty() {
                    group.push_str(", ");
                }
                group.push_str(&format!("group(s) {}", q.config.groups.join(",")));
            }
            vec![
                q.config.uuid.hyphenated().to_string(),
                kind,
                q.len.to_string(),
                q.config.max_size.to_string(),
                q.trimmed.to_string(),
                group,
                q.config.description.clone(),
            ]
        })
        .collect()
}

fn write_entry(out: &mut impl Write, e: &QueueEntry, with_sensor: bool) -> std::io::Result<()> {
    if with_sensor {
        match e.sensor {
            Some(u) => write!(out, "{}\t", u.simple())?,
            None => out.write_all(b"-\t")?,
        }
    }
    out.write_all(&e.data)?;
    out.write_all(b"\n")
}

pub(super) async fn queue(store: Arc<dyn Store>, cmd: QueueCmd, json: bool, stop: Stop) -> R<()> {
    let now = d4_store::now();
    match cmd {
        QueueCmd::Create {
            d4_type,
            ext,
            description,
            max_size,
            sensors,
            groups,
            uuid,
        } => {
            let kind = match (d4_type, ext) {
                (Some(t), None) => QueueKind::Type(parse_type(&t)?),
                (None, Some(e)) => QueueKind::Ext(e),
                _ => return bad("give exactly one of --type or --ext"),
            };
            let sensors = if sensors.is_empty() {
                None
            } else {
                Some(
                    sensors
                        .iter()
                        .map(|s| parse_uuid(s))
                        .collect::<R<Vec<_>>>()?,
                )
            };
            let uuid = match uuid {
                Some(u) => parse_uuid(&u)?,
                None => Uuid::new_v4(),
            };
            let config = QueueConfig {
                uuid,
                kind,
                description,
                max_size,
                sensors,
                groups,
            };
            check(d4_store::validate::queue_config(&config))?;
            let q = store.create_queue(config, now).await?;
            if json {
                print_json(&q)?;
            } else {
                outln!("{}", q.config.uuid.hyphenated());
            }
        }
        QueueCmd::List => {
            let queues = store.list_queues().await?;
            if json {
                print_json(&queues)?;
            } else {
                table(&QUEUE_HEADER, queue_rows(&queues));
            }
        }
        QueueCmd::Show { queue, sample } => {
            let uuid = parse_uuid(&queue)?;
            let Some(q) = store.get_queue(uuid).await? else {
                return Err(StoreError::NotFound(format!("queue {}", uuid.hyphenated())).into());
            };
            let entries = store.queue_sample(uuid, sample).await?;
            if json {
                print_json(&serde_json::json!({ "queue": q, "sample": entries }))?;
            } else {
                table(&QUEUE_HEADER, queue_rows(std::slice::from_ref(&q)));
                if let Some(g) = &q.config.sensors {
                    outln!(
                        "sensor group: {}",
                        g.iter()
                            .map(|u| u.simple().to_string())
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                }
                if !q.config.groups.is_empty() {
                    outln!("sensor groups: {}", q.config.groups.join(" "));
                }
                outln!("latest entries (newest first):");
                for e in entries {
                    outln!("  {}", e.text());
                }
            }
        }
        QueueCmd::Update {
            queue,
            description,
            max_size,
            sensors,
            groups,
            all_sensors,
        } => {
            let uuid = parse_uuid(&queue)?;
            let Some(q) = store.get_queue(uuid).await? else {
                return Err(StoreError::NotFound(format!("queue {}", uuid.hyphenated())).into());
            };
            let mut c = q.config;
            if let Some(d) = description {
                c.description = d;
            }
            if let Some(m) = max_size {
                c.max_size = m;
            }
            if all_sensors {
                c.sensors = None;
                c.groups.clear();
            }
            if !groups.is_empty() {
                c.groups = groups;
            }
            if !sensors.is_empty() {
                c.sensors = Some(
                    sensors
                        .iter()
                        .map(|s| parse_uuid(s))
                        .collect::<R<Vec<_>>>()?,
                );
            }
            check(d4_store::validate::queue_config(&c))?;
            let q = store.update_queue(c, now).await?;
            outln!(
                "queue {} updated (len {}, trimmed {})",
                q.config.uuid.hyphenated(),
                q.len,
                q.trimmed
            );
        }
        QueueCmd::Delete { queue } => {
            let uuid = parse_uuid(&queue)?;
            if !store.delete_queue(uuid).await? {
                return Err(StoreError::NotFound(format!("queue {}", uuid.hyphenated())).into());
            }
            outln!("queue {} deleted", uuid.hyphenated());
        }
        QueueCmd::Empty { queue } => {
            let uuid = parse_uuid(&queue)?;
            let n = store.empty_queue(uuid).await?;
            outln!("queue {}: {n} entries removed", uuid.hyphenated());
        }
        QueueCmd::Push {
            queue,
            more,
            lines,
            sensor,
        } => {
            let mut queues = vec![parse_uuid(&queue)?];
            for q in &more {
                queues.push(parse_uuid(q)?);
            }
            let sensor = sensor.as_deref().map(parse_uuid).transpose()?;
            let lines = if lines.is_empty() {
                use std::io::BufRead;
                let mut v = Vec::new();
                for l in std::io::stdin().lock().split(b'\n') {
                    match l {
                        Ok(mut l) => {
                            if l.last() == Some(&b'\r') {
                                l.pop();
                            }
                            v.push(l);
                        }
                        Err(e) => return bad(format!("read stdin: {e}")),
                    }
                }
                v
            } else {
                lines.into_iter().map(String::into_bytes).collect()
            };
            for q in &queues {
                if store.get_queue(*q).await?.is_none() {
                    return Err(StoreError::NotFound(format!("queue {}", q.hyphenated())).into());
                }
            }
            let entries = lines
                .into_iter()
                .map(|data| QueueEntry { sensor, data })
                .collect();
            let out = store.push_entries(queues, entries, now).await?;
            outln!("{} entries pushed, {} trimmed", out.pushed, out.trimmed);
        }
        QueueCmd::Pop {
            queue,
            consumer,
            follow,
            max,
            with_sensor,
        } => {
            let uuid = parse_uuid(&queue)?;
            if store.get_queue(uuid).await?.is_none() {
                return Err(Fail::Store(StoreError::NotFound(format!("queue {uuid}"))));
            }
            let c = crate::cmd::consume::consumer(store, uuid, &consumer, POP_BATCH)?;
            pop(c, follow, max, with_sensor, stop).await?;
        }
    }
    Ok(())
}

/// Batch size of one pop.
const POP_BATCH: usize = 512;

async fn pop(
    mut c: d4_store::QueueConsumer,
    follow: bool,
    max: Option<usize>,
    with_sensor: bool,
    mut stop: Stop,
) -> R<()> {
    let mut left = max.unwrap_or(usize::MAX);
    let stdout = std::io::stdout();
    while left > 0 {
        // The lease is cancel-safe: a signal while waiting loses nothing.
        c.set_batch(left.min(POP_BATCH));
        let Some(batch) = crate::cmd::consume::next(&mut c, !follow, stop.wait()).await? else {
            break;
        };
        left -= batch.len();
        let mut out = stdout.lock();
        for e in &batch.entries {
            if let Err(e) = write_entry(&mut out, e, with_sensor) {
                // A closed pipe (`| head`) ends the command quietly.
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(Fail::Store(StoreError::Backend(format!(
                    "write stdout: {e}"
                ))));
            }
        }
        if let Err(e) = out.flush() {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(Fail::Store(StoreError::Backend(format!(
                "write stdout: {e}"
            ))));
        }
        drop(out);
        c.ack(batch).await?;
        if follow && stop.received() {
            break;
        }
    }
    Ok(())
}
