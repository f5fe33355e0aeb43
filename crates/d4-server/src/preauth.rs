//! Bounds on what a peer gets before it has shown a valid frame: the sensor port faces the
//! internet, and a peer with no key must not be able to hold the server's memory or file
//! descriptors.
//!
//! * [`PreAuth`]: connections not yet authenticated, per source IP (from `accept`, so TLS
//!   handshakes count), and the bytes their decoders hold (a declared payload of up to
//!   `max_payload` arrives before its HMAC can be checked), per IP and in total. A
//!   connection that would pass a bound is closed; authenticated sessions are not counted.
//! * [`Limiter`]: at most one event per key and period (store writes and log lines of
//!   refused connections, so a flood neither rewrites a sensor's last error nor the log).
//!
//! Pure bookkeeping behind a mutex: no I/O, clocks passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The bounds (see `ServerConfig`'s `preauth_*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreAuthLimits {
    /// Bytes all unauthenticated connections together may hold.
    pub total_bytes: usize,
    /// Bytes the unauthenticated connections of one IP may hold.
    pub ip_bytes: usize,
    /// Unauthenticated connections (TLS handshakes included) of one IP.
    pub ip_connections: usize,
    /// Unauthenticated connections in total.
    pub connections: usize,
}

#[derive(Default)]
struct Inner {
    total: usize,
    conns: usize,
    per_ip: HashMap<IpAddr, (usize, usize)>,
}

/// The shared bookkeeping of unauthenticated connections.
pub struct PreAuth {
    limits: PreAuthLimits,
    inner: Mutex<Inner>,
}

/// One unauthenticated connection's share; given back when dropped or on
/// [`Ticket::release`] (authentication).
pub struct Ticket {
    owner: Arc<PreAuth>,
    ip: IpAddr,
    held: usize,
    live: bool,
}

impl PreAuth {
    pub fn new(limits: PreAuthLimits) -> Arc<PreAuth> {
        Arc::new(PreAuth {
            limits,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// A new connection from `ip`: its ticket, or `None` when the IP already has
    /// `ip_connections` unauthenticated connections, or the server `connections`.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        let mut g = self.inner.lock().ok()?;
        if g.conns >= self.limits.connections.max(1) {
            return None;
        }
        let e = g.per_ip.entry(ip).or_default();
        if e.0 >= self.limits.ip_connections.max(1) {
            return None;
        }
        e.0 += 1;
        g.conns += 1;
        Some(Ticket {
            owner: self.clone(),
            ip,
            held: 0,
            live: true,
        })
    }

    /// (unauthenticated connections, bytes they hold) in total (tests).
    #[cfg(test)]
    pub fn usage(&self) -> (usize, usize) {
        self.inner
            .lock()
            .map(|g| (g.conns, g.total))
            .unwrap_or((0, 0))
    }
}

impl Ticket {
    /// The connection now holds `bytes`: true when that fits the bounds (the share is
    /// updated), false when it does not (the share is left as it was: close the
    /// connection). Shrinking always fits.
    pub fn hold(&mut self, bytes: usize) -> bool {
        if !self.live || bytes == self.held {
            return true;
        }
        let limits = self.owner.limits;
        let Ok(mut g) = self.owner.inner.lock() else {
            return false;
        };
        let ip_now = g.per_ip.get(&self.ip).map_or(0, |v| v.1);
        let ip_new = ip_now - self.held.min(ip_now) + bytes;
        let total_new = g.total - self.held.min(g.total) + bytes;
        if bytes > self.held && (ip_new > limits.ip_bytes || total_new > limits.total_bytes) {
            return false;
        }
        g.total = total_new;
        if let Some(e) = g.per_ip.get_mut(&self.ip) {
            e.1 = ip_new;
        }
        self.held = bytes;
        true
    }

    /// The connection authenticated (or ends): its share is given back.
    pub fn release(&mut self) {
        if !self.live {
            return;
        }
        self.live = false;
        if let Ok(mut g) = self.owner.inner.lock() {
            g.total -= self.held.min(g.total);
            g.conns = g.conns.saturating_sub(1);
            let gone = match g.per_ip.get_mut(&self.ip) {
                Some(e) => {
                    e.0 = e.0.saturating_sub(1);
                    e.1 -= self.held.min(e.1);
                    e.0 == 0
                }
                None => false,
            };
            if gone {
                g.per_ip.remove(&self.ip);
            }
        }
        self.held = 0;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.release();
    }
}

/// At most one event per key every `period` seconds, remembering at most `capacity` keys
/// (when full, keys older than the period are forgotten first, then all: a flood of
/// distinct keys costs bounded memory and at worst lets an event through early).
pub struct Limiter<K> {
    period: u64,
    capacity: usize,
    last: Mutex<HashMap<K, u64>>,
}

impl<K: std::hash::Hash + Eq + Clone> Limiter<K> {
    pub fn new(period_secs: u64, capacity: usize) -> Limiter<K> {
        Limiter {
            period: period_secs,
            capacity: capacity.max(1),
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the event for `key` at `now` (seconds) may happen; records it if so.
    pub fn allow(&self, key: &K, now: u64) -> bool {
        let Ok(mut g) = self.last.lock() else {
            return false;
        };
        if let Some(t) = g.get(key) {
            if now.saturating_sub(*t) < self.period {
                return false;
            }
        }
        if g.len() >= self.capacity && !g.contains_key(key) {
            let period = self.period;
            g.retain(|_, t| now.saturating_sub(*t) < period);
            if g.len() >= self.capacity {
                g.clear();
            }
        }
        g.insert(key.clone(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn connections_per_ip_and_bytes_are_bounded() {
        let p = PreAuth::new(PreAuthLimits {
            total_bytes: 1000,
            ip_bytes: 600,
            ip_connections: 2,
            connections: 4,
        });
        let mut a = p.admit(ip("10.0.0.1")).unwrap();
        let mut b = p.admit(ip("10.0.0.1")).unwrap();
        assert!(p.admit(ip("10.0.0.1")).is_none(), "third from one IP");
        let mut c = p.admit(ip("10.0.0.2")).unwrap();
        assert!(a.hold(400));
        assert!(!b.hold(300), "over the IP's bytes");
        assert!(b.hold(200));
        assert!(c.hold(400));
        assert!(!c.hold(401), "over the total");
        assert_eq!(p.usage(), (3, 1000));
        assert!(a.hold(100), "shrinking always fits");
        assert!(c.hold(500));
        a.release();
        assert_eq!(p.usage(), (2, 700));
        let _e = p
            .admit(ip("10.0.0.1"))
            .expect("a released slot is free again");
        let _d = p.admit(ip("10.0.0.3")).unwrap();
        assert!(
            p.admit(ip("10.0.0.4")).is_none(),
            "over the total of connections"
        );
        drop(_d);
        drop(b);
        drop(c);
        assert_eq!(p.usage(), (1, 0));
        drop(_e);
        assert_eq!(p.usage(), (0, 0));
        assert!(
            p.inner.lock().unwrap().per_ip.is_empty(),
            "no entry left behind"
        );
    }

    #[test]
    fn limiter_allows_one_event_per_period_and_stays_bounded() {
        let l = Limiter::new(60, 3);
        assert!(l.allow(&1, 100));
        assert!(!l.allow(&1, 159));
        assert!(l.allow(&1, 160));
        assert!(l.allow(&2, 160));
        assert!(l.allow(&3, 160));
        assert!(l.allow(&4, 161), "full: old keys forgotten");
        assert!(l.last.lock().unwrap().len() <= 3);
    }
}
