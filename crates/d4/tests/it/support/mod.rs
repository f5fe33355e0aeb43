//! Shared support of the integration tests: `server` starts the real `d4 server` and
//! reaches its store; `client` runs stand-in collectors for `d4 client`.

pub mod client;
pub mod server;
