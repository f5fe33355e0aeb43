//! The integration tests of the `d4` binary, as one test binary (ripgrep style: one link
//! instead of one per file). Each module drives the real `d4` executable; `support` holds
//! what several of them share (a real `d4 server` on loopback, stand-in collectors for
//! the client). Run one area with `cargo test -p d4 --test it server_crash::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod admin_cli;
mod bench_cli;
mod bench_forward;
mod client_basic;
mod client_close;
mod client_outage;
mod client_records;
mod client_refusal;
mod client_sources;
mod export_delivery;
mod export_sinks;
mod export_syslog_tls;
mod export_util;
mod forward;
mod forward_cli;
mod inspect;
mod keys_check;
mod keys_gcd;
mod misp_feed;
mod misp_feed_serve;
mod pdns_e2e;
mod pdns_queue;
mod pdns_queue_kill;
mod pdns_redis_reference;
mod pdns_serve;
mod pdns_serve_hardening;
mod pdns_serve_queue;
mod pibs_cli;
mod pibs_ingest;
mod pibs_queue;
mod pibs_serve;
mod pssl_ingest;
mod pssl_serve;
mod pssl_weak;
mod queue_alerts;
mod sensor_meta;
mod server_crash;
mod server_d4core_kick;
mod server_fixes;
mod server_hardening;
mod server_load;
mod server_redis;
mod server_rotation_crash;
mod server_rules;
mod server_valid_key;
mod server_vectors;
mod tls_cli;
mod tls_e2e;
mod tls_live;
mod validation_parity;
mod web_browser;
mod web_hardening;
mod web_ops;
mod web_server;
