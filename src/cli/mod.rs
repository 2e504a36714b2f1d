//! Subcommand implementations; `main.rs` only parses and dispatches.

pub mod envoy;
pub mod kube;
pub mod plan;
