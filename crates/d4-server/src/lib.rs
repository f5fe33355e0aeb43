//! # d4-server — the D4 collector
//!
//! Listeners (TLS with a generated certificate, optional plain TCP), the sans-IO
//! [`session`] state machine enforcing every stream rule, a durable per-session
//! [`journal`] written before the workers see a frame, per-day [`stats`] aggregation, and
//! the hand-off of accepted frames to the per-type workers of `d4-worker`, and the live
//! [`metrics`] (connections, frames, refusals, worker lag) rendered as Prometheus text.
//!
//! It depends on `d4-proto`, `d4-store` (shared state) and `d4-worker` (files and queues);
//! it must never depend on the web UI, the sensor client or any analyzer crate.

pub mod config;
pub mod direct;
pub mod gate;
pub mod journal;
mod json_end;
pub mod metrics;
pub mod net;
pub mod pipeline;
pub mod preauth;
pub mod server;
pub mod session;
pub mod stats;
pub mod tls;
pub mod workers;

pub use config::{OnLimit, ServerConfig, REFERENCE_DEFAULT_KEY};
pub use metrics::ServerMetrics;
pub use server::{run, run_with_metrics, Bound, ServerError};
pub use session::Mode;
