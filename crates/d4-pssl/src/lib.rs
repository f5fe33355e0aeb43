//! d4-pssl: the passive SSL analyzer of d4-rs: certificates, public keys and TLS sessions
//! from the TLS sensor's `ja3-jl` records and from certificate files, kept in a store with
//! first seen, last seen and counts for every (IP, port, certificate), (JA3/JA3S/JA4, IP)
//! and (SNI, certificate) link.
//!
//! * [`model`]: the values ([`Certificate`], [`PublicKey`], [`Session`], [`Batch`]); every
//!   certificate fact comes from `d4_tls::cert`.
//! * [`record`]: one `ja3-jl` JSON line → a [`Batch`] fragment (sans-IO).
//! * [`certfile`]: DER/PEM files, folders and `.tar.gz` archives → certificates.
//! * [`ingest`]: the [`Ingester`]: records, certificate files and captures (through
//!   d4-tls's sensor) in, batched commits out; [`sniff`]: an input's format from its bytes.
//! * [`store`]: the [`PsslStore`] trait and its answer types; [`embedded`]: the redb backend;
//!   [`postgres`]: the PostgreSQL backend on the reference analyzer's tables (sync: call it
//!   from `spawn_blocking`, never from a tokio runtime thread).
//! * [`server`]: the lookup server of `d4 pssl serve` (axum over d4-http): the CIRCL
//!   Passive SSL API v2 (PyPSSL), lookup-d4-passivessl's `/ja3` and d4-rs's pivots.
//! * `testsuite` (feature `testsuite`): the conformance suite every backend runs.
//!
//! Must never depend on the collector (`d4-server`), the web UI or the binary: it is fed
//! records and files, and the binary wires it to the analyzer queues. No `unsafe`, no
//! panics on input.

pub mod certfile;
pub mod embedded;
pub mod ingest;
pub mod model;
pub mod postgres;
pub mod record;
pub mod server;
pub mod sniff;
pub mod store;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use crate::postgres::PostgresStore;
pub use embedded::EmbeddedStore;
pub use ingest::{IngestError, IngestOptions, IngestStats, Ingester};
pub use model::{certificate_from_der, Batch, BatchBuilder, Certificate, PublicKey, Session};
pub use record::{parse_record, parse_record_cached, CertCache, Parsed, RecordError};
pub use store::{
    CertView, CommitStats, Fingerprint, Info, IpCerts, IpSeen, Page, Paged, PsslError, PsslStore,
    Seen, SessionQuery, WeakKey,
};
