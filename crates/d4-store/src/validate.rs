//! Every input check of the store, in one place: every backend calls them in its write
//! operations (so a bad input is refused whatever the front end), and the front ends (web
//! UI, REST API, CLI) call the same functions to refuse early with the same message.
//!
//! Each check returns [`StoreError::Invalid`] with a message meant for the user.

use uuid::Uuid;

use d4_proto::types;

use crate::model::*;
use crate::{Result, StoreError};

/// Longest sensor HMAC key, in characters (the reference truncates at 100).
pub const MAX_KEY_CHARS: usize = 100;
/// Longest contact mail of a sensor, in characters.
pub const MAX_MAIL_CHARS: usize = 256;
/// Longest description (sensor, queue), in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Longest reason of a block, in characters.
pub const MAX_REASON_CHARS: usize = 256;
/// Longest extended type name, in bytes (ASCII only).
pub const MAX_EXT_NAME_LEN: usize = 64;
/// Longest user name, in bytes.
pub const MAX_USER_NAME_LEN: usize = 64;

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

/// At most 80 characters of a user input, for messages.
fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// A UUID string (hyphenated or 32 hex digits, surrounding spaces ignored).
pub fn parse_uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s.trim()).map_err(|_| invalid(format!("invalid uuid {:?}", short(s))))
}

/// Sensor HMAC keys: 1 to [`MAX_KEY_CHARS`] printable characters.
pub fn hmac_key(key: &str) -> Result<()> {
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS || key.chars().any(char::is_control) {
        return Err(invalid(format!(
            "the HMAC key must have 1 to {MAX_KEY_CHARS} printable characters"
        )));
    }
    Ok(())
}

/// A free text of at most `max` characters; `what` names it in the message.
pub fn text(what: &str, s: &str, max: usize) -> Result<()> {
    if s.chars().count() > max {
        return Err(invalid(format!(
            "{what} is too long (at most {max} characters)"
        )));
    }
    Ok(())
}

/// A sensor's contact mail: at most [`MAX_MAIL_CHARS`] characters.
pub fn mail(m: &str) -> Result<()> {
    text("mail", m, MAX_MAIL_CHARS)
}

/// A description (sensor, queue): at most [`MAX_DESCRIPTION_CHARS`] characters.
pub fn description(d: &str) -> Result<()> {
    text("description", d, MAX_DESCRIPTION_CHARS)
}

/// A D4 type number given by a user: any type but 0 (reserved, [`types::RESERVED`]).
pub fn d4_type(t: u8) -> Result<()> {
    if t == types::RESERVED {
        return Err(invalid(format!("type {t} does not exist (reserved)")));
    }
    Ok(())
}

/// A name that is safe as a file or folder name: `[A-Za-z0-9._-]{1,max}`, not starting
/// with '.' (extended types, groups, forwarding rules).
pub(crate) fn is_safe_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Extended type names: `[A-Za-z0-9._-]{1,64}`, not starting with '.'.
pub fn ext_name(name: &str) -> Result<()> {
    if is_safe_name(name, MAX_EXT_NAME_LEN) {
        Ok(())
    } else {
        Err(invalid(format!(
            "extended type name {:?}: 1 to {MAX_EXT_NAME_LEN} characters of A-Z a-z 0-9 . _ -, \
             not starting with '.'",
            short(name)
        )))
    }
}

/// What a queue receives: a type other than 0 and 254 (extended types are queued by
/// name), or a valid extended type name.
pub fn queue_kind(kind: &QueueKind) -> Result<()> {
    match kind {
        QueueKind::Type(types::EXTENDED) => Err(invalid(format!(
            "type {} queues take an extended type name instead (e.g. ja3-jl)",
            types::EXTENDED
        ))),
        QueueKind::Type(t) => d4_type(*t),
        QueueKind::Ext(name) => ext_name(name),
    }
}

/// Queue settings: max size at least 1, a valid kind, a description of bounded length.
pub fn queue_config(c: &QueueConfig) -> Result<()> {
    if c.max_size == 0 {
        return Err(invalid("queue max size must be at least 1"));
    }
    queue_kind(&c.kind)?;
    c.groups.iter().try_for_each(|g| group_name(g))?;
    description(&c.description)
}

/// A registration: key, mail and description as [`hmac_key`], [`mail`], [`description`].
pub fn registration(reg: &SensorRegistration) -> Result<()> {
    if let Some(k) = &reg.hmac_key {
        hmac_key(k)?;
    }
    if let Some(m) = &reg.mail {
        mail(m)?;
    }
    if let Some(d) = &reg.description {
        description(d)?;
    }
    Ok(())
}

/// A settings change: the new key, mail and description as for a registration, a stream
/// limit and a monitoring threshold of at least 1.
pub fn sensor_update(u: &SensorUpdate) -> Result<()> {
    if let Some(Some(k)) = &u.hmac_key {
        hmac_key(k)?;
    }
    if let Some(Some(m)) = &u.mail {
        mail(m)?;
    }
    if let Some(d) = &u.description {
        description(d)?;
    }
    if let Some(Some(0)) = u.stream_limit {
        return Err(invalid("the stream limit must be at least 1"));
    }
    if let Some(Some(0)) = u.monitoring_threshold {
        return Err(invalid(
            "monitoring threshold 0: it must be at least 1 second",
        ));
    }
    if let Some(n) = &u.name {
        sensor_name(n)?;
    }
    if let Some(t) = &u.tags {
        tags(t)?;
    }
    Ok(())
}

/// Longest sensor name, in characters.
pub const MAX_SENSOR_NAME_CHARS: usize = 64;
/// Longest tag and group name, in bytes (ASCII only).
pub const MAX_TAG_LEN: usize = 64;
/// Most tags on one sensor.
pub const MAX_TAGS: usize = 64;
/// Longest group description, in characters.
pub const MAX_GROUP_DESCRIPTION_CHARS: usize = 1024;
/// Most members of one group.
pub const MAX_GROUP_SENSORS: usize = 100_000;
/// Longest partner tag or organisation kept from a meta header, in characters.
pub const MAX_PARTNER_TEXT_CHARS: usize = 256;

/// A sensor's name: empty (none) or 1 to [`MAX_SENSOR_NAME_CHARS`] printable characters,
/// not starting or ending with a space.
pub fn sensor_name(name: &str) -> Result<()> {
    let ok = name.chars().count() <= MAX_SENSOR_NAME_CHARS
        && !name.chars().any(char::is_control)
        && name.trim() == name;
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "sensor name {:?}: at most {MAX_SENSOR_NAME_CHARS} printable characters, \
             no leading or trailing space",
            short(name)
        )))
    }
}

/// A sensor tag: `[A-Za-z0-9_.:=-]{1,64}` (`share`, `tlp:green`, `site=paris`).
pub fn tag(t: &str) -> Result<()> {
    let ok = !t.is_empty()
        && t.len() <= MAX_TAG_LEN
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:=-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "tag {:?}: 1 to {MAX_TAG_LEN} characters of A-Z a-z 0-9 _ . : = -",
            short(t)
        )))
    }
}

/// A sensor's tags: each a [`tag`], at most [`MAX_TAGS`].
pub fn tags(ts: &[String]) -> Result<()> {
    if ts.len() > MAX_TAGS {
        return Err(invalid(format!("at most {MAX_TAGS} tags per sensor")));
    }
    ts.iter().try_for_each(|t| tag(t))
}

/// A group name: `[A-Za-z0-9_.-]{1,64}`, not starting with '.'.
pub fn group_name(name: &str) -> Result<()> {
    if is_safe_name(name, MAX_TAG_LEN) {
        Ok(())
    } else {
        Err(invalid(format!(
            "group name {:?}: 1 to {MAX_TAG_LEN} characters of A-Z a-z 0-9 . _ -, \
             not starting with '.'",
            short(name)
        )))
    }
}

/// A group: its name ([`group_name`]), a description of at most
/// [`MAX_GROUP_DESCRIPTION_CHARS`] characters, at most [`MAX_GROUP_SENSORS`] members.
pub fn group(g: &SensorGroup) -> Result<()> {
    group_name(&g.name)?;
    text(
        "group description",
        &g.description,
        MAX_GROUP_DESCRIPTION_CHARS,
    )?;
    if g.sensors.len() > MAX_GROUP_SENSORS {
        return Err(invalid(format!(
            "a group holds at most {MAX_GROUP_SENSORS} sensors"
        )));
    }
    Ok(())
}

/// What a partner's meta header said: an organisation and tags of at most
/// [`MAX_PARTNER_TEXT_CHARS`] characters, at most [`MAX_TAGS`] tags, an extended type
/// name ([`ext_name`]). Partner tags are the partner's (MISP tags such as
/// `misp-galaxy:sector="Finance"` are fine): any printable text.
pub fn partner_meta(m: &PartnerMeta) -> Result<()> {
    let printable = |what: &str, s: &str| {
        text(what, s, MAX_PARTNER_TEXT_CHARS)?;
        if s.chars().any(char::is_control) {
            return Err(invalid(format!(
                "{what} {:?}: control characters",
                short(s)
            )));
        }
        Ok(())
    };
    if let Some(org) = &m.org {
        printable("partner organisation", org)?;
    }
    if m.tags.len() > MAX_TAGS {
        return Err(invalid(format!("at most {MAX_TAGS} partner tags")));
    }
    for t in &m.tags {
        printable("partner tag", t)?;
    }
    if let Some(e) = &m.ext_type {
        ext_name(e)?;
    }
    Ok(())
}

/// Longest queue consumer name, in bytes (ASCII only).
pub const MAX_CONSUMER_NAME_LEN: usize = 64;

/// Queue consumer names ([`crate::Queues::lease_entries`]): `[A-Za-z0-9._-]{1,64}`
/// (they are part of Redis keys).
pub fn consumer_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CONSUMER_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "consumer name {:?}: 1 to {MAX_CONSUMER_NAME_LEN} characters of A-Z a-z 0-9 . _ -",
            short(name)
        )))
    }
}

/// A block: a reason of at most [`MAX_REASON_CHARS`] characters.
pub fn block(b: &Block) -> Result<()> {
    text("reason", &b.reason, MAX_REASON_CHARS)
}

/// User names: 1 to [`MAX_USER_NAME_LEN`] letters, digits or `. _ - @`.
pub fn user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USER_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "user name {:?}: 1 to {MAX_USER_NAME_LEN} letters, digits or . _ - @",
            short(name)
        )))
    }
}

/// A user record: its name ([`user_name`]).
pub fn user(u: &User) -> Result<()> {
    user_name(&u.name)
}

mod forward;
pub use forward::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(hmac_key("k").is_ok());
        assert!(hmac_key(&"k".repeat(100)).is_ok());
        assert!(hmac_key("").is_err());
        assert!(hmac_key(&"k".repeat(101)).is_err());
        assert!(hmac_key("a\nb").is_err());
    }

    #[test]
    fn texts_count_characters() {
        assert!(description(&"é".repeat(1024)).is_ok());
        assert!(description(&"é".repeat(1025)).is_err());
        assert!(mail(&"m".repeat(257)).is_err());
    }

    #[test]
    fn types_and_kinds() {
        assert!(d4_type(0).is_err());
        assert!(d4_type(types::PASSIVEDNS).is_ok());
        assert!(queue_kind(&QueueKind::Type(0)).is_err());
        assert!(queue_kind(&QueueKind::Type(types::EXTENDED)).is_err());
        assert!(queue_kind(&QueueKind::Ext("ja3-jl".into())).is_ok());
        for bad in ["", ".hidden", "a/b", "sp ace", &"x".repeat(65)] {
            assert!(ext_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uuids() {
        let u = Uuid::new_v4();
        assert_eq!(parse_uuid(&format!(" {} ", u.simple())).ok(), Some(u));
        assert_eq!(parse_uuid(&u.hyphenated().to_string()).ok(), Some(u));
        assert!(matches!(parse_uuid("nope"), Err(StoreError::Invalid(_))));
    }

    #[test]
    fn updates() {
        let zero = SensorUpdate {
            monitoring_threshold: Some(Some(0)),
            ..Default::default()
        };
        assert!(sensor_update(&zero).is_err());
        let limit = SensorUpdate {
            stream_limit: Some(Some(0)),
            ..Default::default()
        };
        assert!(sensor_update(&limit).is_err());
        assert!(sensor_update(&SensorUpdate::default()).is_ok());
        let named = SensorUpdate {
            name: Some("tap 1 (Paris)".into()),
            tags: Some(vec![
                "share".into(),
                "tlp:green".into(),
                "site=paris".into(),
            ]),
            ..Default::default()
        };
        assert!(sensor_update(&named).is_ok());
        let bad_tag = SensorUpdate {
            tags: Some(vec!["two words".into()]),
            ..Default::default()
        };
        assert!(sensor_update(&bad_tag).is_err());
    }

    #[test]
    fn names_tags_groups() {
        assert!(sensor_name("").is_ok());
        assert!(sensor_name("Tap é 1").is_ok());
        assert!(sensor_name(&"n".repeat(64)).is_ok());
        for bad in [" lead", "trail ", "a\tb", &"n".repeat(65)] {
            assert!(sensor_name(bad).is_err(), "{bad:?}");
        }
        for good in ["share", "tlp:green", "a=b", "x_y.z-1", &"t".repeat(64)] {
            assert!(tag(good).is_ok(), "{good:?}");
        }
        for bad in ["", "a b", "é", "a/b", "a,b", &"t".repeat(65)] {
            assert!(tag(bad).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert!(tags(&many).is_err());
        assert!(group_name("partners-eu.1_x").is_ok());
        for bad in ["", ".x", "a:b", "a b", &"g".repeat(65)] {
            assert!(group_name(bad).is_err(), "{bad:?}");
        }
        let g = SensorGroup {
            name: "bad name".into(),
            description: String::new(),
            sensors: vec![],
        };
        assert!(group(&g).is_err());
    }

    #[test]
    fn partner_meta_bounds() {
        let mut m = PartnerMeta {
            org: Some("55f6ea5e-2c60-40e5-964f-47a8950d210f".into()),
            tags: vec!["tlp:green".into(), "misp-galaxy:sector=\"Finance\"".into()],
            ext_type: Some("ja3-jl".into()),
            time: 1,
            ip: None,
        };
        assert!(partner_meta(&m).is_ok());
        m.tags.push("a\nb".into());
        assert!(partner_meta(&m).is_err());
        m.tags.pop();
        m.org = Some("o".repeat(257));
        assert!(partner_meta(&m).is_err());
    }

    #[test]
    fn queue_groups() {
        let mut c = QueueConfig {
            uuid: Uuid::new_v4(),
            kind: QueueKind::Type(8),
            description: String::new(),
            max_size: 1,
            sensors: None,
            groups: vec!["ok".into()],
        };
        assert!(queue_config(&c).is_ok());
        c.groups.push("not ok".into());
        assert!(queue_config(&c).is_err());
    }
}
