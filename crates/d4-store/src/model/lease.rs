//! Leases: the exclusive (sensor uuid, D4 type) slot a server holds for one D4 session
//! (connection), renewed while the connection lives.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use d4_proto::types;

/// D4 types whose slots are not exclusive per (uuid, type): the meta header (2) and
/// extended (254) streams, as in the reference.
pub const LEASE_EXEMPT_TYPES: [u8; 2] = [types::META_HEADER, types::EXTENDED];

/// A claim for the exclusive (uuid, type) slot of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseClaim {
    pub uuid: Uuid,
    pub d4_type: u8,
    /// The connection's session id (UUIDv4).
    pub session_id: Uuid,
    /// The server process holding the connection (several servers may share a store).
    pub server_id: String,
    pub ip: IpAddr,
    /// Lease length: the claim lapses unless renewed ([`crate::Leases::renew_leases`]).
    pub lease_secs: u64,
}

/// A lease held by a live D4 session, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub uuid: Uuid,
    pub d4_type: u8,
    pub session_id: Uuid,
    pub server_id: String,
    pub ip: IpAddr,
    pub started: u64,
    pub expires: u64,
}
