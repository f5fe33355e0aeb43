//! Shared support of the integration tests: `server` starts the real `d4 server` and
//! reaches its store; `client` runs stand-in collectors for `d4 client`; `cli` runs the
//! admin commands.

pub mod cli;
pub mod client;
pub mod server;

use std::path::Path;
use std::time::{Duration, Instant};

/// Waits (at most 20 s, else panics) until `path` exists: a server's socket, a ready file.
pub fn wait_for_file(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
