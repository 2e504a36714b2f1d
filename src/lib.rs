//! sluice: progressive delivery engine.
//!
//! - [`analysis`]: Prometheus queries, verdicts and the statistical judge.
//! - [`spec`]: the `Rollout` kind (CRD types) users write.
//! - [`engine`]: the pure state machine deciding every step.
//! - [`traffic`]: the abstract `TrafficPlan` routers translate.
//! - [`exec`]: the glue executing the engine's effects through mode-specific traits.
//! - [`backend`]: what the HTTP API / UI / CLI see of rollouts in either mode.
//! - [`schedule`], [`duration`]: cron windows and Go-style durations.
//! - [`standalone`]: standalone mode (rollout files, embedded store, runner, demo).
//! - [`router`]: traffic routers (Envoy file-based xDS); [`procs`]: child processes sluice
//!   runs (a real Envoy and Prometheus); [`demo_app`]: the demo backend; [`bench`]: benchmarks.
//! - [`webhooks`], [`notify`], [`telemetry`], [`secret`]: webhooks, notifications, sluice's own
//!   metrics and logging, and the secret type that keeps URLs/tokens out of them.

pub mod analysis;
pub mod backend;
pub mod bench;
pub mod demo_app;
pub mod duration;
pub mod engine;
pub mod exec;
pub mod notify;
pub mod procs;
pub mod router;
pub mod schedule;
pub mod secret;
pub mod spec;
pub mod standalone;
pub mod telemetry;
pub mod template;
pub mod traffic;
pub mod webhooks;
