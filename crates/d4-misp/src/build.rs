//! Building events and objects with deterministic UUIDs (v5): an event per (analyzer, day)
//! under the organisation's UUID, an object per finding identity under its event, an
//! attribute per (relation, value) and a reference per (relationship, target) under their
//! object. The same findings give the same UUIDs on every run, so MISP updates what it
//! has instead of adding copies. Timestamps are left at 0: the feed planner
//! ([`crate::feed`]) sets them from what changed.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{Attribute, Event, Object, ObjectReference, Org, Tag};
use crate::template::Template;

/// The analyzer an event holds the findings of (one event per analyzer and day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Analyzer {
    PassiveDns,
    Backscatter,
    PassiveSsl,
    WeakKeys,
}

impl Analyzer {
    /// Its name in UUID names and configuration.
    pub fn slug(self) -> &'static str {
        match self {
            Analyzer::PassiveDns => "passive-dns",
            Analyzer::Backscatter => "backscatter",
            Analyzer::PassiveSsl => "passive-ssl",
            Analyzer::WeakKeys => "weak-keys",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Analyzer::PassiveDns => "passive DNS",
            Analyzer::Backscatter => "backscatter (DDoS victims)",
            Analyzer::PassiveSsl => "passive SSL",
            Analyzer::WeakKeys => "weak keys",
        }
    }
}

/// What every event carries, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    pub org: Org,
    pub tags: Vec<Tag>,
    /// Event distribution 0–3 (objects and attributes inherit it: 5).
    pub distribution: u8,
    /// 1 (high) … 4 (undefined).
    pub threat_level: u8,
    /// 0 (initial), 1 (ongoing), 2 (completed).
    pub analysis: u8,
    /// Prefix of every event's `info` (`d4` by default).
    pub info_prefix: String,
}

/// The colour MISP gives a TLP tag, else MISP's default tag colour.
pub fn tag_colour(name: &str) -> &'static str {
    match name.to_ascii_lowercase().as_str() {
        "tlp:white" | "tlp:clear" => "#ffffff",
        "tlp:green" => "#339900",
        "tlp:amber" | "tlp:amber+strict" => "#ffc000",
        "tlp:red" => "#cc0033",
        _ => "#0088cc",
    }
}

/// The UUID of the event of `analyzer` on `day`.
pub fn event_uuid(org: Uuid, analyzer: Analyzer, day: NaiveDate) -> Uuid {
    Uuid::new_v5(
        &org,
        format!("d4:event:{}:{}", analyzer.slug(), day.format("%Y-%m-%d")).as_bytes(),
    )
}

/// Unix seconds as MISP's `datetime` value (`2024-01-01T00:00:00+00:00`).
pub fn datetime(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// The UTC day of a Unix time.
pub fn day_of(secs: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .date_naive()
}

/// One event being built.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    event: Event,
}

impl EventBuilder {
    pub fn new(settings: &EventSettings, analyzer: Analyzer, day: NaiveDate) -> EventBuilder {
        let date = day.format("%Y-%m-%d").to_string();
        EventBuilder {
            event: Event {
                uuid: event_uuid(settings.org.uuid, analyzer, day),
                info: format!(
                    "{}: {} findings of {date}",
                    settings.info_prefix,
                    analyzer.title()
                ),
                date,
                threat_level_id: settings.threat_level.to_string(),
                analysis: settings.analysis.to_string(),
                distribution: settings.distribution.to_string(),
                timestamp: "0".into(),
                publish_timestamp: "0".into(),
                published: true,
                orgc: settings.org.clone(),
                tags: settings.tags.clone(),
                attributes: Vec::new(),
                objects: Vec::new(),
            },
        }
    }

    pub fn uuid(&self) -> Uuid {
        self.event.uuid
    }

    /// A new object of this event for the finding `identity` (not added yet: see
    /// [`EventBuilder::add`]).
    pub fn object(&self, template: &'static Template, identity: &str) -> ObjectBuilder {
        ObjectBuilder::new(self.event.uuid, template, identity)
    }

    /// Adds a built object (an object of the same UUID is replaced).
    pub fn add(&mut self, object: ObjectBuilder) {
        let o = object.build();
        match self.event.objects.iter_mut().find(|x| x.uuid == o.uuid) {
            Some(x) => *x = o,
            None => self.event.objects.push(o),
        }
    }

    pub fn objects(&self) -> usize {
        self.event.objects.len()
    }

    /// The event, `None` when it holds no object.
    pub fn finish(self) -> Option<Event> {
        (!self.event.objects.is_empty()).then_some(self.event)
    }
}

/// One object being built.
#[derive(Debug, Clone)]
pub struct ObjectBuilder {
    template: &'static Template,
    object: Object,
}

impl ObjectBuilder {
    pub fn new(event: Uuid, template: &'static Template, identity: &str) -> ObjectBuilder {
        let uuid = Uuid::new_v5(
            &event,
            format!("d4:object:{}:{identity}", template.name).as_bytes(),
        );
        ObjectBuilder {
            template,
            object: Object {
                name: template.name.into(),
                meta_category: template.meta_category.into(),
                description: template.description.into(),
                template_uuid: template.template_uuid(),
                template_version: template.version.to_string(),
                uuid,
                timestamp: "0".into(),
                distribution: "5".into(),
                sharing_group_id: "0".into(),
                comment: String::new(),
                attributes: Vec::new(),
                references: Vec::new(),
            },
        }
    }

    pub fn uuid(&self) -> Uuid {
        self.object.uuid
    }

    /// Adds `relation` = `value` (without surrounding white space). Empty values and repeats of the same (relation, value)
    /// are skipped; a relation the template does not have is a bug (skipped, and a
    /// debug-build panic).
    pub fn add(&mut self, relation: &str, value: impl Into<String>) -> &mut ObjectBuilder {
        // MISP (and PyMISP) strip values: stored as they will be read.
        let value = {
            let v: String = value.into();
            match v.trim() {
                t if t.len() == v.len() => v,
                t => t.to_string(),
            }
        };
        let Some(r) = self.template.relation(relation) else {
            debug_assert!(false, "{} has no relation {relation}", self.template.name);
            return self;
        };
        if value.is_empty()
            || self
                .object
                .attributes
                .iter()
                .any(|a| a.object_relation == relation && a.value == value)
        {
            return self;
        }
        self.object.attributes.push(Attribute {
            uuid: Uuid::new_v5(
                &self.object.uuid,
                format!("d4:attribute:{relation}:{value}").as_bytes(),
            ),
            kind: r.kind.into(),
            category: r.category.into(),
            object_relation: relation.into(),
            value,
            to_ids: false,
            disable_correlation: r.disable_correlation,
            distribution: "5".into(),
            timestamp: "0".into(),
            comment: String::new(),
        });
        self
    }

    /// Adds `relation` = `value` when there is a value.
    pub fn add_opt(&mut self, relation: &str, value: Option<impl Into<String>>) -> &mut Self {
        if let Some(v) = value {
            self.add(relation, v);
        }
        self
    }

    /// A reference to another object of the event (repeats skipped).
    pub fn reference(&mut self, relationship: &str, target: Uuid) -> &mut ObjectBuilder {
        if self
            .object
            .references
            .iter()
            .any(|r| r.relationship_type == relationship && r.referenced_uuid == target)
        {
            return self;
        }
        self.object.references.push(ObjectReference {
            uuid: Uuid::new_v5(
                &self.object.uuid,
                format!("d4:reference:{relationship}:{target}").as_bytes(),
            ),
            timestamp: "0".into(),
            relationship_type: relationship.into(),
            object_uuid: self.object.uuid,
            referenced_uuid: target,
            comment: String::new(),
        });
        self
    }

    pub fn comment(&mut self, text: impl Into<String>) -> &mut ObjectBuilder {
        self.object.comment = text.into();
        self
    }

    pub fn build(self) -> Object {
        self.object
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::PASSIVE_DNS;

    fn settings() -> EventSettings {
        EventSettings {
            org: Org {
                name: "CIRCL".into(),
                uuid: Uuid::parse_str("55f6ea5e-2c60-40e5-964f-47a8950d210f").unwrap(),
            },
            tags: vec![],
            distribution: 0,
            threat_level: 4,
            analysis: 0,
            info_prefix: "d4".into(),
        }
    }

    #[test]
    fn uuids_are_v5_of_the_names() {
        let s = settings();
        let day = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let e = EventBuilder::new(&s, Analyzer::PassiveDns, day);
        // Computed independently: uuid5(org, "d4:event:passive-dns:2024-01-02").
        let want = Uuid::new_v5(&s.org.uuid, b"d4:event:passive-dns:2024-01-02");
        assert_eq!(e.uuid(), want);
        assert_eq!(e.uuid().get_version_num(), 5);
        let o = e.object(&PASSIVE_DNS, "x");
        assert_eq!(o.uuid(), Uuid::new_v5(&want, b"d4:object:passive-dns:x"));
        // Another day, another event uuid; same inputs, same uuids.
        let other = EventBuilder::new(&s, Analyzer::PassiveDns, day.succ_opt().unwrap());
        assert_ne!(other.uuid(), e.uuid());
        assert_eq!(
            EventBuilder::new(&s, Analyzer::PassiveDns, day).uuid(),
            want
        );
    }

    #[test]
    fn attributes_typed_by_the_template_and_deduplicated() {
        let s = settings();
        let day = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let mut e = EventBuilder::new(&s, Analyzer::PassiveDns, day);
        let mut o = e.object(&PASSIVE_DNS, "x");
        o.add("rrname", "www.example.com")
            .add("rrname", "www.example.com")
            .add("count", "3")
            .add("time_first", datetime(0))
            .add("rdata", "");
        e.add(o);
        let ev = e.finish().unwrap();
        let a = &ev.objects[0].attributes;
        assert_eq!(a.len(), 3);
        assert_eq!(
            (a[1].kind.as_str(), a[1].category.as_str()),
            ("counter", "Other")
        );
        assert_eq!(a[2].value, "1970-01-01T00:00:00+00:00");
        assert_eq!(a[0].category, "Network activity");
    }

    #[test]
    fn empty_event_is_none() {
        let s = settings();
        let day = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        assert!(EventBuilder::new(&s, Analyzer::WeakKeys, day)
            .finish()
            .is_none());
    }

    #[test]
    fn tlp_colours() {
        assert_eq!(tag_colour("tlp:green"), "#339900");
        assert_eq!(tag_colour("TLP:AMBER"), "#ffc000");
        assert_eq!(tag_colour("d4"), "#0088cc");
    }
}
