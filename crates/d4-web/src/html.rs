//! HTML building blocks: escaping, the page layout, forms and a small SVG bar chart.
//! Every user-controlled string goes through [`esc`].

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::actions::Failure;
use crate::auth::Viewer;

/// Escape text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222;line-height:1.4}\
nav{background:#1f3a5f;padding:.5em 1em}nav a,nav button{color:#fff;margin:0 1em 0 0;padding:0;text-decoration:none;background:none;border:0;font:inherit;cursor:pointer}\
nav a:hover,nav button:hover{text-decoration:underline;background:none}\
main{padding:1em 2em}h2{margin:1.2em 0 .4em}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:middle}\
td{white-space:nowrap}td:last-child{white-space:normal;overflow-wrap:anywhere}tr:nth-child(even) td{background:#f8f9fb}\
th{background:#eef}form{margin:.4em 0}form.inline{display:inline-block;margin:0 .3em .2em 0}\
button{font:inherit;font-size:.9em;padding:.2em .8em;border:1px solid #8a9bb5;border-radius:3px;background:#f3f5f9;color:#1f3a5f;cursor:pointer}\
button:hover{background:#e1e8f2}input,textarea,select{font:inherit;font-size:.95em;padding:.15em .3em;border:1px solid #aab;border-radius:3px}\
textarea{vertical-align:top;font-family:monospace}label{margin-right:.3em}\
.flash{background:#efe;border:1px solid #9c9;padding:.5em}.error{background:#fee;border:1px solid #c99;padding:.5em}\
.secret{font-family:monospace;background:#ffd;padding:.5em;border:1px solid #cc9;overflow-wrap:anywhere}\
code{font-family:monospace}.muted{color:#777}fieldset{margin:.5em 0;border:1px solid #ccc}figure{margin:1em 0}";

pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css")], CSS).into_response()
}

/// A complete page. `viewer` = the logged-in user (nav bar with logout form).
pub fn page(title: &str, viewer: Option<&Viewer>, body: &str) -> Html<String> {
    let nav = match viewer {
        Some(v) => {
            let mut links = String::from(
                "<a href=\"/\">Dashboard</a><a href=\"/sensors\">Sensors</a>\
                 <a href=\"/registration\">Registration</a><a href=\"/monitoring\">Monitoring</a>\
                 <a href=\"/queues\">Queues</a><a href=\"/server\">Server</a>",
            );
            if v.user.role == d4_store::Role::SensorRegister {
                links = String::new();
            }
            if v.user.role == d4_store::Role::Admin {
                links.push_str("<a href=\"/users\">Users</a>");
            }
            format!(
                "<nav>{links}<a href=\"/account\">Account ({name}, {role})</a>\
                 <form class=\"inline\" method=\"post\" action=\"/logout\">{csrf}\
                 <button type=\"submit\">Log out</button></form></nav>",
                name = esc(&v.user.name),
                role = v.user.role.as_str(),
                csrf = csrf_field(&v.csrf),
            )
        }
        None => "<nav><a href=\"/login\">d4</a></nav>".to_string(),
    };
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t} — d4</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head>\
         <body>{nav}<main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    ))
}

pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

/// A one-button POST form.
pub fn button(v: &Viewer, action: &str, label: &str, extra: &str) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{}\">{}{extra}<button type=\"submit\">{}</button></form>",
        esc(action),
        csrf_field(&v.csrf),
        esc(label)
    )
}

pub fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        esc(name),
        esc(value)
    )
}

pub fn error_page(viewer: Option<&Viewer>, f: &Failure) -> Response {
    let body = format!(
        "<p class=\"error\">{}</p><p><a href=\"/\">Dashboard</a></p>",
        esc(&f.reason)
    );
    (
        f.status,
        page(&format!("Error {}", f.status.as_u16()), viewer, &body),
    )
        .into_response()
}

pub fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        page(
            "Not found",
            None,
            "<p>No such page. <a href=\"/\">Dashboard</a></p>",
        ),
    )
        .into_response()
}

/// A bar chart of `(label, value)` as inline SVG (no JavaScript).
pub fn bar_chart(title: &str, bars: &[(String, u64)], fmt: fn(u64) -> String) -> String {
    let w = 560u64;
    let h = 160u64;
    let n = bars.len().max(1) as u64;
    let slot = w / n;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" role=\"img\">",
        esc(title),
        h + 40
    );
    for (i, (lbl, v)) in bars.iter().enumerate() {
        let bh = v.saturating_mul(h) / max;
        let x = i as u64 * slot + 4;
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{bh}\" fill=\"#4a78b0\"><title>{}: {}</title></rect>\
             <text x=\"{x}\" y=\"{}\" font-size=\"11\">{}</text><text x=\"{x}\" y=\"{}\" font-size=\"10\">{}</text>",
            h - bh + 12,
            slot.saturating_sub(8),
            esc(lbl),
            esc(&fmt(*v)),
            h + 26,
            esc(lbl),
            h - bh + 10,
            esc(&fmt(*v)),
        ));
    }
    svg.push_str(&format!(
        "<line x1=\"0\" y1=\"{y}\" x2=\"{w}\" y2=\"{y}\" stroke=\"#999\"/></svg></figure>",
        y = h + 12
    ));
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_dangerous() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(url_enc("/a b?c"), "/a%20b%3Fc");
    }
}
