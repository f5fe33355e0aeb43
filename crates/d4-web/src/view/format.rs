//! Text formatting shared by the pages: times, byte counts, plurals, URL components.

/// Human-readable byte count.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn fmt_time(t: u64) -> String {
    let day = d4_store::day_of(t);
    let secs = t % 86_400;
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        day / 10_000,
        day / 100 % 100,
        day % 100,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// [`fmt_time`], or "never".
pub fn opt_time(t: Option<u64>) -> String {
    t.map(fmt_time).unwrap_or_else(|| "never".into())
}

/// A `YYYYMMDD` day as `MM-DD` (chart labels).
pub fn month_day(day: u32) -> String {
    format!("{:02}-{:02}", day / 100 % 100, day % 100)
}

/// `one` when `n` is 1, else `many` ("1 sensor", "0 sensors", "2 sensors").
pub fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Percent-encode a query component.
pub fn url_enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_time(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(url_enc("/a b?c"), "/a%20b%3Fc");
    }
}
