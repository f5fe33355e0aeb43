//! One module per `d4` subcommand.

pub mod admin;
pub mod bench;
pub mod inspect;
pub mod server;
