//! Analysis: asking Prometheus whether the canary is healthy, and judging the answer.
//!
//! Data flow for one analysis run of one rollout ([`PrometheusAnalyzer`], an
//! [`sluice_core::exec::Analyzer`]):
//!
//! ```text
//! metric ──► template (builtin per data plane, or the user's) ──► rendered with the rollout's
//!            names (names.rs: Istio workloads / Envoy clusters)
//!        ──► MetricSource (PrometheusSource: HTTP, retries, auth, typed errors)
//!        ──► verdict.rs (one finite value, thresholds)  and/or  judge/ (canary vs stable)
//!        ──► CheckResult { Pass | Fail | Inconclusive, value, min, max, reason }
//! ```
//!
//! Guarantees: a check that could not be made (unreachable Prometheus, timeout, bad query,
//! empty result, NaN, several series, too little traffic) is Inconclusive with the reason, never
//! Pass; secrets never appear in reasons or logs. docs/analysis.md documents the exact PromQL.

pub mod analyzer;
pub mod backtest;
pub mod builtin;
pub mod judge;
pub mod names;
pub mod prometheus;
pub mod report;
pub mod run;
pub mod source;
pub mod verdict;

pub use analyzer::{AddressPolicy, PrometheusAnalyzer};
pub use names::envoy_cluster;
pub use prometheus::{PrometheusConfig, PrometheusSource};
pub use run::{MetricRun, QueryRun, RunOptions};
pub use source::{MetricSource, QueryValue, Sample, Series, SourceError, TimeRange};
