//! One module per `d4` subcommand.

pub mod client;
pub mod inspect;
