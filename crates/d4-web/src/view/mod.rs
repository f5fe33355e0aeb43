//! HTML rendering with `maud`: every `(splice)` in an `html!` template is escaped, so no
//! page builds markup from strings. [`layout`] holds the page frame and the shared
//! components, [`chart`] the SVG bar chart, [`format`] times and byte counts.

pub mod chart;
pub mod format;
pub mod layout;

pub use chart::bar_chart;
pub use format::{fmt_time, human_bytes, month_day, opt_time, plural, url_enc};
pub use layout::{
    button, csrf_field, error_line, error_page, flash, hidden, not_found, page, secret_page, style,
};
