//! d4-keys: weak public keys. Reads keys and certificates, runs per-key checks with
//! badkeys' names and meaning (`check`), and finds moduli that share primes across a whole
//! corpus with a batch GCD (`batchgcd`). Sans-IO where it can be: parsers take bytes.
//!
//! Must never depend on the collector, the web UI or the binary. No `unsafe`, no panics on
//! input.

pub mod batchgcd;
pub mod check;
mod der;
pub mod key;
pub mod par;
pub mod report;
