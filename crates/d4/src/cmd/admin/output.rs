//! Output shared by the admin commands: left-aligned tables, pretty JSON, times.

use d4_store::StoreError;

use super::{Fail, R};

pub(super) fn fmt_time(t: Option<u64>) -> String {
    match t {
        Some(t) => chrono::DateTime::from_timestamp(t as i64, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| t.to_string()),
        None => "-".into(),
    }
}

/// Print rows as a left-aligned table.
pub(super) fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        outln!("{}", s.trim_end());
    };
    line(header.iter().map(|s| s.to_string()).collect());
    if rows.is_empty() {
        outln!("(none)");
    }
    for r in rows {
        line(r);
    }
}

pub(super) fn print_json<T: serde::Serialize>(v: &T) -> R<()> {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            outln!("{s}");
            Ok(())
        }
        Err(e) => Err(Fail::Store(StoreError::Backend(e.to_string()))),
    }
}
