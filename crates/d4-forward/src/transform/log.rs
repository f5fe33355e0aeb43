//! Log lines (type 3, and types 4 and line-based extended types other than JSON ones):
//! every match of each regular expression, in order, is replaced by a fixed text
//! (`[REDACTED]` unless the rule says otherwise; `$` in it is literal). Lines are bytes:
//! expressions match UTF-8 text, invalid bytes never match a character class.

use regex::bytes::{NoExpand, Regex};

use super::{Pushed, TransformError};

/// Replacement when the rule gives none.
pub const DEFAULT_REPLACEMENT: &str = "[REDACTED]";

#[derive(Debug, Clone)]
pub struct LogTransform {
    redact: Vec<Regex>,
    replacement: Vec<u8>,
}

impl LogTransform {
    pub fn new(patterns: &[String], replacement: &str) -> Result<LogTransform, TransformError> {
        let redact = patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| {
                    TransformError::Settings(format!("log redaction expression {p:?}: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let replacement = if replacement.is_empty() {
            DEFAULT_REPLACEMENT
        } else {
            replacement
        };
        Ok(LogTransform {
            redact,
            replacement: replacement.as_bytes().to_vec(),
        })
    }

    pub fn line(&self, line: &[u8], out: &mut Vec<u8>, pushed: &mut Pushed) {
        let mut cur = std::borrow::Cow::Borrowed(line);
        for re in &self.redact {
            if let std::borrow::Cow::Owned(changed) =
                re.replace_all(&cur, NoExpand(&self.replacement))
            {
                cur = std::borrow::Cow::Owned(changed);
            }
        }
        out.extend_from_slice(&cur);
        out.push(b'\n');
        pushed.units += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &LogTransform, line: &[u8]) -> String {
        let mut out = Vec::new();
        let mut p = Pushed::default();
        t.line(line, &mut out, &mut p);
        assert_eq!(p.units, 1);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn redacts_every_match_of_every_expression() {
        let t = LogTransform::new(
            &[r"\b\d{1,3}(\.\d{1,3}){3}\b".into(), "user=\\w+".into()],
            "",
        )
        .unwrap();
        assert_eq!(
            run(&t, b"login user=bob from 10.1.2.3 and 10.4.5.6"),
            "login [REDACTED] from [REDACTED] and [REDACTED]\n"
        );
        assert_eq!(run(&t, b"nothing here"), "nothing here\n");
        let t = LogTransform::new(&["secret".into()], "$1-x").unwrap();
        assert_eq!(run(&t, b"a secret\xff"), "a $1-x\u{fffd}\n");
    }

    #[test]
    fn bad_expressions_are_settings_errors() {
        assert!(matches!(
            LogTransform::new(&["(".into()], ""),
            Err(TransformError::Settings(_))
        ));
    }
}
