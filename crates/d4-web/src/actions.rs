//! Operations shared by the pages and the JSON API: parsing of user input and the store
//! calls behind every action. Errors carry an HTTP status and a reason for the operator.
//! Input checks are the store's ([`d4_store::validate`], the same as the CLI's): a refused
//! input is answered 400 with the store's message before the store is called.

use std::net::IpAddr;

use axum::http::StatusCode;
use d4_store::validate;
use d4_store::{
    now, Block, BlockTarget, Counter, QueueConfig, QueueKind, Role, Sensor, SensorRegistration,
    SensorStatus, SensorUpdate, StatsKey, Store, User,
};
use ipnet::IpNet;
use uuid::Uuid;

use crate::auth;
pub use crate::failure::{Failure, Res};

/// A sensor UUID, 32 hex digits or the dashed form ([`validate::parse_uuid`]).
pub fn parse_uuid(s: &str) -> Res<Uuid> {
    Ok(validate::parse_uuid(s)?)
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// A sensor that must exist.
pub async fn sensor(store: &dyn Store, uuid: Uuid) -> Res<Sensor> {
    store
        .get_sensor(uuid)
        .await?
        .ok_or_else(|| Failure::not_found(format!("unknown sensor {}", uuid.simple())))
}

/// Register a sensor (pending unless `approve`).
pub async fn register(
    store: &dyn Store,
    uuid: Uuid,
    key: Option<String>,
    mail: Option<String>,
    third_party: bool,
    description: Option<String>,
    approve: bool,
) -> Res<Sensor> {
    let reg = SensorRegistration {
        uuid,
        hmac_key: key,
        mail,
        third_party,
        description,
        approve,
    };
    validate::registration(&reg)?;
    Ok(store.register_sensor(reg).await?)
}

pub async fn approve(store: &dyn Store, uuid: Uuid) -> Res<Sensor> {
    Ok(store.approve_sensor(uuid).await?)
}

pub async fn delete_sensor(store: &dyn Store, uuid: Uuid) -> Res<()> {
    if store.delete_sensor(uuid).await? {
        Ok(())
    } else {
        Err(Failure::not_found(format!(
            "unknown sensor {}",
            uuid.simple()
        )))
    }
}

pub async fn update_sensor(store: &dyn Store, uuid: Uuid, update: SensorUpdate) -> Res<Sensor> {
    sensor(store, uuid).await?;
    validate::sensor_update(&update)?;
    Ok(store.update_sensor(uuid, update).await?)
}

/// Set a new HMAC key (given, or 64 random hex digits); returns it (shown once).
pub async fn rotate_key(store: &dyn Store, uuid: Uuid, key: Option<String>) -> Res<String> {
    let key = match key.filter(|k| !k.is_empty()) {
        Some(k) => k,
        None => auth::random_token(),
    };
    validate::hmac_key(&key)?;
    sensor(store, uuid).await?;
    store
        .update_sensor(
            uuid,
            SensorUpdate {
                hmac_key: Some(Some(key.clone())),
                ..SensorUpdate::default()
            },
        )
        .await?;
    Ok(key)
}

pub async fn kick(store: &dyn Store, uuid: Uuid) -> Res<()> {
    Ok(store.request_kick(uuid, now()).await?)
}

pub async fn block_uuid(store: &dyn Store, uuid: Uuid, reason: &str) -> Res<()> {
    add_block(store, BlockTarget::Uuid(uuid), reason, None).await?;
    // Close its live connections now.
    store.request_kick(uuid, now()).await?;
    Ok(())
}

/// Block every IP that presents this UUID, plus the IPs it was already seen from.
/// Returns the IPs blocked now.
pub async fn block_ips_of(store: &dyn Store, uuid: Uuid, reason: &str) -> Res<Vec<IpAddr>> {
    let s = store.get_sensor(uuid).await?;
    add_block(store, BlockTarget::IpsOfUuid(uuid), reason, None).await?;
    let mut ips = Vec::new();
    if let Some(s) = s {
        for seen in s.last_ips {
            add_block(store, BlockTarget::Ip(IpNet::from(seen.ip)), reason, None).await?;
            ips.push(seen.ip);
        }
    }
    store.request_kick(uuid, now()).await?;
    Ok(ips)
}

pub async fn add_block(
    store: &dyn Store,
    target: BlockTarget,
    reason: &str,
    expires_in: Option<u64>,
) -> Res<()> {
    let t = now();
    let block = Block {
        target,
        reason: if reason.is_empty() {
            "web".into()
        } else {
            reason.to_string()
        },
        created: t,
        expires: expires_in.map(|s| t.saturating_add(s)),
    };
    validate::block(&block)?;
    Ok(store.add_block(block).await?)
}

/// A block target from a kind (`ip`, `uuid`, `ips_of_uuid`) and a value.
pub fn parse_target(kind: &str, value: &str) -> Res<BlockTarget> {
    let value = value.trim();
    match kind {
        "ip" => {
            let net = if value.contains('/') {
                value
                    .parse::<IpNet>()
                    .map_err(|_| Failure::bad(format!("invalid IP prefix {:?}", short(value))))?
                    .trunc()
            } else {
                IpNet::from(
                    value
                        .parse::<IpAddr>()
                        .map_err(|_| Failure::bad(format!("invalid IP {:?}", short(value))))?,
                )
            };
            Ok(BlockTarget::Ip(net))
        }
        "uuid" => Ok(BlockTarget::Uuid(parse_uuid(value)?)),
        "ips_of_uuid" => Ok(BlockTarget::IpsOfUuid(parse_uuid(value)?)),
        other => Err(Failure::bad(format!(
            "unknown block kind {:?} (ip, uuid, ips_of_uuid)",
            short(other)
        ))),
    }
}

pub fn target_kind_value(t: &BlockTarget) -> (&'static str, String) {
    match t {
        BlockTarget::Ip(n) => ("ip", n.to_string()),
        BlockTarget::Uuid(u) => ("uuid", u.simple().to_string()),
        BlockTarget::IpsOfUuid(u) => ("ips_of_uuid", u.simple().to_string()),
    }
}

pub async fn remove_block(store: &dyn Store, target: BlockTarget) -> Res<()> {
    if store.remove_block(target.clone()).await? {
        Ok(())
    } else {
        Err(Failure::not_found(format!("no block on {target}")))
    }
}

pub async fn set_type(store: &dyn Store, t: u8, accepted: bool) -> Res<()> {
    validate::d4_type(t)?;
    Ok(store.set_type_accepted(t, accepted).await?)
}

pub async fn set_ext(store: &dyn Store, name: &str, accepted: bool) -> Res<()> {
    validate::ext_name(name)?;
    Ok(store
        .set_ext_type_accepted(name.to_string(), accepted)
        .await?)
}

/// A queue kind: a D4 type number or an extended type name.
pub fn parse_kind(s: &str) -> Res<QueueKind> {
    let s = s.trim();
    if let Ok(t) = s.parse::<u8>() {
        validate::d4_type(t)?;
        return Ok(QueueKind::Type(t));
    }
    if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() {
        return Err(Failure::bad(format!(
            "invalid type {:?} (1..=255)",
            short(s)
        )));
    }
    validate::ext_name(s)?;
    Ok(QueueKind::Ext(s.to_string()))
}

/// A sensor group: UUIDs separated by spaces, commas or newlines; empty = every sensor.
pub fn parse_group(s: &str) -> Res<Option<Vec<Uuid>>> {
    let mut out = Vec::new();
    for part in s.split(|c: char| c.is_whitespace() || c == ',') {
        if !part.is_empty() {
            let u = parse_uuid(part)?;
            if !out.contains(&u) {
                out.push(u);
            }
        }
    }
    Ok(if out.is_empty() { None } else { Some(out) })
}

pub async fn create_queue(store: &dyn Store, config: QueueConfig) -> Res<d4_store::Queue> {
    validate::queue_config(&config)?;
    Ok(store.create_queue(config, now()).await?)
}

pub async fn update_queue(store: &dyn Store, config: QueueConfig) -> Res<d4_store::Queue> {
    validate::queue_config(&config)?;
    if store.get_queue(config.uuid).await?.is_none() {
        return Err(Failure::not_found(format!(
            "unknown queue {}",
            config.uuid.hyphenated()
        )));
    }
    Ok(store.update_queue(config, now()).await?)
}

pub async fn queue(store: &dyn Store, uuid: Uuid) -> Res<d4_store::Queue> {
    store
        .get_queue(uuid)
        .await?
        .ok_or_else(|| Failure::not_found(format!("unknown queue {}", uuid.hyphenated())))
}

/// Create a user (the password must be changed at first login). Returns the password
/// when it was generated.
pub async fn create_user(
    store: &dyn Store,
    name: &str,
    role: Role,
    password: Option<String>,
) -> Res<Option<String>> {
    validate::user_name(name)?;
    let (password, generated) = match password.filter(|p| !p.is_empty()) {
        Some(p) => {
            auth::check_password_rules(&p).map_err(Failure::bad)?;
            (p, false)
        }
        None => (auth::random_password(), true),
    };
    if store.get_user(name.to_string()).await?.is_some() {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            format!("user {name:?} already exists"),
        ));
    }
    let hash = auth::hash_password_async(password.clone()).await?;
    store
        .create_user(User {
            name: name.to_string(),
            role,
            password_hash: hash,
            must_change_password: true,
            api_token_hash: None,
            created: now(),
            session_epoch: auth::new_epoch(),
        })
        .await?;
    Ok(generated.then_some(password))
}

pub async fn user(store: &dyn Store, name: &str) -> Res<User> {
    store
        .get_user(name.to_string())
        .await?
        .ok_or_else(|| Failure::not_found(format!("unknown user {:?}", short(name))))
}

async fn admins(store: &dyn Store) -> Res<usize> {
    Ok(store
        .list_users()
        .await?
        .iter()
        .filter(|u| u.role == Role::Admin)
        .count())
}

pub async fn set_role(store: &dyn Store, name: &str, role: Role) -> Res<()> {
    let mut u = user(store, name).await?;
    if u.role == Role::Admin && role != Role::Admin && admins(store).await? <= 1 {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            "refused: this is the last admin",
        ));
    }
    if u.role != role {
        // A role change ends the user's web sessions (they log in again with the new role).
        u.session_epoch = auth::new_epoch();
    }
    u.role = role;
    Ok(store.update_user(u).await?)
}

pub async fn delete_user(store: &dyn Store, name: &str, by: &str) -> Res<()> {
    let u = user(store, name).await?;
    if u.name == by {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            "refused: you cannot delete your own account",
        ));
    }
    if u.role == Role::Admin && admins(store).await? <= 1 {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            "refused: this is the last admin",
        ));
    }
    store.delete_user(name.to_string()).await?;
    Ok(())
}

/// Create or rotate a user's API token; returns it (shown once, stored hashed).
pub async fn rotate_token(store: &dyn Store, name: &str) -> Res<String> {
    let mut u = user(store, name).await?;
    let token = auth::random_token();
    u.api_token_hash = Some(d4_store::hash_secret(&token));
    store.update_user(u).await?;
    Ok(token)
}

pub async fn revoke_token(store: &dyn Store, name: &str) -> Res<()> {
    let mut u = user(store, name).await?;
    u.api_token_hash = None;
    Ok(store.update_user(u).await?)
}

/// An admin sets a new password for a user (given, or generated and returned to be shown
/// once); it must be changed at the next login, and every web session of the user ends.
pub async fn reset_password(
    store: &dyn Store,
    name: &str,
    password: Option<String>,
) -> Res<Option<String>> {
    let mut u = user(store, name).await?;
    let (password, generated) = match password.filter(|p| !p.is_empty()) {
        Some(p) => {
            auth::check_password_rules(&p).map_err(Failure::bad)?;
            (p, false)
        }
        None => (auth::random_password(), true),
    };
    u.password_hash = auth::hash_password_async(password.clone()).await?;
    u.must_change_password = true;
    u.session_epoch = auth::new_epoch();
    store.update_user(u).await?;
    Ok(generated.then_some(password))
}

/// Change a password (the current one is checked when given). Every web session of the
/// user ends (new session epoch): the caller opens a new one for the current browser.
pub async fn change_password(
    store: &dyn Store,
    name: &str,
    current: Option<&str>,
    new: &str,
) -> Res<()> {
    let mut u = user(store, name).await?;
    if let Some(cur) = current {
        if !auth::verify_password_async(cur.to_string(), u.password_hash.clone()).await {
            return Err(Failure::forbidden("the current password is wrong"));
        }
        if cur == new {
            return Err(Failure::bad(
                "the new password must differ from the current one",
            ));
        }
    }
    auth::check_password_rules(new).map_err(Failure::bad)?;
    u.password_hash = auth::hash_password_async(new.to_string()).await?;
    u.must_change_password = false;
    u.session_epoch = auth::new_epoch();
    Ok(store.update_user(u).await?)
}

/// A sensor silent longer than the threshold.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Silent {
    pub uuid: String,
    pub status: &'static str,
    pub description: String,
    pub last_seen: u64,
    pub silent_secs: u64,
    pub threshold_secs: u64,
}

/// Sensors (seen at least once, not pending) whose last frame is older than their own
/// monitoring threshold, or `threshold` (the global one) when they have none.
pub async fn monitoring_errors(store: &dyn Store, threshold: u64, t: u64) -> Res<Vec<Silent>> {
    let mut out = Vec::new();
    for s in store.list_sensors().await? {
        if s.status == SensorStatus::Pending {
            continue;
        }
        if let Some(last) = s.last_seen {
            let silent = t.saturating_sub(last);
            let threshold = s.monitoring_threshold.unwrap_or(threshold);
            if silent > threshold {
                out.push(Silent {
                    uuid: s.uuid.simple().to_string(),
                    status: s.status.as_str(),
                    description: s.description.clone(),
                    last_seen: last,
                    silent_secs: silent,
                    threshold_secs: threshold,
                });
            }
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.silent_secs));
    Ok(out)
}

/// The last `n` days (`YYYYMMDD`), oldest first, ending today.
pub fn last_days(n: u64, t: u64) -> Vec<u32> {
    (0..n)
        .rev()
        .map(|i| d4_store::day_of(t.saturating_sub(i * 86_400)))
        .collect()
}

/// Totals of one day: all types together.
pub fn day_total(stats: &d4_store::DayStats) -> Counter {
    let mut c = Counter::default();
    for (k, v) in &stats.entries {
        if matches!(k, StatsKey::Type { .. }) {
            c.add(*v);
        }
    }
    c
}

/// A sensor as JSON for the API: the HMAC key is never returned, only whether one is set.
pub fn sensor_json(s: &Sensor, connected: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or(serde_json::Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("hmac_key");
        obj.insert("custom_key".into(), s.hmac_key.is_some().into());
        obj.insert("uuid".into(), s.uuid.simple().to_string().into());
        obj.insert("connected".into(), connected.into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert!(parse_uuid("ff7ba400e76c4053982dfeec42bdef38").is_ok());
        assert!(parse_uuid("ff7ba400-e76c-4053-982d-feec42bdef38").is_ok());
        assert!(parse_uuid("nope").is_err());
        assert_eq!(parse_kind("8").unwrap(), QueueKind::Type(8));
        assert_eq!(
            parse_kind("ja3-jl").unwrap(),
            QueueKind::Ext("ja3-jl".into())
        );
        assert!(parse_kind("0").is_err());
        assert!(parse_kind("300").is_err());
        assert!(parse_kind(".x").is_err());
        assert!(parse_kind("a b").is_err());
        assert_eq!(parse_group(" ").unwrap(), None);
        assert_eq!(
            parse_group("ff7ba400e76c4053982dfeec42bdef38, ff7ba400e76c4053982dfeec42bdef38")
                .unwrap()
                .unwrap()
                .len(),
            1
        );
        assert!(matches!(
            parse_target("ip", "10.1.2.3/8").unwrap(),
            BlockTarget::Ip(n) if n.to_string() == "10.0.0.0/8"
        ));
        assert!(parse_target("ip", "300.1.1.1").is_err());
        assert!(parse_target("x", "1").is_err());
    }
}
