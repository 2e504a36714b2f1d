//! Standalone mode: progressive delivery without Kubernetes (see docs/standalone.md).
//!
//! Rollouts are YAML files in a directory ([`loader`]), state lives in an embedded store
//! ([`store`]), the [`runner`] ticks every rollout through `sluice_core::exec::tick`, the data
//! plane is a real Envoy driven through file-based xDS ([`workloads`] over `sluice-envoy`), and
//! [`server`] serves the web API over the [`backend`]. [`launch`] assembles them.
pub mod backend;
pub mod launch;
pub mod loader;
pub mod runner;
pub mod server;
pub mod store;
pub mod workloads;

#[cfg(test)]
mod tests;
