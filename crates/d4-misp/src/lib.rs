//! d4-misp: the analyzers' findings as MISP data, and the logic of the static MISP feed
//! `d4 misp feed` writes (a folder a MISP instance pulls: `manifest.json`, one
//! `<event uuid>.json` per event, `hashes.csv`).
//!
//! * [`model`]: MISP events, objects, attributes, references and the manifest (serde).
//! * [`template`]: the misp-objects templates filled (uuid, version, attribute types).
//! * [`build`]: event and object builders with deterministic (v5) UUIDs.
//! * [`objects`]: the findings of each analyzer as plain values and the objects built from
//!   them: `passive-dns`; `ddos` (backscatter, through the [`objects::ddos::FindingSource`]
//!   trait); `x509`, `ip-port`, `ja3`, `ja3s`, `ja4-plus`; `x509` + `crypto-material`.
//! * [`feed`]: change detection and the new manifest and `hashes.csv` ([`feed::plan`]).
//!
//! No I/O and no clock: the binary reads the stores and the feed folder, passes the time
//! in, and writes what [`feed::plan`] returns. Must never depend on the stores' crates
//! (d4-pdns, d4-pssl…), the collector or the web UI: findings come in as this crate's own
//! values.

pub mod build;
pub mod feed;
pub mod model;
pub mod objects;
pub mod template;

pub use build::{Analyzer, EventBuilder, EventSettings, ObjectBuilder};
pub use feed::{plan, Existing, Plan};
pub use model::{Event, EventFile, Manifest, ManifestEntry, Org, Tag};
