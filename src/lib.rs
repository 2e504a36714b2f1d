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

pub mod analysis;
pub mod api;
pub mod backend;
pub mod bench;
pub mod demo_app;
pub mod duration;
pub mod engine;
pub mod exec;
pub mod k8s;
pub mod notify;
pub mod plan;
pub mod procs;
pub mod router;
pub mod schedule;
pub mod secret;
pub mod spec;
pub mod standalone;
pub mod telemetry;
pub mod template;
pub mod traffic;
pub mod validate;
pub mod webhooks;
