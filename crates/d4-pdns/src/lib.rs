//! d4-pdns: the passive DNS analyzer of d4-rs.
//!
//! * [`parse`]: the passivedns CSV line parser (sans-IO, fuzzable): bytes in, a normalized
//!   [`parse::Observation`] or a [`parse::LineError`] out.
//! * [`store`]: the embedded record store (redb): per (rrname, rrtype, rdata) first seen,
//!   last seen, count and sensors, with indexes by name, reversed name (wildcards), name
//!   prefix, rdata (reverse lookups) and IP (CIDR search).
//! * [`ingest`]: batching ingester over the store (files, stdin, queue entries).
//! * [`query`], [`cof`], [`server`]: the COF lookup server (`/query`, `/fquery`, `/info`)
//!   with PyPDNS-compatible pagination; [`listen`]: its connection bounds (the bounded
//!   serving itself is `d4-http`'s).
//!
//! Must never depend on the collector (`d4-server`) or the web UI: it is fed lines, and the
//! binary wires it to the store's analyzer queues. No `unsafe`, no panics on input.

pub mod cof;
pub mod ingest;
pub mod listen;
pub mod page;
pub mod parse;
pub mod query;
pub mod redis_store;
pub mod rrtype;
pub mod server;
pub mod store;

pub use ingest::{IngestOptions, IngestStats, Ingester};
pub use parse::{parse_line, LineError, Observation};
pub use redis_store::RedisRecordStore;
pub use store::{Filter, Lookup, PdnsStore, Record, RecordError, RecordStore};
