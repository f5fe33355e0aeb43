//! One module per `d4` subcommand. The `sensor` feature builds `client` and `inspect` only
//! (a sensor on a small device); `full` (the default) builds everything.

#[cfg(feature = "full")]
pub mod admin;
#[cfg(feature = "full")]
pub mod bench;
pub mod client;
#[cfg(feature = "full")]
pub mod consume;
#[cfg(feature = "full")]
pub mod export;
#[cfg(feature = "full")]
pub mod forward_engine;
pub mod inspect;
#[cfg(feature = "full")]
pub mod keys;
#[cfg(feature = "full")]
pub mod misp;
#[cfg(feature = "full")]
pub mod pdns;
#[cfg(feature = "full")]
pub mod pibs;
#[cfg(feature = "full")]
pub mod pssl;
#[cfg(feature = "full")]
pub mod serve_auth;
#[cfg(feature = "full")]
pub mod server;
#[cfg(feature = "full")]
pub mod store_args;
#[cfg(feature = "full")]
pub mod tls;
#[cfg(feature = "full")]
pub mod web;
