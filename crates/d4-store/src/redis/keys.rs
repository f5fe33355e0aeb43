//! The Redis keys, in one place (see `docs/redis-layout.md`; keep it in sync). d4-core's
//! names where d4-core has one, `d4rs:` for what only d4-rs keeps. The lease keys keep
//! their former `session` names, and a producer's pushed seq its `journal` one.

use uuid::Uuid;

use super::{qid, sid};
use crate::model::*;

pub fn metadata_uuid(u: &Uuid) -> String {
    format!("metadata_uuid:{}", sid(u))
}
pub const REGISTERED: &str = "registered_uuid";
pub const PENDING: &str = "sensor_pending_registration";
pub const STREAM_MAX: &str = "stream_max_size_by_uuid";
/// d4-core's monitoring settings: the set of monitored sensors, and per sensor a hash
/// with `delta_time` (seconds), plus the time of the last change.
pub const TO_MONITOR: &str = "to_monitor:sensors";
pub fn to_monitor(u: &Uuid) -> String {
    format!("to_monitor:sensor:{}", sid(u))
}
pub const MONITORING_UPDATED: &str = "sensors_monitoring:last_updated";
pub const MONITORING_ERRORS: &str = "sensors_monitoring:sensors_error";
pub fn list_uuid_ip(u: &Uuid) -> String {
    format!("list_uuid_ip:{}", sid(u))
}
pub const SENSORS: &str = "d4rs:sensors";
pub fn d4rs_sensor(u: &Uuid) -> String {
    format!("d4rs:sensor:{}", sid(u))
}
pub fn sensor_ips(u: &Uuid) -> String {
    format!("d4rs:sensor_ips:{}", sid(u))
}
pub fn type_seen(u: &Uuid) -> String {
    format!("d4rs:type_seen:{}", sid(u))
}
pub fn all_types_by_uuid(u: &Uuid) -> String {
    format!("all_types_by_uuid:{}", sid(u))
}
pub fn all_extended_types_by_uuid(u: &Uuid) -> String {
    format!("all_extended_types_by_uuid:{}", sid(u))
}
pub fn metadata_extended_type(u: &Uuid, ext: &str) -> String {
    format!("metadata_extended_type_by_uuid:{}:{ext}", sid(u))
}

pub const BLOCKS: &str = "d4rs:blocks";
pub const BLACKLIST_IP: &str = "blacklist_ip";
pub const BLACKLIST_UUID: &str = "blacklist_uuid";
pub const BLACKLIST_IP_BY_UUID: &str = "blacklist_ip_by_uuid";
/// d4-core's UI kick requests (a set in the stream database = d4-rs's main).
pub const SENSOR_TO_KICK: &str = "server:sensor_to_kick";
pub fn temp_blacklist_uuid(u: &Uuid) -> String {
    format!("temp_blacklist_uuid:{}", sid(u))
}

pub const ACCEPTED_TYPES: &str = "server:accepted_type";
pub const ACCEPTED_EXT: &str = "server:accepted_extended_type";
pub const INITIALIZED: &str = "d4rs:initialized";

/// A lease's hash (`session` in the key: its former name).
pub fn lease(u: &Uuid, t: u8, session: &Uuid) -> String {
    if LEASE_EXEMPT_TYPES.contains(&t) {
        format!("d4rs:session:{}:{}:{}", sid(u), t, session.simple())
    } else {
        format!("d4rs:session:{}:{}", sid(u), t)
    }
}
/// Every lease key.
pub const LEASES: &str = "d4rs:sessions";
/// The lease keys of one server.
pub fn server_leases(server: &str) -> String {
    format!("d4rs:server_sessions:{server}")
}

pub fn queue_meta(q: &Uuid) -> String {
    format!("analyzer:{}", qid(q))
}
/// The last seq pushed with a key by this producer (`journal`: its former name).
pub fn pushed_seq(j: &Uuid) -> String {
    format!("d4rs:journal:{}", j.simple())
}
pub fn d4rs_queue(q: &Uuid) -> String {
    format!("d4rs:queue:{}", qid(q))
}
/// Push times of a queue's entries (queues database; never inside d4-core's list): a sorted
/// set of marks, score = how many entries had been pushed before the mark, member =
/// `<that count>:<Unix seconds>`; at most one mark per second with a push.
pub fn queue_times(q: &Uuid) -> String {
    format!("d4rs:queue_times:{}", qid(q))
}
/// How many entries d4-rs has pushed to a queue since its creation (queues database): with
/// the list's length it locates the oldest entry among the marks of [`queue_times`].
pub fn queue_pushed(q: &Uuid) -> String {
    format!("d4rs:queue_pushed:{}", qid(q))
}
pub fn queue_list(kind: &QueueKind, q: &Uuid) -> String {
    format!("analyzer:{kind}:{}", qid(q))
}
/// `analyzer:<type>` / `analyzer:254:<ext>` (global queues) or the
/// `analyzer_uuid_group:` equivalent (queues of a sensor group).
pub fn queues_of_kind(kind: &QueueKind, group: bool) -> String {
    let prefix = if group {
        "analyzer_uuid_group"
    } else {
        "analyzer"
    };
    match kind {
        QueueKind::Type(t) => format!("{prefix}:{t}"),
        QueueKind::Ext(e) => format!("{prefix}:254:{e}"),
    }
}
pub fn sensor_queues(kind: &QueueKind, sensor: &Uuid) -> String {
    format!("sensor:queues:{kind}:{}", sid(sensor))
}
pub fn queue_group(q: &Uuid) -> String {
    format!("analyzer_sensor_group:{}", qid(q))
}
pub const ALL_QUEUES: &str = "all_analyzer_queues";
/// Consumers of a queue holding leased entries: consumer -> lease expiry (Unix seconds).
pub fn queue_consumers(q: &Uuid) -> String {
    format!("d4rs:consumers:{}", qid(q))
}
/// The counter giving leased entries their ids.
pub fn lease_seq(q: &Uuid) -> String {
    format!("d4rs:lease_seq:{}", qid(q))
}
/// Prefix of the consumers' processing lists (`<prefix><consumer>`): the entries leased to
/// a consumer and not acknowledged, moved there from the queue's list with `LMOVE`.
pub fn processing_prefix(q: &Uuid) -> String {
    format!("d4rs:processing:{}:", qid(q))
}
/// Prefix of the consumers' id hashes (`<prefix><consumer>`): id -> leased entry.
pub fn leased_prefix(q: &Uuid) -> String {
    format!("d4rs:leased:{}:", qid(q))
}

pub fn user(name: &str) -> String {
    format!("d4rs:user:{name}")
}
pub const USERS: &str = "d4rs:users";
pub fn user_token(hash: &str) -> String {
    format!("d4rs:user_token:{hash}")
}
/// A web login (`web_session`: its former name).
pub fn web_login(id_hash: &str) -> String {
    format!("d4rs:web_session:{id_hash}")
}
pub const WEB_LOGINS: &str = "d4rs:web_sessions";
/// The web logins of one user.
pub fn user_logins(name: &str) -> String {
    format!("d4rs:user_sessions:{name}")
}

/// Forwarding rules: hash of rule name -> rule JSON.
pub const FORWARD_RULES: &str = "d4rs:forward:rules";
/// A rule's counters: hash of server id -> counters JSON.
pub fn forward_stats(rule: &str) -> String {
    format!("d4rs:forward:stats:{rule}")
}
