//! One module per `d4` subcommand.

pub mod admin;
pub mod bench;
pub mod client;
pub mod inspect;
pub mod pdns;
pub mod pibs;
pub mod server;
pub mod store_args;
pub mod web;
