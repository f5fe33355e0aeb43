//! Per-key checks with badkeys' names and meaning.
