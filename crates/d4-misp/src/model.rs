//! The MISP JSON model of a static feed: [`EventFile`] (`<uuid>.json`: `{"Event": …}`) with
//! its [`Event`], [`Object`]s, [`Attribute`]s and [`ObjectReference`]s, and the
//! [`ManifestEntry`] of `manifest.json`. Field names are MISP's; numbers inside an event are
//! strings (as MISP and PyMISP's feed generator write them), booleans are JSON booleans, and
//! timestamps are Unix seconds. The same types read back what an earlier run wrote.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The organisation that created the events (`Orgc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    pub name: String,
    pub uuid: Uuid,
}

/// An event tag (`tlp:green`…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub name: String,
    pub colour: String,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub relationship_type: String,
}

/// One attribute of an object (or of the event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub uuid: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub category: String,
    pub object_relation: String,
    pub value: String,
    pub to_ids: bool,
    pub disable_correlation: bool,
    pub distribution: String,
    pub timestamp: String,
    pub comment: String,
}

/// A reference from an object to another object (or attribute) of the same event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectReference {
    pub uuid: Uuid,
    pub timestamp: String,
    pub relationship_type: String,
    pub object_uuid: Uuid,
    pub referenced_uuid: Uuid,
    pub comment: String,
}

/// A MISP object: an instance of a misp-objects template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    pub name: String,
    #[serde(rename = "meta-category")]
    pub meta_category: String,
    pub description: String,
    pub template_uuid: Uuid,
    pub template_version: String,
    pub uuid: Uuid,
    pub timestamp: String,
    pub distribution: String,
    pub sharing_group_id: String,
    pub comment: String,
    #[serde(rename = "Attribute")]
    pub attributes: Vec<Attribute>,
    #[serde(rename = "ObjectReference", default)]
    pub references: Vec<ObjectReference>,
}

/// A MISP event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub uuid: Uuid,
    pub info: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// 1 (high) to 4 (undefined).
    pub threat_level_id: String,
    /// 0 (initial), 1 (ongoing), 2 (completed).
    pub analysis: String,
    pub distribution: String,
    pub timestamp: String,
    pub publish_timestamp: String,
    pub published: bool,
    #[serde(rename = "Orgc")]
    pub orgc: Org,
    #[serde(rename = "Tag", default)]
    pub tags: Vec<Tag>,
    #[serde(rename = "Attribute", default)]
    pub attributes: Vec<Attribute>,
    #[serde(rename = "Object", default)]
    pub objects: Vec<Object>,
}

/// `<event uuid>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFile {
    #[serde(rename = "Event")]
    pub event: Event,
}

/// One event's entry in `manifest.json` (MISP compares `timestamp` to decide what to fetch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    #[serde(rename = "Orgc")]
    pub orgc: Org,
    #[serde(rename = "Tag", default)]
    pub tags: Vec<Tag>,
    pub info: String,
    pub date: String,
    pub analysis: u8,
    pub threat_level_id: u8,
    pub timestamp: i64,
}

/// `manifest.json`: event uuid → entry (ordered, so the file is the same for the same feed).
pub type Manifest = BTreeMap<Uuid, ManifestEntry>;

impl Event {
    /// The event's timestamp (0 when it does not parse).
    pub fn timestamp_secs(&self) -> i64 {
        self.timestamp.parse().unwrap_or(0)
    }

    /// Its `manifest.json` entry.
    pub fn manifest_entry(&self) -> ManifestEntry {
        ManifestEntry {
            orgc: self.orgc.clone(),
            tags: self.tags.clone(),
            info: self.info.clone(),
            date: self.date.clone(),
            analysis: self.analysis.parse().unwrap_or(0),
            threat_level_id: self.threat_level_id.parse().unwrap_or(4),
            timestamp: self.timestamp_secs(),
        }
    }

    /// Every attribute value, the event's and its objects', in order.
    pub fn values(&self) -> impl Iterator<Item = &Attribute> {
        self.attributes
            .iter()
            .chain(self.objects.iter().flat_map(|o| o.attributes.iter()))
    }
}
