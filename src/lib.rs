//! sluice: progressive delivery engine.
//!
//! - [`spec`]: the `Rollout` kind (CRD types) users write.
//! - [`engine`]: the pure state machine deciding every step.
//! - [`traffic`]: the abstract `TrafficPlan` routers translate.
//! - [`exec`]: the glue executing the engine's effects through mode-specific traits.
//! - [`backend`]: what the HTTP API / UI / CLI see of rollouts in either mode.
//! - [`api`]: the HTTP API, live event stream and web UI over a backend.
//! - [`cli`]: the client side of the API for people and CI (`sluice status|wait|promote`...).
//! - [`schedule`], [`duration`]: cron windows and Go-style durations.

pub mod api;
pub mod backend;
pub mod cli;
pub mod duration;
pub mod engine;
pub mod exec;
pub mod schedule;
pub mod spec;
pub mod template;
pub mod traffic;
