//! `d4-client`: the D4 sensor client as a library — the engine of `d4 client`.
//!
//! It reads a source (stdin, a file, optionally followed, new files in a folder, or a Redis
//! list), cuts it into reads of at most `snaplen` bytes, frames each read with
//! [`d4_proto::Encoder`] and delivers the frames to stdout or to a collector over TLS or TCP,
//! with reconnects (exponential backoff + jitter), a bounded on-disk spool and backpressure,
//! so that no frame is ever dropped silently. Configuration follows the reference C and Go
//! clients' configuration directory ([`config`]).
//!
//! Depends on `d4-proto` only among our crates; it must never depend on the server, store or
//! analyzer crates (a sensor host runs the client alone).

pub mod backoff;
pub mod config;
mod conn;
pub mod dest;
pub mod error;
pub mod folder;
pub mod framer;
pub mod redis;
pub mod run;
pub mod source;
pub mod spool;
pub mod wire;

pub use config::{ConfigDir, Overrides, Settings, SourceKind};
pub use dest::Destination;
pub use error::{ConfigError, RunError};
pub use framer::Framer;
pub use run::{run, run_with_source, ClientStats};
pub use source::{Closed, Emitter};
