//! The configuration of `d4 misp feed`: a TOML file (`--config`) whose keys the flags
//! override — the organisation, the event settings, and per analyzer whether it
//! contributes and its bounds. `--print-config` prints the effective file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use d4_misp::{EventSettings, Org, Tag};
use serde::{Deserialize, Serialize};

use super::FeedArgs;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrgConfig {
    pub name: Option<String>,
    pub uuid: Option<uuid::Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventConfig {
    /// Tags of every event (`tlp:green`…).
    pub tags: Vec<String>,
    /// 0–3.
    pub distribution: u8,
    /// 1–4.
    pub threat_level: u8,
    /// 0–2.
    pub analysis: u8,
    /// Start of every event's `info`.
    pub info_prefix: String,
}

impl Default for EventConfig {
    fn default() -> Self {
        EventConfig {
            tags: vec!["tlp:amber".into()],
            distribution: 0,
            threat_level: 4,
            analysis: 0,
            info_prefix: "d4".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    pub enabled: bool,
    /// Watch list files (patterns of names); none: every record new that day.
    pub watch: Vec<PathBuf>,
    pub max_objects: usize,
    /// Most stored records read by the scan of the records new in the period.
    pub max_examined: usize,
    /// The `origin` attribute of every passive-dns object.
    pub origin: Option<String>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            enabled: true,
            watch: Vec::new(),
            max_objects: 1000,
            max_examined: 10_000_000,
            origin: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SslConfig {
    pub enabled: bool,
    pub max_objects: usize,
    /// Most sessions read for the period.
    pub max_sessions: usize,
}

impl Default for SslConfig {
    fn default() -> Self {
        SslConfig {
            enabled: true,
            max_objects: 1000,
            max_sessions: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeakConfig {
    pub enabled: bool,
    /// Put the recovered prime factors in the crypto-material objects.
    pub include_factors: bool,
    pub max_objects: usize,
}

impl Default for WeakConfig {
    fn default() -> Self {
        WeakConfig {
            enabled: true,
            include_factors: false,
            max_objects: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DdosConfig {
    /// Backscatter findings: one `ddos` object per attack in the backscatter store
    /// (`d4 pibs ingest`), in the event of the day it started.
    pub enabled: bool,
    pub max_objects: usize,
}

impl Default for DdosConfig {
    fn default() -> Self {
        DdosConfig {
            enabled: false,
            max_objects: 1000,
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedConfig {
    pub org: OrgConfig,
    pub event: EventConfig,
    pub passive_dns: DnsConfig,
    pub passive_ssl: SslConfig,
    pub weak_keys: WeakConfig,
    pub backscatter: DdosConfig,
}

impl FeedConfig {
    fn read(path: &Path) -> anyhow::Result<FeedConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the feed configuration {}", path.display()))?;
        toml::from_str(&text).with_context(|| {
            format!(
                "{}: not a valid feed configuration (see docs/misp.md)",
                path.display()
            )
        })
    }

    /// The file (if any) with the flags over it.
    pub fn load(args: &FeedArgs) -> anyhow::Result<FeedConfig> {
        let mut c = match &args.config {
            Some(p) => FeedConfig::read(p)?,
            None => FeedConfig::default(),
        };
        if let Some(n) = &args.org_name {
            c.org.name = Some(n.clone());
        }
        if let Some(u) = args.org_uuid {
            c.org.uuid = Some(u);
        }
        if !args.tags.is_empty() {
            c.event.tags = args.tags.clone();
        }
        if let Some(d) = args.distribution {
            c.event.distribution = d;
        }
        if let Some(t) = args.threat_level {
            c.event.threat_level = t;
        }
        if let Some(a) = args.analysis {
            c.event.analysis = a;
        }
        if !args.only.is_empty() {
            for name in &args.only {
                if !["passive-dns", "passive-ssl", "weak-keys", "backscatter"]
                    .contains(&name.as_str())
                {
                    anyhow::bail!(
                        "--only {name}: expected passive-dns, passive-ssl, weak-keys or backscatter"
                    );
                }
            }
            let on = |n: &str| args.only.iter().any(|x| x == n);
            c.passive_dns.enabled = on("passive-dns");
            c.passive_ssl.enabled = on("passive-ssl");
            c.weak_keys.enabled = on("weak-keys");
            c.backscatter.enabled = on("backscatter");
        }
        if !args.pdns_watch.is_empty() {
            c.passive_dns.watch = args.pdns_watch.clone();
        }
        if args.include_factors {
            c.weak_keys.include_factors = true;
        }
        if let Some(m) = args.max_objects {
            c.passive_dns.max_objects = m;
            c.passive_ssl.max_objects = m;
            c.weak_keys.max_objects = m;
            c.backscatter.max_objects = m;
        }
        Ok(c)
    }

    /// The event settings; fails without an organisation or with values out of range.
    pub fn settings(&self) -> anyhow::Result<EventSettings> {
        let name = self
            .org
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .context(
                "no organisation name: give --org-name or `name` under [org] in the --config file",
            )?;
        let uuid = self.org.uuid.context(
            "no organisation UUID: give --org-uuid or `uuid` under [org] in the --config file \
             (keep it stable: every event's UUID derives from it)",
        )?;
        let e = &self.event;
        if e.distribution > 3 {
            anyhow::bail!("[event] distribution {}: expected 0 to 3", e.distribution);
        }
        if !(1..=4).contains(&e.threat_level) {
            anyhow::bail!("[event] threat_level {}: expected 1 to 4", e.threat_level);
        }
        if e.analysis > 2 {
            anyhow::bail!("[event] analysis {}: expected 0 to 2", e.analysis);
        }
        Ok(EventSettings {
            org: Org { name, uuid },
            tags: e
                .tags
                .iter()
                .map(|t| Tag {
                    name: t.clone(),
                    colour: d4_misp::build::tag_colour(t).into(),
                    local: false,
                    relationship_type: String::new(),
                })
                .collect(),
            distribution: e.distribution,
            threat_level: e.threat_level,
            analysis: e.analysis,
            info_prefix: e.info_prefix.clone(),
        })
    }
}
