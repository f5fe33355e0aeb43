//! The credentials the token-protected lookup servers accept (`d4 pssl serve` as PyPSSL
//! sends them, `d4 pibs serve` alike): a raw token (`Authorization: <token>`, PyPSSL's
//! `auth_token`), the same token after `Bearer `, or HTTP Basic (`Authorization: Basic
//! base64(user:password)`, PyPSSL's `basic_auth`). Comparisons take the same time wherever
//! the bytes differ. (Moved here from `d4-pssl` so that both servers share it.)

use base64::Engine;

use crate::ct_eq;

/// Accepted tokens and user/password pairs (both empty: no authentication).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub tokens: Vec<String>,
    pub basic: Vec<(String, String)>,
}

impl Credentials {
    /// Whether nothing is configured (every request passes).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.basic.is_empty()
    }

    /// Whether an `Authorization` header value carries accepted credentials.
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        let Some(v) = authorization.map(str::trim).filter(|v| !v.is_empty()) else {
            return false;
        };
        if let Some((user, password)) = basic_pair(v) {
            // Every pair is compared: the time does not say which user exists.
            let hit = self.basic.iter().fold(false, |ok, (u, p)| {
                ok | (ct_eq(u.as_bytes(), user.as_bytes())
                    & ct_eq(p.as_bytes(), password.as_bytes()))
            });
            if hit {
                return true;
            }
        }
        let token = strip_prefix_ci(v, "Bearer ").map_or(v, str::trim);
        // An empty token never matches (the binary refuses to start with one).
        !token.is_empty()
            && self
                .tokens
                .iter()
                .filter(|t| !t.is_empty())
                .fold(false, |ok, t| {
                    ok | ct_eq(t.as_bytes(), token.as_bytes()) | ct_eq(t.as_bytes(), v.as_bytes())
                })
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `Basic dXNlcjpwdw==` → `("user", "pw")` (the password may hold `:`).
pub fn basic_pair(v: &str) -> Option<(String, String)> {
    let b64 = strip_prefix_ci(v.trim(), "Basic ")?.trim();
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// A `--basic` value or a line of `--basic-file`: `user:password` (the password may hold
/// `:`; neither part empty).
pub fn parse_user_password(s: &str) -> Option<(String, String)> {
    let (u, p) = s.split_once(':')?;
    (!u.is_empty() && !p.is_empty()).then(|| (u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            tokens: vec!["t0ken".into()],
            basic: vec![("alice".into(), "pa:ss".into())],
        }
    }

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn tokens_raw_and_bearer() {
        let c = creds();
        assert!(c.accepts(Some("t0ken")));
        assert!(c.accepts(Some("Bearer t0ken")));
        assert!(c.accepts(Some("bearer   t0ken ")));
        assert!(!c.accepts(Some("t0ke")));
        assert!(!c.accepts(Some("Bearer t0kenX")));
        assert!(!c.accepts(Some("")));
        assert!(!c.accepts(None));
    }

    #[test]
    fn basic_auth() {
        let c = creds();
        // "alice:pa:ss" in base64, written out by hand: YWxpY2U6cGE6c3M=
        assert!(c.accepts(Some("Basic YWxpY2U6cGE6c3M=")));
        assert!(c.accepts(Some(&basic("alice:pa:ss"))));
        assert!(!c.accepts(Some(&basic("alice:pa:s"))));
        assert!(!c.accepts(Some(&basic("bob:pa:ss"))));
        assert!(!c.accepts(Some("Basic !!!")));
        // A token is not a password.
        assert!(!c.accepts(Some(&basic("alice:t0ken"))));
        assert_eq!(
            basic_pair("basic YWxpY2U6cGE6c3M="),
            Some(("alice".into(), "pa:ss".into()))
        );
    }

    #[test]
    fn user_password_lines() {
        assert_eq!(
            parse_user_password("u:p:q"),
            Some(("u".into(), "p:q".into()))
        );
        assert_eq!(parse_user_password("u:"), None);
        assert_eq!(parse_user_password(":p"), None);
        assert_eq!(parse_user_password("up"), None);
        assert!(Credentials::default().is_empty());
        assert!(!creds().is_empty());
    }
}
