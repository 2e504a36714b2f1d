//! Test doubles and helpers shared by every crate's tests (a dev-dependency only; nothing in
//! the product depends on it).
//!
//! - [`memory`]: an in-memory [`sluice_core::backend::Backend`] that runs the real engine
//!   through `exec::tick` with fake workloads and a fake metric source.

pub mod memory;
