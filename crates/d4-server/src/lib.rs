//! # d4-server — the D4 collector
//!
//! Listeners (TLS with a generated certificate, optional plain TCP), the sans-IO
//! [`Session`] state machine enforcing every stream rule, a durable per-session
//! journal written before the workers see a frame, per-day stats aggregation, and
//! the hand-off of accepted frames to the per-type workers of `d4-worker`, and the live
//! [`ServerMetrics`] (connections, frames, refusals, worker lag) rendered as Prometheus text.
//!
//! It depends on `d4-proto`, `d4-store` (shared state) and `d4-worker` (files and queues);
//! it must never depend on the web UI, the sensor client or any analyzer crate.
//!
//! Modules, in the order a frame meets them: `listener` (bind, accept, TLS, refusals),
//! `connection` (one per sensor connection), `session` (the sans-IO state machine) with
//! `gate` (its view of the store), `pipeline` (one thread per session: journal, handler,
//! acknowledgements), `journal` (the durable per-session buffer), `workers` (the
//! per-type workers as the pipeline's handlers, and their queue output into the store),
//! `stats` and `metrics`; `queue_alerts` (analyzer queues that fill up, evaluated apart
//! from the data path); `startup` (recovery and replay before listening) and `server`
//! (the wiring of [`run`]).

mod config;
mod connection;
mod gate;
mod journal;
mod json_end;
mod listener;
mod metrics;
mod net;
mod pipeline;
mod preauth;
mod queue_alerts;
mod server;
mod session;
mod startup;
mod stats;
mod tap;
pub mod tls;
mod workers;

pub use config::{OnLimit, ServerConfig, REFERENCE_DEFAULT_KEY};
/// The `O_DIRECT` appender the journal writes with (used by `d4 bench`).
pub use journal::direct;
pub use metrics::{MetricsRenderer, ServerMetrics};
pub use queue_alerts::{AlertBook, AlertThresholds, QueueAlertMonitor, Transition};
pub use server::{run, run_with_metrics, run_with_tap, Bound, ServerError};
pub use session::{Gate, Mode, SensorView, Session, SessionConfig};
pub use tap::JournalTap;

/// The wall clock (unix seconds) of the server's store writes and gate checks.
fn now() -> u64 {
    d4_store::now()
}
