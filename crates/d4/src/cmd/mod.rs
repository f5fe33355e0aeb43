//! One module per `d4` subcommand.

pub mod admin;
pub mod inspect;
pub mod server;
