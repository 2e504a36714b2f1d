//! What users run to try and measure sluice, kept outside the product crates:
//!
//! - [`standalone::demo`]: `sluice demo`, the one-command demo (real Envoy + Prometheus + demo
//!   backends + standalone sluice), with its terminal [`standalone::progress`] lines and
//!   [`standalone::load`] generator; [`standalone::stack`] starts the real processes it needs.
//! - [`demo_app`]: `sluice demo-app`, the Bookinfo-reviews-like backend that counts requests.
//! - [`bench`]: `sluice bench ...`, benchmarks against real processes and the judge simulation.
//! - [`kube_api`]: a small in-memory Kubernetes API server (watches, resourceVersions,
//!   finalizers, status subresource, injected errors) for `sluice bench kube` and the
//!   controller's tests (re-exported by `sluice-testkit`).
//! - [`procs`]: the real Envoy and Prometheus as child processes (killed on drop), shared with
//!   the tests through `sluice-testkit`.
//!
//! The `sluice` binary depends on this crate for those subcommands; no product crate does.

pub mod bench;
pub mod demo_app;
pub mod kube_api;
pub mod procs;
pub mod standalone;
