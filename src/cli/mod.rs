//! Subcommand implementations; `main.rs` only parses and dispatches.

pub mod envoy;
