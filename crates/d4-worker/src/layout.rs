//! On-disk layout and rotation rules (pure functions: no I/O, clocks passed in).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Datelike, Timelike, Utc};

/// UTC time from a [`SystemTime`] (times before 1970 become 1970).
pub fn utc(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t.max(SystemTime::UNIX_EPOCH))
}

/// When a file must be rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Rotate a file this long after it was opened (`None`: never by age).
    pub period: Option<Duration>,
    /// Rotate when the UTC day of `now` differs from the day the file was opened.
    pub at_day_change: bool,
    /// Rotate once a file holds this many bytes (`None`: never by size). Checked where the
    /// time rules are, so a file is cut only where its type allows (line, pcap record).
    pub max_bytes: Option<u64>,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        RotationPolicy {
            period: Some(Duration::from_secs(300)),
            at_day_change: true,
            max_bytes: None,
        }
    }
}

impl RotationPolicy {
    /// Whether a file opened at `opened` must be rotated at `now`. A clock that went
    /// backwards does not trigger an age rotation (but a different day does).
    pub fn due(&self, opened: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.due_at(opened, now, 0)
    }

    /// [`RotationPolicy::due`] for a file that holds `len` bytes: the time rules, or the
    /// size bound.
    pub fn due_at(&self, opened: DateTime<Utc>, now: DateTime<Utc>, len: u64) -> bool {
        if self.max_bytes.is_some_and(|m| len >= m.max(1)) {
            return true;
        }
        if self.at_day_change && opened.date_naive() != now.date_naive() {
            return true;
        }
        match self.period {
            Some(p) if !p.is_zero() => (now - opened).to_std().map(|age| age >= p).unwrap_or(false),
            _ => false,
        }
    }
}

/// `<data>/<sensor>/<type>/<YYYY>/<MM>/<DD>` for the day of `t`.
pub fn day_dir(data: &Path, sensor: &str, d4_type: u8, t: DateTime<Utc>) -> PathBuf {
    data.join(sensor)
        .join(d4_type.to_string())
        .join(format!("{:04}", t.year()))
        .join(format!("{:02}", t.month()))
        .join(format!("{:02}", t.day()))
}

/// `<sensor>-YYYY-MM-DD-HHMMSS`, the stem of every rotated file name.
pub fn file_stem(sensor: &str, t: DateTime<Utc>) -> String {
    format!(
        "{}-{:04}-{:02}-{:02}-{:02}{:02}{:02}",
        sensor,
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The `n`-th candidate name for a file: `<stem><suffix>`, then `<stem>-1<suffix>`, ...
/// (two files opened within the same second, or a restart, never share a name).
pub fn candidate_name(stem: &str, suffix: &str, n: u32) -> String {
    if n == 0 {
        format!("{stem}{suffix}")
    } else {
        format!("{stem}-{n}{suffix}")
    }
}

/// Whether `s` is a safe single path component made of `[A-Za-z0-9._-]`, 1..=64 bytes,
/// not starting with a dot (used for extensions given by sensors).
pub fn safe_component(s: &str) -> bool {
    d4_proto::meta::valid_ext_type(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn paths_and_names() {
        let at = t(2026, 3, 4, 5, 6, 7);
        assert_eq!(
            day_dir(Path::new("/d"), "ab12", 8, at),
            PathBuf::from("/d/ab12/8/2026/03/04")
        );
        assert_eq!(file_stem("ab12", at), "ab12-2026-03-04-050607");
        assert_eq!(candidate_name("x", ".cap", 0), "x.cap");
        assert_eq!(candidate_name("x", ".cap", 2), "x-2.cap");
        assert!(safe_component("pcap"));
        assert!(!safe_component("../x") && !safe_component("") && !safe_component(".x"));
    }

    #[test]
    fn rotation_by_age_and_day() {
        let p = RotationPolicy::default();
        let open = t(2026, 1, 1, 23, 50, 0);
        assert!(!p.due(open, t(2026, 1, 1, 23, 54, 59)));
        assert!(p.due(open, t(2026, 1, 1, 23, 55, 0)));
        let open = t(2026, 1, 1, 23, 59, 0);
        assert!(!p.due(open, t(2026, 1, 1, 23, 59, 59)));
        assert!(p.due(open, t(2026, 1, 2, 0, 0, 0)), "day change");
        // clock going backwards within the day: no rotation
        assert!(!p.due(open, t(2026, 1, 1, 12, 0, 0)));
        let no_day = RotationPolicy {
            period: Some(Duration::from_secs(3600)),
            at_day_change: false,
            max_bytes: None,
        };
        assert!(!no_day.due(open, t(2026, 1, 2, 0, 0, 0)));
        assert!(no_day.due(open, t(2026, 1, 2, 0, 59, 0)));
        let never = RotationPolicy {
            period: None,
            at_day_change: false,
            max_bytes: None,
        };
        assert!(!never.due(open, t(2027, 1, 1, 0, 0, 0)));
        assert!(!never.due_at(open, t(2027, 1, 1, 0, 0, 0), u64::MAX));
        let sized = RotationPolicy {
            max_bytes: Some(1000),
            ..never
        };
        assert!(!sized.due_at(open, open, 999));
        assert!(sized.due_at(open, open, 1000), "size bound reached");
        assert!(
            !sized.due(open, open),
            "an empty file never rotates by size"
        );
    }
}
