//! `d4-export`: the engine of `d4 export QUEUE --to URL`, which forwards the entries of an
//! analyzer queue to another tool: stdout, `tcp://`, `tls://`, `udp://`, `unix://` (stream
//! or datagram) or `syslog://` (RFC 5424 over UDP, or TCP with RFC 6587 octet counting).
//!
//! The sans-IO parts take values and return values: [`spec`] parses the `--to` URL into a
//! [`SinkSpec`], [`newline`] decides what an entry's line ends become, [`syslog`] formats
//! RFC 5424 messages (the clock passed in), [`rate`] is a token bucket (the clock passed
//! in). [`sink`] holds the blocking socket writers and [`exporter`] the driver: one batch of
//! entries at a time, reconnecting with a capped backoff, and `Ok` only once the sink took
//! every entry of the batch — the caller acknowledges the batch to the queue only then
//! (at least once: `docs/export.md`).
//!
//! Depends on `d4-client` (backoff, the no-verify TLS verifier) among our crates; it must
//! never depend on the store, the server or the analyzers: the binary hands it the entries'
//! bytes.

pub mod exporter;
pub mod newline;
pub mod rate;
pub mod sink;
pub mod spec;
pub mod syslog;
pub mod tls;

pub use exporter::{ExportConfig, ExportError, ExportStats, Exporter};
pub use newline::Newline;
pub use spec::{SinkSpec, SpecError};
pub use syslog::SyslogHeader;
