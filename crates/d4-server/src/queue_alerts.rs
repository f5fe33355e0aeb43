//! Queue alerts: tell the operator when an analyzer queue fills and nobody reads it.
//!
//! Three kinds ([`QueueAlertKind`]): a queue at or over a fill level (fraction of its max
//! size), a queue whose oldest entry is older than an age, and a queue that dropped
//! entries because it was full (`trimmed` grew; the episode ends after a quiet period
//! without drops). [`AlertBook`] is the sans-IO core: it takes the queues as the store
//! lists them and a clock, keeps the open episodes and returns what started and ended.
//! [`QueueAlertMonitor`] runs it on the store: periodically ([`QueueAlertMonitor::run`])
//! and on demand (the web UI's API, `/metrics`), and logs each episode once at its start
//! (warn) and once at its end (info).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use d4_store::{Queue, QueueAlert, QueueAlertKind, Queues, StoreError};
use uuid::Uuid;

/// The levels at which queues alert. A level of 0 turns that kind off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertThresholds {
    /// Fill fraction (entries / max size), e.g. 0.8.
    pub fill: f64,
    /// Age of the oldest entry, seconds.
    pub age_secs: u64,
    /// A `trimmed` episode ends after this many seconds without a drop.
    pub trimmed_quiet_secs: u64,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        AlertThresholds {
            fill: 0.8,
            age_secs: 3600,
            trimmed_quiet_secs: 300,
        }
    }
}

/// A change of the alert state found by [`AlertBook::evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Started(QueueAlert),
    Ended(QueueAlert),
}

/// The trimmed counter of a queue as last seen.
#[derive(Debug, Clone, Copy)]
struct TrimSeen {
    count: u64,
    /// When it last grew.
    grew: Option<u64>,
}

/// Sans-IO alert state: the open episodes and the trimmed counters seen.
#[derive(Debug, Default)]
pub struct AlertBook {
    open: BTreeMap<(Uuid, QueueAlertKind), QueueAlert>,
    trims: HashMap<Uuid, TrimSeen>,
}

impl AlertBook {
    pub fn new() -> AlertBook {
        AlertBook::default()
    }

    /// Compare `queues` (every queue of the store) at `now` with the levels: update the
    /// open alerts and return the episodes that started and ended, in queue order.
    ///
    /// A queue's trimmed counter seen for the first time is its baseline (drops before the
    /// server started are history, not an alert). A queue that disappeared ends its alerts.
    pub fn evaluate(
        &mut self,
        queues: &[Queue],
        now: u64,
        th: &AlertThresholds,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        let mut active: BTreeMap<(Uuid, QueueAlertKind), QueueAlert> = BTreeMap::new();
        for q in queues {
            let id = q.config.uuid;
            let alert = |kind, value: f64, threshold: f64| QueueAlert {
                queue: id,
                name: q.display_name(),
                kind,
                since: now,
                value,
                threshold,
            };
            let fill = q.len as f64 / q.config.max_size.max(1) as f64;
            if th.fill > 0.0 && fill >= th.fill {
                active.insert(
                    (id, QueueAlertKind::Fill),
                    alert(QueueAlertKind::Fill, fill, th.fill),
                );
            }
            if let Some(oldest) = q.oldest.filter(|_| q.len > 0) {
                let age = now.saturating_sub(oldest);
                if th.age_secs > 0 && age >= th.age_secs {
                    active.insert(
                        (id, QueueAlertKind::Age),
                        alert(QueueAlertKind::Age, age as f64, th.age_secs as f64),
                    );
                }
            }
            let seen = self.trims.entry(id).or_insert(TrimSeen {
                count: q.trimmed,
                grew: None,
            });
            if q.trimmed < seen.count {
                // Counter reset (queue recreated under the same uuid): a new baseline.
                *seen = TrimSeen {
                    count: q.trimmed,
                    grew: None,
                };
            }
            let grown = q.trimmed - seen.count;
            if grown > 0 {
                seen.grew = Some(now);
            }
            let key = (id, QueueAlertKind::Trimmed);
            let in_episode = seen
                .grew
                .is_some_and(|g| now.saturating_sub(g) < th.trimmed_quiet_secs.max(1));
            if in_episode {
                let before = self.open.get(&key).map_or(0.0, |a| a.value);
                active.insert(
                    key,
                    alert(QueueAlertKind::Trimmed, before + grown as f64, 0.0),
                );
            }
            seen.count = q.trimmed;
        }
        let live: std::collections::HashSet<Uuid> = queues.iter().map(|q| q.config.uuid).collect();
        self.trims.retain(|id, _| live.contains(id));
        // Ended: open before, not active now.
        for (key, old) in &self.open {
            if !active.contains_key(key) {
                let mut last = old.clone();
                if let Some(q) = queues.iter().find(|q| q.config.uuid == key.0) {
                    last.value = match key.1 {
                        QueueAlertKind::Fill => q.len as f64 / q.config.max_size.max(1) as f64,
                        QueueAlertKind::Age => q
                            .oldest
                            .filter(|_| q.len > 0)
                            .map_or(0.0, |o| now.saturating_sub(o) as f64),
                        QueueAlertKind::Trimmed => old.value,
                    };
                }
                out.push(Transition::Ended(last));
            }
        }
        // Started or continued: continued ones keep their start.
        for (key, mut a) in active {
            match self.open.get(&key) {
                Some(old) => a.since = old.since,
                None => out.push(Transition::Started(a.clone())),
            }
            self.open.insert(key, a);
        }
        let open = &mut self.open;
        out.iter().for_each(|t| {
            if let Transition::Ended(a) = t {
                open.remove(&(a.queue, a.kind));
            }
        });
        out
    }

    /// The alerts in force after the last evaluation, by queue then kind.
    pub fn alerts(&self) -> Vec<QueueAlert> {
        self.open.values().cloned().collect()
    }
}

/// Runs an [`AlertBook`] on a store: the server's one evaluator of queue alerts.
pub struct QueueAlertMonitor {
    store: Arc<dyn Queues>,
    thresholds: AlertThresholds,
    book: Mutex<AlertBook>,
}

impl std::fmt::Debug for QueueAlertMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueAlertMonitor")
            .field("thresholds", &self.thresholds)
            .finish_non_exhaustive()
    }
}

impl QueueAlertMonitor {
    pub fn new(store: Arc<dyn Queues>, thresholds: AlertThresholds) -> QueueAlertMonitor {
        QueueAlertMonitor {
            store,
            thresholds,
            book: Mutex::new(AlertBook::new()),
        }
    }

    pub fn thresholds(&self) -> AlertThresholds {
        self.thresholds
    }

    /// Evaluate now (one `list_queues`), log what started and ended, and return the alerts
    /// in force.
    pub async fn check(&self, now: u64) -> Result<Vec<QueueAlert>, StoreError> {
        let queues = self.store.list_queues().await?;
        let (changes, alerts) = {
            let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
            let changes = book.evaluate(&queues, now, &self.thresholds);
            (changes, book.alerts())
        };
        for t in changes {
            log(&t);
        }
        Ok(alerts)
    }

    /// Evaluate every `every` until dropped (spawn it; abort the task at shutdown). A store
    /// error is logged and retried at the next tick.
    pub async fn run(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.check(d4_store::now()).await {
                tracing::warn!(error = %e, "queue alerts: cannot list the queues");
            }
        }
    }
}

fn log(t: &Transition) {
    match t {
        Transition::Started(a) => tracing::warn!(
            queue = %a.queue,
            name = %a.name,
            kind = a.kind.as_str(),
            value = a.value,
            threshold = a.threshold,
            "queue alert started: {}",
            a.describe()
        ),
        Transition::Ended(a) => tracing::info!(
            queue = %a.queue,
            name = %a.name,
            kind = a.kind.as_str(),
            since = a.since,
            "queue alert ended: {}",
            a.kind.as_str()
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use d4_store::{QueueConfig, QueueKind};

    fn queue(id: u128, len: u64, max: u64, trimmed: u64, oldest: Option<u64>) -> Queue {
        Queue {
            config: QueueConfig {
                uuid: Uuid::from_u128(id),
                kind: QueueKind::Type(8),
                description: String::new(),
                max_size: max,
                sensors: None,
                groups: Vec::new(),
            },
            created: 0,
            last_updated: 0,
            len,
            trimmed,
            oldest,
        }
    }

    const TH: AlertThresholds = AlertThresholds {
        fill: 0.8,
        age_secs: 60,
        trimmed_quiet_secs: 30,
    };

    fn started(t: &[Transition]) -> Vec<(u128, QueueAlertKind)> {
        t.iter()
            .filter_map(|t| match t {
                Transition::Started(a) => Some((a.queue.as_u128(), a.kind)),
                _ => None,
            })
            .collect()
    }
    fn ended(t: &[Transition]) -> Vec<(u128, QueueAlertKind)> {
        t.iter()
            .filter_map(|t| match t {
                Transition::Ended(a) => Some((a.queue.as_u128(), a.kind)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn fill_starts_once_and_ends_when_drained() {
        let mut b = AlertBook::new();
        // 7/10 = 0.7 < 0.8: nothing.
        assert!(b
            .evaluate(&[queue(1, 7, 10, 0, Some(100))], 100, &TH)
            .is_empty());
        // 8/10 = 0.8: starts.
        let t = b.evaluate(&[queue(1, 8, 10, 0, Some(100))], 110, &TH);
        assert_eq!(started(&t), vec![(1, QueueAlertKind::Fill)]);
        // Still 9/10: no new transition, since kept, value updated.
        assert!(b
            .evaluate(&[queue(1, 9, 10, 0, Some(100))], 120, &TH)
            .is_empty());
        let a = b.alerts();
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].since, a[0].value, a[0].threshold), (110, 0.9, 0.8));
        assert_eq!(a[0].name, "type 8");
        // Drained: ends once.
        let t = b.evaluate(&[queue(1, 0, 10, 0, None)], 130, &TH);
        assert_eq!(ended(&t), vec![(1, QueueAlertKind::Fill)]);
        assert!(b.alerts().is_empty());
        assert!(b.evaluate(&[queue(1, 0, 10, 0, None)], 140, &TH).is_empty());
    }

    #[test]
    fn age_alert_from_oldest_entry() {
        let mut b = AlertBook::new();
        // Oldest pushed at 1000; at 1059 it is 59 s old, at 1060 60 s.
        assert!(b
            .evaluate(&[queue(2, 1, 100, 0, Some(1000))], 1059, &TH)
            .is_empty());
        let t = b.evaluate(&[queue(2, 1, 100, 0, Some(1000))], 1060, &TH);
        assert_eq!(started(&t), vec![(2, QueueAlertKind::Age)]);
        assert_eq!(b.alerts()[0].value, 60.0);
        // The old entry was read; the next one is from 1050: 20 s.
        let t = b.evaluate(&[queue(2, 1, 100, 0, Some(1050))], 1070, &TH);
        assert_eq!(ended(&t), vec![(2, QueueAlertKind::Age)]);
    }

    #[test]
    fn trimmed_episode_baseline_growth_and_quiet_period() {
        let mut b = AlertBook::new();
        // 50 trimmed before we looked: baseline, no alert.
        assert!(b.evaluate(&[queue(3, 1, 100, 50, None)], 0, &TH).is_empty());
        // +5 at t=10: starts with value 5.
        let t = b.evaluate(&[queue(3, 1, 100, 55, None)], 10, &TH);
        assert_eq!(started(&t), vec![(3, QueueAlertKind::Trimmed)]);
        // +2 at t=20: same episode, value 7.
        assert!(b
            .evaluate(&[queue(3, 1, 100, 57, None)], 20, &TH)
            .is_empty());
        assert_eq!(b.alerts()[0].value, 7.0);
        assert_eq!(b.alerts()[0].since, 10);
        // Quiet until 49 (< 30 s after 20): still on; at 50 (30 s): ends.
        assert!(b
            .evaluate(&[queue(3, 1, 100, 57, None)], 49, &TH)
            .is_empty());
        let t = b.evaluate(&[queue(3, 1, 100, 57, None)], 50, &TH);
        assert_eq!(ended(&t), vec![(3, QueueAlertKind::Trimmed)]);
        // A new drop: a new episode counting from 57.
        let t = b.evaluate(&[queue(3, 1, 100, 60, None)], 60, &TH);
        assert_eq!(started(&t), vec![(3, QueueAlertKind::Trimmed)]);
        assert_eq!(b.alerts()[0].value, 3.0);
    }

    #[test]
    fn deleted_queue_ends_its_alerts_and_zero_levels_turn_kinds_off() {
        let mut b = AlertBook::new();
        let t = b.evaluate(&[queue(4, 10, 10, 0, Some(0))], 1000, &TH);
        assert_eq!(
            started(&t),
            vec![(4, QueueAlertKind::Fill), (4, QueueAlertKind::Age)]
        );
        let t = b.evaluate(&[], 1001, &TH);
        assert_eq!(
            ended(&t),
            vec![(4, QueueAlertKind::Fill), (4, QueueAlertKind::Age)]
        );
        let off = AlertThresholds {
            fill: 0.0,
            age_secs: 0,
            trimmed_quiet_secs: 30,
        };
        let mut b = AlertBook::new();
        assert!(b
            .evaluate(&[queue(5, 10, 10, 0, Some(0))], 1000, &off)
            .is_empty());
    }
}
