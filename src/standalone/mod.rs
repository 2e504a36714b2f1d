//! Standalone mode: progressive delivery without Kubernetes (see docs/standalone.md).
pub mod backend;
pub mod bench;
pub mod demo;
pub mod launch;
pub mod load;
pub mod loader;
pub mod progress;
pub mod runner;
pub mod server;
pub mod stack;
pub mod store;
pub mod workloads;

#[cfg(test)]
mod tests;
