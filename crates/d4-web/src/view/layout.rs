//! The page layout and the small components every page uses: the navigation bar, CSRF
//! fields, one-button forms, flash messages, the error and secret pages, the style sheet.

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use d4_store::Role;
use maud::{html, Markup, DOCTYPE};

use crate::auth::Viewer;
use crate::failure::Failure;

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
code{font-family:monospace}.hex{font-family:monospace;overflow-wrap:anywhere;max-width:60em}\
pre{white-space:pre-wrap;overflow-wrap:anywhere}.muted{color:#777}fieldset{margin:.5em 0;border:1px solid #ccc}figure{margin:1em 0}";

pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css")], CSS).into_response()
}

fn nav(viewer: Option<&Viewer>) -> Markup {
    html! {
        nav {
            @match viewer {
                Some(v) => {
                    @if v.user.role != Role::SensorRegister {
                        a href="/" { "Dashboard" }
                        a href="/sensors" { "Sensors" }
                        a href="/registration" { "Registration" }
                        a href="/monitoring" { "Monitoring" }
                        a href="/queues" { "Queues" }
                        a href="/server" { "Server" }
                        a href="/pssl" { "Passive SSL" }
                        a href="/pibs" { "Backscatter" }
                    }
                    @if v.user.role == Role::Admin {
                        a href="/sharing" { "Sharing" }
                        a href="/users" { "Users" }
                    }
                    a href="/account" { "Account (" (v.user.name) ", " (v.user.role.as_str()) ")" }
                    form.inline method="post" action="/logout" {
                        (csrf_field(&v.csrf))
                        button type="submit" { "Log out" }
                    }
                }
                None => { a href="/login" { "d4" } }
            }
        }
    }
}

/// A complete page. `viewer` = the logged-in user (nav bar with logout form).
pub fn page(title: &str, viewer: Option<&Viewer>, body: Markup) -> Html<String> {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width";
                title { (title) " — d4" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                (nav(viewer))
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(doc.into_string())
}

/// The hidden CSRF field of every state-changing form.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A hidden form field.
pub fn hidden(name: &str, value: &str) -> Markup {
    html! { input type="hidden" name=(name) value=(value); }
}

/// A one-button POST form; `extra` = more (hidden) fields.
pub fn button(v: &Viewer, action: &str, label: &str, extra: Markup) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(&v.csrf)) (extra) button type="submit" { (label) }
        }
    }
}

/// A flash message paragraph, when there is one.
pub fn flash(text: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = text { p.flash { (m) } }
    }
}

/// An error paragraph, when there is one.
pub fn error_line(text: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = text { p.error { (e) } }
    }
}

pub fn error_page(viewer: Option<&Viewer>, f: &Failure) -> Response {
    let body = html! {
        p.error { (f.reason) }
        p { a href="/" { "Dashboard" } }
    };
    (
        f.status,
        page(&format!("Error {}", f.status.as_u16()), viewer, body),
    )
        .into_response()
}

pub fn not_found() -> Response {
    let body = html! { p { "No such page. " a href="/" { "Dashboard" } } };
    (StatusCode::NOT_FOUND, page("Not found", None, body)).into_response()
}

/// A secret (key, token, password) shown once.
pub fn secret_page(v: &Viewer, title: &str, what: &str, secret: &str, back_to: &str) -> Response {
    let body = html! {
        p { (what) }
        p.secret { (secret) }
        p {
            strong { "It is shown once, never again." }
            " "
            a href=(back_to) { "Continue" }
        }
    };
    page(title, Some(v), body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_are_escaped() {
        let f = Failure::bad("<script>alert('x')</script>&\"");
        let body = html! { p.error { (f.reason) } input value=(f.reason); };
        let s = body.into_string();
        assert!(!s.contains("<script>"), "{s}");
        assert!(
            s.contains("&lt;script&gt;alert('x')&lt;/script&gt;&amp;&quot;"),
            "{s}"
        );
    }
}
