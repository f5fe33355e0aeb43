//! Exponential backoff with full jitter for reconnects.

use std::time::Duration;

/// Delay before the next attempt: base doubles at each failure up to `max`; the actual delay
/// is drawn uniformly in [base/2, base] so that many sensors do not reconnect in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    rng: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(std::process::id()).rotate_left(32);
        Backoff {
            initial,
            max: max.max(initial),
            current: initial,
            rng: seed | 1,
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The delay to wait now; the next one will be longer.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = base / 2;
        let span = (base - half).as_millis() as u64;
        let jitter = if span == 0 {
            0
        } else {
            self.next_rand() % (span + 1)
        };
        half + Duration::from_millis(jitter)
    }

    /// After a success.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }

    /// The delay after a connection that stood `up` was lost: back to the shortest when it
    /// stood [`STABLE`], else the next longer one. A peer that refuses us accepts and
    /// closes at once; resetting at every connect would retry it several times a second.
    pub fn after_loss(&mut self, up: Duration) -> Duration {
        if up >= STABLE {
            self.reset();
        }
        self.next_delay()
    }
}

/// How long a connection must have stood for its loss to start the delays again at the
/// shortest ([`Backoff::after_loss`]).
pub const STABLE: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut prev_base = Duration::from_millis(100);
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(
                d >= prev_base / 2 && d <= prev_base,
                "{d:?} vs {prev_base:?}"
            );
            prev_base = (prev_base * 2).min(Duration::from_secs(2));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        // a connection that stood resets, a short one does not
        for _ in 0..5 {
            b.next_delay();
        }
        assert!(b.after_loss(Duration::from_millis(500)) >= Duration::from_secs(1));
        assert!(b.after_loss(STABLE) <= Duration::from_millis(100));
    }
}
