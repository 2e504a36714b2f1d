//! Standalone mode: progressive delivery without Kubernetes (see docs/standalone.md).
pub mod loader;
pub mod store;
