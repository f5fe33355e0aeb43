//! Connection caps: open connections in total and per client IP (some peers exempt from
//! the per-IP cap). A slot is given back when its [`Slot`] drops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Counts open connections.
pub(crate) struct Slots {
    pub(crate) global: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    per_ip_max: usize,
    exempt: Vec<IpNet>,
}

pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    /// `None`: an exempt peer, counted only in the global cap.
    ip: Option<IpAddr>,
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut map = match self.slots.per_ip.lock() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            if let Some(n) = map.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

impl Slots {
    pub(crate) fn new(max: usize, per_ip_max: usize, exempt: Vec<IpNet>) -> Slots {
        Slots {
            global: Arc::new(Semaphore::new(max)),
            per_ip: Mutex::new(HashMap::new()),
            per_ip_max,
            exempt,
        }
    }

    /// A slot for a connection from `ip`, or `None` when a cap is reached.
    pub(crate) fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let permit = self.global.clone().try_acquire_owned().ok()?;
        if self.exempt.iter().any(|n| n.contains(&ip)) {
            return Some(Slot {
                _permit: permit,
                ip: None,
                slots: self.clone(),
            });
        }
        let mut map = match self.per_ip.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let n = map.entry(ip).or_insert(0);
        if *n >= self.per_ip_max {
            return None;
        }
        *n += 1;
        Some(Slot {
            _permit: permit,
            ip: Some(ip),
            slots: self.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_per_ip_and_in_total_and_give_back_on_drop() {
        let exempt = vec!["10.0.0.0/8".parse().unwrap()];
        let slots = Arc::new(Slots::new(4, 2, exempt));
        let a1 = slots.take(ip("192.0.2.1"));
        let a2 = slots.take(ip("192.0.2.1"));
        assert!(a1.is_some() && a2.is_some());
        assert!(slots.take(ip("192.0.2.1")).is_none(), "per-IP cap");
        drop(a1);
        let a3 = slots.take(ip("192.0.2.1"));
        assert!(a3.is_some(), "a dropped slot is given back");
        // An exempt peer only counts in the total.
        let p1 = slots.take(ip("10.1.2.3"));
        let p2 = slots.take(ip("10.1.2.3"));
        assert!(p1.is_some() && p2.is_some());
        assert!(slots.take(ip("198.51.100.9")).is_none(), "global cap");
        drop(p2);
        assert!(slots.take(ip("198.51.100.9")).is_some());
    }
}
