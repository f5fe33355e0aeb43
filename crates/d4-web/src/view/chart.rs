//! A small bar chart as inline SVG (the pages use no JavaScript).

use maud::{html, Markup};

/// A bar chart of `(label, value)`.
pub fn bar_chart(title: &str, bars: &[(String, u64)], fmt: fn(u64) -> String) -> Markup {
    let w = 560u64;
    let h = 160u64;
    let n = bars.len().max(1) as u64;
    let slot = w / n;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    html! {
        figure {
            figcaption { (title) }
            svg xmlns="http://www.w3.org/2000/svg" width=(w) height=(h + 40) role="img" {
                @for (i, (lbl, v)) in bars.iter().enumerate() {
                    @let bh = v.saturating_mul(h) / max;
                    @let x = i as u64 * slot + 4;
                    @let value = fmt(*v);
                    rect x=(x) y=(h - bh + 12) width=(slot.saturating_sub(8)) height=(bh) fill="#4a78b0" {
                        title { (lbl) ": " (value) }
                    }
                    text x=(x) y=(h + 26) font-size="11" { (lbl) }
                    text x=(x) y=(h - bh + 10) font-size="10" { (value) }
                }
                line x1="0" y1=(h + 12) x2=(w) y2=(h + 12) stroke="#999" {}
            }
        }
    }
}
