//! `d4-forward`: sharing between organisations. A forwarding rule ([`d4_store::ForwardRule`])
//! takes accepted frames from the server's journal, filters them by type, extended type,
//! sensor, tag or group, applies the rule's privacy transforms ([`transform`]) and re-sends
//! them, re-encapsulated under this server's identity at the partner, through an on-disk
//! spool to the partner's D4 server (at least once): the [`engine`].
//!
//! The transforms are pure functions over bytes (sans-IO, fuzzed). This crate must never
//! depend on the server, the web UI or an analyzer: the server plugs it in through small
//! traits; the store is reached only through its role traits.

pub mod engine;
pub mod transform;

pub use engine::{Engine, EngineConfig, RuleSource, SensorDirectory, SensorInfo};
