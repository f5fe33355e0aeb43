//! One module per `d4` subcommand.

pub mod inspect;
pub mod pdns;
