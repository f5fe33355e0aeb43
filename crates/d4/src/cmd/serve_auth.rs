//! The credentials of the lookup servers (`d4 pssl serve`, `d4 pibs serve`): tokens and
//! `user:password` pairs from their flags and files, into `d4_http::Credentials`.

use std::path::Path;

use anyhow::Context;
// d4-http's types, as the lookup servers re-export them (the binary does not link d4-http)
use d4_pssl::server::{auth::parse_user_password, Credentials};

/// The non-empty, non-comment lines of a credentials file.
fn secret_lines(path: &Path, what: &str) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// Tokens (`--token`, `--token-file`) and user/password pairs (`--basic`, `--basic-file`);
/// refuses empty ones.
pub fn credentials(
    token: &[String],
    token_file: Option<&Path>,
    basic: &[String],
    basic_file: Option<&Path>,
) -> anyhow::Result<Credentials> {
    let mut tokens = token.to_vec();
    if let Some(f) = token_file {
        tokens.extend(secret_lines(f, "--token-file")?);
    }
    if tokens.iter().any(|t| t.trim().is_empty()) {
        anyhow::bail!(
            "an empty --token would accept an empty Authorization header: give a real token"
        );
    }
    let mut lines = basic.to_vec();
    if let Some(f) = basic_file {
        lines.extend(secret_lines(f, "--basic-file")?);
    }
    let basic = lines
        .iter()
        .map(|l| {
            parse_user_password(l).ok_or_else(|| {
                anyhow::anyhow!("a --basic value is `user:password`, neither part empty")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Credentials {
        tokens: tokens.into_iter().map(|t| t.trim().to_string()).collect(),
        basic,
    })
}
