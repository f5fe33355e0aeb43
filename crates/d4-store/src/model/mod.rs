//! Plain data types shared by every backend, the RPC protocol and the callers, one module
//! per role: [`sensor`], [`policy`], [`lease`], [`queue`], [`account`], [`forward`].
//!
//! Times are Unix seconds (`u64`), days are `YYYYMMDD` as `u32` (UTC), sensors are
//! identified by their `Uuid` (printed as 32 lowercase hex digits, `d4_proto::sensor_id`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod account;
pub mod forward;
pub mod lease;
pub mod policy;
pub mod queue;
pub mod sensor;

pub use account::*;
pub use forward::*;
pub use lease::*;
pub use policy::*;
pub use queue::*;
pub use sensor::*;

/// Something other holders of the store must know at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum StoreEvent {
    /// Close every connection of this sensor now (a 30 s UUID block is already set).
    Kick { uuid: Uuid },
    /// Blocklists changed: re-check live connections / refresh caches.
    BlocklistChanged,
    /// A sensor's settings or registration changed (key, approval, limit...).
    SensorChanged { uuid: Uuid },
    /// Accepted types or extended types changed.
    TypesChanged,
    /// Queues were created, changed or deleted.
    QueuesChanged,
    /// Forwarding rules were created, changed, enabled, disabled or deleted.
    ForwardRulesChanged,
}

/// `YYYYMMDD` (UTC) of a Unix time.
pub fn day_of(unix_secs: u64) -> u32 {
    // Civil-from-days (Howard Hinnant's algorithm), no chrono dependency.
    let days = (unix_secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (y * 10_000 + m * 100 + d) as u32
}

/// Current Unix time in seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_of_known_dates() {
        assert_eq!(day_of(0), 19700101);
        assert_eq!(day_of(951_782_400), 20000229);
        assert_eq!(day_of(1_700_000_000), 20231114);
        assert_eq!(day_of(1_709_251_199), 20240229);
    }
}
