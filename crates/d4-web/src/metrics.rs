//! `/metrics` in the Prometheus text format: what the store knows, plus the lines of every
//! registered [`MetricsSource`] (the server adds connection and refusal counters).

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use d4_store::{now, SensorStatus, StatsKey};

use crate::auth::Need;
use crate::WebState;

/// A source of extra metrics: append complete Prometheus text lines (with `# HELP` and
/// `# TYPE`) to `out`. Called on every scrape; must be quick and must not block.
pub trait MetricsSource: Send + Sync {
    fn render(&self, out: &mut String);
}

/// Escape a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) async fn metrics(State(st): State<WebState>, headers: HeaderMap) -> Response {
    if !st.config().metrics_public {
        if let Err(f) = crate::extract::api_user(&st, &headers, Need::Read).await {
            return f.into_response();
        }
    }
    match render(&st).await {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => crate::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("store error: {e}\n"),
        ),
    }
}

pub(crate) async fn render(st: &WebState) -> Result<String, d4_store::StoreError> {
    let store = st.store();
    let t = now();
    let mut out = String::new();
    let sensors = store.list_sensors().await?;
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    for s in [
        SensorStatus::Unregistered,
        SensorStatus::Pending,
        SensorStatus::Approved,
    ] {
        by_status.insert(s.as_str(), 0);
    }
    for s in &sensors {
        *by_status.entry(s.status.as_str()).or_default() += 1;
    }
    let _ = writeln!(
        out,
        "# HELP d4_sensors Known sensors by registration status."
    );
    let _ = writeln!(out, "# TYPE d4_sensors gauge");
    for (k, v) in &by_status {
        let _ = writeln!(out, "d4_sensors{{status=\"{k}\"}} {v}");
    }
    let sessions = store.list_leases(t).await?;
    let connected: std::collections::HashSet<_> = sessions.iter().map(|s| s.uuid).collect();
    let _ = writeln!(
        out,
        "# HELP d4_sensors_connected Sensors with at least one live session."
    );
    let _ = writeln!(out, "# TYPE d4_sensors_connected gauge");
    let _ = writeln!(out, "d4_sensors_connected {}", connected.len());
    let _ = writeln!(out, "# HELP d4_sessions Live sensor sessions.");
    let _ = writeln!(out, "# TYPE d4_sessions gauge");
    let _ = writeln!(out, "d4_sessions {}", sessions.len());

    let today = store.day_stats(d4_store::day_of(t)).await?;
    let _ = writeln!(
        out,
        "# HELP d4_frames_today Frames accepted today (UTC) by type."
    );
    let _ = writeln!(out, "# TYPE d4_frames_today gauge");
    let mut bytes_lines = String::new();
    let mut sensors_today = 0u64;
    for (k, c) in &today.entries {
        match k {
            StatsKey::Type { d4_type } => {
                let _ = writeln!(out, "d4_frames_today{{type=\"{d4_type}\"}} {}", c.frames);
                let _ = writeln!(
                    bytes_lines,
                    "d4_bytes_today{{type=\"{d4_type}\"}} {}",
                    c.bytes
                );
            }
            StatsKey::Sensor { .. } => sensors_today += 1,
            _ => {}
        }
    }
    let _ = writeln!(
        out,
        "# HELP d4_bytes_today Bytes accepted today (UTC) by type."
    );
    let _ = writeln!(out, "# TYPE d4_bytes_today gauge");
    out.push_str(&bytes_lines);
    let _ = writeln!(
        out,
        "# HELP d4_sensors_today Sensors that sent data today (UTC)."
    );
    let _ = writeln!(out, "# TYPE d4_sensors_today gauge");
    let _ = writeln!(out, "d4_sensors_today {sensors_today}");

    let queues = store.list_queues().await?;
    let _ = writeln!(
        out,
        "# HELP d4_queue_length Entries waiting in an analyzer queue."
    );
    let _ = writeln!(out, "# TYPE d4_queue_length gauge");
    for q in &queues {
        let _ = writeln!(
            out,
            "d4_queue_length{{queue=\"{}\",kind=\"{}\"}} {}",
            q.config.uuid.simple(),
            label(&q.config.kind.to_string()),
            q.len
        );
    }
    let _ = writeln!(
        out,
        "# HELP d4_queue_trimmed_total Entries dropped because the queue was full."
    );
    let _ = writeln!(out, "# TYPE d4_queue_trimmed_total counter");
    for q in &queues {
        let _ = writeln!(
            out,
            "d4_queue_trimmed_total{{queue=\"{}\",kind=\"{}\"}} {}",
            q.config.uuid.simple(),
            label(&q.config.kind.to_string()),
            q.trimmed
        );
    }
    let alerts = crate::queue_alerts::current(st, t).await?;
    crate::queue_alerts::render_metrics(&mut out, &queues, alerts.as_deref(), t);
    let blocks = store.list_blocks(t).await?;
    let _ = writeln!(out, "# HELP d4_blocks Blocks in force.");
    let _ = writeln!(out, "# TYPE d4_blocks gauge");
    let _ = writeln!(out, "d4_blocks {}", blocks.len());
    if let Ok(sources) = st.inner.metrics.read() {
        for s in sources.iter() {
            s.render(&mut out);
        }
    }
    Ok(out)
}
