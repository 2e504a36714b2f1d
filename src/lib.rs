//! sluice: progressive delivery engine.
//!
//! - [`analysis`]: Prometheus queries, verdicts and the statistical judge.
//! - [`spec`]: the `Rollout` kind (CRD types) users write.
//! - [`engine`]: the pure state machine deciding every step.
//! - [`traffic`]: the abstract `TrafficPlan` routers translate.
//! - [`exec`]: the glue executing the engine's effects through mode-specific traits.
//! - [`k8s`]: the Kubernetes controller (Rollouts drive Deployments and Istio VirtualServices).
//! - [`backend`]: what the HTTP API / UI / CLI see of rollouts in either mode.
//! - [`api`]: the HTTP API, live event stream and web UI over a backend.
//! - [`schedule`], [`duration`]: cron windows and Go-style durations.
//! - [`webhooks`], [`notify`], [`telemetry`], [`secret`]: webhooks, notifications, sluice's own
//!   metrics and logging, and the secret type that keeps URLs/tokens out of them.
//! - [`validate`]: loading Rollout files, reporting every problem with its field path.
//! - [`router`]: translations of a `TrafficPlan` for each data plane (Istio VirtualService,
//!   Envoy file-based xDS).
//! - [`plan`]: `sluice plan`, every step of a rollout before anything runs.
//! - [`procs`]: child processes sluice runs (a real Envoy and Prometheus); [`demo_app`]: the
//!   demo backend; [`bench`]: benchmarks against real processes.
//! - [`standalone`]: standalone mode (rollout files, embedded store, runner, demo).

// The domain core lives in its own crate (no kube client, HTTP or storage).
pub use sluice_core::{
    backend, clock, duration, engine, exec, plan, schedule, spec, template, traffic, validate,
};
pub use sluice_notify::{notify, secret, webhooks};
/// Metrics and logging (`sluice-telemetry`) with the notifier bundle (`sluice-notify`).
pub mod telemetry {
    pub use sluice_notify::Telemetry;
    pub use sluice_telemetry::*;
}
pub use sluice_analysis as analysis;
/// Traffic routers: translations of a `TrafficPlan` into what a data plane understands.
pub mod router {
    pub use sluice_envoy::{admin as envoy_admin, translate as envoy, xds as envoy_xds};
    pub use sluice_k8s::istio;
}
pub use sluice_k8s as k8s;
pub use sluice_lab::{bench, demo_app, procs};
/// The HTTP API (`sluice-api`), with the in-memory test backend (`sluice-testkit`).
pub mod api {
    pub use sluice_api::*;
}
/// Standalone mode (`sluice-standalone`) and what the demo adds (`sluice-lab`).
pub mod standalone {
    pub use sluice_lab::standalone::{bench, demo, load, progress, stack};
    pub use sluice_standalone::*;
}
