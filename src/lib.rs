//! sluice: progressive delivery engine.
//!
//! - [`spec`]: the `Rollout` kind (CRD types) users write.
//! - [`engine`]: the pure state machine deciding every step.
//! - [`traffic`]: the abstract `TrafficPlan` routers translate.
//! - [`exec`]: the glue executing the engine's effects through mode-specific traits.
//! - [`backend`]: what the HTTP API / UI / CLI see of rollouts in either mode.
//! - [`schedule`], [`duration`]: cron windows and Go-style durations.
//! - [`validate`]: loading Rollout files, reporting every problem with its field path.
//! - [`router`]: translations of a `TrafficPlan` for each data plane (Istio VirtualService).
//! - [`plan`]: `sluice plan`, every step of a rollout before anything runs.

pub mod backend;
pub mod duration;
pub mod engine;
pub mod exec;
pub mod plan;
pub mod router;
pub mod schedule;
pub mod spec;
pub mod template;
pub mod traffic;
pub mod validate;
