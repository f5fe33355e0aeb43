//! # d4-server — the D4 collector
//!
//! Listeners (TLS with a generated certificate, optional plain TCP), the sans-IO
//! [`session`] state machine enforcing every stream rule, a durable per-session
//! [`journal`] written before the workers see a frame, per-day stats aggregation, and the
//! hand-off of accepted frames to the per-type workers.
//!
//! It depends on `d4-proto`, `d4-store` (shared state) and `d4-worker` (files and queues);
//! it must never depend on the web UI, the client or any analyzer crate.

pub mod journal;
pub mod session;
