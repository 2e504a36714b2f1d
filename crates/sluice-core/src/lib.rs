//! sluice's domain core: everything that decides, nothing that talks to the outside world.
//!
//! Data flows through it in this order (docs/architecture.md draws the whole picture):
//!
//! 1. [`spec`]: the `Rollout` kind users write and the status sluice records — the wire format
//!    of both modes (CRD on Kubernetes, YAML files standalone).
//! 2. [`validate`]: loading Rollout files and checking a spec, every problem with its field path.
//! 3. [`rollout_plan`]: the spec parsed once (`RolloutPlan::try_from`, which runs the
//!    validation rules); [`engine`]: the pure state machine `step(plan, status, observations,
//!    now) -> (status, effects)`; [`schedule`] and [`duration`] are the cron windows and durations it reads.
//! 4. [`traffic`]: the abstract `TrafficPlan` routers translate; [`plan`]: every step of a
//!    rollout before anything runs.
//! 5. [`exec`]: the executor traits (router, workloads, analyzer, webhooks, recorder) and the
//!    one `tick` both modes run; adapters implement the traits in their own crates.
//! 6. [`backend`]: what the HTTP API, UI and CLI see of rollouts, whatever the mode.
//!
//! This crate must not depend on a Kubernetes client, an HTTP stack or a store (CI checks
//! `cargo tree`); the kube `CustomResource` derive is behind the `crd` feature.

pub mod analysis_template;
pub mod backend;
pub mod clock;
#[cfg(feature = "crd")]
pub mod crd;
pub mod duration;
pub mod engine;
pub mod exec;
pub mod plan;
pub mod rollout_plan;
pub mod schedule;
pub mod spec;
pub mod template;
pub mod traffic;
pub mod validate;
pub mod yaml;
