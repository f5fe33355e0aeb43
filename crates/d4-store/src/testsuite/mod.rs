//! The store test suite, written once against `Arc<dyn Store>`: every backend runs it
//! ([`run_all`] on a fresh, empty store). Enable with the `testsuite` feature.
//!
//! Every test uses fresh UUIDs, so the tests do not depend on each other, except
//! [`defaults`], which needs a store nobody changed yet (run_all runs it first).
//!
//! One file per area: `sensors`, `policy`, `leases`, `queues`, `pushes`, `consume`,
//! `accounts`, `forward`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;

use crate::Store;

mod accounts;
mod consume;
mod forward;
mod leases;
mod policy;
mod pushes;
mod queues;
mod sensors;

pub use accounts::*;
pub use consume::*;
pub use forward::*;
pub use leases::*;
pub use policy::*;
pub use pushes::*;
pub use queues::*;
pub use sensors::*;

type S = Arc<dyn Store>;

/// Run every test of the suite, `defaults` first. Panics on the first failure.
pub async fn run_all(store: S) {
    defaults(store.clone()).await;
    sensors(store.clone()).await;
    sensor_activity(store.clone()).await;
    stats_aggregation(store.clone()).await;
    blocklist_prefixes(store.clone()).await;
    blocklist_uuids_and_expiry(store.clone()).await;
    kick(store.clone()).await;
    types(store.clone()).await;
    leases(store.clone()).await;
    queues_crud(store.clone()).await;
    queue_fifo_and_trim(store.clone()).await;
    queue_oldest(store.clone()).await;
    queue_push_many(store.clone()).await;
    queue_push_once(store.clone()).await;
    queue_push_batch(store.clone()).await;
    queue_blocking_pop(store.clone()).await;
    lease_and_ack(store.clone()).await;
    lease_expiry_redelivers(store.clone()).await;
    lease_beside_pops(store.clone()).await;
    users(store.clone()).await;
    web_logins(store.clone()).await;
    forward_rules(store.clone()).await;
    forward_rule_stats(store.clone()).await;
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
