//! Test doubles and helpers shared by every crate's tests: a dev-dependency only, nothing in
//! the product depends on it.
//!
//! - [`fakes`]: one scripted fake per executor trait (`FakeRouter`, `FakeWorkloads`,
//!   `FakeAnalyzer`, `NoWebhooks`, `MemRecorder`), an HTTP [`fakes::Receiver`] for webhooks and
//!   notifications, and [`fakes::install_crypto`] (the rustls provider, once per process).
//! - [`memory`]: an in-memory `Backend` that runs the real engine through `exec::tick`;
//!   [`web`]: rollouts over it for the API, CLI and browser tests.
//! - [`kube_api`]: a small in-memory Kubernetes API server (resourceVersions, conflicts,
//!   status subresource, finalizers, injected errors) for `kube::Client::new`.
//! - [`files`]: the repository's golden files, fixtures and example Rollouts.
//! - [`procs`] and [`demo_app`]: the real Envoy and Prometheus as child processes and the demo
//!   backend; [`kube_api`] too lives in `sluice-lab` (`sluice bench kube` runs the controller
//!   against it).

pub mod fakes;
pub mod files;
pub mod memory;
pub mod web;

pub use sluice_lab::{demo_app, kube_api, procs};

/// The plan of a test's Rollout (the engine runs plans). A test Rollout that does not parse is
/// a broken test: this panics with every problem.
pub fn plan_of(rollout: &sluice_core::spec::Rollout) -> sluice_core::rollout_plan::RolloutPlan {
    sluice_core::rollout_plan::RolloutPlan::try_from(&rollout.spec)
        .unwrap_or_else(|e| panic!("test rollout is invalid: {e:?}"))
}

/// `exec::tick`, then its outbox delivered at once: for tests whose "persisted status" is the
/// value they keep (there is no store that could fail between the two).
pub async fn tick_delivered(
    ex: &sluice_core::exec::Executors,
    rollout: &sluice_core::spec::Rollout,
    plan: &sluice_core::rollout_plan::RolloutPlan,
    status: &sluice_core::spec::RolloutStatus,
    command: Option<sluice_core::engine::Command>,
    now: chrono::DateTime<chrono::Utc>,
) -> sluice_core::exec::TickOutcome {
    let out = sluice_core::exec::tick(ex, rollout, plan, status, command, now).await;
    sluice_core::exec::deliver(ex, rollout, &out.outbox).await;
    out
}

/// [`tick_delivered`] through `sluice_telemetry::observed_tick` (metrics and span around it).
pub async fn observed_tick_delivered(
    ex: &sluice_core::exec::Executors,
    metrics: &sluice_telemetry::Metrics,
    rollout: &sluice_core::spec::Rollout,
    plan: &sluice_core::rollout_plan::RolloutPlan,
    status: &sluice_core::spec::RolloutStatus,
    command: Option<sluice_core::engine::Command>,
    now: chrono::DateTime<chrono::Utc>,
) -> sluice_core::exec::TickOutcome {
    let out =
        sluice_telemetry::observed_tick(ex, metrics, rollout, plan, status, command, now).await;
    sluice_telemetry::observed_deliver(ex, rollout, out.revision.as_deref(), &out.outbox).await;
    out
}
