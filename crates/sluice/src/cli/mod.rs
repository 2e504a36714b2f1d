//! Subcommand implementations; `main.rs` only parses and dispatches.

pub mod analysis;
pub mod envoy;
pub mod kube;
pub mod notify;
pub mod plan;
pub mod standalone;

// The HTTP API's client side: `status`, `wait` and the command verbs (docs/ci.md).
pub mod client;
pub mod cluster;
pub mod control;
pub mod exit;
mod render;
pub mod wait;

/// The API token from the environment ([`sluice_api::TOKEN_ENV`]); the library never reads it.
pub fn api_token_env() -> Option<String> {
    std::env::var(sluice_api::TOKEN_ENV).ok()
}
