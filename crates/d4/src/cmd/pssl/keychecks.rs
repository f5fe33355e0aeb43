//! The weak-key check options of `d4 pssl ingest` and `d4 pssl serve --queue`: the per-key
//! checks of `d4 keys check` (badkeys' default set) run on every new key unless
//! `--no-key-checks`, with known-bad primes and blocklists when given.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use d4_keys::check::Checks;
use d4_pssl::Ingester;

#[derive(Debug, Clone, Default, Args)]
pub struct KeyCheckArgs {
    /// No weak-key checks on new keys (`--bad-primes` and `--blocklist` are then unused).
    #[arg(long)]
    pub no_key_checks: bool,

    /// Weak-key checks: a folder of `primes<bits>.dat` files (badkeys' format) for
    /// `sharedprimes`.
    #[arg(long, value_name = "DIR", env = "D4_KEYS_BAD_PRIMES")]
    pub bad_primes: Option<PathBuf>,

    /// Weak-key checks: badkeys' `blocklist.dat` (list names from `badkeysdata.json`
    /// beside it); repeatable.
    #[arg(long, value_name = "FILE", env = "D4_KEYS_BLOCKLIST")]
    pub blocklist: Vec<PathBuf>,
}

impl KeyCheckArgs {
    /// The loaded checks, `None` with `--no-key-checks`.
    pub fn checks(&self) -> anyhow::Result<Option<Arc<Checks>>> {
        if self.no_key_checks {
            return Ok(None);
        }
        let mut checks = Checks::with_warnings(false);
        for bl in &self.blocklist {
            checks
                .load_blocklist(bl)
                .with_context(|| format!("--blocklist {}", bl.display()))?;
        }
        if let Some(dir) = &self.bad_primes {
            checks
                .load_bad_primes(dir)
                .with_context(|| format!("--bad-primes {}", dir.display()))?;
        }
        Ok(Some(Arc::new(checks)))
    }

    /// The ingester with the checks (when on).
    pub fn apply(&self, ing: Ingester) -> anyhow::Result<Ingester> {
        Ok(match self.checks()? {
            Some(c) => ing.with_key_checks(c),
            None => ing,
        })
    }
}
