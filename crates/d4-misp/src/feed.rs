//! The static feed's logic, without I/O: given the events of this run and what the feed
//! directory holds (its manifest, the earlier versions of these events, its `hashes.csv`),
//! [`plan`] decides which event files to (re)write, with which timestamps, and the new
//! `manifest.json` and `hashes.csv`.
//!
//! Change detection: an event is compared with its earlier version with every `timestamp`
//! and `publish_timestamp` left out. Unchanged, it keeps its file and timestamps (MISP does
//! not fetch it again). Changed or new, its timestamp becomes `now` (or one second past the
//! earlier one, so a change within the same second still moves it); so do the changed
//! objects', while objects, attributes and references that were there before keep theirs.
//! Events of this feed that the run did not produce (days outside `--since`/`--until`) keep
//! their manifest entries and hash lines.
//!
//! `hashes.csv`: one line `md5(value),event uuid` per attribute value, a composite type's
//! `a|b` value giving a line per half (as PyMISP's feed generator writes it); sorted.

use std::collections::{BTreeSet, HashMap, HashSet};

use md5::{Digest, Md5};
use serde_json::Value;
use uuid::Uuid;

use crate::model::{Event, Manifest, Object};

/// What the feed directory holds before the run.
#[derive(Debug, Clone, Default)]
pub struct Existing {
    pub manifest: Manifest,
    /// The earlier versions of (some of) this run's events, by uuid.
    pub events: HashMap<Uuid, Event>,
    /// The text of `hashes.csv` (empty when missing).
    pub hashes: String,
}

/// What to write.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Events to (re)write: new or changed, their timestamps set.
    pub write: Vec<Event>,
    /// Events of this run left as they were.
    pub unchanged: Vec<Uuid>,
    pub manifest: Manifest,
    /// The new `hashes.csv`.
    pub hashes_csv: String,
}

/// Plans the run: see the module doc. `events` have their timestamps at any value (the
/// builders leave 0); `now` is Unix seconds.
pub fn plan(existing: &Existing, events: Vec<Event>, now: i64) -> Plan {
    let mut out = Plan {
        manifest: existing.manifest.clone(),
        ..Plan::default()
    };
    let regenerated: HashSet<Uuid> = events.iter().map(|e| e.uuid).collect();
    let mut lines: BTreeSet<String> = existing
        .hashes
        .lines()
        .filter(|l| {
            l.split_once(',')
                .and_then(|(_, u)| Uuid::parse_str(u.trim()).ok())
                .is_some_and(|u| !regenerated.contains(&u))
        })
        .map(str::to_string)
        .collect();
    for mut event in events {
        let old = existing.events.get(&event.uuid);
        let event = match old {
            Some(old) if same_content(&event, old) => {
                out.unchanged.push(old.uuid);
                old.clone()
            }
            _ => {
                let stamp = old.map_or(now, |o| now.max(o.timestamp_secs().saturating_add(1)));
                stamp_event(&mut event, old, stamp);
                out.write.push(event.clone());
                event
            }
        };
        lines.extend(hash_lines(&event));
        out.manifest.insert(event.uuid, event.manifest_entry());
    }
    out.hashes_csv = lines.into_iter().map(|l| l + "\n").collect();
    out
}

/// The `hashes.csv` lines of an event.
pub fn hash_lines(event: &Event) -> Vec<String> {
    let mut out = Vec::new();
    for a in event.values() {
        let parts: Vec<&str> = if a.kind.contains('|') {
            a.value.split('|').collect()
        } else {
            vec![a.value.as_str()]
        };
        for p in parts {
            out.push(format!(
                "{},{}",
                hex::encode(Md5::digest(p.as_bytes())),
                event.uuid
            ));
        }
    }
    out
}

/// A JSON value without its `timestamp` / `publish_timestamp` keys (at any depth).
fn strip(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("timestamp");
                m.remove("publish_timestamp");
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

fn content<T: serde::Serialize>(x: &T) -> Value {
    strip(serde_json::to_value(x).unwrap_or(Value::Null))
}

/// Same event but for timestamps.
pub fn same_content(a: &Event, b: &Event) -> bool {
    content(a) == content(b)
}

fn stamp_event(event: &mut Event, old: Option<&Event>, stamp: i64) {
    let ts = stamp.to_string();
    event.timestamp = ts.clone();
    event.publish_timestamp = ts.clone();
    let old_objects: HashMap<Uuid, &Object> = old
        .map(|o| o.objects.iter().map(|x| (x.uuid, x)).collect())
        .unwrap_or_default();
    for object in &mut event.objects {
        let before = old_objects.get(&object.uuid).copied();
        if let Some(b) = before.filter(|b| content(*b) == content(&*object)) {
            *object = b.clone();
            continue;
        }
        object.timestamp = ts.clone();
        for a in &mut object.attributes {
            a.timestamp = before
                .and_then(|b| {
                    b.attributes
                        .iter()
                        .find(|x| x.uuid == a.uuid && content(*x) == content(&*a))
                })
                .map_or_else(|| ts.clone(), |x| x.timestamp.clone());
        }
        for r in &mut object.references {
            r.timestamp = before
                .and_then(|b| b.references.iter().find(|x| x.uuid == r.uuid))
                .map_or_else(|| ts.clone(), |x| x.timestamp.clone());
        }
    }
    for a in &mut event.attributes {
        a.timestamp = old
            .and_then(|o| {
                o.attributes
                    .iter()
                    .find(|x| x.uuid == a.uuid && content(*x) == content(&*a))
            })
            .map_or_else(|| ts.clone(), |x| x.timestamp.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{Analyzer, EventBuilder, EventSettings};
    use crate::model::Org;
    use crate::template::PASSIVE_DNS;
    use chrono::NaiveDate;

    fn settings() -> EventSettings {
        EventSettings {
            org: Org {
                name: "Org".into(),
                uuid: Uuid::from_u128(1),
            },
            tags: vec![],
            distribution: 0,
            threat_level: 4,
            analysis: 0,
            info_prefix: "d4".into(),
        }
    }

    fn event(day: u32, names: &[(&str, &str)]) -> Event {
        let s = settings();
        let mut e = EventBuilder::new(
            &s,
            Analyzer::PassiveDns,
            NaiveDate::from_ymd_opt(2024, 1, day).unwrap(),
        );
        for (n, count) in names {
            let mut o = e.object(&PASSIVE_DNS, n);
            o.add("rrname", *n)
                .add("rrtype", "A")
                .add("rdata", "192.0.2.1")
                .add("count", *count);
            e.add(o);
        }
        e.finish().unwrap()
    }

    fn day_uuid(day: u32) -> Uuid {
        crate::build::event_uuid(
            Uuid::from_u128(1),
            Analyzer::PassiveDns,
            NaiveDate::from_ymd_opt(2024, 1, day).unwrap(),
        )
    }

    fn existing(p: &Plan, events: &[Event]) -> Existing {
        Existing {
            manifest: p.manifest.clone(),
            events: events.iter().map(|e| (e.uuid, e.clone())).collect(),
            hashes: p.hashes_csv.clone(),
        }
    }

    #[test]
    fn first_run_writes_all_with_now() {
        let p = plan(
            &Existing::default(),
            vec![event(1, &[("a.example", "1")])],
            1000,
        );
        assert_eq!(p.write.len(), 1);
        let e = &p.write[0];
        assert_eq!(
            (e.timestamp.as_str(), e.publish_timestamp.as_str()),
            ("1000", "1000")
        );
        assert!(e.objects[0]
            .attributes
            .iter()
            .all(|a| a.timestamp == "1000"));
        assert_eq!(p.manifest[&e.uuid].timestamp, 1000);
        // md5("192.0.2.1") from `echo -n 192.0.2.1 | md5sum`: 4 attributes, 4 lines.
        assert_eq!(p.hashes_csv.lines().count(), 4);
        assert!(p
            .hashes_csv
            .contains(&format!("d0f88d6c87767262ba8e93d6acccd784,{}", e.uuid)));
    }

    #[test]
    fn rerun_changes_only_what_changed() {
        let p1 = plan(
            &Existing::default(),
            vec![
                event(1, &[("a.example", "1"), ("b.example", "1")]),
                event(2, &[("c.example", "1")]),
            ],
            1000,
        );
        let ex = existing(&p1, &p1.write);
        // Same content later: nothing written, timestamps kept.
        let same = plan(
            &ex,
            vec![
                event(1, &[("a.example", "1"), ("b.example", "1")]),
                event(2, &[("c.example", "1")]),
            ],
            2000,
        );
        assert!(same.write.is_empty());
        assert_eq!(same.unchanged.len(), 2);
        assert_eq!(same.manifest, p1.manifest);
        assert_eq!(same.hashes_csv, p1.hashes_csv);
        // One count changes on day 1, within the same second as the first run.
        let p2 = plan(
            &ex,
            vec![
                event(1, &[("a.example", "1"), ("b.example", "2")]),
                event(2, &[("c.example", "1")]),
            ],
            1000,
        );
        assert_eq!(p2.write.len(), 1);
        let e = &p2.write[0];
        assert_eq!(e.timestamp, "1001", "moves past the earlier one");
        let a = e
            .objects
            .iter()
            .find(|o| o.attributes[0].value == "a.example")
            .unwrap();
        let b = e
            .objects
            .iter()
            .find(|o| o.attributes[0].value == "b.example")
            .unwrap();
        assert_eq!(a.timestamp, "1000", "unchanged object keeps its time");
        assert_eq!(b.timestamp, "1001");
        let count = b
            .attributes
            .iter()
            .find(|x| x.object_relation == "count")
            .unwrap();
        let name = b
            .attributes
            .iter()
            .find(|x| x.object_relation == "rrname")
            .unwrap();
        assert_eq!(
            (count.timestamp.as_str(), name.timestamp.as_str()),
            ("1001", "1000")
        );
        let day2 = day_uuid(2);
        assert_eq!(p2.manifest[&day2].timestamp, 1000);
        assert_eq!(p2.manifest[&e.uuid].timestamp, 1001);
    }

    #[test]
    fn events_not_regenerated_keep_their_manifest_and_hashes() {
        let p1 = plan(
            &Existing::default(),
            vec![
                event(1, &[("a.example", "1")]),
                event(2, &[("c.example", "1")]),
            ],
            1000,
        );
        let ex = existing(&p1, &p1.write);
        let p2 = plan(&ex, vec![event(2, &[("c.example", "5")])], 3000);
        assert_eq!(p2.manifest.len(), 2);
        assert_eq!(p2.manifest[&day_uuid(1)].timestamp, 1000);
        assert_eq!(p2.hashes_csv.lines().count(), 8);
        assert_eq!(p2.write.len(), 1);
    }
}
