//! `--rate N`: a token bucket of N entries per second, with bursts of up to N/20 entries
//! (50 ms worth, at least 1). Sans-IO: the caller passes the time elapsed since a start of
//! its choosing and sleeps for the wait it gets back.

use std::time::Duration;

/// A token bucket. Starts full.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// `per_sec` entries per second (at least 1).
    pub fn new(per_sec: u32) -> TokenBucket {
        let per_sec = f64::from(per_sec.max(1));
        let burst = (per_sec / 20.0).floor().max(1.0);
        TokenBucket {
            per_sec,
            burst,
            tokens: burst,
            last: Duration::ZERO,
        }
    }

    /// Takes one token at `now`: `Ok` to send now, or `Err(wait)` until one is there (call
    /// again after waiting).
    pub fn take(&mut self, now: Duration) -> Result<(), Duration> {
        if now > self.last {
            let gained = (now - self.last).as_secs_f64() * self.per_sec;
            self.tokens = (self.tokens + gained).min(self.burst);
            self.last = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            Err(Duration::from_secs_f64(missing / self.per_sec).max(Duration::from_micros(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives the bucket with a simulated clock: how many entries go out in `secs`.
    fn sent_in(per_sec: u32, secs: f64) -> u64 {
        let mut b = TokenBucket::new(per_sec);
        let end = Duration::from_secs_f64(secs);
        let mut now = Duration::ZERO;
        let mut n = 0;
        loop {
            match b.take(now) {
                Ok(()) => n += 1,
                Err(w) => now += w,
            }
            if now >= end {
                return n;
            }
        }
    }

    #[test]
    fn average_rate_holds() {
        // N per second for 10 s: 10 N plus the first burst (N/20, at least 1)
        // (the last one may fall either side of the end with float rounding)
        for (rate, want) in [(1, 10 + 1), (100, 1000 + 5), (1000, 10_000 + 50)] {
            let n = sent_in(rate, 10.0);
            assert!(n.abs_diff(want) <= 1, "{rate}/s: {n} sent, {want} expected");
        }
    }

    #[test]
    fn burst_then_wait() {
        let mut b = TokenBucket::new(200); // burst 10, one token every 5 ms
        for _ in 0..10 {
            assert_eq!(b.take(Duration::ZERO), Ok(()));
        }
        let w = b.take(Duration::ZERO).unwrap_err();
        assert!((w.as_secs_f64() - 0.005).abs() < 1e-9, "{w:?}");
        assert_eq!(b.take(Duration::from_millis(5)), Ok(()));
        // an idle minute refills the burst only
        let later = Duration::from_secs(60);
        for _ in 0..10 {
            assert_eq!(b.take(later), Ok(()));
        }
        assert!(b.take(later).is_err());
    }
}
