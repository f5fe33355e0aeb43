//! Queue alerts as the web shows them: the [`QueueAlertSource`] port (the server's alert
//! monitor, adapted in the binary: this crate does not depend on the server), the
//! `GET /api/v1/queues/alerts` handler, the `/metrics` lines and the Monitoring page block.

use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;

use axum::extract::State;
use d4_store::{Queue, QueueAlert, QueueAlertKind, StoreError};
use maud::{html, Markup};
use serde::Serialize;

use crate::api::{ok, ApiResult};
use crate::extract::{Auth, Read};
use crate::view::fmt_time;
use crate::WebState;

/// What [`QueueAlertSource::alerts`] returns.
pub type AlertsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<QueueAlert>, StoreError>> + Send + 'a>>;

/// Where queue alerts come from: evaluates at `now` (Unix seconds) and returns the alerts
/// in force, by queue then kind.
pub trait QueueAlertSource: Send + Sync {
    fn alerts(&self, now: u64) -> AlertsFuture<'_>;
}

/// The alerts in force, or none when no source is registered.
pub(crate) async fn current(
    st: &WebState,
    now: u64,
) -> Result<Option<Vec<QueueAlert>>, StoreError> {
    match st.inner.queue_alerts.get() {
        Some(src) => Ok(Some(src.alerts(now).await?)),
        None => Ok(None),
    }
}

/// An alert in the API (uuids as 32 hex digits, like every other endpoint).
#[derive(Serialize)]
struct AlertView<'a> {
    kind: &'static str,
    name: &'a str,
    queue: String,
    since: u64,
    threshold: f64,
    value: f64,
}

/// `GET /api/v1/queues/alerts`: a JSON list of `{queue, name, kind, since, value,
/// threshold}` (evaluated on the call).
pub(crate) async fn api(State(st): State<WebState>, _: Auth<Read>) -> ApiResult {
    let alerts = current(&st, d4_store::now()).await?.unwrap_or_default();
    let list: Vec<AlertView> = alerts
        .iter()
        .map(|a| AlertView {
            kind: a.kind.as_str(),
            name: &a.name,
            queue: a.queue.simple().to_string(),
            since: a.since,
            threshold: a.threshold,
            value: a.value,
        })
        .collect();
    ok(list)
}

/// Escape a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `d4_queue_oldest_age_seconds` for every queue holding entries of known age, and, with
/// a source, `d4_queue_alert` (0 or 1) for every queue and kind.
pub(crate) fn render_metrics(
    out: &mut String,
    queues: &[Queue],
    alerts: Option<&[QueueAlert]>,
    now: u64,
) {
    let _ = writeln!(
        out,
        "# HELP d4_queue_oldest_age_seconds Age of the oldest entry waiting in an analyzer queue."
    );
    let _ = writeln!(out, "# TYPE d4_queue_oldest_age_seconds gauge");
    for q in queues {
        if let Some(o) = q.oldest.filter(|_| q.len > 0) {
            let _ = writeln!(
                out,
                "d4_queue_oldest_age_seconds{{queue=\"{}\",kind=\"{}\"}} {}",
                q.config.uuid.simple(),
                label(&q.config.kind.to_string()),
                now.saturating_sub(o)
            );
        }
    }
    let Some(alerts) = alerts else { return };
    let _ = writeln!(
        out,
        "# HELP d4_queue_alert Whether an analyzer queue alert is in force (kind: fill, age, trimmed)."
    );
    let _ = writeln!(out, "# TYPE d4_queue_alert gauge");
    for q in queues {
        for kind in QueueAlertKind::ALL {
            let on = alerts
                .iter()
                .any(|a| a.queue == q.config.uuid && a.kind == kind);
            let _ = writeln!(
                out,
                "d4_queue_alert{{queue=\"{}\",kind=\"{}\"}} {}",
                q.config.uuid.simple(),
                kind.as_str(),
                u8::from(on)
            );
        }
    }
}

/// The Monitoring page's block: the queue alerts in force.
pub(crate) fn block(alerts: Option<&[QueueAlert]>) -> Markup {
    html! {
        h2 { "Queue alerts" }
        @match alerts {
            None => p { "Queue alerts are evaluated by " code { "d4 server" } "." },
            Some([]) => p.flash { "No queue alert." },
            Some(list) => {
                p.error { (list.len()) " queue alert(s): analyzers do not keep up." }
                table {
                    tr { th { "Queue" } th { "Kind" } th { "Since" } th { "State" } }
                    @for a in list {
                        tr {
                            td { a href={ "/queues/" (a.queue.simple()) } { (a.name) } }
                            td { (a.kind.as_str()) }
                            td { (fmt_time(a.since)) }
                            td { (a.describe()) }
                        }
                    }
                }
            }
        }
    }
}
