//! Sensor names, tags and groups: the parsing of user input and the store calls shared by
//! the pages and the JSON API (as [`crate::actions`] for the rest). Checks are the store's
//! ([`d4_store::validate`]), the same as the CLI's.

use std::collections::HashMap;

use axum::http::StatusCode;
use d4_store::{normalize_tags, validate, Sensor, SensorGroup, SensorUpdate, Store};
use uuid::Uuid;

use crate::actions;
use crate::failure::{Failure, Res};

/// Words separated by spaces, commas or newlines (tags, group names, UUIDs).
fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
}

/// Tags typed in a form field: checked, sorted, no duplicates.
pub fn parse_tags(s: &str) -> Res<Vec<String>> {
    let mut out = Vec::new();
    for w in words(s) {
        validate::tag(w)?;
        out.push(w.to_string());
    }
    normalize_tags(&mut out);
    validate::tags(&out)?;
    Ok(out)
}

/// Group names typed in a form field: checked, no duplicates, in the given order.
pub fn parse_group_names(s: &str) -> Res<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for w in words(s) {
        validate::group_name(w)?;
        if !out.iter().any(|x| x == w) {
            out.push(w.to_string());
        }
    }
    Ok(out)
}

/// UUIDs typed in a form field, no duplicates.
pub fn parse_members(s: &str) -> Res<Vec<Uuid>> {
    Ok(actions::parse_group(s)?.unwrap_or_default())
}

/// Set a sensor's name and/or tags (`None`: unchanged).
pub async fn set_labels(
    store: &dyn Store,
    uuid: Uuid,
    name: Option<String>,
    tags: Option<Vec<String>>,
) -> Res<Sensor> {
    actions::update_sensor(
        store,
        uuid,
        SensorUpdate {
            name,
            tags,
            ..Default::default()
        },
    )
    .await
}

/// Sensor UUID → name, for the sensors that have one (to show beside UUIDs).
pub async fn sensor_names(store: &dyn Store) -> Res<HashMap<Uuid, String>> {
    Ok(store
        .list_sensors()
        .await?
        .into_iter()
        .filter(|s| !s.name.is_empty())
        .map(|s| (s.uuid, s.name))
        .collect())
}

/// A group that must exist.
pub async fn group(store: &dyn Store, name: &str) -> Res<SensorGroup> {
    validate::group_name(name)?;
    store
        .get_group(name.to_string())
        .await?
        .ok_or_else(|| Failure::not_found(format!("unknown group {name:?}")))
}

pub async fn create_group(store: &dyn Store, g: SensorGroup) -> Res<SensorGroup> {
    validate::group(&g)?;
    if store.get_group(g.name.clone()).await?.is_some() {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            format!("group {:?} already exists", g.name),
        ));
    }
    Ok(store.create_group(g).await?)
}

pub async fn update_group(store: &dyn Store, g: SensorGroup) -> Res<SensorGroup> {
    validate::group(&g)?;
    group(store, &g.name).await?;
    Ok(store.update_group(g).await?)
}

pub async fn delete_group(store: &dyn Store, name: &str) -> Res<()> {
    validate::group_name(name)?;
    if store.delete_group(name.to_string()).await? {
        Ok(())
    } else {
        Err(Failure::not_found(format!("unknown group {name:?}")))
    }
}

/// The sensors shown by a list filtered on a tag and/or a group (empty: no filter).
pub async fn filter_sensors(
    store: &dyn Store,
    list: Vec<Sensor>,
    tag: &str,
    group_name: &str,
) -> Res<Vec<Sensor>> {
    let tag = tag.trim();
    let group_name = group_name.trim();
    let members = if group_name.is_empty() {
        None
    } else {
        Some(group(store, group_name).await?.sensors)
    };
    Ok(list
        .into_iter()
        .filter(|s| tag.is_empty() || s.has_tag(tag))
        .filter(|s| members.as_ref().is_none_or(|m| m.contains(&s.uuid)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(
            parse_tags("tlp:green, share share\nsite=paris").unwrap(),
            vec!["share", "site=paris", "tlp:green"]
        );
        assert!(parse_tags("ok bad/tag").is_err());
        assert_eq!(parse_tags("  ").unwrap(), Vec::<String>::new());
        assert_eq!(parse_group_names("b a b").unwrap(), vec!["b", "a"]);
        assert!(parse_group_names("a:b").is_err());
        assert_eq!(parse_members("").unwrap(), Vec::<Uuid>::new());
    }
}
