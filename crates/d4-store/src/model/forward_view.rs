//! How front ends show forwarding rules: secrets masked, counters summed over servers.

use super::forward::*;

/// What a rule's secrets (HMAC key, privacy key) look like when shown masked; a rule sent
/// back with this value in place of a secret keeps the stored secret
/// ([`ForwardRule::keep_masked_secrets`]).
pub const SECRET_MASK: &str = "********";

impl ForwardRule {
    /// The rule with its HMAC key and privacy key replaced by [`SECRET_MASK`] (an empty
    /// privacy key stays empty).
    pub fn masked(&self) -> ForwardRule {
        let mut r = self.clone();
        r.hmac_key = SECRET_MASK.into();
        if !r.privacy.key.is_empty() {
            r.privacy.key = SECRET_MASK.into();
        }
        r
    }

    /// Secrets given as [`SECRET_MASK`] (an edited masked rule) take the stored values.
    pub fn keep_masked_secrets(&mut self, stored: &ForwardRule) {
        if self.hmac_key == SECRET_MASK {
            self.hmac_key = stored.hmac_key.clone();
        }
        if self.privacy.key == SECRET_MASK {
            self.privacy.key = stored.privacy.key.clone();
        }
    }
}

impl ForwardStats {
    /// The counters of every server together: sums, the largest lag, connected when one
    /// server is, the newest error and forward time.
    pub fn total(per_server: &[ForwardServerStats]) -> ForwardStats {
        let mut t = ForwardStats::default();
        let mut error_time = None;
        for s in per_server {
            let x = &s.stats;
            t.frames_forwarded += x.frames_forwarded;
            t.bytes_forwarded += x.bytes_forwarded;
            t.frames_spooled += x.frames_spooled;
            t.bytes_spooled += x.bytes_spooled;
            t.frames_filtered += x.frames_filtered;
            t.duplicates += x.duplicates;
            t.dropped += x.dropped;
            t.spool_errors += x.spool_errors;
            t.lag_secs = t.lag_secs.max(x.lag_secs);
            t.connected |= x.connected;
            t.last_forward_time = t.last_forward_time.max(x.last_forward_time);
            if x.last_error.is_some() && x.last_error_time.unwrap_or(0) >= error_time.unwrap_or(0) {
                error_time = x.last_error_time.or(Some(0));
                t.last_error = x.last_error.clone();
                t.last_error_time = x.last_error_time;
            }
        }
        t
    }
}

impl ForwardFilter {
    /// One line for tables: `types 1,8 · ext ja3-jl · tags share · groups dmz · 2 sensors`
    /// (`every frame` when the filter takes everything).
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.types.is_empty() {
            let t: Vec<String> = self.types.iter().map(u8::to_string).collect();
            parts.push(format!("types {}", t.join(",")));
        }
        if !self.ext_types.is_empty() {
            parts.push(format!("ext {}", self.ext_types.join(",")));
        }
        if !self.tags.is_empty() {
            parts.push(format!("tags {}", self.tags.join(",")));
        }
        if !self.groups.is_empty() {
            parts.push(format!("groups {}", self.groups.join(",")));
        }
        if !self.sensors.is_empty() {
            parts.push(format!("{} sensor(s)", self.sensors.len()));
        }
        if parts.is_empty() {
            "every frame".into()
        } else {
            parts.join(" · ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals() {
        let s = |id: &str, f: u64, lag: u64, err: Option<(&str, u64)>| ForwardServerStats {
            server_id: id.into(),
            time: 0,
            stats: ForwardStats {
                frames_forwarded: f,
                bytes_forwarded: f * 10,
                lag_secs: lag,
                connected: f > 1,
                last_error: err.map(|e| e.0.to_string()),
                last_error_time: err.map(|e| e.1),
                ..Default::default()
            },
        };
        let t = ForwardStats::total(&[
            s("a", 1, 5, Some(("old", 10))),
            s("b", 2, 3, Some(("new", 20))),
            s("c", 3, 0, None),
        ]);
        assert_eq!(
            (t.frames_forwarded, t.bytes_forwarded, t.lag_secs),
            (6, 60, 5)
        );
        assert!(t.connected);
        assert_eq!(t.last_error.as_deref(), Some("new"));
        assert_eq!(ForwardStats::total(&[]), ForwardStats::default());
    }

    #[test]
    fn summary() {
        assert_eq!(ForwardFilter::default().summary(), "every frame");
        let f = ForwardFilter {
            types: vec![1, 8],
            tags: vec!["share".into()],
            ..Default::default()
        };
        assert_eq!(f.summary(), "types 1,8 · tags share");
    }
}
